"""Sources: the git seam. A checkout on disk and the commit and branch it is at.

`read_local_checkout` describes a directory the user already has (the CLI's PATH).
Fetching a source through a prefect-github `GitHubRepository` block lives here too
(`fetch_checkout`), since it is the same noun seen from the flow. Both return a
`control_plane.checkouts.Checkout`, the plain value planning reads. Only this module runs git.

The block is the source: its URL, reference and credentials decide what is cloned, as
prefect-github would clone it. The one thing not taken from prefect-github is the call
`aget_directory` itself, which clones into a temporary directory and copies the tree
over: every file written twice, the largest part of a no-op reconcile of 500 flows
(bench/README.md, "What changed the no-op figure"). `_clone_into` runs the same
`git clone --depth 1 [-b reference]` with the same authenticated URL straight into the
checkout.

Credentials never travel in a URL: a token given as `https://user:TOKEN@host/repo.git` is
taken out on the way in (`split_credentials`) and kept in a `GitHubCredentials` block; a
block or flow parameter that still carries one is refused; every text git produces is
`scrub`bed before it reaches an error, a log or a state; a checkout keeps no token on disk
(its `origin` is the plain URL, git's credential helpers are off while it clones) and no
image build sees its `.git` (`keep_git_out_of_images`).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

from control_plane.checkouts import Checkout
from control_plane.errors import ConfigError, TransientError
from control_plane.files import read_repository_bytes

# --- credentials ---------------------------------------------------------------------

_URL_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@'\"]+@")


def scrub(text: str, secrets: Iterable[str | None] = ()) -> str:
    """`text` without credentials: the user part of every URL in it, and each secret."""
    text = _URL_USERINFO.sub(r"\g<scheme>", text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def split_credentials(url: str) -> tuple[str, str | None]:
    """An http(s) URL without its credentials, and the token they held (the password, or
    the user name alone as in `https://TOKEN@github.com/...`); other URLs as they are."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or "@" not in parts.netloc:
        return url, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    return urlunsplit(parts._replace(netloc=host)), unquote(password or user) or None


def _token(credentials: Any) -> str | None:
    token = getattr(credentials, "token", None)
    return token.get_secret_value() if token is not None else None


def _token_of(block: Any) -> str | None:
    return _token(getattr(block, "credentials", None))


def _authenticated_url(block: Any) -> str:
    """The URL git is given, with the block's token as prefect-github gives it (https)."""
    url: str = block.repository_url
    parts, token = urlsplit(url), _token_of(block)
    if parts.scheme != "https" or not token:
        return url
    return urlunsplit(parts._replace(netloc=f"{token}@{parts.netloc}"))


# git never prompts (a run has no terminal; a CLI must not hang) and never hands a token to
# a credential helper that would store it (`credential.helper=` empties the list).
_GIT_ENVIRONMENT = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_COUNT": "1",
    "GIT_CONFIG_KEY_0": "credential.helper",
    "GIT_CONFIG_VALUE_0": "",
}


# --- git ---------------------------------------------------------------------------------


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
            env={**os.environ, **_GIT_ENVIRONMENT},
        )
    except FileNotFoundError as exc:
        raise ConfigError("git is not installed; install git (e.g. apt-get install git)") from exc
    except subprocess.TimeoutExpired:
        raise TransientError(scrub(f"git {' '.join(args[:2])} timed out after 300 s")) from None


def run_git(args: list[str], cwd: Path, *, check: bool = True) -> str:
    """Run git and return its stdout; translate failures into our errors."""
    completed = _git(args, cwd)
    if check and completed.returncode != 0:
        raise TransientError(
            scrub(f"git {' '.join(args)} failed: {completed.stderr.strip()[-500:]}")
        )
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
    if remote:
        remote = split_credentials(remote)[0]
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
    saved: str | None = None  # what was written to the block, when it was
    url: str | None = None  # the repository's URL without credentials: safe to show


async def _save_credentials(name: str, token: str) -> Any:
    """The `GitHubCredentials` block `name` holding `token`: created, or the existing one
    when it holds the same token (another token under that name is not overwritten)."""
    from prefect_github import GitHubCredentials

    try:
        existing = await GitHubCredentials.aload(name)
    except ValueError:
        credentials = GitHubCredentials(token=token)
        await credentials.asave(name)
        return await GitHubCredentials.aload(name)
    if _token(existing) != token:
        raise ConfigError(
            f"the GitHubCredentials block {name!r} holds another token; delete it or "
            "update its token in the UI (Blocks), then run apply again"
        )
    return existing


