"""prefect.yaml: the deployments a repository declares, read with Prefect's semantics.

`parse_prefect_yaml` reads one prefect.yaml the way `prefect deploy --all` (Prefect 3.8)
reads it: YAML anchors, aliases and merge keys, the project-level `build`, `push` and
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
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import importlib.util
import json
import os
import posixpath
import re
import sys
import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from control_plane.errors import DeployManagerError, Problem, Severity
from control_plane.files import read_repository_bytes

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
MAX_RRULE_LENGTH = 6500  # prefect._internal.schemas.validators.MAX_RRULE_LENGTH
# An untrusted file can make a few aliases expand into billions of values.
MAX_EXPANDED_VALUES = 200_000

CRON_REMEDY = (
    "write five fields, minute hour day-of-month month day-of-week, "
    "e.g. '0 6 * * 1-5' (06:00 on weekdays)"
)
TIMEZONE_REMEDY = "use an IANA timezone name such as 'Europe/Berlin', 'America/New_York' or 'UTC'"
INTERVAL_REMEDY = (
    "give a positive number of seconds (3600), an ISO 8601 duration ('PT1H') or 'HH:MM:SS'; "
    "Prefect parses interval before it resolves templates, so it cannot be a template"
)
RRULE_REMEDY = (
    "write an RFC 5545 rule, e.g. 'FREQ=WEEKLY;BYDAY=MO;BYHOUR=9' or "
    "'DTSTART:20240101T090000\\nRRULE:FREQ=DAILY'"
)
ANCHOR_REMEDY = "write an ISO 8601 date-time in quotes, e.g. '2024-01-01T09:00:00+01:00'"
IMAGE_REMEDY = (
    "an image is [registry[:port]/]lowercase/path[:tag][@digest], "
    "e.g. 'registry.example.com:5000/team/app:1.2.0'"
)
ENTRYPOINT_REMEDY = (
    "write it as path/to/file.py:flow_function, relative to the repository root "
    "or to this prefect.yaml's directory"
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
# What each kind of schedule takes that the others do not: Prefect ignores them elsewhere.
SCHEDULE_KEY_KINDS = {"anchor_date": "interval", "day_or": "cron"}
SCHEDULE_KEYS_OF_OTHER_KINDS = {
    "cron": ("anchor_date",),
    "interval": ("day_or",),
    "rrule": ("anchor_date", "day_or"),
}
SCHEDULE_CODES = {
    "cron": "invalid-cron",
    "interval": "invalid-interval",
    "rrule": "invalid-rrule",
    "timezone": "invalid-timezone",
    "anchor_date": "invalid-anchor-date",
}
SCHEDULE_REMEDIES = {
    "cron": CRON_REMEDY,
    "interval": INTERVAL_REMEDY,
    "rrule": RRULE_REMEDY,
    "timezone": TIMEZONE_REMEDY,
    "anchor_date": ANCHOR_REMEDY,
}
ENTRYPOINT_CODES = frozenset(
    {"missing-entrypoint", "bad-entrypoint", "entrypoint-not-found", "entrypoint-outside-repo"}
)


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


def parse_prefect_yaml(path: Path, repo_root: Path) -> PrefectYamlFile:
    """Read one prefect.yaml of a checkout; every failure is a `Problem`, never an exception."""
    root = repo_root.absolute()
    rel = Path(os.path.relpath(path.absolute(), root)).as_posix()
    try:
        raw = read_repository_bytes(root, rel)
    except OSError as exc:
        problem = Problem(
            rel,
            0,
            "unreadable-file",
            f"cannot read {rel}: {exc}",
            "check that it is a readable file",
        )
        return PrefectYamlFile(rel, None, None, None, None, (), (problem,), "unreadable")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problem = Problem(
            rel, 0, "invalid-yaml", f"{rel} is not UTF-8 text ({exc})", "save it as UTF-8"
        )
        return PrefectYamlFile(rel, None, None, None, None, (), (problem,), "unreadable")
    return parse_prefect_yaml_text(text, rel, root)


def parse_prefect_yaml_text(text: str, path: str, repo_root: Path) -> PrefectYamlFile:
    """Parse the text of the prefect.yaml at `path` (relative to `repo_root`, posix)."""
    return _FileParser(text, path, repo_root).parse()


def is_templated(value: object) -> bool:
    """Whether Prefect would substitute something in this value before using it."""
    return isinstance(value, str) and PLACEHOLDER.search(value) is not None


# --- YAML with lines ------------------------------------------------------------------


class _Mapping(dict[Any, Any]):
    """A YAML mapping that knows its line, its keys' lines and which keys are its own."""

    line: int
    key_lines: dict[Any, int]
    own_keys: set[Any]


class _Sequence(list[Any]):
    """A YAML sequence that knows its line and the line of each item."""

    line: int
    item_lines: list[int]


# libyaml's parser when PyYAML was built with it (it is ~10x faster than the pure-Python
# one, and its nodes carry the same marks); the constructors below are Python either way.
_SafeLoaderBase: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _LineLoader(_SafeLoaderBase):  # type: ignore[valid-type,misc]
    """`yaml.safe_load`, as Prefect uses it, that also records lines and duplicate keys."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[int, str, int]] = []  # (line, key, first line)


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> Any:
    data = _Mapping()
    data.line = node.start_mark.line + 1
    data.key_lines = {}
    data.own_keys = set()
    yield data
    seen: dict[tuple[str, str], int] = {}
    for key_node, _ in node.value:
        if key_node.tag == _MERGE_TAG or not isinstance(key_node, yaml.ScalarNode):
            continue
        line = key_node.start_mark.line + 1
        first = seen.setdefault((key_node.tag, key_node.value), line)
        if first != line:
            loader.duplicates.append((line, key_node.value, first))
        data.own_keys.add(loader.construct_object(key_node))
    data.update(loader.construct_mapping(node))
    # construct_mapping flattened the merge keys into node.value, merged pairs first:
    # the last line recorded for a key is the one whose value won.
    for key_node, _ in node.value:
        data.key_lines[loader.construct_object(key_node)] = key_node.start_mark.line + 1


def _construct_sequence(loader: _LineLoader, node: yaml.SequenceNode) -> Any:
    data = _Sequence()
    data.line = node.start_mark.line + 1
    data.item_lines = [item.start_mark.line + 1 for item in node.value]
    yield data
    data.extend(loader.construct_sequence(node))


_LineLoader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_LineLoader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


class _TooLarge(Exception):
    pass


def _plain(value: Any, budget: list[int], active: set[int]) -> Any:
    """A copy made of plain dicts and lists; refuses cycles and alias bombs."""
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge(f"its aliases expand to more than {MAX_EXPANDED_VALUES} values")
    if isinstance(value, dict | list):
        if id(value) in active:
            raise _TooLarge("an alias refers to a mapping or list that contains it")
        active.add(id(value))
        try:
            if isinstance(value, dict):
                return {k: _plain(v, budget, active) for k, v in value.items()}
            return [_plain(v, budget, active) for v in value]
        finally:
            active.discard(id(value))
    return value


def _node_at(tree: Any, path: tuple[Any, ...]) -> tuple[Any, int]:
    """The deepest node of `path` found in the line-annotated tree, and its line."""
    line = getattr(tree, "line", 0)
    node = tree
    for part in path:
        if isinstance(node, _Mapping):
            try:
                found = part in node
            except TypeError:
                found = False
            if not found:
                break
            line = node.key_lines.get(part, line)
            node = node[part]
        elif isinstance(node, _Sequence) and isinstance(part, int) and 0 <= part < len(node):
            line = node.item_lines[part]
            node = node[part]
        else:
            break
    return node, line


def _line_at(tree: Any, path: tuple[Any, ...]) -> int:
    return _node_at(tree, path)[1]


_JSON: TypeAdapter[Any] = TypeAdapter(Any)


def _jsonable(value: Any) -> Any:
    """As Prefect's `model_dump(mode="json")` leaves it: YAML dates become ISO strings."""
    return _JSON.dump_python(value, mode="json")


