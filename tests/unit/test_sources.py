"""The git seam: every git call goes through one place that turns git's failures into ours."""

from __future__ import annotations

from pathlib import Path

import pytest

from control_plane.errors import ConfigError
from control_plane.sources import read_local_checkout


def test_a_machine_without_git_gets_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    with pytest.raises(ConfigError, match="git is not installed"):
        read_local_checkout(tmp_path)


def test_a_repository_without_commits_has_no_commit(tmp_path: Path) -> None:
    import subprocess

    subprocess.run(["git", "init", "--quiet", "-b", "main", str(tmp_path)], check=True)
    checkout = read_local_checkout(tmp_path)
    assert (checkout.commit, checkout.branch, checkout.remote_url) == (None, "main", None)
