"""prefect.yaml: the deployments a repository declares, read with Prefect's semantics.

`parser.parse_prefect_yaml` reads one prefect.yaml the way `prefect deploy --all` (Prefect
3.8) reads it: YAML anchors, aliases and merge keys, the project-level `build`, `push` and
`pull` sections and how a deployment overrides them, the legacy single `schedule:`, and
the schedules Prefect builds for the API (cron, interval, rrule, checked with the same
validators as Prefect's schedule models). What Prefect would refuse, when it loads the
file or later while deploying, becomes a `Problem` with the file, the YAML line, the bad
value and a remedy. Unlike Prefect, which skips a whole file when one entry is invalid,
a bad entry costs only itself (an entry whose only fault is its entrypoint is returned
with `entrypoint=None`, so that discovery can say why it skips it); unlike Prefect,
unknown keys are reported, not ignored, and so is every key Prefect accepts but ignores or
deploy-manager does not apply. An entrypoint is kept as written when the deployment brings
pull steps of its own (they set the working directory it is resolved against at run
time), else made relative to the repository root; `flow_entrypoint` always is.

It does not import Prefect (2.5 s on the discovery path) and runs no repository code.
`{{ ... }}` template references are kept verbatim for the apply step and are left
unvalidated wherever Prefect resolves them before it validates. It does not find the
prefect.yaml files of a repository (`control_plane.files`), match entrypoints to flows
or detect duplicate deployments across files (`control_plane.discovery`), or apply an
environment (`control_plane.deployments`).

The modules:

- `parser`: `parse_prefect_yaml`; the file (documents, top level, project sections) and
  each `deployments:` entry (name, tags, work pool, concurrency, which steps it runs);
- `models`: what a prefect.yaml may say (pydantic models that refuse unknown keys, the
  key tables) and what parsing returns (`DeclaredDeployment`, `PrefectYamlFile`);
- `problems`: problems at their YAML lines, pydantic errors turned into problems, an
  entry's view of its file's problems;
- `schedules`: Prefect's schedule validators without Prefect, and an entry's schedules;
- `steps`: build, push and pull sections and the docker image references in them;
- `entrypoints`: where an entrypoint points, from the root or the file's directory.

The YAML loader that keeps lines is `control_plane.yaml_lines`, shared with
deploy-manager.yaml.

`is_templated` is re-exported here for `control_plane.prefect_api`, which imports it from
the package; everything else is imported from its module.
"""

from __future__ import annotations

from control_plane.prefect_yaml.models import is_templated

__all__ = ["is_templated"]
