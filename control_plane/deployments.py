"""Deployments: one model of what the server stores, and what each deployment must be.

`DeploymentFields` is the one model of a deployment as the Prefect server stores it, in
the normal form both sides of a plan share: `DeploymentSpec` (what the repository wants,
plus where it was declared) and `LiveDeployment` (what the server has, plus its id) are
both made of it. The fields a plan compares are derived from it (`COMPARED_FIELDS`);
registration sends them (`control_plane.prefect_objects.create_arguments`) and reading fills
them (`control_plane.prefect_objects.to_live`), so a field is added in one place. The
ownership markers (managed, source, environment, branch, defining files, code digest,
protect) are tags: `control_plane.markers` writes and reads them.

`build_deployment_specs` turns what discovery found into `DeploymentSpec`s by applying
the environment: the name pattern, default work pool, queue, job variables, parameters
and tags, and the ownership tags (`deploy-manager`, `source:<name>`, `env:<name>`) that
make a deployment ours (`control_plane.markers`). It is pure: no file, network or clock.
`select` keeps the specs a run's `only` globs name; `matches_only` is that one matcher,
for live deployments too.

It does not decide what to change on the server (`control_plane.plans` does) and does
not resolve `{{ ... }}` templates (the apply step does, as Prefect would).
"""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from control_plane.checkouts import Checkout
from control_plane.environments import Environment
from control_plane.errors import Problem
from control_plane.markers import (
    read_code_fingerprint,
    read_defining_files,
    render_marker_tags,
    scope_tags,
)

if TYPE_CHECKING:
    from control_plane.discovery import DiscoveredDeployment, Discovery


class DeploymentFields(BaseModel):
    """A deployment as the server stores it, in the normal form a plan compares.

    Sequences are tuples, schedules and automations the server's form, sorted; the
    ownership markers live in `tags`. Field order is the order diffs are shown in.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Deployment name (after the environment's pattern).")
    flow_name: str
    entrypoint: str | None = Field(
        default=None, description="relative/path.py:function, as the worker resolves it."
    )
    description: str | None = None
    tags: tuple[str, ...] = ()
    parameters: dict[str, Any] = Field(default_factory=dict)
    parameter_openapi_schema: dict[str, Any] = Field(default_factory=dict)
    work_pool_name: str | None = None
    work_queue_name: str | None = None
    job_variables: dict[str, Any] = Field(default_factory=dict)
    schedules: tuple[dict[str, Any], ...] = ()
    concurrency_limit: int | None = None
    concurrency_options: dict[str, Any] | None = None
    enforce_parameter_schema: bool = True
    pull_steps: tuple[dict[str, Any], ...] | None = None
    automations: tuple[dict[str, Any], ...] = Field(
        default=(),
        description="The automations its triggers become, in the server's form, by name.",
    )
    version: str | None = None
    paused: bool | None = None

    @property
    def full_name(self) -> str:
        return f"{self.flow_name}/{self.name}"

    @property
    def code_fingerprint(self) -> str | None:
        """The digest of the flow's code, from its marker tag."""
        return read_code_fingerprint(self.tags)

    @property
    def defining_files(self) -> frozenset[str]:
        """The prefect.yaml and flow file that declared it, from its marker tags."""
        return read_defining_files(self.tags, self.entrypoint)


# Not compared: the identity (the plan matches on it); the version (it follows the commit
# and is written with any other change, never alone: a new commit that changes nothing
# else must not touch the server); `paused`, compared only when the repository says it
# (a UI pause is the user's).
NOT_COMPARED = frozenset({"name", "flow_name", "version", "paused"})
# The code digest is a marker tag (tags are compared without markers): shown on its own.
DERIVED_COMPARED = {"code_fingerprint": "entrypoint"}  # shown right after that field


def _compared_fields() -> tuple[str, ...]:
    fields: list[str] = []
    for name in DeploymentFields.model_fields:
        if name not in NOT_COMPARED:
            fields.append(name)
        fields.extend(d for d, after in DERIVED_COMPARED.items() if after == name)
    return tuple(fields)


COMPARED_FIELDS: tuple[str, ...] = _compared_fields()


class DeploymentSpec(DeploymentFields):
    """One deployment exactly as it must exist on the Prefect server, and where it was
    declared (what the server does not store)."""

    entrypoint: str = Field(description="relative/path.py:function, as the worker resolves it.")
    source_file: str = Field(description="The prefect.yaml (or flow file) that declared it.")
    source_line: int = 0
    flow_file: str = Field(description="The file of the flow's code.")
    environment: str
    triggers: tuple[dict[str, Any], ...] = Field(
        default=(), description="Trigger specs as written in prefect.yaml; registered as is."
    )
    build_steps: tuple[dict[str, Any], ...] | None = None
    push_steps: tuple[dict[str, Any], ...] | None = None
    is_default: bool = Field(default=False, description="Made from defaults, not prefect.yaml.")

    @property
    def defining_files(self) -> frozenset[str]:
        return frozenset({self.source_file, self.flow_file})


