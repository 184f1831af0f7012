"""How long deploy-manager takes to reconcile N deployments, next to `prefect deploy --all`.

For each size N (default 10, 100, 500) this script generates a git repository of N flow
files (`flows/f{i}.py`, one `@flow` with two parameters and two tasks each) and a
`prefect.yaml` with one deployment per flow (name `d`, a process work pool, a cron
schedule `0 3 * * *`, `parameters: {x: 2}`), then measures on one real local Prefect
server (SQLite, started by `control_plane.server.start_local_server`):

1. **dm first**: `deploy-manager apply REPO --source BLOCK --json`, which creates the N
   deployments (flows `bench-dm-N-i`);
2. **dm no-op**: the same command again on the same commit: nothing to change;
3. **prefect deploy --all**: `prefect deploy --all --no-prompt` in a copy of the
   repository whose flows are named `bench-pd-N-i` (so it creates N deployments of its
   own) and whose prefect.yaml has a `set_working_directory` pull step (nothing is
   pushed anywhere).

For deploy-manager two figures are printed, "flow run s / command s":
- *flow run*: the `deploy-manager` flow run's own duration, `end_time - start_time`
  as the API records it: the work deploy-manager does (discovery, reading the live
  deployments, planning, one `register[...]` task run per change, the report);
- *command*: the wall time of the whole command (`time.perf_counter` around
  `subprocess.run`): adds Python and Prefect imports (~2.5 s), saving the
  GitHubRepository block, the flow run's setup and the process exit.
For `prefect deploy --all` only the whole command is timed. "ratio" is
`prefect deploy --all` divided by the dm first command (and by the dm first flow run):
above 1 means deploy-manager was faster. "created" counts the deployments of that
tool's flows that exist on the server afterwards (read back through the API), so a
ratio over a failed run is visible as such.

Below the table, per run: the exit status, the report's actions and "server 503s": how
many requests the server answered 503 Service Unavailable while that command ran (the
server logs them, PREFECT_API_LOG_RETRYABLE_ERRORS=true). On SQLite these are "database
is locked" errors, and Prefect's client retries each after an exponential back-off of
about 2, 4, 8, ... s, so a few of them explain seconds of wall time.

After that the task runs of each no-op and first reconcile are listed (from the
API: name, count, summed and wall-clock seconds) to show where the flow run's time goes.

The team's goals are printed as a reminder; nothing is asserted. The server's scheduler
service is off by default (`--with-scheduler` turns it on) so that scheduling runs for
hundreds of new cron deployments does not compete for the CPU with the next measurement;
it does not change what either tool does.

`--noop-runs K` runs the no-op K times (the table shows the median flow run, the details
list every one); `--no-floor` skips the plain-loop floor, to iterate on deploy-manager.

Run: `.venv/bin/python bench/reconcile.py [--sizes 10 100 500] [--keep DIR]`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from importlib import metadata
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_ROOT))

from control_plane.server import LocalServer, start_local_server  # noqa: E402

POOL = "bench-process"
GOALS = (
    "first reconcile (flow run) within 1.5x of the plain-loop floor (SQLite)",
    "no-op flow run of 500 deployments under 2 s",
    "first reconcile at least 10x faster than `prefect deploy --all`",
)
BIN = Path(sys.executable).parent

# --- the repository --------------------------------------------------------------------

FLOW_TEMPLATE = '''"""Benchmark flow {i} of {n}."""

from prefect import flow, task


@task
def double(x: int) -> int:
    return 2 * x


@task
def shout(s: str) -> str:
    return s.upper()


@flow(name="{flow_name}")
def main(x: int = 1, s: str = "a") -> str:
    """Double x and shout s.

    Args:
        x: a number
        s: a word
    """
    return f"{{shout(s)}}{{double(x)}}"
'''


def flow_name(tool: str, n: int, i: int) -> str:
    return f"bench-{tool}-{n}-{i}"


def prefect_yaml(tool: str, n: int, pull_directory: Path | None) -> str:
    lines = [f"name: bench-{tool}-{n}", "prefect-version: 3.8.8", ""]
    if pull_directory is not None:
        lines += [
            "pull:",
            "- prefect.deployments.steps.set_working_directory:",
            f"    directory: {pull_directory}",
            "",
        ]
    lines.append("deployments:")
    for i in range(n):
        lines += [
            "- name: d",
            f"  entrypoint: flows/f{i}.py:main",
            "  work_pool:",
            f"    name: {POOL}",
            "  schedules:",
            '  - cron: "0 3 * * *"',
            "  parameters:",
            "    x: 2",
        ]
    return "\n".join(lines) + "\n"


def git(args: list[str], cwd: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def make_repository(root: Path, tool: str, n: int, *, pull_steps: bool) -> Path:
    """A git repository (branch main, one commit) of n flows and their prefect.yaml."""
    if root.exists():
        shutil.rmtree(root)
    (root / "flows").mkdir(parents=True)
    for i in range(n):
        (root / "flows" / f"f{i}.py").write_text(
            FLOW_TEMPLATE.format(i=i, n=n, flow_name=flow_name(tool, n, i))
        )
    (root / "prefect.yaml").write_text(prefect_yaml(tool, n, root if pull_steps else None))
    git(["init", "--quiet", "-b", "main"], root)
    git(["add", "-A"], root)
    git(["commit", "--quiet", "-m", f"{n} flows"], root)
    return root


# --- talking to the server -------------------------------------------------------------


def run_async(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


async def count_deployments(flow_names: list[str]) -> int:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    found, offset = 0, 0
    async with get_client() as client:
        while True:
            page = await client.read_deployments(
                flow_filter=FlowFilter(name=FlowFilterName(any_=flow_names)),
                limit=200,
                offset=offset,
            )
            found += len(page)
            if len(page) < 200:
                return found
            offset += 200


FLOOR_SOURCE = "bench-floor-{n}"


def floor_specs(repo: Path, source: str) -> list[Any]:
    """The deployments deploy-manager would create for `repo`, field for field.

    Built with deploy-manager's own discovery and planning (the same tags, pinned pull
    step, parameter schema and schedule slug it sends); not timed.
    """
    from control_plane.checkouts import Checkout
    from control_plane.discovery import discover
    from control_plane.reconcile import ReconcileOptions, build_desired, finalize_specs

    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout.strip()
    checkout = Checkout(repo, source, commit, "main", remote_url=str(repo))
    desired = build_desired(checkout, discover(repo), ReconcileOptions())
    return list(finalize_specs(desired.specs, [], {POOL: "process"}, checkout))


async def floor_loop(repo: Path, source: str) -> dict[str, float]:
    """A plain client loop: create every deployment one after the other, then read them back.

    What the server itself allows: Prefect's `get_client()`, no flow run, no task runs,
    no events of our own, one request in flight. The calls and fields are the ones
    `PrefectDeployments._create` sends (written out here so the floor does not move when
    deploy-manager changes).
    """
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

    from control_plane.prefect_objects import create_arguments

    specs = floor_specs(repo, source)
    async with get_client() as client:
        began = time.perf_counter()
        for spec in specs:
            flow_id = await client.create_flow_from_name(spec.flow_name)
            await client.create_deployment(flow_id=flow_id, **create_arguments(spec))
        created = time.perf_counter() - began
        began = time.perf_counter()
        found, offset = 0, 0
        tags = sorted({"deploy-manager", f"source:{source}"})
        while True:
            page = await client.read_deployments(
                deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=tags)),
                limit=200,
                offset=offset,
            )
            found += len(page)
            if len(page) < 200:
                break
            offset += 200
        read = time.perf_counter() - began
    return {"create_s": created, "read_s": read, "created": len(specs), "read": found}


@dataclass
class FlowRunTiming:
    id: str
    state: str
    start: datetime | None
    end: datetime | None
    total_run_time: float
    tasks: list[tuple[str, datetime | None, datetime | None]] = field(default_factory=list)

    @property
    def seconds(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        return (self.end - self.start).total_seconds()


async def latest_flow_run(flow: str = "deploy-manager", with_tasks: bool = True) -> FlowRunTiming:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter
    from prefect.client.schemas.filters import FlowRunFilterId as RunId
    from prefect.client.schemas.sorting import FlowRunSort

    async with get_client() as client:
        runs = await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=1,
        )
        if not runs:
            raise RuntimeError(f"no flow run of {flow!r} on the server")
        run = runs[0]
        timing = FlowRunTiming(
            id=str(run.id),
            state=run.state.type.value if run.state else "?",
            start=run.start_time,
            end=run.end_time,
            total_run_time=run.total_run_time.total_seconds(),
        )
        offset = 0
        while with_tasks:
            page = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=RunId(any_=[run.id])), limit=200, offset=offset
            )
            timing.tasks += [(t.name, t.start_time, t.end_time) for t in page]
            if len(page) < 200:
                break
            offset += 200
    return timing


def server_version(server: LocalServer) -> str:
    """The Prefect version the server process runs (`GET /admin/version`)."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"{server.url}/admin/version", timeout=5) as response:
            return str(json.loads(response.read()))
    except (OSError, ValueError) as exc:
        return f"unknown ({exc})"


