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


@pytest.mark.parametrize(
    ("url", "clean", "token"),
    [
        ("https://user:tok3n@host/o/r.git", "https://host/o/r.git", "tok3n"),
        ("https://tok3n@github.com/o/r.git", "https://github.com/o/r.git", "tok3n"),
        ("https://x-access-token:t%40k@host:8443/r", "https://host:8443/r", "t@k"),
        ("https://github.com/o/r.git", "https://github.com/o/r.git", None),
        ("git@github.com:o/r.git", "git@github.com:o/r.git", None),  # ssh: a user, no secret
        ("/srv/git/r.git", "/srv/git/r.git", None),
    ],
)
def test_credentials_are_taken_out_of_a_url(url: str, clean: str, token: str | None) -> None:
    from control_plane.sources import split_credentials

    assert split_credentials(url) == (clean, token)


def test_scrub_removes_credentials_from_any_url_in_a_text_and_known_secrets() -> None:
    from control_plane.sources import scrub

    text = (
        "fatal: unable to access 'https://user:tok3n@host/r.git/': 403\n"
        "remote: token tok3n rejected; see http://a:b@h/x and ssh://git@h/y"
    )
    assert scrub(text, ["tok3n", None]) == (
        "fatal: unable to access 'https://host/r.git/': 403\n"
        "remote: token *** rejected; see http://h/x and ssh://h/y"
    )


def test_a_local_checkout_never_reports_the_credentials_of_its_origin(tmp_path: Path) -> None:
    import subprocess

    subprocess.run(["git", "init", "--quiet", "-b", "main", str(tmp_path)], check=True)
    subprocess.run(["git", "-C", str(tmp_path), "remote", "add", "origin",
                    "https://me:s3cret@host/r.git"], check=True)  # fmt: skip
    assert read_local_checkout(tmp_path).remote_url == "https://host/r.git"


@pytest.mark.parametrize("tracked", [True, False])
def test_git_stays_out_of_every_image_context_and_the_tree_stays_clean(
    tmp_path: Path, tracked: bool
) -> None:
    import subprocess

    from docker.utils.build import exclude_paths

    from control_plane.sources import keep_git_out_of_images

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@x", *args], cwd=tmp_path,
            check=True, capture_output=True, text=True,
        ).stdout  # fmt: skip

    git("init", "--quiet", "-b", "main")
    (tmp_path / "app.py").write_text("x = 1\n")
    if tracked:  # a repository that asks for .git in its images
        (tmp_path / ".dockerignore").write_text("*.pyc\n!.git")
    git("add", "-A")
    git("commit", "--quiet", "-m", "init")
    keep_git_out_of_images(tmp_path)
    patterns = (tmp_path / ".dockerignore").read_text().splitlines()
    context = set(exclude_paths(str(tmp_path), patterns))
    assert "app.py" in context
    assert not [p for p in context if p == ".git" or p.startswith(".git/")]
    assert git("status", "--porcelain") == ""
    assert git("describe", "--always", "--dirty").strip().endswith("dirty") is False


def test_a_dockerignore_that_links_outside_is_replaced_not_written_through(
    tmp_path: Path,
) -> None:
    import subprocess

    from control_plane.sources import keep_git_out_of_images

    outside = tmp_path / "outside"
    outside.write_text("secret-pattern\n")
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "--quiet", "-b", "main", str(repo)], check=True)
    (repo / ".dockerignore").symlink_to(outside)
    keep_git_out_of_images(repo)
    assert outside.read_text() == "secret-pattern\n"
    assert not (repo / ".dockerignore").is_symlink()
    assert (repo / ".dockerignore").read_text() == ".git\n"


def test_a_local_repository_is_cloned_shallow_as_a_remote_one_is(tmp_path: Path) -> None:
    """git ignores --depth for a plain path and hard-links every object (one file each);
    cloned with --no-local, the clone holds the one commit, packed. The block keeps the path."""
    import asyncio
    import subprocess

    from prefect_github import GitHubRepository

    from control_plane.sources import _clone

    repo = tmp_path / "my repo"  # a space: the path reaches git as one argument
    subprocess.run(["git", "init", "--quiet", "-b", "main", str(repo)], check=True)
    for n in range(2):
        (repo / f"f{n}.py").write_text(f"x = {n}\n")
        subprocess.run(["git", "add", "-A"], cwd=repo, check=True)
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "--quiet",
                        "-m", str(n)], cwd=repo, check=True)  # fmt: skip
    block = GitHubRepository(repository_url=str(repo), reference="main")
    clone = tmp_path / "clone"
    clone.mkdir()

    commit, branch = asyncio.run(_clone(block, clone, None, None))

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=clone, capture_output=True, text=True)
        return done.stdout.strip()

    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True)
    assert (commit, branch) == (head.stdout.strip(), "main")
    assert git("rev-parse", "--is-shallow-repository") == "true"
    assert git("count-objects", "-v").splitlines()[0] == "count: 0"  # no loose objects
    assert (clone / "f1.py").read_text() == "x = 1\n"
    assert block.repository_url == git("remote", "get-url", "origin") == str(repo)
