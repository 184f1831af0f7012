"""Sources: the git seam. A checkout on disk and the commit and branch it is at.

`read_local_checkout` describes a directory the user already has (the CLI's PATH).
Fetching a source through a prefect-github `GitHubRepository` block lives here too
(`fetch_checkout`), since it is the same noun seen from the flow. Only this module runs git.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from control_plane.errors import ConfigError, TransientError


@dataclass(frozen=True)
class Checkout:
    """A directory holding the repository at one commit."""

    path: Path
    source: str
    commit: str | None  # full sha; None for a directory that is not a git work tree
    branch: str | None  # None when detached or not a git work tree
    remote_url: str | None = None  # the URL without credentials: safe to store and show
    credentials_block: str | None = None  # GitHubCredentials block the remote needs


def _git(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run git; a missing git or a hung one becomes our error, the rest is the caller's."""
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    except FileNotFoundError as exc:
        raise ConfigError("git is not installed; install git (e.g. apt-get install git)") from exc
    except subprocess.TimeoutExpired as exc:
        raise TransientError(f"git {' '.join(args[:2])} timed out after 300 s") from exc


def run_git(args: list[str], cwd: Path, *, check: bool = True) -> str:
    """Run git and return its stdout; translate failures into our errors."""
    completed = _git(args, cwd)
    if check and completed.returncode != 0:
        raise TransientError(f"git {' '.join(args)} failed: {completed.stderr.strip()[-500:]}")
    return completed.stdout.strip() if completed.returncode == 0 else ""


def read_local_checkout(path: Path, source: str | None = None) -> Checkout:
    """The commit and branch of a directory; a plain directory has neither."""
    path = path.resolve()
    name = source or path.name
    inside = _git(["rev-parse", "--show-toplevel"], path)
    if inside.returncode != 0 or Path(inside.stdout.strip()).resolve() != path:
        return Checkout(path=path, source=name, commit=None, branch=None)
    commit = run_git(["rev-parse", "HEAD"], path, check=False) or None
    branch = run_git(["symbolic-ref", "--quiet", "--short", "HEAD"], path, check=False) or None
    remote = run_git(["config", "--get", "remote.origin.url"], path, check=False) or None
    return Checkout(path=path, source=name, commit=commit, branch=branch, remote_url=remote)


SHA_PATTERN = re.compile(r"^[0-9a-f]{7,40}$")


def is_commit_sha(ref: str) -> bool:
    return bool(SHA_PATTERN.match(ref))


async def fetch_checkout(block_name: str, ref: str | None = None) -> Checkout:
    """Clone the source through its `GitHubRepository` block, at `ref` (branch, tag or sha).

    The block clones `--depth 1 -b <reference>`, which takes a branch or a tag only; a
    sha is fetched and checked out here after cloning the block's own reference.
    """
    from prefect_github import GitHubRepository

    try:
        block = await GitHubRepository.aload(block_name)
    except ValueError as exc:
        raise ConfigError(
            f"no GitHubRepository block named {block_name!r}: create it in the UI "
            "(Blocks -> GitHub Repository) or with `deploy-manager apply PATH_OR_URL`"
        ) from exc
    sha = ref if ref and is_commit_sha(ref) else None
    if ref and not sha:
        block = block.model_copy(update={"reference": ref})
    directory = Path(tempfile.mkdtemp(prefix=f"deploy-manager-{block_name}-"))
    try:
        await block.aget_directory(local_path=str(directory))
    except RuntimeError as exc:
        raise TransientError(
            f"cloning {block.repository_url} at {block.reference or 'its default branch'} "
            f"failed: {exc}"
        ) from exc
    if sha:
        fetched = _git(["fetch", "--quiet", "--depth", "1", "origin", sha], directory)
        if fetched.returncode != 0:
            raise ConfigError(
                f"commit {sha} cannot be fetched from {block.repository_url}: "
                f"{fetched.stderr.strip()[-300:]} (pass a full sha that exists on the remote)"
            )
        run_git(["checkout", "--quiet", "--detach", "FETCH_HEAD"], directory)
    commit = run_git(["rev-parse", "HEAD"], directory)
    if sha and not commit.startswith(sha):
        raise ConfigError(f"ref {sha!r} resolved to {commit}; pass the commit's full sha")
    branch: str | None = run_git(
        ["symbolic-ref", "--quiet", "--short", "HEAD"], directory, check=False
    )
    if not branch:
        # a tag (or a sha on the block's branch): map environments by the name asked for
        branch = (ref if ref and not sha else block.reference) or None
    credentials = None
    if block.credentials is not None and getattr(block.credentials, "_block_document_name", None):
        credentials = block.credentials._block_document_name
    return Checkout(
        path=directory,
        source=block_name,
        commit=commit,
        branch=branch,
        remote_url=block.repository_url,
        credentials_block=credentials,
    )


def commit_directory_snapshot(directory: Path, repository: Path) -> Path:
    """A git repository at `repository` whose `main` holds a copy of `directory`.

    Used by the quick start to turn the bundled example folder into a source that can be
    cloned like any remote; a changed folder becomes a new commit, an unchanged one none.
    """
    import shutil

    if not (repository / ".git").exists():
        repository.mkdir(parents=True, exist_ok=True)
        run_git(["init", "--quiet", "-b", "main"], repository)
    for child in repository.iterdir():
        if child.name != ".git":
            shutil.rmtree(child) if child.is_dir() else child.unlink()
    shutil.copytree(directory, repository, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))  # fmt: skip
    run_git(["add", "-A"], repository)
    if run_git(["status", "--porcelain"], repository):
        identity = ["-c", "user.name=deploy-manager", "-c", "user.email=deploy-manager@localhost"]
        run_git([*identity, "commit", "--quiet", "-m", f"snapshot of {directory.name}"], repository)
    return repository
