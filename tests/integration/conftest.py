"""Real services for integration tests: a Prefect server on SQLite, git remotes in temp dirs."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from control_plane.server import LocalServer, start_local_server


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """One real Prefect server for the session; the test process's client points at it."""
    from prefect.settings import PREFECT_API_URL, PREFECT_HOME, temporary_settings

    home = tmp_path_factory.mktemp("prefect-home")
    server = start_local_server(home)
    try:
        with temporary_settings(updates={PREFECT_API_URL: server.url, PREFECT_HOME: str(home)}):
            yield server
    finally:
        server.stop()


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@localhost", *args],
        cwd=repo, check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip


class GitRemote:
    """A work tree that pushes to a bare repository: the stand-in for github.com."""

    def __init__(self, root: Path) -> None:
        self.bare = root / "remote.git"
        self.work = root / "work"
        subprocess.run(
            ["git", "init", "--quiet", "--bare", "-b", "main", str(self.bare)], check=True
        )
        subprocess.run(["git", "init", "--quiet", "-b", "main", str(self.work)], check=True)
        git(self.work, "remote", "add", "origin", str(self.bare))

    def write(self, files: dict[str, str | None]) -> None:
        for rel, text in files.items():
            path = self.work / rel
            if text is None:
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip("\n"))

    def commit(
        self, files: dict[str, str | None], message: str = "change", branch: str = "main"
    ) -> str:
        current = git(self.work, "symbolic-ref", "--short", "HEAD")
        if current != branch:
            exists = subprocess.run(
                ["git", "rev-parse", "--verify", "--quiet", branch], cwd=self.work, check=False,
                capture_output=True,
            ).returncode == 0  # fmt: skip
            git(self.work, "checkout", "--quiet", *([] if exists else ["-b"]), branch)
        self.write(files)
        git(self.work, "add", "-A")
        git(self.work, "commit", "--quiet", "--allow-empty", "-m", message)
        git(self.work, "push", "--quiet", "origin", branch)
        return git(self.work, "rev-parse", "HEAD")


@pytest.fixture
def remote(tmp_path: Path) -> GitRemote:
    return GitRemote(tmp_path)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def source_block(prefect_server: LocalServer, remote: GitRemote) -> str:
    """A GitHubRepository block for the remote, named uniquely for the test."""
    from prefect_github import GitHubRepository

    name = unique("src")
    asyncio.run(GitHubRepository(repository_url=str(remote.bare)).asave(name, overwrite=True))
    return name


def run_sync(coro: Any) -> Any:
    return asyncio.run(coro)
