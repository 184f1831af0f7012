"""Sources: the git seam. A checkout on disk and the commit and branch it is at.

`read_local_checkout` describes a directory the user already has (the CLI's PATH).
Fetching a source through a prefect-github `GitHubRepository` block lives here too
(`fetch_checkout`), since it is the same noun seen from the flow. Only this module runs git.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
    name = source or block_name_for(str(path))
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


def block_name_for(path_or_url: str) -> str:
    """The source name a path or URL gets by default: its last part, as a block name."""
    stem = path_or_url.rstrip("/").rsplit("/", 1)[-1].removesuffix(".git")
    return re.sub(r"[^a-z0-9-]+", "-", stem.lower()).strip("-") or "repository"


def _suggested_name(url: str) -> str:
    parts = [p for p in re.split(r"[/:]", url.rstrip("/").removesuffix(".git")) if p]
    return block_name_for("-".join(parts[-2:])) if len(parts) > 1 else f"{block_name_for(url)}-2"


async def _load_repository_block(name: str) -> Any | None:
    from prefect_github import GitHubRepository

    try:
        return await GitHubRepository.aload(name)
    except ValueError:
        return None


@dataclass(frozen=True)
class SourceChoice:
    """Which source a CLI apply reconciles, and what (if anything) it wrote to get it."""

    name: str  # the GitHubRepository block's name
    repository_url: str | None = None  # clone this instead of the block's URL (not saved)
    saved: str | None = None  # "created" / "re-pointed" when the block was written


async def choose_source(
    url: str | None, name: str | None, *, update: bool = False, dry_run: bool = False
) -> SourceChoice:
    """The source for `apply [PATH_OR_URL] [--source NAME] [--update-source] [--dry-run]`.

    A source's identity is its block: an existing block is used as it is, never silently
    re-pointed at another repository (two folders called `etl` must not prune each
    other's deployments) and never rewritten (its credentials and reference stay). It is
    re-pointed only with `--update-source`. A dry run writes no block: it clones the URL
    from an unsaved block instead.
    """
    from prefect_github import GitHubRepository

    if url is None and name is None:
        raise ConfigError("give a repository path or URL, or --source BLOCK_NAME")
    name = name or block_name_for(str(url))
    existing = await _load_repository_block(name)
    if existing is None:
        if url is None:
            raise ConfigError(
                f"no GitHubRepository block named {name!r}: create it in the UI (Blocks -> "
                "GitHub Repository) or give the repository: deploy-manager apply PATH_OR_URL"
            )
        if dry_run:
            return SourceChoice(name, repository_url=url)
        await GitHubRepository(repository_url=url).asave(name)
        return SourceChoice(name, saved="created")
    if url is None or existing.repository_url == url:
        return SourceChoice(name)
    if not update:
        raise ConfigError(
            f"the source {name!r} is the GitHubRepository block for {existing.repository_url}, "
            f"not {url}; its deployments belong to that repository. Name this one "
            f"differently (--source {_suggested_name(url)}), or re-point {name!r} at it "
            "with --update-source (its deployments then follow the new repository)"
        )
    if dry_run:
        return SourceChoice(name, repository_url=url)
    existing.repository_url = url
    await existing.asave(name, overwrite=True)
    return SourceChoice(name, saved="re-pointed")


async def fetch_checkout(
    block_name: str, ref: str | None = None, repository_url: str | None = None
) -> Checkout:
    """Clone the source through its `GitHubRepository` block, at `ref` (branch, tag or sha).

    The block clones `--depth 1 -b <reference>`, which takes a branch or a tag only; a
    sha is fetched and checked out here after cloning the block's own reference.
    `repository_url` clones that URL instead (through an unsaved copy of the block, or a
    new unsaved block): a dry run of a source that is not saved as it will be.
    """
    from prefect_github import GitHubRepository

    block = await _load_repository_block(block_name)
    if repository_url is not None:
        block = (
            GitHubRepository(repository_url=repository_url)
            if block is None
            else block.model_copy(update={"repository_url": repository_url})
        )
    if block is None:
        raise ConfigError(
            f"no GitHubRepository block named {block_name!r}: create it in the UI "
            "(Blocks -> GitHub Repository) or with `deploy-manager apply PATH_OR_URL`"
        )
    sha = ref if ref and is_commit_sha(ref) else None
    if ref and not sha:
        block = block.model_copy(update={"reference": ref})
    directory = Path(tempfile.mkdtemp(prefix=f"deploy-manager-{block_name}-"))
    try:
        commit, branch = await _clone(block, directory, ref, sha)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)  # a failed fetch leaves nothing behind
        raise
    return Checkout(
        path=directory,
        source=block_name,
        commit=commit,
        branch=branch,
        remote_url=block.repository_url,
        credentials_block=_credentials_name(block),
    )


def _credentials_name(block: Any) -> str | None:
    credentials = getattr(block, "credentials", None)
    return getattr(credentials, "_block_document_name", None) if credentials else None


async def as_applied(checkout: Checkout, *, with_api: bool) -> Checkout:
    """A local checkout as `deploy-manager apply PATH` would fetch it: from the source's
    block when it exists (its URL and credentials end up in the pinned pull steps), else
    from the path itself (what apply saves). `plan` uses it so that it plans what apply does.
    """
    import dataclasses

    block = await _load_repository_block(checkout.source) if with_api else None
    if block is None:
        return dataclasses.replace(checkout, remote_url=str(checkout.path), credentials_block=None)
    return dataclasses.replace(
        checkout, remote_url=block.repository_url, credentials_block=_credentials_name(block)
    )


# git's words for a clone that cannot work as asked: the user's to fix, never retried
_USER_CLONE_ERRORS = (
    ("not found in upstream", "ref"),
    ("Remote branch", "ref"),
    ("does not exist", "url"),
    ("not found", "url"),
    ("Authentication failed", "auth"),
    ("could not read Username", "auth"),
    ("Permission denied", "auth"),
    ("not a git repository", "url"),
    ("does not appear to be a git repository", "url"),
)


def clone_error(url: str, reference: str | None, message: str) -> Exception:
    """A failed clone as our error: a missing ref, a wrong URL or refused credentials are
    the user's (`ConfigError`, one line with the remedy); anything else may be retried."""
    detail = next(
        (line.strip() for line in message.splitlines() if "fatal:" in line or "error:" in line),
        message.strip().splitlines()[-1] if message.strip() else "git clone failed",
    )
    where = f"{url} at {reference}" if reference else url
    for needle, kind in _USER_CLONE_ERRORS:
        if needle.lower() in message.lower():
            remedy = {
                "ref": f"push {reference!r} first, or pass an existing branch or tag (--ref)",
                "url": "check the repository URL of the source block",
                "auth": "check the token of the source's GitHubCredentials block",
            }[kind]
            return ConfigError(f"cannot clone {where}: {detail}; {remedy}")
    return TransientError(f"cloning {where} failed: {detail}")


def _resolve_short_sha(directory: Path, sha: str, block: Any) -> str:
    """A short sha (as reports show versions) as the one commit of the remote it names.

    A remote serves whole shas only, so the branches' history is fetched and the prefix
    resolved locally; a prefix two commits share is refused with both.
    """
    _git(["fetch", "--quiet", "--unshallow", "origin", "+refs/heads/*:refs/remotes/origin/*"],
         directory)  # fmt: skip
    found = _git(["rev-parse", "--verify", "--quiet", f"{sha}^{{commit}}"], directory)
    if found.returncode == 0:
        return found.stdout.strip()
    candidates = _git(["rev-parse", "--disambiguate=" + sha], directory).stdout.split()
    if len(candidates) > 1:
        raise ConfigError(
            f"ref {sha!r} is ambiguous on {block.repository_url}: it starts "
            f"{', '.join(c[:12] for c in candidates[:5])}; pass more of the sha"
        )
    raise ConfigError(
        f"no commit of {block.repository_url}'s branches starts with {sha!r}; pass a sha "
        "of a pushed commit (git log --oneline shows them)"
    )


async def _clone(
    block: Any, directory: Path, ref: str | None, sha: str | None
) -> tuple[str, str | None]:
    """Clone through the block into `directory`; the commit and the branch it is at."""
    try:
        await block.aget_directory(local_path=str(directory))
    except RuntimeError as exc:
        raise clone_error(block.repository_url, block.reference, str(exc)) from None
    if sha and len(sha) == 40:
        fetched = _git(["fetch", "--quiet", "--depth", "1", "origin", sha], directory)
        if fetched.returncode != 0:
            raise ConfigError(
                f"commit {sha} cannot be fetched from {block.repository_url}: "
                f"{fetched.stderr.strip()[-300:]} (pass a sha that exists on the remote)"
            )
        run_git(["checkout", "--quiet", "--detach", "FETCH_HEAD"], directory)
    elif sha:
        run_git(["checkout", "--quiet", "--detach", _resolve_short_sha(directory, sha, block)],
                directory)  # fmt: skip
    commit = run_git(["rev-parse", "HEAD"], directory)
    if sha and not commit.startswith(sha):
        raise ConfigError(f"ref {sha!r} resolved to {commit}; pass the commit's full sha")

    branch: str | None = run_git(
        ["symbolic-ref", "--quiet", "--short", "HEAD"], directory, check=False
    )
    if not branch:
        # a tag (or a sha on the block's branch): map environments by the name asked for
        branch = (ref if ref and not sha else block.reference) or None
    return commit, branch


def commit_directory_snapshot(directory: Path, repository: Path) -> Path:
    """A git repository at `repository` whose `main` holds a copy of `directory`.

    Used by the quick start to turn the bundled example folder into a source that can be
    cloned like any remote; a changed folder becomes a new commit, an unchanged one none.
    """
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
