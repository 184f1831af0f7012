"""What discovery returns: flows, the deployments a checkout asks for, and its problems.

`FlowSpec` is one `@flow` function as Prefect will know it, `DiscoveredDeployment` a
deployment before an environment is applied, `Discovery` the whole answer for a checkout.
`UNREAD_CODES` are the problems that leave a prefect.yaml's deployments unknown (the
reconcile keeps them rather than prune). `_parent`, the directory of a repo-relative
path, is here because every module of the package uses it. Plain frozen values: nothing
here reads a file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from control_plane.environments import RepositoryConfig
from control_plane.errors import Problem
from control_plane.prefect_yaml.models import DeclaredDeployment, PrefectYamlFile

# Problems after which a prefect.yaml's deployments are unknown (not one bad entry: the file).
UNREAD_CODES = frozenset(
    {"unreadable-file", "invalid-yaml", "invalid-prefect-yaml", "not-a-prefect-yaml"}
)


@dataclass(frozen=True)
class FlowSpec:
    """One `@flow` function of the repository, as Prefect will know it."""

    name: str
    entrypoint: str  # "relative/path.py:function"
    path: str
    function: str
    line: int
    description: str | None
    parameters: dict[str, Any]
    dependencies: tuple[str, ...] = ()  # nearest pyproject.toml / requirements.txt / Dockerfile
    local_imports: tuple[str, ...] = ()  # repository files the flow's file imports, transitively
    code_fingerprint: str = ""  # digest of the flow's file, its local imports and dependencies


@dataclass(frozen=True)
class DiscoveredDeployment:
    """A deployment the repository asks for, before an environment is applied."""

    declared: DeclaredDeployment
    flow: FlowSpec
    is_default: bool = False  # made from the defaults: no prefect.yaml lists the flow
    prefect_yaml: PrefectYamlFile | None = None

    @property
    def name(self) -> str:
        return self.declared.name

    @property
    def source_file(self) -> str:
        return self.declared.source_file


@dataclass(frozen=True)
class Discovery:
    """What one checkout declares, and what was wrong with it."""

    root: Path
    config: RepositoryConfig
    flows: tuple[FlowSpec, ...]
    deployments: tuple[DiscoveredDeployment, ...]
    prefect_yaml_files: tuple[PrefectYamlFile, ...]
    problems: tuple[Problem, ...]
    python_files_parsed: int = 0
    failed_files: frozenset[str] = field(default_factory=frozenset)

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")


def _parent(path: str) -> str:
    """The directory of a repo-relative posix path; "" for the root."""
    return path.rpartition("/")[0]
