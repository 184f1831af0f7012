"""Discovery: the flows and deployments a checkout declares, found without running its code.

A pushed branch is untrusted input, so nothing here imports, executes or `exec`s a
file of the repository: flows are found with `ast` (`@flow`, `@flow(...)`,
`@prefect.flow`, aliases, async flows, `x = flow(fn)`), their names and descriptions are
evaluated from literals and module-level constants (of the file, or of a repository module
it imports), their parameter schemas are translated from the AST
(`control_plane.parameters`), and deployments come from the prefect.yaml files
(`control_plane.prefect_yaml`). Flows that no prefect.yaml lists get a default deployment
unless `deploy-manager.yaml` switches that off, a `deployments: []` switches off their
directory, or their flow name is defined more than once. A flow whose name only running
code could tell is not guessed: it is left out, with a problem.

Every bad input becomes a `Problem` and discovery goes on: one broken file never hides
the good ones. This package does not talk to Prefect, git or Docker and does not apply
environments (naming, work pool defaults): `control_plane.deployments` does that.

It does not import Prefect either: importing Prefect takes longer than discovering a
1000-file checkout (`bench/discovery.py`), and `deploy-manager discover` never needs it.
The "planning is pure" import contract in pyproject.toml and
`tests/unit/test_discovery.py` hold it to that. What it costs is mostly `ast.parse` and
the parameter schemas, file by file: from `PARALLEL_FROM` files on, a forked child parses
a little more than half of them where forking is safe (`control_plane.forked`), with the
same result. griffe, for parameter descriptions, is imported only for a docstring that
can hold a section (`control_plane.parameters.docstrings` says what it costs).

The modules, in reading order:

- `model`: what discovery returns (`FlowSpec`, `DiscoveredDeployment`, `Discovery`) and
  `UNREAD_CODES`;
- `walk`: `discover`, the whole checkout: its files, what is skipped and why, the
  parse (forked when it pays), dependency files, then the matching;
- `flow_file`: one Python file's flows (`parse_flow_file`), the `@flow` forms recognised
  and the pre-filter that spares `ast.parse` a file that never names `flow`;
- `static_values`: a flow's `name=` and `description=` evaluated from constants of the
  file or of a repository module it imports, as Python would at import;
- `import_graph`: the repository files a flow's file imports, and its code fingerprint;
- `matching`: prefect.yaml deployments matched to flows, default deployments and when
  there are none, duplicate deployments.

`walk` imports the other five; `flow_file` uses `static_values`; everything uses
`model`, which imports none of them (a layers contract in pyproject.toml keeps that
order). The public names are re-exported here; the private ones are imported from the
module that holds them.
"""

from __future__ import annotations

from control_plane.discovery.flow_file import BANNED_NAME_CHARACTERS, parse_flow_file
from control_plane.discovery.model import (
    UNREAD_CODES,
    DiscoveredDeployment,
    Discovery,
    FlowSpec,
)
from control_plane.discovery.walk import DEPENDENCY_FILES, PARALLEL_FROM, discover

__all__ = [
    "BANNED_NAME_CHARACTERS",
    "DEPENDENCY_FILES",
    "PARALLEL_FROM",
    "UNREAD_CODES",
    "DiscoveredDeployment",
    "Discovery",
    "FlowSpec",
    "discover",
    "parse_flow_file",
]