async def choose_source(
    url: str | None, name: str | None, *, update: bool = False, dry_run: bool = False
) -> SourceChoice:
    """The source for `apply [PATH_OR_URL] [--source NAME] [--update-source] [--dry-run]`.

    A source's identity is its block: an existing block is used as it is, never silently
    re-pointed at another repository (two folders called `etl` must not prune each
    other's deployments) and never rewritten (its credentials and reference stay). It is
    re-pointed only with `--update-source`. A dry run writes no block: it clones the URL
    from an unsaved block instead.

    A token in the URL is taken out of it: saved as the `GitHubCredentials` block
    `<name>-credentials` that the source's block refers to, never in the block's URL,
    never passed on as a flow parameter (so a dry run cannot take one for a block that
    does not hold it yet).
    """
    from prefect_github import GitHubRepository

    if url is None and name is None:
        raise ConfigError("give a repository path or URL, or --source BLOCK_NAME")
    clean, token = split_credentials(url) if url is not None else (None, None)
    name = name or block_name_for(str(clean))
    existing = await _load_repository_block(name)
    if token is not None and dry_run and (existing is None or _token_of(existing) != token):
        raise ConfigError(
            f"{clean} was given with credentials in the URL, and a dry run saves nothing: "
            "a token is kept only in a GitHubCredentials block, never passed along in a "
            f"URL. Run `deploy-manager apply URL --source {name}` once without --dry-run "
            "(it stores the token in a block), or create the GitHubCredentials block and "
            "the GitHubRepository block in the UI; then dry-run with --source"
        )
    if existing is None:
        if clean is None:
            raise ConfigError(
                f"no GitHubRepository block named {name!r}: create it in the UI (Blocks -> "
                "GitHub Repository) or give the repository: deploy-manager apply PATH_OR_URL"
            )
        if dry_run:
            return SourceChoice(name, repository_url=clean, url=clean)
        block = GitHubRepository(repository_url=clean)
        if token is not None:
            block.credentials = await _save_credentials(f"{name}-credentials", token)
        await block.asave(name)
        saved = "created" + (f" (token in the block {name}-credentials)" if token else "")
        return SourceChoice(name, saved=saved, url=clean)
    current, current_token = split_credentials(existing.repository_url)
    same_credentials = token is None or token == _token_of(existing)
    fix = update and current_token is not None  # a token in the block's URL, moved out
    if clean is None or (current == clean and same_credentials and not fix):
        return SourceChoice(name, url=current)
    if not update:
        if current == clean:
            raise ConfigError(
                f"the source {name!r} keeps its own credentials for {current}, not the "
                "token in this URL; to store this token in it, add --update-source"
            )
        raise ConfigError(
            f"the source {name!r} is the GitHubRepository block for {current}, "
            f"not {clean}; its deployments belong to that repository. Name this one "
            f"differently (--source {_suggested_name(clean)}), or re-point {name!r} at it "
            "with --update-source (its deployments then follow the new repository)"
        )
    if dry_run:
        return SourceChoice(name, repository_url=clean, url=clean)
    existing.repository_url = clean
    token = token or current_token
    if token is not None:
        existing.credentials = await _save_credentials(f"{name}-credentials", token)
    await existing.asave(name, overwrite=True)
    what = "re-pointed" if current != clean else "updated the credentials of"
    return SourceChoice(name, saved=what, url=clean)


