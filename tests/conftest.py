"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples"


@pytest.fixture
def write_repo(tmp_path: Path) -> Callable[[dict[str, str]], Path]:
    """Write a repository from {relative path: text}; text is dedented."""

    def write(files: dict[str, str], root: Path | None = None) -> Path:
        base = root or tmp_path / "repo"
        base.mkdir(parents=True, exist_ok=True)
        for rel, text in files.items():
            path = base / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return base

    return write