class LiveDeployment(DeploymentFields):
    """A deployment as the server has it (`control_plane.prefect_objects.to_live`)."""

    id: str


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """`override` on top of `base`, mappings merged key by key (Prefect's job variable rule)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _accepts(schema: Mapping[str, Any], parameter: str) -> bool:
    properties = schema.get("properties", {})
    return parameter in properties


def build_deployment_spec(
    found: DiscoveredDeployment, environment: Environment, checkout: Checkout
) -> DeploymentSpec:
    declared, flow = found.declared, found.flow
    defaults = {
        key: value
        for key, value in environment.parameters.items()
        if _accepts(flow.parameters, key)
    }
    markers = render_marker_tags(
        scope_tags(checkout.source, environment, checkout.branch),
        (declared.source_file, flow.path),
        flow.code_fingerprint,
    )
    tags = {*declared.tags, *environment.tags, *markers}
    work_pool_name = declared.work_pool_name or environment.work_pool.name
    work_queue_name = declared.work_queue_name
    if work_queue_name is None and declared.work_pool_name is None:
        work_queue_name = environment.work_pool.work_queue_name
    enforce = declared.enforce_parameter_schema
    return DeploymentSpec(
        name=environment.render_name(name=declared.name, flow=flow.name, branch=checkout.branch),
        flow_name=flow.name,
        entrypoint=declared.entrypoint or flow.entrypoint,
        source_file=declared.source_file,
        source_line=declared.line,
        flow_file=flow.path,
        environment=environment.name,
        description=declared.description if declared.description is not None else flow.description,
        version=declared.version or checkout.short_commit,
        tags=tuple(sorted(tags)),
        parameters={**defaults, **declared.parameters},
        parameter_openapi_schema=flow.parameters,
        work_pool_name=work_pool_name,
        work_queue_name=work_queue_name,
        job_variables=deep_merge(environment.work_pool.job_variables, declared.job_variables),
        schedules=tuple(declared.schedules),
        triggers=tuple(declared.triggers),
        concurrency_limit=declared.concurrency_limit,
        concurrency_options=declared.concurrency_options,
        enforce_parameter_schema=True if enforce is None else enforce,
        paused=declared.paused,
        pull_steps=declared.pull,
        build_steps=declared.build,
        push_steps=declared.push,
        is_default=found.is_default,
    )


def build_deployment_specs(
    discovery: Discovery, environment: Environment, checkout: Checkout
) -> tuple[tuple[DeploymentSpec, ...], tuple[Problem, ...]]:
    """Every deployment of the checkout in `environment`, and the name clashes the pattern made."""
    specs = [build_deployment_spec(d, environment, checkout) for d in discovery.deployments]
    groups: dict[str, list[DeploymentSpec]] = defaultdict(list)
    for spec in specs:
        groups[spec.full_name].append(spec)
    problems: list[Problem] = []
    kept: list[DeploymentSpec] = []
    for full_name, group in groups.items():
        if len(group) == 1:
            kept.append(group[0])
            continue
        places = ", ".join(f"{s.source_file}:{s.source_line}" for s in group)
        problems.extend(
            Problem(
                spec.source_file,
                spec.source_line,
                "duplicate-deployment",
                f"the name pattern {environment.name_pattern!r} of environment "
                f"{environment.name!r} gives {full_name} to {len(group)} deployments ({places})",
                "use {name} in the environment's name_pattern, or rename the deployments",
            )
            for spec in group
        )
    return tuple(sorted(kept, key=lambda s: s.full_name)), tuple(problems)


def select(specs: Sequence[DeploymentSpec], patterns: Sequence[str]) -> tuple[DeploymentSpec, ...]:
    """The specs whose flow name, deployment name or flow/deployment matches a glob."""
    return tuple(
        spec
        for spec in specs
        if matches_only((spec.name, spec.flow_name, spec.full_name), patterns)
    )


def matches_only(names: Iterable[str], patterns: Sequence[str]) -> bool:
    """Whether a deployment is selected by `only`: one of its names matches one glob.

    `names` are the deployment's name, its flow's name and flow/deployment; the globs are
    fnmatch's, case-sensitive. No globs select every deployment. The one matcher for
    `only`, for the deployments a repository declares and the ones the server has.
    """
    if not patterns:
        return True
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns for name in names)
