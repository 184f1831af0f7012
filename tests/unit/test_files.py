"""Which files of a checkout are read, and that none outside it ever is."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from control_plane.files import OutsideRepositoryError, RepositoryReader, resolve_inside

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="symlinks")

# path in the repository -> what it is (a link's target is relative to the link)
LAYOUT = {
    "a.py": "file",
    "pkg/b.py": "file",
    "pkg/sub/c.py": "file",
    "pkg/alias.py": "link:sub/c.py",
    "pkg/linked_dir": "link:sub",
    "pkg/out.py": "link:../../outside/x.py",
    "pkg/out_dir": "link:../../outside",
    "pkg/loop_a.py": "link:loop_b.py",
    "pkg/loop_b.py": "link:loop_a.py",
}
ASKED = [
    "a.py",
    "pkg/b.py",
    "pkg/sub/c.py",
    "pkg/alias.py",  # a link to a file inside
    "pkg/linked_dir/c.py",  # under a link to a directory inside
    "pkg/out.py",  # a link to a file outside
    "pkg/out_dir/x.py",  # under a link to a directory outside
    "pkg/out_dir/missing.py",
    "pkg/missing.py",
    "missing_dir/missing.py",
    "pkg/sub/../b.py",
    "pkg/out_dir/../../repo/a.py",
    "pkg/sub/",
    "pkg/..",
    "/etc/hostname",
]


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x.py").write_text("LEAKED = 1\n")
    for rel, kind in LAYOUT.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if kind == "file":
            path.write_text(f"# {rel}\n")
        else:
            os.symlink(kind.removeprefix("link:"), path)
    return root


def _answer(resolve: Callable[[str], object], rel: str) -> str:
    try:
        return str(resolve(rel))
    except OutsideRepositoryError:
        return "outside"


@pytest.mark.parametrize("rel", ASKED)
def test_the_reader_resolves_as_resolve_inside_does(repo: Path, rel: str) -> None:
    """One rule for one file and for many: the reader only saves work, never changes an answer."""
    reader = RepositoryReader(repo)
    expected = _answer(lambda r: resolve_inside(repo, r), rel)
    assert _answer(reader.resolve, rel) == expected
    assert _answer(reader.resolve, rel) == expected  # from what it remembered


@pytest.mark.parametrize("rel", ["pkg/out.py", "pkg/out_dir/x.py"])
def test_the_reader_never_reads_outside(repo: Path, rel: str) -> None:
    reader = RepositoryReader(repo)
    with pytest.raises(OutsideRepositoryError, match=rel):
        reader.read_bytes(rel)
    assert not reader.is_file(rel)


def test_the_reader_reads_inside(repo: Path) -> None:
    reader = RepositoryReader(repo)
    assert reader.read_bytes("pkg/alias.py") == b"# pkg/sub/c.py\n"
    assert reader.read_bytes("pkg/linked_dir/c.py") == b"# pkg/sub/c.py\n"
    assert reader.is_file("a.py") and not reader.is_file("pkg/sub")
    with pytest.raises(OSError):
        reader.read_bytes("pkg/loop_a.py")  # a link loop is an unreadable file, not a crash
