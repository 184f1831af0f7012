"""The README's main command, as a new user runs it: a server, the example repository, twice."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from control_plane.server import stop_local_server
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.integration


def test_quickstart_reconciles_the_examples_then_finds_nothing_to_do(tmp_path: Path) -> None:
    home = tmp_path / "home"

    def quickstart() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "control_plane.cli", "quickstart", "--home", str(home)],
            capture_output=True, text=True, cwd=REPO_ROOT, check=False, timeout=300,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        )  # fmt: skip

    try:
        first = quickstart()
        assert first.returncode == 0, first.stderr[-3000:]
        assert "examples@" in first.stdout and "-> production: 4 create" in first.stdout
        second = quickstart()
        assert second.returncode == 0, second.stderr[-3000:]
        assert "-> production: 4 unchanged" in second.stdout
    finally:
        stop_local_server(home)