def create_pool(server: LocalServer) -> None:
    subprocess.run(
        [str(BIN / "prefect"), "work-pool", "create", POOL, "--type", "process"],
        env=server.environment(),
        check=True,
        capture_output=True,
    )


# --- the measurements ------------------------------------------------------------------


RETRYABLE = "Encountered retryable exception in request"


def server_retryable_errors(server: LocalServer) -> int:
    """How many requests the server has answered 503 (e.g. SQLite "database is locked").

    Needs PREFECT_API_LOG_RETRYABLE_ERRORS=true in the server's environment; Prefect's
    client retries such a request after an exponential back-off of ~2, 4, 8, ... s.
    """
    log = server.home / "server.log"
    return log.read_text(errors="replace").count(RETRYABLE) if log.is_file() else 0


@dataclass
class DmRun:
    command_s: float
    flow_run_s: float | None
    exit_code: int
    state: str
    actions: dict[str, int]
    timing: FlowRunTiming | None
    server_503s: int = 0
    error: str = ""
    load: float | None = None  # the 1-minute load average when the command started


def parse_report(stdout: str) -> dict[str, Any] | None:
    start = stdout.find("{")
    while start != -1:
        try:
            data = json.loads(stdout[start:])
        except json.JSONDecodeError:
            start = stdout.find("\n{", start + 1)
            start = start + 1 if start != -1 else -1
            continue
        return data if isinstance(data, dict) else None
    return None


