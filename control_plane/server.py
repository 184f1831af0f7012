"""A local Prefect server and worker as child processes: the embedded default.

`make run`, the benchmarks and the integration tests need a real Prefect server on
SQLite with its own `PREFECT_HOME`. This module starts one on a free loopback port,
waits until `/api/health` answers, and stops it (and any worker started here) cleanly:
workers run in their own process group so one signal stops them (see ENVIRONMENT.md).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from control_plane.errors import TransientError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prefect_executable() -> str:
    candidate = Path(sys.executable).parent / "prefect"
    return str(candidate) if candidate.exists() else "prefect"


def server_environment(home: Path, api_url: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_LOGGING_LEVEL": env.get("PREFECT_LOGGING_LEVEL", "WARNING"),
        }
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    else:
        env.pop("PREFECT_API_URL", None)
    return env


@dataclass
class LocalProcess:
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self, timeout: float = 20) -> None:
        if self.process.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                return
            try:
                self.process.wait(timeout=timeout / 2)
                return
            except subprocess.TimeoutExpired:
                continue


@dataclass
class LocalServer:
    url: str  # the API URL, ending in /api
    home: Path
    pid: int
    server: LocalProcess | None = None  # None when attached to a server started earlier
    workers: list[LocalProcess] = field(default_factory=list)

    @property
    def ui_url(self) -> str:
        return self.url.removesuffix("/api")

    def environment(self) -> dict[str, str]:
        return server_environment(self.home, self.url)

    def start_worker(
        self, pool: str, *, poll_seconds: int = 2, pool_type: str = "process"
    ) -> LocalProcess:
        env = self.environment()
        env["PREFECT_WORKER_QUERY_SECONDS"] = str(poll_seconds)
        log = self.home / f"worker-{pool}-{len(self.workers)}.log"
        with log.open("wb") as handle:  # the child keeps its own copy of the descriptor
            process = subprocess.Popen(
                [prefect_executable(), "worker", "start", "--pool", pool, "--type", pool_type],
                env=env,
                stdout=handle,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = LocalProcess(process, log)
        self.workers.append(worker)
        return worker

    def stop(self) -> None:
        for worker in self.workers:
            worker.stop()
        if self.server is not None:
            self.server.stop()


def start_local_server(
    home: Path, port: int | None = None, *, ui: bool = False, timeout: float = 90
) -> LocalServer:
    """Start `prefect server start` on 127.0.0.1 and wait until it is healthy."""
    home.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    env = server_environment(home)
    env["PREFECT_UI_ENABLED"] = "true" if ui else "false"
    # a fix for a released Prefect server bug, applied only where the bug is (see there)
    site = str(Path(__file__).parent / "server_site")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (site, env.get("PYTHONPATH")) if p)
    log = home / "server.log"
    with log.open("wb") as handle:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(
            [prefect_executable(), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/api"
    server = LocalServer(url=url, home=home, pid=process.pid, server=LocalProcess(process, log))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise TransientError(
                f"the Prefect server exited with {process.returncode}; see {log}:\n"
                + log.read_text(errors="replace")[-2000:]
            )
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return server
        except OSError:
            pass
        time.sleep(0.3)
    server.stop()
    raise TransientError(f"the Prefect server did not answer on {url} within {timeout:.0f} s")


def attach_or_start_local_server(
    home: Path, port: int | None = None, *, ui: bool = True
) -> LocalServer:
    """The server a previous quickstart left running in `home`, or a new one."""
    state = home / "server.json"
    if state.is_file():
        import json

        data = json.loads(state.read_text())
        try:
            with urllib.request.urlopen(f"{data['url']}/health", timeout=2) as response:
                if response.status == 200:
                    return LocalServer(data["url"], home, int(data["pid"]))
        except OSError:
            pass
    server = start_local_server(home, port, ui=ui)
    import json

    state.write_text(json.dumps({"url": server.url, "pid": server.pid}))
    return server


def stop_local_server(home: Path) -> bool:
    """Stop the server a quickstart left running in `home`; False when none was."""
    import json

    state = home / "server.json"
    if not state.is_file():
        return False
    pid = int(json.loads(state.read_text())["pid"])
    state.unlink()
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True
