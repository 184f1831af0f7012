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


def _clone_message(*args: str) -> str:
    import subprocess

    done = subprocess.run(["git", "clone", "--depth", "1", *args], capture_output=True, text=True)
    assert done.returncode != 0
    return done.stderr


def test_clone_failures_the_user_must_fix_are_config_errors(tmp_path: Path) -> None:
    """Real git's messages: a missing branch and a missing repository are not retried."""
    import subprocess

    from control_plane.errors import TransientError
    from control_plane.sources import clone_error

    bare = tmp_path / "remote.git"
    subprocess.run(["git", "init", "--quiet", "--bare", "-b", "main", str(bare)], check=True)
    work = tmp_path / "work"
    subprocess.run(["git", "clone", "--quiet", str(bare), str(work)], check=True,
                   capture_output=True)  # fmt: skip
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet",
                    "--allow-empty", "-m", "x"], cwd=work, check=True)  # fmt: skip
    subprocess.run(["git", "push", "--quiet", "origin", "main"], cwd=work, check=True,
                   capture_output=True)  # fmt: skip

    missing_ref = clone_error(str(bare), "nope", _clone_message("-b", "nope", str(bare), "x1"))
    assert isinstance(missing_ref, ConfigError)
    assert f"cannot clone {bare} at nope" in str(missing_ref)
    assert "pass an existing branch or tag (--ref)" in str(missing_ref)
    assert "\n" not in str(missing_ref)

    gone = tmp_path / "gone.git"
    missing_repo = clone_error(str(gone), None, _clone_message(str(gone), str(tmp_path / "x2")))
    assert isinstance(missing_repo, ConfigError)
    assert "check the repository URL" in str(missing_repo)

    assert isinstance(clone_error("u", None, "fatal: early EOF"), TransientError)
