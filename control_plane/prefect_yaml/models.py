"""What a prefect.yaml may say, and what reading one returns.

The pydantic models of a prefect.yaml's parts (`DeploymentEntry`, `WorkPoolEntry`,
`ScheduleEntry`, `ConcurrencyEntry`, `ProjectEntry`): Prefect's own shapes, except that
unknown keys are refused so typos surface. The tables of keys that are misplaced, ignored by
Prefect or not applied by deploy-manager. The results: `DeclaredDeployment`, one entry as
`prefect deploy` would deploy it, and `PrefectYamlFile`, one file with its problems. Also
the constants Prefect defines (template placeholders, docker step names, collision
strategies, version types) and `is_templated`.

No parsing here: `parser` fills these in.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from control_plane.errors import Problem

# prefect.utilities.templating.PLACEHOLDER_CAPTURE_REGEX: what Prefect substitutes.
PLACEHOLDER = re.compile(r"({{\s*([\w\.\-\[\]$]+)\s*}})")

BUILD_DOCKER_IMAGE = "prefect_docker.deployments.steps.build_docker_image"
PUSH_DOCKER_IMAGE = "prefect_docker.deployments.steps.push_docker_image"
COLLISION_STRATEGIES = ("ENQUEUE", "CANCEL_NEW")  # prefect ConcurrencyLimitStrategy
VERSION_TYPES = (  # prefect._internal.versioning.VersionType
    "prefect:simple",
    "vcs:github",
    "vcs:gitlab",
    "vcs:bitbucket",
    "vcs:azuredevops",
    "vcs:git",
)


# --- what a prefect.yaml may say (our models: unknown keys are refused) ---------------


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid")


Steps = list[dict[str, Any]] | dict[str, Any] | None


class WorkPoolEntry(_Config):
    """`work_pool:` of a deployment (Prefect's `WorkPoolConfig`)."""

    name: str | None = Field(
        default=None, description="the name of the work pool that runs the flow"
    )
    work_queue_name: str | None = Field(default=None, description="a work queue of that work pool")
    job_variables: dict[str, Any] = Field(
        default_factory=dict,
        description="a mapping that overrides the work pool's base job template (image, env, ...)",
    )


class ConcurrencyEntry(_Config):
    """`concurrency_limit:` of a deployment given as a mapping (`ConcurrencyLimitSpec`)."""

    limit: int | None = Field(default=None, description="the number of concurrent runs allowed")
    collision_strategy: str | None = Field(
        default=None, description="what happens to a run over the limit: ENQUEUE or CANCEL_NEW"
    )
    grace_period_seconds: int | None = Field(
        default=None,
        description="seconds (60-86400) a run may take to start before its slot is freed",
    )


class ScheduleEntry(_Config):
    """One item of `schedules:` (Prefect's `RawScheduleConfig`)."""

    cron: str | None = Field(default=None, description="a cron expression, e.g. '0 6 * * *'")
    interval: timedelta | None = Field(
        default=None, description="seconds, an ISO 8601 duration ('PT1H') or 'HH:MM:SS'"
    )
    rrule: str | None = Field(default=None, description="an RFC 5545 recurrence rule")
    timezone: str | None = Field(
        default=None, description="an IANA timezone name, e.g. 'Europe/Berlin'"
    )
    anchor_date: str | None = Field(
        default=None, description="an ISO 8601 date-time the interval counts from"
    )
    active: bool | str | None = Field(default=None, description="a boolean, or a template")
    parameters: dict[str, Any] = Field(
        default_factory=dict,
        description="a mapping of parameter overrides for the runs of this schedule",
    )
    slug: str | None = Field(default=None, description="a string that identifies the schedule")
    replaces: str | None = Field(
        default=None, description="the slug of a schedule this one renames"
    )
    day_or: bool | str | None = Field(
        default=None,
        description="a boolean: combine day-of-month and day-of-week with OR (default)",
    )


class DeploymentEntry(_Config):
    """One item of `deployments:` (Prefect's `DeploymentConfig`, without silent extras)."""

    name: str | None = Field(default=None, description="the deployment's name")
    version: str | None = Field(default=None, description="a version string (quote numbers: '1.0')")
    version_type: str | None = Field(default=None, description=f"one of {', '.join(VERSION_TYPES)}")
    tags: str | list[Any] | None = Field(default=None, description="a list of tags")
    description: str | None = Field(default=None, description="a description shown in the UI")
    schedule: dict[str, Any] | None = Field(
        default=None, description="one schedule (the legacy form of `schedules:`)"
    )
    schedules: list[Any] | None = Field(
        default=None, description="a list of schedules, each with one of cron, interval or rrule"
    )
    paused: bool | None = Field(default=None, description="a boolean")
    concurrency_limit: int | dict[str, Any] | None = Field(
        default=None,
        description="an integer, or a mapping {limit, collision_strategy, grace_period_seconds}",
    )
    flow_name: str | None = Field(
        default=None, description="ignored: Prefect uses the flow's own name"
    )
    entrypoint: str | None = Field(default=None, description="path/to/file.py:flow_function")
    parameters: dict[str, Any] = Field(
        default_factory=dict, description="a mapping of parameter values"
    )
    enforce_parameter_schema: bool | None = Field(default=None, description="a boolean")
    build: Steps = Field(default=None, description="a list of build steps")
    push: Steps = Field(default=None, description="a list of push steps")
    pull: Steps = Field(default=None, description="a list of pull steps")
    work_pool: WorkPoolEntry | None = Field(
        default=None, description="a mapping {name, work_queue_name, job_variables}"
    )
    triggers: list[dict[str, Any]] | None = Field(
        default=None, description="a list of trigger mappings"
    )
    sla: list[dict[str, Any]] | None = Field(default=None, description="a list of SLA mappings")


class ProjectEntry(BaseModel):
    """The top level of a prefect.yaml (Prefect's `PrefectYamlModel`, without deployments)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    prefect_version: str | None = Field(
        default=None, alias="prefect-version", description="a version string (quote it: '3.8.8')"
    )
    name: str | None = Field(default=None, description="the project's name")
    build: Steps = Field(default=None, description="a list of build steps")
    push: Steps = Field(default=None, description="a list of push steps")
    pull: Steps = Field(default=None, description="a list of pull steps")


TOP_LEVEL_KEYS = ("prefect-version", "prefect_version", "name", "build", "push", "pull")
KNOWN_TOP_LEVEL_KEYS = (*TOP_LEVEL_KEYS, "deployments", "definitions")
# Keys people put in a deployment entry that belong somewhere else.
MOVED_KEYS = {
    "job_variables": "work_pool.job_variables",
    "variables": "work_pool.job_variables",
    "work_queue_name": "work_pool.work_queue_name",
    "work_queue": "work_pool.work_queue_name",
    "work_pool_name": "work_pool.name",
    "pool": "work_pool.name",
    "image": "work_pool.job_variables.image",
    "cron": "schedules: [{cron: ...}]",
    "interval": "schedules: [{interval: ...}]",
    "rrule": "schedules: [{rrule: ...}]",
    "timezone": "schedules: [{..., timezone: ...}]",
}
# Keys of a deployment entry that Prefect itself ignores: (why, remedy).
IGNORED_KEYS = {
    "parameter_openapi_schema": (
        "Prefect ignores parameter_openapi_schema in a prefect.yaml: it stores the schema of "
        "the flow's signature, and so does deploy-manager",
        "remove parameter_openapi_schema; annotate the flow's parameters instead",
    ),
}
# Keys deploy-manager reads and carries but never applies: (why, remedy).
NOT_APPLIED_KEYS = {
    "sla": (
        "sla: is not applied: SLAs are a Prefect Cloud feature; Prefect's client applies them "
        "only on Prefect Cloud (prefect deploy refuses sla: with a self-hosted server, which "
        "has no SLA API)",
        "remove sla:, or alert on late or long runs with an automation (triggers:)",
    ),
    "version_type": (
        "version_type is not applied: Prefect derives version_info from it, which the "
        "self-hosted server discards; deploy-manager sets version to the commit, or to version:",
        "remove version_type, or give version:",
    ),
}


# --- results --------------------------------------------------------------------------


class DeclaredDeployment(BaseModel):
    """One `deployments:` entry as `prefect deploy` would deploy it, templates unresolved."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(description="the deployment's name, templates kept")
    entrypoint: str | None = Field(
        default=None,
        description=(
            "the entrypoint to register: as declared when `entrypoint_as_declared`, else "
            "path.py:function relative to the repository root; None if invalid"
        ),
    )
    flow_entrypoint: str | None = Field(
        default=None,
        description=(
            "path.py:function of the flow relative to the repository root (what discovery "
            "reads the flow from); defaults to `entrypoint`; None if invalid"
        ),
    )
    entrypoint_as_declared: bool = Field(
        default=False,
        description=(
            "the deployment brings pull steps of its own (its `pull:` or the file's): Prefect "
            "resolves the entrypoint against the working directory they leave at run time, so "
            "it is kept as written. Without them deploy-manager pins a git_clone of the "
            "repository root, and the entrypoint is made relative to the root"
        ),
    )
    source_file: str = Field(description="the prefect.yaml, relative to the repository root")
    line: int = Field(description="the line of the entry's own name: key, else of the item")
    description: str | None = None
    version: str | None = None
    version_type: str | None = None
    tags: tuple[str, ...] = ()
    parameters: dict[str, Any] = Field(default_factory=dict)
    work_pool_name: str | None = None
    work_queue_name: str | None = None
    job_variables: dict[str, Any] = Field(default_factory=dict)
    schedules: tuple[dict[str, Any], ...] = Field(
        default=(),
        description="as Prefect sends them: {schedule, active, parameters, slug[, replaces]}",
    )
    triggers: tuple[dict[str, Any], ...] = ()
    concurrency_limit: int | None = None
    concurrency_options: dict[str, Any] | None = None
    enforce_parameter_schema: bool | None = None
    paused: bool | None = None
    build: tuple[dict[str, Any], ...] | None = Field(
        default=None, description="the build steps prefect deploy runs; None: none"
    )
    push: tuple[dict[str, Any], ...] | None = Field(
        default=None, description="the push steps prefect deploy runs; None: none"
    )
    pull: tuple[dict[str, Any], ...] | None = Field(
        default=None, description="the pull steps; None: Prefect generates its default, (): none"
    )
    sla: tuple[dict[str, Any], ...] | None = Field(
        default=None, description="SLA definitions; None: not given (an empty tuple clears them)"
    )

    @model_validator(mode="before")
    @classmethod
    def _flow_entrypoint_defaults_to_entrypoint(cls, data: Any) -> Any:
        declared = isinstance(data, dict) and data.get("entrypoint_as_declared")
        if isinstance(data, dict) and data.get("flow_entrypoint") is None and not declared:
            data = {**data, "flow_entrypoint": data.get("entrypoint")}
        return data


DeploymentsList = Literal["entries", "empty", "missing", "unreadable", "not-prefect"]


@dataclass(frozen=True)
class PrefectYamlFile:
    """One prefect.yaml: its project-level sections, its valid deployments, its problems."""

    path: str
    name: str | None
    build: tuple[dict[str, Any], ...] | None
    push: tuple[dict[str, Any], ...] | None
    pull: tuple[dict[str, Any], ...] | None
    deployments: tuple[DeclaredDeployment, ...]
    problems: tuple[Problem, ...]
    # What its `deployments:` says about the flows of its directory and below: "entries"
    # (it lists deployments), "empty" (`deployments: []`: deploy none of them), "missing"
    # (no such key, or null: it says nothing), "unreadable" (the file or the list could not
    # be read: what it declares is unknown), "not-prefect" (another kind of file, e.g. a
    # Kubernetes manifest, that has the name: it says nothing).
    deployments_list: DeploymentsList = "missing"
    # The line of each build, then push step a deployment runs, by the deployment's `line`
    # (step allow-list problems point at the step, wherever the deployment inherits it from).
    step_lines: Mapping[int, tuple[int, ...]] = dataclasses.field(default_factory=dict)

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")


def is_templated(value: object) -> bool:
    """Whether Prefect would substitute something in this value before using it."""
    return isinstance(value, str) and PLACEHOLDER.search(value) is not None


_JSON: TypeAdapter[Any] = TypeAdapter(Any)


def _jsonable(value: Any) -> Any:
    """As Prefect's `model_dump(mode="json")` leaves it: YAML dates become ISO strings."""
    return _JSON.dump_python(value, mode="json")