def run_deploy_manager(server: LocalServer, repo: Path, block: str) -> DmRun:
    command = [str(BIN / "deploy-manager"), "apply", str(repo), "--source", block, "--json"]
    retryable = server_retryable_errors(server)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    began = time.perf_counter()
    completed = subprocess.run(
        command, env=server.environment(), capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - began
    report = parse_report(completed.stdout) or {}
    actions: dict[str, int] = defaultdict(int)
    for item in report.get("items", []):
        actions[f"{item.get('action')}:{item.get('status')}"] += 1
    try:
        timing: FlowRunTiming | None = run_async(latest_flow_run())
    except RuntimeError:
        timing = None
    error = "" if report else (completed.stderr.strip() or completed.stdout.strip())[-1500:]
    return DmRun(
        command_s=elapsed,
        flow_run_s=timing.seconds if timing else None,
        exit_code=completed.returncode,
        state=str(report.get("state", timing.state if timing else "?")),
        actions=dict(actions),
        timing=timing,
        server_503s=server_retryable_errors(server) - retryable,
        error=error,
        load=load,
    )


@dataclass
class FloorRun:
    create_s: float | None
    read_s: float | None
    command_s: float
    created: int
    server_503s: int = 0
    error: str = ""
    skipped: bool = False  # --no-floor


def run_floor(server: LocalServer, repo: Path, source: str) -> FloorRun:
    """The plain-loop floor in a fresh process (see `floor_loop`)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--floor-run", str(repo), source]
    retryable = server_retryable_errors(server)
    began = time.perf_counter()
    completed = subprocess.run(
        command, env=server.environment(), capture_output=True, text=True, check=False
    )
    elapsed = time.perf_counter() - began
    data = parse_report(completed.stdout) or {}
    return FloorRun(
        create_s=data.get("create_s"),
        read_s=data.get("read_s"),
        command_s=elapsed,
        created=int(data.get("created", 0)),
        server_503s=server_retryable_errors(server) - retryable,
        error="" if data else (completed.stderr.strip() or completed.stdout.strip())[-1500:],
    )


@dataclass
class PdRun:
    seconds: float | None
    exit_code: int | None
    note: str = ""
    tail: str = ""
    server_503s: int = 0


def run_prefect_deploy(server: LocalServer, repo: Path, timeout: float) -> PdRun:
    command = [str(BIN / "prefect"), "deploy", "--all", "--no-prompt"]
    retryable = server_retryable_errors(server)
    began = time.perf_counter()
    try:
        completed = subprocess.run(
            command,
            cwd=repo,
            env=server.environment(),
            capture_output=True,
            text=True,
            check=False,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return PdRun(None, None, note=f"timed out after {timeout:.0f} s")
    elapsed = time.perf_counter() - began
    tail = "" if completed.returncode == 0 else (completed.stdout + completed.stderr)[-1500:]
    return PdRun(
        elapsed,
        completed.returncode,
        tail=tail,
        server_503s=server_retryable_errors(server) - retryable,
    )


@dataclass
class SizeResult:
    n: int
    floor: FloorRun
    first: DmRun
    noop: DmRun  # the no-op whose flow run is the median of `noops`
    pd: PdRun
    dm_created: int
    pd_created: int
    pd_estimate: float | None = None  # extrapolated seconds when skipped or timed out
    noops: list[DmRun] = field(default_factory=list)  # every no-op, in order


def estimate_prefect_deploy(n: int, measured: list[tuple[int, float]]) -> float | None:
    """Linear extrapolation from the measured `prefect deploy --all` runs."""
    if not measured:
        return None
    if len(measured) == 1:
        (n0, t0) = measured[0]
        return t0 * n / n0
    (n0, t0), (n1, t1) = sorted(measured)[-2:]
    per_flow = (t1 - t0) / (n1 - n0)
    return t1 + per_flow * (n - n1)


def median_noop(noops: list[DmRun]) -> DmRun:
    """The no-op run whose flow run took the median time (the lower middle of an even count)."""
    timed = sorted(noops, key=lambda r: (r.flow_run_s is None, r.flow_run_s or 0.0))
    return timed[(len(timed) - 1) // 2]


def measure_size(
    server: LocalServer,
    work: Path,
    n: int,
    pd_limit: float,
    pd_measured: list[tuple[int, float]],
    *,
    floor_on: bool = True,
    noop_runs: int = 1,
) -> SizeResult:
    dm_repo = make_repository(work / f"dm-{n}", "dm", n, pull_steps=False)
    pd_repo = make_repository(work / f"pd-{n}", "pd", n, pull_steps=True)
    block = f"bench-dm-{n}"
    if floor_on:
        floor_repo = make_repository(work / f"floor-{n}", "floor", n, pull_steps=False)
        print(f"  N={n}: plain client loop (the floor) ...", flush=True)
        floor = run_floor(server, floor_repo, FLOOR_SOURCE.format(n=n))
    else:
        floor = FloorRun(None, None, 0.0, 0, skipped=True)
    print(f"  N={n}: dm first ...", flush=True)
    first = run_deploy_manager(server, dm_repo, block)
    noops = []
    for index in range(1, noop_runs + 1):
        print(f"  N={n}: dm no-op {index}/{noop_runs} ...", flush=True)
        noops.append(run_deploy_manager(server, dm_repo, block))
    noop = median_noop(noops)
    dm_created = run_async(count_deployments([flow_name("dm", n, i) for i in range(n)]))
    estimate = estimate_prefect_deploy(n, pd_measured)
    if pd_limit <= 0:
        pd = PdRun(None, None, note="skipped: --prefect-deploy-limit 0")
    elif estimate is not None and estimate > pd_limit:
        pd = PdRun(None, None, note=f"skipped: extrapolated {estimate:.0f} s > {pd_limit:.0f} s")
    else:
        print(f"  N={n}: prefect deploy --all ...", flush=True)
        pd = run_prefect_deploy(server, pd_repo, pd_limit)
    pd_created = run_async(count_deployments([flow_name("pd", n, i) for i in range(n)]))
    if pd.seconds is not None and pd.exit_code == 0 and pd_created == n:
        pd_measured.append((n, pd.seconds))
        estimate = None
    elif pd.note.startswith("timed out") and pd_created:
        estimate = pd_limit * n / pd_created  # the rate it reached, over all n
    return SizeResult(n, floor, first, noop, pd, dm_created, pd_created, estimate, noops)


# --- printing --------------------------------------------------------------------------


def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def file_creation_ms(count: int = 200) -> float:
    """Milliseconds to create one small file where the flow's checkout goes (TMPDIR).

    fetch-source writes every file of the repository there; on the machine of the
    2026-12-03 results this took ~0.75 ms under /tmp (20x the rest of the same disk),
    and it moved by 2x during a run.
    """
    directory = Path(tempfile.mkdtemp(prefix="bench-files-"))
    try:
        began = time.perf_counter()
        for index in range(count):
            (directory / f"f{index}.py").write_bytes(b"x = 1\n")
        return (time.perf_counter() - began) * 1000 / count
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def machine_now() -> str:
    load = os.getloadavg() if hasattr(os, "getloadavg") else ()
    return (
        f"load avg: {', '.join(f'{x:.2f}' for x in load) or '-'}  file creation in "
        f"{tempfile.gettempdir()}: {file_creation_ms():.2f} ms"
    )


def machine_facts() -> list[str]:
    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "not installed"

    git_version = subprocess.run(
        ["git", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return [
        f"cpus: {os.cpu_count()}  {machine_now()}",
        f"platform: {platform.platform()}",
        f"python: {platform.python_version()} ({sys.executable})",
        f"prefect: {version('prefect')}  prefect-github: {version('prefect-github')}  "
        f"pydantic: {version('pydantic')}",
        f"git: {git_version}",
    ]


def ratio(value: float | None, base: float | None) -> str:
    return "-" if value is None or not base else f"{value / base:.2f}x"


def print_table(results: list[SizeResult]) -> None:
    header = (
        "N",
        "floor s (create / read)",
        "dm first s (flow run / cmd)",
        "first/floor (run | cmd)",
        "dm no-op s (flow run / cmd)",
        "no-op run/floor read",
        "prefect deploy --all s",
        "pd/dm-first (cmd | run)",
        "503s (floor/first/no-op)",
        "created (floor/dm/pd)",
    )
    rows = [header]
    for r in results:
        if r.pd.seconds is not None:
            pd_text = fmt(r.pd.seconds)
            if r.pd.exit_code:
                pd_text += f" (exit {r.pd.exit_code})"
            pd_ratio = (
                f"{r.pd.seconds / r.first.command_s:.1f}x | "
                f"{r.pd.seconds / r.first.flow_run_s:.1f}x"
                if r.first.flow_run_s
                else f"{r.pd.seconds / r.first.command_s:.1f}x | -"
            )
        else:
            pd_text = "skipped" if r.pd.note.startswith("skipped") else "timed out"
            if r.pd_estimate is not None:
                pd_text += f" (~{r.pd_estimate:.0f} extrap.)"
                pd_ratio = f"~{r.pd_estimate / r.first.command_s:.1f}x extrap."
            else:
                pd_ratio = "-"
        rows.append(
            (
                str(r.n),
                f"{fmt(r.floor.create_s)} / {fmt(r.floor.read_s)}",
                f"{fmt(r.first.flow_run_s)} / {fmt(r.first.command_s)}",
                f"{ratio(r.first.flow_run_s, r.floor.create_s)} | "
                f"{ratio(r.first.command_s, r.floor.create_s)}",
                f"{fmt(r.noop.flow_run_s)} / {fmt(r.noop.command_s)}",
                ratio(r.noop.flow_run_s, r.floor.read_s),
                pd_text,
                pd_ratio,
                f"{r.floor.server_503s}/{r.first.server_503s}/{r.noop.server_503s}",
                f"{r.floor.created}/{r.dm_created}/{r.pd_created}",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for index, row in enumerate(rows):
        print("  ".join(cell.rjust(widths[i]) for i, cell in enumerate(row)))
        if index == 0:
            print("  ".join("-" * w for w in widths))
    if all(r.floor.skipped for r in results):
        print("floor: skipped (--no-floor)")
        return
    print(
        "floor: a fresh process, a plain `get_client()` loop of create_flow_from_name + "
        "create_deployment (the fields dm sends), one at a time, then the paged read of "
        "them back; its command (imports, exit) took "
        + ", ".join(f"N={r.n}: {r.floor.command_s:.2f} s" for r in results if not r.floor.skipped)
    )


def print_details(r: SizeResult) -> None:
    if r.floor.error:
        print(f"  N={r.n} floor: " + r.floor.error.replace("\n", "\n    "))
    for label, run in (("dm first", r.first), ("dm no-op", r.noop)):
        actions = ", ".join(f"{k}={v}" for k, v in sorted(run.actions.items())) or "no report"
        print(
            f"  N={r.n} {label}: exit {run.exit_code}, state {run.state}, "
            f"server 503s {run.server_503s}; items: {actions}"
        )
        if run.error:
            print("    " + run.error.replace("\n", "\n    "))
    if len(r.noops) > 1:
        print(
            f"  N={r.n} dm no-op runs (the table shows the median), flow run s (load avg "
            "at its start): "
            + ", ".join(f"{fmt(run.flow_run_s)} ({fmt(run.load)})" for run in r.noops)
            + "; command s "
            + ", ".join(fmt(run.command_s) for run in r.noops)
        )
    if r.pd.note:
        print(f"  N={r.n} prefect deploy --all: {r.pd.note}")
    else:
        print(
            f"  N={r.n} prefect deploy --all: exit {r.pd.exit_code}, server 503s {r.pd.server_503s}"
        )
    if r.pd.tail:
        print("    output tail:\n    " + r.pd.tail.replace("\n", "\n    "))


def print_task_breakdown(label: str, timing: FlowRunTiming | None) -> None:
    if timing is None or timing.start is None or timing.end is None:
        print(f"{label}: no flow run timing")
        return
    total = timing.seconds or 0.0
    print(
        f"{label}: flow run {timing.id} {timing.state}, {fmt(total, 3)} s "
        f"(start -> end; total_run_time {fmt(timing.total_run_time, 3)} s)"
    )
    groups: dict[str, list[tuple[datetime, datetime]]] = defaultdict(list)
    for name, start, end in timing.tasks:
        if start is not None and end is not None:
            key = name.split("[", 1)[0] + ("[...]" if "[" in name else "")
            groups[key].append((start, end))
    print(f"    {'task run':<24} {'count':>5} {'sum s':>8} {'wall s':>8} {'from start s':>13}")
    for key, spans in sorted(groups.items(), key=lambda kv: min(s for s, _ in kv[1])):
        first = min(s for s, _ in spans)
        last = max(e for _, e in spans)
        summed = sum((e - s).total_seconds() for s, e in spans)
        wall = (last - first).total_seconds()
        offset = (first - timing.start).total_seconds()
        print(f"    {key:<24} {len(spans):>5} {summed:>8.3f} {wall:>8.3f} {offset:>13.3f}")
    # Task runs may overlap (read-live-deployments beside resolve-templates): the time
    # outside all of them is the run's time minus the union of their spans.
    covered, reach = 0.0, timing.start
    for start, end in sorted(span for spans in groups.values() for span in spans):
        if end > reach:
            covered += (end - max(start, reach)).total_seconds()
            reach = end
    print(f"    {'outside task runs':<24} {'':>5} {'':>8} {total - covered:>8.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 500])
    parser.add_argument(
        "--floor-run",
        nargs=2,
        metavar=("REPO", "SOURCE"),
        help="internal: run the plain-loop floor against PREFECT_API_URL, print JSON",
    )
    parser.add_argument("--keep", type=Path, default=None, help="keep repositories here")
    parser.add_argument(
        "--prefect-deploy-limit",
        type=float,
        default=900.0,
        help="longest `prefect deploy --all` run (s); longer ones are skipped (extrapolated); "
        "0 skips it",
    )
    parser.add_argument(
        "--no-floor",
        action="store_true",
        help="skip the plain-loop floor (its columns print '-'): quicker, to iterate on dm",
    )
    parser.add_argument(
        "--noop-runs",
        type=int,
        default=1,
        help="no-op reconciles per size (default 1); the table shows the median flow run",
    )
    parser.add_argument(
        "--with-scheduler",
        action="store_true",
        help="leave the server's scheduler service on (off by default, see the docstring)",
    )
    args = parser.parse_args(argv)
    if args.floor_run:
        print(json.dumps(run_async(floor_loop(Path(args.floor_run[0]), args.floor_run[1]))))
        return 0

    print("deploy-manager reconcile vs `prefect deploy --all`")
    for line in machine_facts():
        print(f"  {line}")
    print("Goals (a reminder, not asserted):")
    for goal in GOALS:
        print(f"  - {goal}")

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-reconcile-"))
    work.mkdir(parents=True, exist_ok=True)
    home = Path(tempfile.mkdtemp(prefix="bench-reconcile-home-"))
    if not args.with_scheduler:
        os.environ["PREFECT_API_SERVICES_SCHEDULER_ENABLED"] = "false"
    os.environ["PREFECT_API_LOG_RETRYABLE_ERRORS"] = "true"  # count the server's 503s
    server = None
    results: list[SizeResult] = []
    began = time.perf_counter()
    try:
        server = start_local_server(home / "home")
        os.environ.update(server.environment())  # for this process's Prefect client
        print(
            f"server: {server.url}, prefect {server_version(server)} (SQLite, scheduler service "
            f"{'on' if args.with_scheduler else 'off'}); repositories under {work}"
        )
        create_pool(server)
        pd_measured: list[tuple[int, float]] = []
        for n in sorted(args.sizes):
            result = measure_size(
                server,
                work,
                n,
                args.prefect_deploy_limit,
                pd_measured,
                floor_on=not args.no_floor,
                noop_runs=max(1, args.noop_runs),
            )
            results.append(result)
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(home, ignore_errors=True)
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)

    print()
    print_table(results)
    print()
    for r in results:
        print_details(r)
    print()
    print("Where the flow run's time goes (task runs read from the API):")
    for r in results:
        print_task_breakdown(f"  N={r.n} dm no-op", r.noop.timing)
        print_task_breakdown(f"  N={r.n} dm first", r.first.timing)
    print()
    print("Goals (a reminder, not asserted):")
    for goal in GOALS:
        print(f"  - {goal}")
    print(f"at the end: {machine_now()}")
    print(f"benchmark wall time: {time.perf_counter() - began:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
