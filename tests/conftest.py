"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import os
import textwrap
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = REPO_ROOT / "examples"


def pytest_report_header() -> str:
    # The schema tests take Prefect as the oracle: say which one (read without importing it).
    found = metadata.distribution("prefect")
    return f"prefect: {found.version} (in {found.locate_file('')})"


def pytest_configure(config: pytest.Config) -> None:
    """`EXPECT_PREFECT=3.8.8` makes sure a run against another Prefect really uses it."""
    expected = os.environ.get("EXPECT_PREFECT")
    if expected and metadata.version("prefect") != expected:
        raise pytest.UsageError(
            f"EXPECT_PREFECT={expected}, but this environment has prefect "
            f"{metadata.version('prefect')}"
        )


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
