"""The layers contracts (pyproject.toml, import-linter) name every module they order.

A module left out of the layers would be free to import anything: a new adapter must
take its place in the order, so the contract keeps describing the whole package. The
same holds inside a package that has a layers contract of its own (`containers`):
a new module of `control_plane.discovery` must take its place in that order.
"""

from __future__ import annotations

import importlib
import pkgutil
import tomllib
from typing import Any

import pytest

import control_plane
from tests.conftest import REPO_ROOT


def layers_contracts() -> list[dict[str, Any]]:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    return [c for c in config["tool"]["importlinter"]["contracts"] if c["type"] == "layers"]


def named_in(layers: list[str]) -> set[str]:
    return {m.strip() for layer in layers for m in layer.replace(":", "|").split("|")}


def test_every_module_of_control_plane_has_a_layer() -> None:
    (layers,) = [c["layers"] for c in layers_contracts() if not c.get("containers")]
    named = named_in(layers)
    modules = {
        f"control_plane.{m.name}"
        for m in pkgutil.iter_modules(control_plane.__path__)
        if m.name != "__main__"
    }
    assert modules - named == set()
    assert {m for m in named if m.startswith("control_plane.")} - modules == set()


@pytest.mark.parametrize(
    "container",
    [c for contract in layers_contracts() for c in contract.get("containers", [])],
)
def test_every_module_of_a_layered_package_has_a_layer(container: str) -> None:
    (layers,) = [c["layers"] for c in layers_contracts() if container in c.get("containers", [])]
    package = importlib.import_module(container)
    modules = {m.name for m in pkgutil.iter_modules(package.__path__)}
    assert modules == named_in(layers)
