"""The layers contract (pyproject.toml, import-linter) names every module of the package.

A module left out of the layers would be free to import anything: a new adapter must
take its place in the order, so the contract keeps describing the whole package.
"""

from __future__ import annotations

import pkgutil
import tomllib

import control_plane
from tests.conftest import REPO_ROOT


def test_every_module_of_control_plane_has_a_layer() -> None:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    (layers,) = [
        c["layers"] for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"
    ]
    named = {m.strip() for layer in layers for m in layer.replace(":", "|").split("|")}
    modules = {
        f"control_plane.{m.name}"
        for m in pkgutil.iter_modules(control_plane.__path__)
        if m.name != "__main__"
    }
    assert modules - named == set()
    assert {m for m in named if m.startswith("control_plane.")} - modules == set()