async def fetch_checkout(
    block_name: str, ref: str | None = None, repository_url: str | None = None
) -> Checkout:
    """Clone the source through its `GitHubRepository` block, at `ref` (branch, tag or sha).

    The clone is the block's, `--depth 1 -b <reference>`, which takes a branch or a tag
    only; a sha is fetched and checked out here after cloning the block's own reference.
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
    _refuse_credentials_in_url(block_name, block.repository_url, repository_url is not None)
    sha = ref if ref and is_commit_sha(ref) else None
    if ref and not sha:
        block = block.model_copy(update={"reference": ref})
    directory = Path(tempfile.mkdtemp(prefix=f"deploy-manager-{block_name}-"))
    try:
        commit, branch = await _clone(block, directory, ref, sha)
        keep_git_out_of_images(directory)
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


def keep_git_out_of_images(directory: Path) -> None:
    """No image built from the checkout takes its `.git` into the build context.

    Docker reads `.dockerignore` at the context's root: `.git` is added at its end (the
    last pattern wins, even over a `!.git`), as a plain file of the checkout (a symlink is
    never written through; what it pointed to inside the checkout is kept). git is told
    not to see the change, so a step that asks whether the tree is clean (`git describe
    --dirty`, `git status --porcelain`) gets the answer it got before.
    """
    ignore = directory / ".dockerignore"
    try:
        kept = read_repository_bytes(directory, ".dockerignore").decode(errors="replace")
    except OSError:  # none, or a link that leads outside the checkout: not read
        kept = ""
    if ignore.is_symlink() or ignore.exists():
        ignore.unlink()
    ignore.write_text(kept + ("" if kept.endswith("\n") or not kept else "\n") + ".git\n")
    tracked = _git(["ls-files", "--error-unmatch", ".dockerignore"], directory)
    if tracked.returncode == 0:
        run_git(["update-index", "--skip-worktree", ".dockerignore"], directory)
    else:
        exclude = directory / ".git" / "info" / "exclude"
        exclude.parent.mkdir(parents=True, exist_ok=True)
        with exclude.open("a") as handle:
            handle.write("/.dockerignore\n")


def _refuse_credentials_in_url(source: str, url: str, from_parameter: bool) -> None:
    """A token in a URL would be copied into every deployment's pull step and shown to
    everyone who reads the block or the flow run: refused, with where to keep it instead."""
    clean, token = split_credentials(url)
    if token is None:
        return
    where = "the flow parameter repository_url" if from_parameter else (
        f"the repository URL of the GitHubRepository block {source!r}"
    )  # fmt: skip
    raise ConfigError(
        f"{where} carries credentials ({clean} with a user or token); a token is kept only "
        "in a GitHubCredentials block: run `deploy-manager apply https://TOKEN@HOST/REPO.git "
        f"--source {source} --update-source` (it moves the token into the block "
        f"{source}-credentials), or set the block's URL to {clean} and its credentials "
        "in the UI"
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
    the user's (`ConfigError`, one line with the remedy); anything else may be retried.
    No credentials survive into the error: git's text and the URL are scrubbed."""
    url, message = scrub(url), scrub(message)
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
                "auth": "check the token of the source's GitHubCredentials block (a "
                "source without one gets it with `deploy-manager apply "
                "https://TOKEN@HOST/REPO.git --source NAME --update-source`)",
            }[kind]
            return ConfigError(f"cannot clone {where}: {detail}; {remedy}")
    return TransientError(f"cloning {where} failed: {detail}")


def _resolve_short_sha(directory: Path, sha: str, block: Any) -> str:
    """A short sha (as reports show versions) as the one commit of the remote it names.

    A remote serves whole shas only, so the branches' history is fetched and the prefix
    resolved locally; a prefix two commits share is refused with both.
    """
    _git(["fetch", "--quiet", "--unshallow", _authenticated_url(block),
          "+refs/heads/*:refs/remotes/origin/*"], directory)  # fmt: skip
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


async def _clone_into(block: Any, directory: Path) -> None:
    """`git clone --depth 1 [-b reference]` of the block's repository into `directory`.

    The clone prefect-github's `GitHubRepository.aget_directory` makes (the same URL,
    token and reference), but into `directory` itself: the block clones into a temporary
    directory and copies every file over, twice the files written for each run (0.4 s of
    a 500-flow no-op here). `--no-local` keeps `--depth 1` for a repository on this
    machine, which git otherwise ignores to hard-link every object, one file each.
    """
    command = ["git", "clone", "--quiet", "--no-local", "--depth", "1"]
    if block.reference:
        command += ["-b", block.reference]
    process = await asyncio.create_subprocess_exec(
        *command, "--", _authenticated_url(block), str(directory),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **_GIT_ENVIRONMENT},
    )  # fmt: skip
    _, stderr = await process.communicate()
    if process.returncode != 0:
        raise RuntimeError(stderr.decode(errors="replace"))


async def _clone(
    block: Any, directory: Path, ref: str | None, sha: str | None
) -> tuple[str, str | None]:
    """Clone the block's repository into `directory`; the commit and the branch it is at.

    git is given the token in the URL, as prefect-github gives it, so the clone's `origin`
    keeps it: `origin` is set back to the plain URL at once, and later fetches name the
    authenticated URL on the command line only.
    """
    token = _token_of(block)
    try:
        await _clone_into(block, directory)
    except FileNotFoundError as exc:
        raise ConfigError("git is not installed; install git (e.g. apt-get install git)") from exc
    except RuntimeError as exc:
        raise clone_error(block.repository_url, block.reference, scrub(str(exc), [token])) from None
    finally:
        if (directory / ".git").exists():
            _git(["remote", "set-url", "origin", block.repository_url], directory)
    if sha and len(sha) == 40:
        fetched = _git(
            ["fetch", "--quiet", "--depth", "1", _authenticated_url(block), sha], directory
        )
        if fetched.returncode != 0:
            raise ConfigError(
                f"commit {sha} cannot be fetched from {block.repository_url}: "
                f"{scrub(fetched.stderr.strip()[-300:], [token])} (pass a sha that exists "
                "on the remote)"
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