# --- formatting -----------------------------------------------------------------------


def _fmt_path(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _show(value: Any) -> str:
    if value is None:
        return "null"
    text = value.isoformat() if isinstance(value, datetime | date) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _suggest(word: str, choices: list[str]) -> list[str]:
    return difflib.get_close_matches(word, choices, n=3, cutoff=0.6)


def _data_path(data: Any, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """The parts of a pydantic error location that index into the data (no union tags)."""
    path: list[Any] = []
    node = data
    for part in loc:
        if isinstance(node, dict):
            try:
                found = part in node
            except TypeError:
                found = False
            if found:
                path.append(part)
                node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            path.append(part)
            node = node[part]
    return tuple(path)


def _value_at(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        data = data[part]
    return data


# --- Prefect's validators, without Prefect --------------------------------------------


@functools.cache
def _cron_is_valid() -> Callable[[str], bool]:
    """Prefect's own cron check: `is_valid` of the croniter Prefect vendors.

    Prefect (3.8, 3.9) validates cron strings with `prefect._vendor.croniter` (not
    cronsim). Importing it as `prefect._vendor...` would run `prefect/__init__` (2.5 s), so
    the one vendored file, which needs only the standard library, dateutil and pytz, is
    loaded from its path. There is no stand-in: another parser would accept other strings.
    """
    spec = importlib.util.find_spec("prefect")
    for location in (spec.submodule_search_locations or []) if spec else []:
        source = Path(location, "_vendor", "croniter", "croniter.py")
        name = "control_plane._prefect_croniter"
        module_spec = importlib.util.spec_from_file_location(name, source)
        if not source.is_file() or module_spec is None or module_spec.loader is None:
            continue
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception:
            del sys.modules[name]
            continue
        is_valid: Callable[[str], bool] = module.croniter.is_valid
        return is_valid
    raise DeployManagerError(
        "deploy-manager checks cron schedules with the croniter Prefect vendors "
        "(prefect/_vendor/croniter/croniter.py), which the Prefect installed here does not "
        "have; install the Prefect deploy-manager declares (uv sync)"
    )


def cron_is_valid(expression: str) -> bool:
    """`prefect._internal.schemas.validators.validate_cron_string`, as a predicate."""
    if _plainly_valid_cron(expression):
        return True
    if not _cron_is_valid()(expression):
        return False
    return not any(field.casefold() in ("r", "h") for field in expression.split())


# The highest value of each of the five fields (minute, hour, day of month, month, day of
# week), and the lowest of the day of month and the month.
_PLAIN_CRON_MAX = (59, 23, 31, 12, 6)
_PLAIN_CRON_MIN = (0, 0, 1, 1, 0)
_PLAIN_CRON_FIELD = re.compile(r"\*|(\*/)?(0|[1-9][0-9]?)")


def _plainly_valid_cron(expression: str) -> bool:
    """Whether the expression is of the plain kind croniter is known to accept.

    Five fields, each `*`, a number in the field's range or `*/n` with n from 1 to that
    range's top (tests compare every such field, and combinations of their bounds, with
    Prefect). Loading the vendored croniter costs more than a thousand flow files' other
    schedule checks, so the common `0 6 * * *` is answered here and anything else there.
    """
    fields = expression.split(" ")
    if len(fields) != 5:
        return False
    for field, low, high in zip(fields, _PLAIN_CRON_MIN, _PLAIN_CRON_MAX, strict=True):
        match = _PLAIN_CRON_FIELD.fullmatch(field)
        if match is None:
            return False
        if field == "*":
            continue
        value = int(match.group(2))
        if match.group(1) is None and not low <= value <= high:
            return False
        if match.group(1) is not None and not 1 <= value <= high:
            return False
    return True


CRON_FIELDS = (
    ("minute", "0-59"),
    ("hour", "0-23"),
    ("day of month", "1-31"),
    ("month", "1-12 or JAN-DEC"),
    ("day of week", "0-6 or SUN-SAT"),
    ("second", "0-59"),
    ("year", "1970-2099"),
)
CRON_ALIASES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")


def _cron_reason(expression: str) -> str:
    fields = expression.split()
    if any(field.casefold() in ("r", "h") for field in fields):
        return "random (R) and hashed (H) expressions are not supported by Prefect"
    if expression.strip().startswith("@"):
        return f"unknown alias; Prefect knows {', '.join(CRON_ALIASES)}"
    if len(fields) not in (5, 6, 7):
        return f"expected 5 fields (minute hour day-of-month month day-of-week), got {len(fields)}"
    check = _cron_is_valid()
    for index, field in enumerate(fields):
        probe = ["*"] * len(fields)
        probe[index] = field
        if not check(" ".join(probe)):
            name, allowed = CRON_FIELDS[index]
            return f"{name} must be {allowed}, not {field!r}"
    return "its fields do not combine into a valid schedule"


@functools.cache
def _zoneinfo_names() -> frozenset[str]:
    # prefect.types._datetime.get_timezones: the list for cron and interval schedules
    return frozenset(zoneinfo.available_timezones())


@functools.cache
def _pytz_names() -> frozenset[str]:
    # prefect.client.schemas.schedules.is_valid_timezone: the list for rrule schedules
    import pytz

    return frozenset(pytz.all_timezones)  # all_timezones_set is lazy: iterating it finds nothing


def _timezone_hint(value: str, names: frozenset[str]) -> str:
    by_lower = {name.lower(): name for name in names}
    if value.lower() in by_lower:
        return f"; did you mean {by_lower[value.lower()]!r}? (names are case-sensitive)"
    close = _suggest(value, sorted(names))
    return f"; did you mean {', '.join(map(repr, close))}?" if close else ""


def _rrule_reason(value: str) -> str | None:
    """`validate_rrule_string`: dateutil must parse it, and it must not be too long."""
    import dateutil.rrule

    try:
        dateutil.rrule.rrulestr(value, cache=True)
    except Exception as exc:  # ValueError mostly; odd input raises others
        return str(exc) or type(exc).__name__
    if len(value) > MAX_RRULE_LENGTH:
        return f"it is {len(value)} characters long; Prefect allows {MAX_RRULE_LENGTH}"
    return None


def _parse_anchor(value: str) -> datetime | None:
    """`prefect.types._datetime.parse_datetime`; a naive date-time is UTC."""
    try:
        parsed: datetime | None = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None:
        # Prefect parses with pendulum below Python 3.13, with dateutil from 3.13 on;
        # pendulum takes 0.15 s to import, so only what fromisoformat refuses goes there.
        try:
            if sys.version_info >= (3, 13):
                from dateutil.parser import parse

                parsed = parse(value)
            else:
                import pendulum

                result = pendulum.parse(value)
                parsed = result if isinstance(result, datetime) else None
        except Exception:
            return None
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _iso_anchor(value: datetime | date) -> str:
    """An anchor date as Prefect's IntervalSchedule sends it to the API."""
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


_BOOL: TypeAdapter[bool] = TypeAdapter(bool)


def _as_bool(value: Any) -> bool | None:
    try:
        return _BOOL.validate_python(value)
    except ValidationError:
        return None


# The reference grammar of docker's distribution/reference.
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?"
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_NAME = rf"(?:{_DOMAIN}/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
NAME_PATTERN = re.compile(_NAME)
TAG_PATTERN = re.compile(_TAG)
REFERENCE_PATTERN = re.compile(rf"(?P<name>{_NAME})(?::{_TAG})?(?:@{_DIGEST})?")


def image_problem(value: str, *, repository_only: bool = False) -> str | None:
    """Why `value` is not an image reference (a repository name if `repository_only`)."""
    if not value:
        return "it is empty"
    if any(char.isspace() for char in value):
        return "it contains whitespace"
    match = (NAME_PATTERN if repository_only else REFERENCE_PATTERN).fullmatch(value)
    if match:
        name = value if repository_only else match.group("name")
        return "the name is longer than 255 characters" if len(name) > 255 else None
    rest, at, _ = value.partition("@")
    head, _, tail = rest.rpartition("/")
    last, colon, tag = tail.partition(":")
    if repository_only and (colon or at):
        return "image_name must not carry a tag or digest; give the tag in `tag:`"
    if colon and not TAG_PATTERN.fullmatch(tag):
        return f"tag {tag!r} is not valid (letters, digits, '_', '.', '-'; at most 128)"
    path = f"{head}/{last}" if head else last
    first, _, remainder = path.partition("/")
    if remainder and ("." in first or ":" in first or first == "localhost"):
        path = remainder
    if path != path.lower():
        return "repository names must be lowercase"
    if at:
        return "the digest is not algorithm:hex (e.g. sha256:<64 hex digits>)"
    return "separators ('.', '_', '__', '-') go between letters and digits only"


# --- the parser -----------------------------------------------------------------------


class _Invalid:
    """A project-level section that failed validation: what inherits it is not returned."""


INVALID = _Invalid()
StepsValue = tuple[dict[str, Any], ...] | dict[str, Any] | _Invalid | None
M = TypeVar("M", bound=BaseModel)


class _FileParser:
    def __init__(self, text: str, path: str, repo_root: Path) -> None:
        self.text = text
        self.path = path
        self.root = repo_root
        self.real_root = os.path.realpath(repo_root)
        self.directory = posixpath.dirname(path)
        self.problems: list[Problem] = []
        self.section_lines: dict[tuple[Any, ...], tuple[int, ...]] = {}  # by section path
        self.step_lines: dict[int, tuple[int, ...]] = {}  # by deployment line

    def problem(
        self, line: int, code: str, message: str, remedy: str, severity: Severity = "error"
    ) -> None:
        self.problems.append(Problem(self.path, line, code, message, remedy, severity))

    def result(
        self,
        deployments_list: DeploymentsList,
        name: str | None = None,
        sections: Mapping[str, StepsValue] | None = None,
        deployments: tuple[DeclaredDeployment, ...] = (),
    ) -> PrefectYamlFile:
        sections = sections or {}

        def public(value: StepsValue) -> tuple[dict[str, Any], ...] | None:
            return value if isinstance(value, tuple) else None

        return PrefectYamlFile(
            path=self.path,
            name=name,
            build=public(sections.get("build")),
            push=public(sections.get("push")),
            pull=public(sections.get("pull")),
            deployments=deployments,
            problems=tuple(sorted(self.problems, key=lambda p: (p.line, p.code, p.message))),
            deployments_list=deployments_list,
            step_lines=dict(self.step_lines),
        )

    # -- the file --

    def parse(self) -> PrefectYamlFile:
        loader = _LineLoader(self.text)
        try:
            tree = loader.get_single_data()
        except yaml.composer.ComposerError as exc:
            if "expected a single document" not in str(exc.context):
                raise
            return self.several_documents(exc)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
            what = ", ".join(str(part) for part in (exc.context, exc.problem) if part)
            self.problem(
                line,
                "invalid-yaml",
                f"invalid YAML at line {line}, column {column}: {what}",
                "fix the YAML syntax (indentation, ':' after keys); quote values that "
                "contain ': ' or start with '{', '[', '*', '&', '!', '@' or '%'",
            )
            return self.result("unreadable")
        except (yaml.YAMLError, RecursionError) as exc:
            self.problem(0, "invalid-yaml", f"invalid YAML: {exc}", "fix the YAML syntax")
            return self.result("unreadable")
        finally:
            loader.dispose()
        for line, key, first in loader.duplicates:
            self.problem(
                line,
                "duplicate-key",
                f"key {key!r} is given twice in one mapping (first at line {first}); "
                "YAML keeps the last one",
                "remove one of them",
                "warning",
            )
        if tree is None:
            self.problem(
                0,
                "invalid-prefect-yaml",
                "the file is empty; Prefect skips it",
                "add a `deployments:` list, or delete the file",
                "warning",
            )
            return self.result("missing")
        try:
            data = _plain(tree, [MAX_EXPANDED_VALUES], set())
        except (_TooLarge, RecursionError) as exc:
            self.problem(
                0,
                "invalid-yaml",
                f"the file cannot be expanded: {exc or 'it nests too deeply'}",
                "use anchors and aliases without cycles, and sparingly",
            )
            return self.result("unreadable")
        foreign = _foreign_content(data)
        if foreign:
            self.not_a_prefect_yaml(getattr(tree, "line", 1), foreign)
            return self.result("not-prefect")
        if not isinstance(data, dict):
            looks_like_entries = isinstance(data, list) and any(
                isinstance(item, dict) and {"name", "entrypoint"} & set(item) for item in data
            )
            self.problem(
                getattr(tree, "line", 1),
                "invalid-prefect-yaml",
                f"the top level is a {type(tree).__name__.lstrip('_').lower()}, not a mapping; "
                "Prefect skips the file",
                "put the list under `deployments:`"
                if looks_like_entries
                else "a prefect.yaml is a mapping with a `deployments:` list "
                "(and optional name, build, push, pull, definitions)",
            )
            return self.result("unreadable")
        return self.parse_project(data, tree)

    def several_documents(self, exc: yaml.MarkedYAMLError) -> PrefectYamlFile:
        """A stream of documents (`---`): Kubernetes manifests, say, or two prefect.yamls."""
        line = exc.problem_mark.line + 1 if exc.problem_mark else 0
        try:
            documents = [d for d in yaml.load_all(self.text, Loader=_SafeLoaderBase) if d]
        except (yaml.YAMLError, RecursionError):
            documents = []
        count = f"{len(documents)} YAML documents" if documents else "several YAML documents"
        if any(isinstance(d, dict) and "deployments" in d for d in documents):
            self.problem(
                line,
                "invalid-prefect-yaml",
                f"the file holds {count}, separated by '---' (the next one starts at line "
                f"{line}); Prefect reads a prefect.yaml as one document and fails on this one",
                "keep one document: merge the deployments: lists into one, or put each "
                "document in a file of its own and name those in deploy-manager.yaml's "
                "prefect_files",
            )
            return self.result("unreadable")
        kinds = [_foreign_content(d) for d in documents]
        what = next((k for k in kinds if k), "")
        self.not_a_prefect_yaml(1, f"{count} separated by '---'" + (f", {what}" if what else ""))
        return self.result("not-prefect")

    def not_a_prefect_yaml(self, line: int, what: str) -> None:
        self.problem(
            line,
            "not-a-prefect-yaml",
            f"this is not a prefect.yaml ({what}); a prefect.yaml is one mapping with a "
            "`deployments:` list, so deploy-manager does not read this file for deployments",
            "rename the file, or leave it out with `exclude:` or `prefect_files:` in "
            "deploy-manager.yaml",
            "warning",
        )

    def parse_project(self, data: dict[Any, Any], tree: Any) -> PrefectYamlFile:
        for key in data:
            if key in KNOWN_TOP_LEVEL_KEYS:
                continue
            close = _suggest(str(key), list(KNOWN_TOP_LEVEL_KEYS))
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            self.problem(
                _line_at(tree, (key,)),
                "unknown-key",
                f"unknown top-level key {key!r}{hint}; Prefect ignores it",
                f"top-level keys are {', '.join(KNOWN_TOP_LEVEL_KEYS)}; "
                "keep anchors under `definitions:`",
                "warning",
            )
        top = _wrap_single_steps({k: data[k] for k in TOP_LEVEL_KEYS if k in data})
        project, bad = self.validate(ProjectEntry, top, tree, (), "")
        sections: dict[str, StepsValue] = {}
        for section in ("build", "push", "pull"):
            if section in bad:
                sections[section] = INVALID
            else:
                sections[section] = self.steps(getattr(project, section), (section,), tree, "")
        entries = data.get("deployments")
        if entries is None:
            return self.result("missing", project.name, sections)
        if not isinstance(entries, list):
            self.problem(
                _line_at(tree, ("deployments",)),
                "invalid-prefect-yaml",
                f"deployments: is {_show(entries)}, not a list; Prefect skips the file",
                "write `deployments:` as a list, one `- name: ...` item per deployment",
            )
            return self.result("unreadable", project.name, sections)
        deployments = []
        for index, entry in enumerate(entries):
            declared = _EntryParser(self, index, entry, tree, sections).parse()
            if declared is not None:
                deployments.append(declared)
        listed: DeploymentsList = "entries" if entries else "empty"
        return self.result(listed, project.name, sections, tuple(deployments))

    # -- shared with the entries --

    def validate(
        self,
        model: type[M],
        data: dict[Any, Any],
        tree: Any,
        base: tuple[Any, ...],
        where: str,
        shown: tuple[Any, ...] = (),
        codes: Mapping[str, str] | None = None,
        remedies: Mapping[str, str] | None = None,
    ) -> tuple[M, set[Any]]:
        """Validate `data` (found at `base` in the tree); failing fields become problems.

        Returns the model made of the fields that passed, and the keys that failed.
        """
        try:
            return model.model_validate(data), set()
        except ValidationError as exc:
            context = _Context(tree, base, where, shown, codes or {}, remedies or {})
            bad = self.report(exc, model, data, context)
        clean = {k: v for k, v in data.items() if k not in bad}
        try:
            return model.model_validate(clean), bad
        except ValidationError:
            return model.model_construct(), set(data)

    def report(
        self, exc: ValidationError, model: type[BaseModel], data: dict[Any, Any], ctx: _Context
    ) -> set[Any]:
        groups: dict[tuple[Any, ...], list[Any]] = {}
        for error in exc.errors():
            groups.setdefault(_data_path(data, error["loc"]), []).append(error)
        bad: set[Any] = set()
        for path, errors in groups.items():
            bad.add(path[0] if path else None)
            if path and any(e["type"] == "extra_forbidden" for e in errors):
                self.unknown_key(path, model, ctx)
                continue
            field = path[0] if path else None
            info = next(
                (info for name, info in model.model_fields.items() if field in (name, info.alias)),
                None,
            )
            description = info.description if info else None
            value = _value_at(data, path)
            if value is None:
                detail = f"null is not allowed here; expected {description or 'a value'}"
            elif len(errors) > 1 and description:
                detail = f"{_show(value)} is not valid: expected {description}"
            else:
                reason = errors[0]["msg"][0].lower() + errors[0]["msg"][1:]
                detail = f"{_show(value)} is not valid: {reason}"
            remedy = ctx.remedies.get(str(field)) or (
                f"{field}: {description}" if description else "fix the value"
            )
            self.problem(
                _line_at(ctx.tree, ctx.base + path),
                ctx.codes.get(str(field), "invalid-value"),
                f"{ctx.prefix}{_fmt_path(ctx.shown + path)}: {detail}",
                remedy,
            )
        return bad

    def unknown_key(self, path: tuple[Any, ...], model: type[BaseModel], ctx: _Context) -> None:
        key, parent = path[-1], path[:-1]
        owner = model
        for part in parent:  # the nested model that refused the key
            info = owner.model_fields.get(part) if isinstance(part, str) else None
            annotation = info.annotation if info else None
            options = getattr(annotation, "__args__", (annotation,))
            owner = next(
                (o for o in options if isinstance(o, type) and issubclass(o, BaseModel)), owner
            )
        accepted = sorted(owner.model_fields)
        moved = MOVED_KEYS if owner is DeploymentEntry else {}
        close = _suggest(str(key), accepted + list(moved))
        if str(key) in moved:
            close.insert(0, str(key))
        suggestions = list(dict.fromkeys(moved.get(c, c) for c in close))
        hint = f"; did you mean {', '.join(map(repr, suggestions))}?" if suggestions else ""
        inside = f"{_fmt_path(ctx.shown + parent)}: " if ctx.shown + parent else ""
        self.problem(
            _line_at(ctx.tree, ctx.base + path),
            "unknown-key",
            f"{ctx.prefix}{inside}unknown key {key!r}{hint}",
            f"remove or rename it; accepted keys here: {', '.join(accepted)}",
        )

    def steps(self, value: Any, base: tuple[Any, ...], tree: Any, where: str) -> StepsValue:
        """A validated build/push/pull section: None, {} (an empty mapping) or its steps."""
        if value is None or isinstance(value, dict):
            return value  # a non-empty mapping was wrapped into a list before validation
        ok = True
        prefix = f"{where}: " if where else ""
        shown = base[2:] if where else base
        for index, step in enumerate(value):
            if not step:
                continue  # Prefect skips empty steps
            path = (*base, index)
            here = f"{prefix}{_fmt_path((*shown, index))}"
            if len(step) > 1:
                ok = False
                self.problem(
                    _line_at(tree, path),
                    "invalid-step",
                    f"{here}: a step has one key, the function to run; this one has "
                    f"{len(step)}: {', '.join(map(repr, step))}",
                    "indent the step's arguments under its function name",
                )
                continue
            [(function, inputs)] = step.items()
            if not isinstance(inputs, dict):
                ok = False
                self.problem(
                    _line_at(tree, (*path, function)),
                    "invalid-step",
                    f"{here}: the arguments of {function} are {_show(inputs)}, not a mapping",
                    "give the step's arguments as a mapping ({} for none)",
                )
            elif function in (BUILD_DOCKER_IMAGE, PUSH_DOCKER_IMAGE):
                ok = self.docker_step(function, inputs, (*path, function), tree, here) and ok
        if ok:
            self.section_lines[base] = tuple(
                _line_at(tree, (*base, index, *step)) for index, step in enumerate(value)
            )
        return tuple(_jsonable(value)) if ok else INVALID

    def docker_step(
        self, function: str, inputs: dict[str, Any], path: tuple[Any, ...], tree: Any, here: str
    ) -> bool:
        short = function.rsplit(".", 1)[-1]
        if "image_name" not in inputs:
            self.problem(
                _line_at(tree, path),
                "invalid-step",
                f"{here}: {short} needs image_name",
                "add image_name: registry/repository (without a tag)",
            )
            return False
        checks: list[tuple[tuple[Any, ...], Any, bool]] = [
            (("image_name",), inputs["image_name"], True)
        ]
        if inputs.get("tag") is not None:
            checks.append((("tag",), inputs["tag"], False))
        if isinstance(extra := inputs.get("additional_tags"), list):
            checks.extend((("additional_tags", i), tag, False) for i, tag in enumerate(extra))
        ok = True
        for sub, value, is_name in checks:
            if not isinstance(value, str) or is_templated(value):
                continue
            if is_name:
                reason = image_problem(value, repository_only=True)
            elif not TAG_PATTERN.fullmatch(value):
                reason = (
                    "a tag is up to 128 of letters, digits, '_', '.', '-', not first '.' or '-'"
                )
            else:
                reason = None
            if reason:
                ok = False
                kind = "image name" if is_name else "image tag"
                self.problem(
                    _line_at(tree, path + sub),
                    "invalid-image",
                    f"{here}.{_fmt_path(sub)}: {value!r} is not a valid {kind}: {reason}",
                    IMAGE_REMEDY,
                )
        return ok

    def resolve_entrypoint(
        self, value: str, prefer_directory: bool = False
    ) -> tuple[str | None, str, str, str]:
        """The entrypoint relative to the root, or None and (code, reason, remedy).

        It is looked for from the root, then from the prefect.yaml's directory; the other
        way round with `prefer_directory` (`prefect deploy` runs from that directory, and
        with pull steps of its own the root is not where the deployment runs).
        """
        if is_templated(value):
            reason = "a templated entrypoint cannot be resolved without running anything"
            return None, "bad-entrypoint", reason, ENTRYPOINT_REMEDY
        file_part, colon, function = value.rpartition(":")
        if not colon:
            reason = "it has no ':function' part"
            if re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+", value):
                reason += "; module paths (package.module.flow) are not supported"
            return None, "bad-entrypoint", reason, ENTRYPOINT_REMEDY
        if not file_part.endswith(".py"):
            reason = f"{file_part!r} is not a .py file (module entrypoints are not supported)"
            return None, "bad-entrypoint", reason, ENTRYPOINT_REMEDY
        if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", function):
            reason = f"{function!r} is not a function name (nor Class.method)"
            return None, "bad-entrypoint", reason, ENTRYPOINT_REMEDY
        if file_part.startswith(("/", "\\")) or re.match(r"[A-Za-z]:[\\/]", file_part):
            reason = "it is an absolute path; entrypoints are relative to the repository"
            return None, "entrypoint-outside-repo", reason, ENTRYPOINT_REMEDY
        candidates = [posixpath.normpath(file_part)]
        if self.directory:
            candidates.append(posixpath.normpath(posixpath.join(self.directory, file_part)))
            if prefer_directory:
                candidates.reverse()
        inside = list(dict.fromkeys(c for c in candidates if c != ".." and not c.startswith("../")))
        if not inside:
            reason = "it leaves the repository"
            return None, "entrypoint-outside-repo", reason, "point it at a file in the repository"
        for candidate in inside:
            full = self.root / candidate
            if not full.is_file():
                continue
            real = os.path.realpath(full)
            if os.path.commonpath([real, self.real_root]) != self.real_root:
                reason = f"{candidate} links to {real}, outside the repository"
                remedy = "put the flow's file in the repository instead of linking to it"
                return None, "entrypoint-outside-repo", reason, remedy
            return f"{candidate}:{function}", "", "", ""
        reason = f"there is no file {' or '.join(inside)}"
        remedy = f"{ENTRYPOINT_REMEDY}; check the spelling and that the file is committed"
        return None, "entrypoint-not-found", reason, remedy


@dataclass(frozen=True)
class _Context:
    """Where a validated mapping sits: in the tree (`base`) and in messages (`shown`)."""

    tree: Any
    base: tuple[Any, ...]
    where: str
    shown: tuple[Any, ...]
    codes: Mapping[str, str]
    remedies: Mapping[str, str]

    @property
    def prefix(self) -> str:
        return f"{self.where}: " if self.where else ""


def _foreign_content(data: Any) -> str:
    """What a YAML document named prefect.yaml is instead, or "" when it may be one."""
    if isinstance(data, dict) and "deployments" not in data:
        if {"apiVersion", "kind"} <= set(data):
            return f"a Kubernetes manifest: apiVersion {data['apiVersion']}, kind {data['kind']}"
        keys = [str(key) for key in data]
        known = list(KNOWN_TOP_LEVEL_KEYS)
        if keys and not any(key in known or _suggest(key, known) for key in keys):
            shown = ", ".join(keys[:5]) + (", ..." if len(keys) > 5 else "")
            return f"none of its top-level keys ({shown}) is a prefect.yaml key"
    if (
        isinstance(data, list)
        and data
        and all(isinstance(item, dict) and {"apiVersion", "kind"} <= set(item) for item in data)
    ):
        return "a list of Kubernetes manifests (apiVersion, kind)"
    return ""


def _wrap_single_steps(data: dict[Any, Any]) -> dict[Any, Any]:
    """Prefect's `_wrap_single_action_mappings`: one step given as a mapping is a list."""
    updates = {
        section: [value]
        for section in ("build", "push", "pull")
        if isinstance(value := data.get(section), dict) and value
    }
    return {**data, **updates} if updates else data


class _InheritsInvalid(Exception):
    pass


def _known(value: StepsValue) -> tuple[dict[str, Any], ...] | dict[str, Any] | None:
    if isinstance(value, _Invalid):
        raise _InheritsInvalid
    return value


class _EntryParser:
    """One `deployments:` item; its problems go to the file's list."""

    def __init__(
        self,
        file: _FileParser,
        index: int,
        entry: Any,
        tree: _Mapping,
        sections: Mapping[str, StepsValue],
    ) -> None:
        self.file = file
        self.entry = entry
        self.tree = tree
        self.base: tuple[Any, ...] = ("deployments", index)
        self.sections = sections
        name = entry.get("name") if isinstance(entry, dict) else None
        self.where = f"deployments[{index}]" + (f" {name!r}" if isinstance(name, str) else "")
        self.errors = 0

    def line(self, *path: Any) -> int:
        return _line_at(self.tree, self.base + path)

    def has_own(self, key: str) -> bool:
        """Whether the entry itself has `key` (not through a `<<:` merge)."""
        node, _ = _node_at(self.tree, self.base)
        return isinstance(node, _Mapping) and key in node.own_keys

    def problem(
        self,
        path: tuple[Any, ...],
        code: str,
        detail: str,
        remedy: str,
        severity: Severity = "error",
    ) -> None:
        where = f"{self.where}: {_fmt_path(path)}: " if path else f"{self.where}: "
        self.file.problem(self.line(*path), code, where + detail, remedy, severity)
        if severity == "error" and code not in ENTRYPOINT_CODES:
            self.errors += 1

    def validate(
        self,
        model: type[M],
        data: dict[Any, Any],
        path: tuple[Any, ...],
        codes: Mapping[str, str] | None = None,
        remedies: Mapping[str, str] | None = None,
    ) -> tuple[M, set[Any]]:
        before = len(self.file.problems)
        result = self.file.validate(
            model, data, self.tree, self.base + path, self.where, path, codes, remedies
        )
        self.errors += sum(p.severity == "error" for p in self.file.problems[before:])
        return result

    def parse(self) -> DeclaredDeployment | None:
        if not isinstance(self.entry, dict):
            self.problem(
                (),
                "invalid-deployment",
                f"the entry is {_show(self.entry)}, not a mapping",
                "write each deployment as a mapping: - name: ...  entrypoint: ...",
            )
            return None
        data = _wrap_single_steps(self.entry)
        for key, (why, remedy) in IGNORED_KEYS.items():
            if key in data:
                self.problem((key,), "ignored-key", why, remedy, "warning")
                data = {k: v for k, v in data.items() if k != key}
        entry, bad = self.validate(DeploymentEntry, data, ())

        name = self.check_name(entry, bad)
        tags = self.check_tags(entry, bad)
        schedules = self.check_schedules(entry, data, bad)
        limit, options = self.check_concurrency(entry)
        work_pool = self.check_work_pool(entry, data)
        self.check_version_type(entry)
        if "flow_name" in data and "flow_name" not in bad:
            self.problem(
                ("flow_name",),
                "ignored-key",
                "Prefect ignores flow_name: a deployment takes the name of the flow its "
                "entrypoint points at",
                "remove flow_name",
                "warning",
            )
        steps: dict[str, StepsValue] = {}
        for section in ("build", "push", "pull"):
            if section in bad:
                steps[section] = INVALID
            elif section in data:
                value = getattr(entry, section)
                where = (*self.base, section)
                steps[section] = self.file.steps(value, where, self.tree, self.where)
                if isinstance(steps[section], _Invalid):
                    self.errors += 1
        effective = self.effective_steps(data, steps)
        own_pull = effective is not None and effective[2] is not None
        flow_entrypoint = self.check_entrypoint(entry, bad, prefer_directory=own_pull)
        if self.errors or name is None or effective is None:
            return None
        for key, (why, remedy) in NOT_APPLIED_KEYS.items():
            if data.get(key) is not None:
                self.problem((key,), "not-applied", why, remedy, "info")
        build, push, pull = effective
        line = self.line("name") if self.has_own("name") else self.line()
        self.file.step_lines[line] = self.effective_step_lines(data, steps)
        return DeclaredDeployment(
            name=name,
            # With pull steps of its own, Prefect resolves the entrypoint at run time against
            # the working directory they leave; rewriting it would point elsewhere.
            entrypoint=entry.entrypoint if own_pull and flow_entrypoint else flow_entrypoint,
            flow_entrypoint=flow_entrypoint,
            entrypoint_as_declared=own_pull,
            source_file=self.file.path,
            line=line,
            description=entry.description or None,  # "" falls back to the flow's docstring
            version=entry.version or None,
            version_type=entry.version_type,
            tags=tags,
            parameters=_jsonable(entry.parameters),
            work_pool_name=work_pool.name if work_pool else None,
            work_queue_name=work_pool.work_queue_name if work_pool else None,
            job_variables=_jsonable(work_pool.job_variables) if work_pool else {},
            schedules=schedules,
            triggers=tuple(_jsonable(entry.triggers or [])),
            concurrency_limit=limit,
            concurrency_options=options,
            enforce_parameter_schema=entry.enforce_parameter_schema,
            paused=entry.paused,
            build=build,
            push=push,
            pull=pull,
            sla=tuple(_jsonable(entry.sla)) if entry.sla is not None else None,
        )

    # -- fields --

    def check_name(self, entry: DeploymentEntry, bad: set[Any]) -> str | None:
        if "name" in bad:
            return None
        name = entry.name
        if not name:
            self.problem(
                (),
                "missing-name",
                "the deployment has no name; prefect deploy --all skips it",
                "add name: <deployment name> to the entry",
            )
            return None
        if name.endswith(".py"):
            stem = Path(name).stem
            self.problem(
                ("name",),
                "renamed-deployment",
                f"Prefect strips a trailing .py: {name!r} becomes the deployment {stem!r}",
                f"write name: {stem}",
                "warning",
            )
            return stem
        return name

    def check_entrypoint(
        self, entry: DeploymentEntry, bad: set[Any], prefer_directory: bool
    ) -> str | None:
        if "entrypoint" in bad:
            return None
        value = entry.entrypoint
        if not value:
            self.problem(
                (),
                "missing-entrypoint",
                "the deployment has no entrypoint; prefect deploy refuses it",
                f"add entrypoint: ({ENTRYPOINT_REMEDY})",
            )
            return None
        resolved, code, reason, remedy = self.file.resolve_entrypoint(value, prefer_directory)
        if resolved is None:
            self.problem(("entrypoint",), code, f"{value!r}: {reason}", remedy)
        return resolved

    def check_tags(self, entry: DeploymentEntry, bad: set[Any]) -> tuple[str, ...]:
        tags = entry.tags
        if "tags" in bad:
            return ()
        if tags is None:
            if "tags" in self.entry:
                self.problem(
                    ("tags",),
                    "invalid-value",
                    "null is not allowed: prefect deploy fails on it",
                    "remove the key, or give a list of tags",
                )
            return ()
        if isinstance(tags, str):
            if is_templated(tags):
                detail = f"{tags!r}: one template for the whole list cannot be resolved here"
                remedy = "list the tags; templates inside items are fine: tags: ['{{ $TEAM }}']"
            else:
                detail = f"{tags!r} is a string: Prefect would make one tag of each character"
                remedy = f"write a list: tags: [{tags}]"
            self.problem(("tags",), "invalid-value", detail, remedy)
            return ()
        out = []
        for index, tag in enumerate(_jsonable(tags)):
            text = str(tag)  # Prefect's ListOfNonEmptyStrings: str() of each, blanks dropped
            if not text.strip():
                continue
            if not isinstance(tag, str):
                self.problem(
                    ("tags", index),
                    "invalid-value",
                    f"{_show(tag)} is not a string; Prefect makes it the tag {text!r}",
                    f"quote it: '{text}'",
                    "warning",
                )
            out.append(text)
        return tuple(out)

    def check_version_type(self, entry: DeploymentEntry) -> None:
        value = entry.version_type
        if value is None or is_templated(value) or value in VERSION_TYPES:
            return
        self.problem(
            ("version_type",),
            "invalid-value",
            f"{value!r} is not a version type",
            f"use one of {', '.join(VERSION_TYPES)}",
        )

    def check_work_pool(self, entry: DeploymentEntry, data: dict[Any, Any]) -> WorkPoolEntry | None:
        work_pool = entry.work_pool
        if work_pool is None:
            if "work_pool" in data and data["work_pool"] is None:
                self.problem(
                    ("work_pool",),
                    "invalid-value",
                    "null is not allowed: prefect deploy fails on it",
                    "remove the key, or give a mapping {name, work_queue_name, job_variables}",
                )
            return None
        image = work_pool.job_variables.get("image")
        if isinstance(image, str) and not is_templated(image):
            reason = image_problem(image)
            if reason:
                self.problem(
                    ("work_pool", "job_variables", "image"),
                    "invalid-image",
                    f"{image!r} is not a valid image reference: {reason}",
                    IMAGE_REMEDY,
                )
        return work_pool

    def check_concurrency(self, entry: DeploymentEntry) -> tuple[int | None, dict[str, Any] | None]:
        value = entry.concurrency_limit
        if value is None:
            return None, None
        path: tuple[Any, ...] = ("concurrency_limit",)
        if isinstance(value, int):
            if value <= 0:
                self.problem(
                    path,
                    "invalid-concurrency",
                    f"{value} is not a positive integer; the Prefect server refuses it",
                    "give a limit of 1 or more, or remove concurrency_limit",
                )
            return value, None
        spec, _ = self.validate(ConcurrencyEntry, value, path)
        if spec.limit is not None and spec.limit <= 0:
            self.problem(
                (*path, "limit"),
                "invalid-concurrency",
                f"{spec.limit} is not a positive integer; the Prefect server refuses it",
                "give a limit of 1 or more",
            )
        strategy = spec.collision_strategy
        if strategy is None:
            self.problem(
                path,
                "invalid-concurrency",
                "collision_strategy is missing; prefect deploy fails without it when "
                "concurrency_limit is a mapping",
                f"add collision_strategy: one of {', '.join(COLLISION_STRATEGIES)}",
            )
        elif not is_templated(strategy) and strategy not in COLLISION_STRATEGIES:
            hint = (
                f"; did you mean {strategy.upper()!r}?"
                if strategy.upper() in COLLISION_STRATEGIES
                else ""
            )
            self.problem(
                (*path, "collision_strategy"),
                "invalid-concurrency",
                f"{strategy!r} is not a collision strategy{hint}",
                f"use one of {', '.join(COLLISION_STRATEGIES)}",
            )
        grace = spec.grace_period_seconds
        if grace is not None and not 60 <= grace <= 86400:
            self.problem(
                (*path, "grace_period_seconds"),
                "invalid-concurrency",
                f"{grace} is out of range",
                "give 60 to 86400 seconds",
            )
        options: dict[str, Any] = {"collision_strategy": strategy}
        if grace is not None:
            options["grace_period_seconds"] = grace
        return spec.limit, options

    def effective_steps(
        self, data: dict[Any, Any], steps: Mapping[str, StepsValue]
    ) -> tuple[Any, Any, Any] | None:
        """build, push and pull as `prefect deploy` resolves them (`_run_single_deploy`).

        build: the entry's own section when it has the key (null, [] and {} mean none),
        else the project's. push: the entry's when it has steps, else the project's (an
        entry cannot switch a project push off). pull: an explicit [] (the entry's, else
        the project's) means none; else the entry's steps, else the project's, else None:
        Prefect generates its default pull step.
        """
        project = self.sections
        try:
            build = steps.get("build") if "build" in data else _known(project.get("build"))
            push = steps.get("push") or _known(project.get("push"))
            pull = steps.get("pull") if "pull" in data else _known(project.get("pull"))
            if pull != ():
                pull = pull or _known(project.get("pull")) or None
        except _InheritsInvalid:
            self.problem(
                (),
                "invalid-step",
                "not deployed: it inherits a project-level build, push or pull section "
                "that is invalid",
                "fix that section (see its own problem), or give the deployment its own",
            )
            return None
        return build or None, push or None, pull

    def effective_step_lines(
        self, data: dict[Any, Any], steps: Mapping[str, StepsValue]
    ) -> tuple[int, ...]:
        """The lines of the build, then push steps `effective_steps` chose (same rules)."""
        lines = self.file.section_lines
        build = (*self.base, "build") if "build" in data else ("build",)
        push = (*self.base, "push") if steps.get("push") else ("push",)
        return lines.get(build, ()) + lines.get(push, ())

    # -- schedules --

    def check_schedules(
        self, entry: DeploymentEntry, data: dict[Any, Any], bad: set[Any]
    ) -> tuple[dict[str, Any], ...]:
        if entry.schedule and "schedule" not in bad:
            if "schedules" in data:
                self.problem(
                    ("schedule",),
                    "invalid-schedule",
                    "both schedule and schedules are given; prefect deploy refuses that",
                    "move the schedule into the schedules: list",
                )
                return ()
            self.problem(
                ("schedule",),
                "deprecated-key",
                "schedule: is the old single-schedule form",
                "write schedules: [ ... ] (a list)",
                "warning",
            )
            normalised = self.schedule(data["schedule"], ("schedule",))
            return (normalised,) if normalised else ()
        out = []
        for index, item in enumerate(entry.schedules or ()):
            normalised = self.schedule(item, ("schedules", index))
            if normalised:
                out.append(normalised)
        return tuple(out)

    def schedule(self, item: Any, path: tuple[Any, ...]) -> dict[str, Any] | None:
        """One schedule as Prefect sends it (`_schedule_config_to_deployment_schedule`)."""
        if not isinstance(item, dict) or not item:
            detail = (
                "the schedule is empty; prefect deploy fails on it"
                if isinstance(item, dict)
                else f"{_show(item)} is not a mapping"
            )
            self.problem(
                path,
                "invalid-schedule",
                detail,
                "give a mapping with one of cron, interval or rrule",
            )
            return None
        errors = self.errors
        item = self.yaml_timestamps(item, path)
        if item is None:
            return None
        spec, bad = self.validate(ScheduleEntry, item, path, SCHEDULE_CODES, SCHEDULE_REMEDIES)
        kinds = [kind for kind in ("cron", "interval", "rrule") if item.get(kind) is not None]
        if len(kinds) != 1:
            self.problem(
                path,
                "invalid-schedule",
                "a schedule needs exactly one of cron, interval or rrule; it has "
                + (" and ".join(kinds) if kinds else "none of them"),
                "give each kind its own schedule",
            )
            return None
        if bad:
            return None
        for key in SCHEDULE_KEYS_OF_OTHER_KINDS[kinds[0]]:
            if item.get(key) is not None:
                self.problem(
                    (*path, key),
                    "ignored-key",
                    f"{key} belongs to {SCHEDULE_KEY_KINDS[key]} schedules; Prefect ignores it "
                    f"in a {kinds[0]} schedule",
                    f"remove {key}",
                    "warning",
                )
        inner: dict[str, Any] | None
        if spec.cron is not None:
            inner = self.cron(spec, path)
        elif spec.interval is not None:
            inner = self.interval(spec, path)
        else:
            inner = self.rrule(spec, path)
        active = self.boolean(spec.active, (*path, "active"))
        if inner is None or self.errors != errors:
            return None
        out: dict[str, Any] = {
            "schedule": inner,
            "active": True if active is None else active,
            "parameters": _jsonable(spec.parameters),
            "slug": spec.slug or None,
        }
        if spec.replaces:
            out["replaces"] = spec.replaces
        return out

    def yaml_timestamps(self, item: dict[Any, Any], path: tuple[Any, ...]) -> dict[Any, Any] | None:
        """An unquoted YAML date as anchor_date: Prefect takes it only in a bare interval.

        `RawScheduleConfig.anchor_date` is a string, so a YAML timestamp fails it, and
        the schedule then validates as an `IntervalSchedule` (interval, anchor_date,
        timezone: nothing else) or not at all.
        """
        anchor = item.get("anchor_date")
        if not isinstance(anchor, datetime | date):
            return item
        if set(item) <= {"interval", "anchor_date", "timezone"}:
            return {**item, "anchor_date": _iso_anchor(anchor)}
        self.problem(
            (*path, "anchor_date"),
            "invalid-anchor-date",
            f"{anchor.isoformat()} is an unquoted YAML date; Prefect accepts that only in a "
            "schedule with nothing but interval, anchor_date and timezone",
            f"quote it: anchor_date: '{anchor.isoformat()}'",
        )
        return None

    def boolean(self, value: Any, path: tuple[Any, ...]) -> Any:
        if value is None or isinstance(value, bool) or is_templated(value):
            return value
        parsed = _as_bool(value)
        if parsed is None:
            self.problem(
                path, "invalid-schedule", f"{value!r} is not a boolean", "write true or false"
            )
        return parsed

    def check_timezone(
        self, value: str | None, path: tuple[Any, ...], names: frozenset[str], empty_ok: bool
    ) -> None:
        if value is None or is_templated(value) or (empty_ok and value == "") or value in names:
            return
        self.problem(
            (*path, "timezone"),
            "invalid-timezone",
            f"{value!r} is not a valid timezone{_timezone_hint(value, names)}",
            TIMEZONE_REMEDY,
        )

    def cron(self, spec: ScheduleEntry, path: tuple[Any, ...]) -> dict[str, Any]:
        cron = spec.cron or ""
        if not cron:
            self.problem(
                (*path, "cron"),
                "invalid-cron",
                "the cron expression is empty; prefect deploy fails on it",
                CRON_REMEDY,
            )
        elif not is_templated(cron) and not cron_is_valid(cron):
            self.problem(
                (*path, "cron"),
                "invalid-cron",
                f"{cron!r} is not a valid cron expression ({_cron_reason(cron)})",
                CRON_REMEDY,
            )
        # CronSchedule accepts "" as a timezone (Prefect's default_timezone lets it by)
        self.check_timezone(spec.timezone, path, _zoneinfo_names(), empty_ok=True)
        day_or = self.boolean(spec.day_or, (*path, "day_or"))
        return {
            "cron": cron,
            "timezone": spec.timezone,
            "day_or": True if day_or is None else day_or,
        }

    def interval(self, spec: ScheduleEntry, path: tuple[Any, ...]) -> dict[str, Any]:
        interval = spec.interval or timedelta(0)
        if interval <= timedelta(0):
            shown = _show(self.entry_value((*path, "interval")))
            self.problem(
                (*path, "interval"),
                "invalid-interval",
                f"{shown} is not a positive interval",
                INTERVAL_REMEDY,
            )
        anchor = spec.anchor_date
        if anchor and not is_templated(anchor):
            parsed = _parse_anchor(anchor)
            if parsed is None:
                self.problem(
                    (*path, "anchor_date"),
                    "invalid-anchor-date",
                    f"{anchor!r} is not an ISO 8601 date-time",
                    ANCHOR_REMEDY,
                )
            else:
                anchor = _iso_anchor(parsed)
        self.check_timezone(spec.timezone, path, _zoneinfo_names(), empty_ok=True)
        return {
            "interval": interval.total_seconds(),
            "anchor_date": anchor or None,
            # Prefect derives the timezone from the anchor date, which (a parsed string,
            # or "now") never carries a named zone: it is UTC unless given.
            "timezone": "UTC" if spec.timezone is None else spec.timezone,
        }

    def rrule(self, spec: ScheduleEntry, path: tuple[Any, ...]) -> dict[str, Any] | None:
        rrule: Any = spec.rrule or ""
        tz = spec.timezone
        if not rrule:
            self.problem(
                (*path, "rrule"),
                "invalid-rrule",
                "the rrule is empty; prefect deploy fails on it",
                RRULE_REMEDY,
            )
            return None
        if not is_templated(rrule):
            try:
                loaded = json.loads(rrule)
            except ValueError:
                loaded = None
            else:  # Prefect takes the JSON of an RRuleSchedule; a timezone: key overrides its zone
                if (
                    not isinstance(loaded, dict)
                    or "rrule" not in loaded
                    or set(loaded) - {"rrule", "timezone"}
                ):
                    self.problem(
                        (*path, "rrule"),
                        "invalid-rrule",
                        f'{rrule!r} is JSON but not {{"rrule": ..., "timezone": ...}}',
                        RRULE_REMEDY,
                    )
                    return None
                rrule = loaded["rrule"]
                tz = tz or loaded.get("timezone")
            reason = _rrule_reason(rrule) if isinstance(rrule, str) else "it is not a string"
            if reason:
                self.problem(
                    (*path, "rrule"),
                    "invalid-rrule",
                    f"{_show(rrule)} is not a valid recurrence rule: {reason}",
                    RRULE_REMEDY,
                )
        tz = "UTC" if tz is None else tz
        self.check_timezone(tz, path, _pytz_names(), empty_ok=False)
        return {"rrule": rrule, "timezone": tz}

    def entry_value(self, path: tuple[Any, ...]) -> Any:
        return _value_at(self.entry, path)
