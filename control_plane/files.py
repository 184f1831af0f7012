"""Which files of a checkout deploy-manager reads, and which it must leave alone.

A repository is walked once; what a user expects ignored is skipped before any file is
opened: `.git`, virtualenvs, `node_modules`, caches, whatever `.gitignore` files (at any
depth) and the root `.prefectignore` exclude, and the `exclude` globs of
`deploy-manager.yaml`. Symlinks are never followed out of the repository. The prefect.yaml
files are those the `prefect_files` patterns match (default: prefect.yaml and prefect.yml at
any depth); other files named like one (prefect.dev.yaml, prefect-prod.yml) are listed
apart, so that discovery can say they are not read. Every file of the checkout that
deploy-manager reads goes through `read_repository_bytes` (or a `RepositoryReader`, the
same rule for many files), which refuses a path that leads out of the checkout (config,
ignore files, dependency files, everything).

This module reads directory listings and ignore files; it does not parse Python or YAML.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pathspec

DEFAULT_PREFECT_FILES = ("prefect.yaml", "prefect.yml")

# Directories nobody wants scanned for flows, whatever their ignore files say.
ALWAYS_SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        "__pycache__",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        "site-packages",
        ".eggs",
    }
)


@dataclass(frozen=True)
class RepositoryFiles:
    """The files of a checkout worth reading, relative posix paths, sorted."""

    python: tuple[str, ...]
    prefect_yaml: tuple[str, ...]
    skipped_symlinks: tuple[str, ...] = field(default=())
    unread_prefect_files: tuple[str, ...] = field(default=())  # named like one, not matched
    too_large: tuple[tuple[str, int], ...] = field(default=())  # (path, bytes), skipped
    broken_symlinks: tuple[str, ...] = field(default=())  # a loop or a missing target


class OutsideRepositoryError(OSError):
    """A path of the checkout that leads out of it through a symbolic link: never read."""


def resolve_inside(root: Path, rel: str) -> Path:
    """`root/rel` with every link followed, or `OutsideRepositoryError` when it leaves `root`.

    A checkout is untrusted input: a link to `/etc/...` or to another checkout must not
    feed deploy-manager's config, ignore rules, code fingerprints or anything else.
    """
    try:
        real = (root / rel).resolve()
    except RuntimeError:  # a loop of links: there is nothing to read
        raise OSError(f"{rel} is a loop of symbolic links; it is not read") from None
    if not real.is_relative_to(root.resolve()):
        raise _outside(rel)
    return real


def read_repository_bytes(root: Path, rel: str) -> bytes:
    """The bytes of a file of the checkout; never a file outside it."""
    return resolve_inside(root, rel).read_bytes()


class RepositoryReader:
    """`read_repository_bytes` for many files of one checkout: each directory resolved once.

    Resolving a path costs a system call per component; for a thousand files in a few dozen
    directories, resolving every directory once and then only asking whether the file
    itself is a link is the same answer for a fraction of the work (0.25 s of a 1000-file
    discovery went to `Path.resolve`). The answer is the one `resolve_inside` gives at the
    time a directory is first seen: a reader lives for one discovery of a checkout that
    nothing else changes meanwhile.
    """

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self._root = str(self.root)
        self._prefix = self._root.rstrip(os.sep) + os.sep
        self._directories: dict[str, str | None] = {"": self._root}  # None: leads outside

    def _inside(self, real: str) -> bool:
        return real == self._root or real.startswith(self._prefix)

    def _directory(self, rel_dir: str) -> str | None:
        if rel_dir not in self._directories:
            real = os.path.realpath(os.path.join(self._root, rel_dir))
            self._directories[rel_dir] = real if self._inside(real) else None
        return self._directories[rel_dir]

    def resolve(self, rel: str) -> str:
        """The real path of `rel`; `OutsideRepositoryError` when it leads out of the checkout."""
        rel_dir, _, name = rel.rpartition("/")
        if name in ("", ".", "..") or rel.startswith("/"):
            return str(resolve_inside(self.root, rel))  # unusual: the general rule
        directory = self._directory(rel_dir)
        if directory is None:
            raise _outside(rel)
        path = os.path.join(directory, name)
        if os.path.islink(path):
            path = os.path.realpath(path)
            if not self._inside(path):
                raise _outside(rel)
        return path

    def read_bytes(self, rel: str) -> bytes:
        with open(self.resolve(rel), "rb") as file:
            return file.read()

    def is_file(self, rel: str) -> bool:
        try:
            return os.path.isfile(self.resolve(rel))
        except OSError:
            return False


def _outside(rel: str) -> OutsideRepositoryError:
    return OutsideRepositoryError(
        f"{rel} is a symbolic link (or lies under one) that leads outside the repository; "
        "it is not read"
    )


def _read_lines(root: Path, rel: str) -> list[str]:
    try:
        return read_repository_bytes(root, rel).decode("utf-8", "replace").splitlines()
    except OSError:
        return []


def _gitignore_spec(lines: Iterable[str]) -> pathspec.GitIgnoreSpec | None:
    cleaned = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if not cleaned:
        return None
    return pathspec.GitIgnoreSpec.from_lines(cleaned)


def _is_virtualenv(path: Path) -> bool:
    return (path / "pyvenv.cfg").is_file()


# prefect.yaml, prefect.yml, prefect.dev.yaml, prefect-prod.yml, prefect_staging.yaml
PREFECT_FILE_NAME = re.compile(r"prefect(?:[._-][^/]*)?\.ya?ml")


def iter_repository_files(
    root: Path,
    exclude: Iterable[str] = (),
    prefect_files: Iterable[str] = DEFAULT_PREFECT_FILES,
    max_bytes: int | None = None,
) -> RepositoryFiles:
    """Walk `root` and return the Python files and prefect.yaml files to read."""
    root = root.resolve()
    prefect_spec = pathspec.GitIgnoreSpec.from_lines(list(prefect_files))
    specs: list[tuple[str, pathspec.GitIgnoreSpec]] = []
    root_spec = _gitignore_spec(
        _read_lines(root, ".prefectignore") + list(exclude),
    )
    if root_spec is not None:
        specs.append(("", root_spec))

    python: list[str] = []
    prefect_yaml: list[str] = []
    unread: list[str] = []
    symlinks: list[str] = []
    broken: list[str] = []
    too_large: list[tuple[str, int]] = []

    def small(entry: os.DirEntry[str], rel: str) -> bool:
        if max_bytes is None:
            return True
        try:
            size = entry.stat().st_size
        except OSError:
            return True  # reading it will say what is wrong
        if size > max_bytes:
            too_large.append((rel, size))
            return False
        return True

    def ignored(rel: str, is_dir: bool) -> bool:
        for base, spec in specs:
            if base and not rel.startswith(base + "/"):
                continue
            sub = rel[len(base) + 1 :] if base else rel
            if spec.match_file(sub + "/" if is_dir else sub):
                return True
        return False

    def walk(directory: Path, rel_dir: str) -> None:
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError:
            entries = []
        nested = None
        if any(entry.name == ".gitignore" for entry in entries):
            nested = _gitignore_spec(
                _read_lines(root, f"{rel_dir}/.gitignore" if rel_dir else ".gitignore")
            )
        if nested is not None:
            specs.append((rel_dir, nested))
        for entry in entries:
            rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
            if entry.is_symlink():
                # A symlink may point out of the repository; never read through it.
                if not os.path.exists(entry.path):  # a loop, or a target that is missing
                    broken.append(rel)
                    continue
                target = Path(os.path.realpath(entry.path))
                if not target.is_relative_to(root):
                    symlinks.append(rel)
                    continue
                if target.is_dir():
                    continue  # in-repo directory links would be read twice
            if entry.is_dir(follow_symlinks=False):
                if entry.name in ALWAYS_SKIPPED_DIRS or ignored(rel, is_dir=True):
                    continue
                if _is_virtualenv(Path(entry.path)):
                    continue
                walk(Path(entry.path), rel)
            elif not ignored(rel, is_dir=False):
                if entry.name.endswith(".py"):
                    if small(entry, rel):
                        python.append(rel)
                elif prefect_spec.match_file(rel):
                    if small(entry, rel):
                        prefect_yaml.append(rel)
                elif PREFECT_FILE_NAME.fullmatch(entry.name):
                    unread.append(rel)
        if nested is not None:
            specs.pop()

    walk(root, "")
    return RepositoryFiles(
        python=tuple(sorted(python)),
        prefect_yaml=tuple(sorted(prefect_yaml)),
        skipped_symlinks=tuple(sorted(symlinks)),
        unread_prefect_files=tuple(sorted(unread)),
        too_large=tuple(sorted(too_large)),
        broken_symlinks=tuple(sorted(broken)),
    )
