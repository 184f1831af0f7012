"""Deployments at the Prefect edge: the model in Prefect's objects, and back.

What the server is sent and what it returns, converted in one place: a deployment's
fields as `create_deployment` / `DeploymentUpdate` take them (`create_arguments`,
`sent_value`), a server deployment as the model (`to_live`), schedules and triggers as
Prefect's own objects (`schedule_creates`, `trigger_objects`) and in the exact form the
server returns them (`canonical_schedules`, `canonical_triggers`), so the pure plan
compares like with like; and job variables checked against a pool's template with
Prefect's validator. No request is made here: `control_plane.prefect_api` sends, and
`control_plane.prefect_steps` validates what the steps produced with the same objects.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from control_plane.deployments import DeploymentFields, DeploymentSpec, LiveDeployment
from control_plane.plans import WorkPool
from control_plane.prefect_yaml import is_templated

if TYPE_CHECKING:
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.responses import DeploymentResponse

SCHEDULE_FIELDS = {"schedule", "active", "parameters", "slug", "max_scheduled_runs"}
# The field of DeploymentUpdate a compared field is written through (the plan's diff names).
# What create_deployment is sent: every field of the model but the flow's name (the flow
# id stands for it) and the automations (made from the triggers, owned by the deployment).
NOT_SENT = frozenset({"flow_name", "automations"})
# What a trigger's automation looks like, minus what the server adds or sets itself.
AUTOMATION_FIELDS = {"name", "description", "enabled", "trigger", "actions",
                     "actions_on_trigger", "actions_on_resolve"}  # fmt: skip


def remember_timezone_list() -> None:
    """Let Prefect 3.8's schedule validation read the IANA zone list from disk once, not per call.

    Needed on Prefect 3.8 and 3.9.0. There every `CronSchedule`/`IntervalSchedule`/`RRuleSchedule`
    Prefect validates calls `zoneinfo.available_timezones()` (via `prefect._internal.schemas.
    validators.get_timezones`), which walks the whole tz database: ~5 ms here, several
    times per deployment read or written, most of a reconcile's client time at a few
    hundred deployments. The list cannot change while this process runs, so it is cached
    in this process only. Prefect 3.9.1 caches `prefect.types._datetime.get_timezones`
    itself (`@cache`), and validators uses that function: there this is a no-op, as it is
    with a Prefect that has no such function (3.9.0 does not cache it yet).
    """
    try:
        from prefect._internal.schemas import validators
    except ImportError:
        return
    current = getattr(validators, "get_timezones", None)
    if callable(current) and not hasattr(current, "cache_info"):  # 3.8: not cached
        validators.get_timezones = functools.cache(current)  # type: ignore[attr-defined]


def _schedule_object(schedule: dict[str, Any]) -> Any:
    from prefect.client.schemas.schedules import CronSchedule, IntervalSchedule, RRuleSchedule
    from prefect.types._datetime import parse_datetime

    if "cron" in schedule:
        given = tuple(sorted((k, v) for k, v in schedule.items() if v is not None))
        if all(isinstance(v, str | int | float) for _, v in given):
            return _cron_schedule(given)
        return CronSchedule(**dict(given))  # pydantic says what is wrong with it
    if "interval" in schedule:
        values = {k: v for k, v in schedule.items() if v is not None}
        if isinstance(values["interval"], int | float):
            values["interval"] = timedelta(seconds=values["interval"])
        if isinstance(values.get("anchor_date"), str):
            values["anchor_date"] = parse_datetime(values["anchor_date"])
        return IntervalSchedule(**values)
    if "rrule" in schedule:
        rrule = schedule["rrule"]
        if isinstance(rrule, str) and rrule.lstrip().startswith("{"):
            parsed = RRuleSchedule(**json.loads(rrule))
            if schedule.get("timezone"):
                parsed.timezone = schedule["timezone"]
            return parsed
        return RRuleSchedule(**{k: v for k, v in schedule.items() if v is not None})
    raise ValueError(f"unknown schedule type: {sorted(schedule)}")


@functools.lru_cache(maxsize=1024)
def _cron_schedule(values: tuple[tuple[str, Any], ...]) -> Any:
    """A cron schedule, built once per distinct one in this process (and never changed).

    Prefect checks the expression with croniter each time one is built (~0.06 ms), and a
    reconcile builds every deployment's schedules twice (resolve-templates checks them,
    the plan puts them in the server's form); a repository repeats a few crons. Interval
    schedules are not kept: one without an anchor is anchored when it is built.
    """
    from prefect.client.schemas.schedules import CronSchedule

    return CronSchedule(**dict(values))


def schedule_creates(schedules: Sequence[dict[str, Any]]) -> list[DeploymentScheduleCreate]:
    """prefect.yaml schedules (as parsed by control_plane.prefect_yaml) as API objects."""
    from prefect.client.schemas.actions import DeploymentScheduleCreate

    remember_timezone_list()
    creates = []
    for entry in schedules:
        values: dict[str, Any] = {"schedule": _schedule_object(dict(entry["schedule"]))}
        for key in ("active", "parameters", "slug", "max_scheduled_runs"):
            if entry.get(key) is not None:
                values[key] = entry[key]
        creates.append(DeploymentScheduleCreate(**values))
    return creates


def _dump_schedule(model: Any) -> dict[str, Any]:
    data: dict[str, Any] = model.model_dump(mode="json", include=SCHEDULE_FIELDS)
    data.setdefault("parameters", {})
    data["parameters"] = data.get("parameters") or {}
    data.setdefault("active", True)
    return data


def _schedule_key(schedule: dict[str, Any]) -> str:
    return json.dumps(schedule, sort_keys=True, default=str)


def _timing_key(schedule: dict[str, Any]) -> str:
    """What a schedule runs when, without its anchor: the same for one schedule over time."""
    return _schedule_key(
        {k: v for k, v in schedule.get("schedule", {}).items() if k != "anchor_date"}
    )


def sort_schedules(schedules: Iterable[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    """Schedules in one order: the server does not keep the order they were written in."""
    return tuple(sorted(schedules, key=_schedule_key))


def schedule_slug(schedule: dict[str, Any], taken: set[str]) -> str:
    """A stable slug for a schedule the repository gives none: from what it runs when.

    The server keeps a schedule's `active` flag (a pause from the UI) across updates only
    for schedules with slugs (PrefectHQ/prefect#18822), and updates them by slug. The slug
    comes from the schedule's timing (not its anchor, not its parameters), so a
    parameter change updates the schedule in place and a new cron is a new schedule.
    """
    digest = hashlib.sha256(_timing_key(schedule).encode()).hexdigest()[:8]
    slug, n = f"dm-{digest}", 1
    while slug in taken:
        n += 1
        slug = f"dm-{digest}-{n}"
    taken.add(slug)
    return slug


def canonical_schedules(
    desired: Sequence[dict[str, Any]], live: Sequence[dict[str, Any]] = ()
) -> tuple[dict[str, Any], ...]:
    """Desired schedules as the server shows them, in a stable order, each with a slug.

    An interval schedule without an `anchor_date` gets "now" from Prefect at every
    deploy; where the repository names none, the anchor of the same live schedule is
    kept, so the next reconcile does not see a change. A schedule the repository keeps
    active (the default) that a person paused in the UI stays paused: `active: false`
    in the repository is enforced, `active: true` is not forced over a pause.
    """
    by_slug = {s["slug"]: s for s in live if s.get("slug")}
    anchors: dict[str, list[Any]] = {}  # schedules registered before slugs: by their timing
    for schedule in live:
        anchor = schedule.get("schedule", {}).get("anchor_date")
        if anchor is not None and not schedule.get("slug"):
            anchors.setdefault(_timing_key(schedule), []).append(anchor)
    taken = {str(e["slug"]) for e in desired if e.get("slug")}
    out = []
    for entry, create in zip(desired, schedule_creates(desired), strict=True):
        data = _dump_schedule(create)
        if not data.get("slug"):
            data["slug"] = schedule_slug(data, taken)
        current = by_slug.get(data["slug"])
        inner = entry.get("schedule", {})
        if "interval" in inner and not inner.get("anchor_date"):
            anchor = (current or {}).get("schedule", {}).get("anchor_date")
            kept = [anchor] if anchor else anchors.get(_timing_key(data))
            if kept:
                data["schedule"]["anchor_date"] = kept.pop(0)
            else:
                data["schedule"].pop("anchor_date", None)
        if current is not None and current.get("active") is False and data["active"] is True:
            data["active"] = False  # paused in the UI: the repository does not force it on
        out.append(data)
    return sort_schedules(out)


@functools.cache
def _trigger_adapter() -> Any:
    from prefect.events import DeploymentTriggerTypes
    from pydantic import TypeAdapter

    return TypeAdapter(DeploymentTriggerTypes)  # ~13 ms to build: once


def trigger_objects(spec_name: str, triggers: Sequence[dict[str, Any]]) -> list[Any]:
    """Deployment triggers as Prefect builds them for `prefect deploy` (names defaulted)."""
    if not triggers:
        return []
    adapter = _trigger_adapter()
    objects = []
    for index, trigger in enumerate(triggers, start=1):
        values = dict(trigger)
        values.setdefault("name", f"{spec_name}__automation_{index}")
        objects.append(adapter.validate_python(values))
    return objects


def canonical_triggers(
    spec: DeploymentSpec, deployment_id: str | None
) -> tuple[dict[str, Any], ...]:
    """Desired triggers as the automations the server would hold for the deployment."""
    if not spec.triggers:
        return ()
    out = []
    for trigger in trigger_objects(spec.name, spec.triggers):
        # A deployment to be created has no id yet; the nil UUID stands in (never compared).
        trigger.set_deployment_id(UUID(deployment_id) if deployment_id else UUID(int=0))
        automation = trigger.as_automation()
        out.append(automation.model_dump(mode="json", include=AUTOMATION_FIELDS))
    return tuple(sorted(out, key=lambda a: a["name"]))


def check_job_variables(
    job_variables: dict[str, Any], pool: WorkPool
) -> tuple[str | None, tuple[str, ...]]:
    """Why the server would refuse these job variables in `pool` (None: it would not), and
    the keys the pool's job template does not know (a worker ignores them silently).

    The check is Prefect's own (`prefect.utilities.schema_tools.validate`, as the server's
    `check_valid_configuration` calls it). Templated values are resolved only when the
    deployment is applied, so they are not checked here.
    """
    from prefect.utilities.schema_tools import ValidationError, validate

    properties = pool.variables.get("properties") or {}
    unknown = tuple(sorted(k for k in job_variables if properties and k not in properties))
    concrete = {k: v for k, v in job_variables.items() if not _has_template(v) and k not in unknown}
    if not pool.variables or not concrete:
        return None, unknown
    try:
        validate(concrete, dict(pool.variables), raise_on_error=True, preprocess=True,
                 ignore_required=True)  # fmt: skip
    except ValidationError as exc:
        return str(exc), unknown
    except Exception as exc:  # a pool whose own schema is broken: the server's to refuse
        return f"the pool's job template cannot check it: {type(exc).__name__}: {exc}", unknown
    return None, unknown


def _has_template(value: Any) -> bool:
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    return is_templated(value)


# --- the adapter ------------------------------------------------------------------------


def create_arguments(spec: DeploymentSpec) -> dict[str, Any]:
    """What `client.create_deployment` is sent for a new deployment (besides its flow id):
    every field of `DeploymentFields` but NOT_SENT, in the client's types."""
    return {
        name: sent_value(name, getattr(spec, name))
        for name in DeploymentFields.model_fields
        if name not in NOT_SENT
    }


def sent_value(name: str, value: Any) -> Any:
    """One field of the model as Prefect's client takes it."""
    if name == "schedules":
        return schedule_creates(value)
    if name == "concurrency_options":
        return _concurrency_options(value)
    if name == "description":
        return value or ""  # the 3.8 server stores a missing description as "None"
    if name == "pull_steps":
        return [dict(step) for step in value] if value else None
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


def _concurrency_options(options: dict[str, Any] | None) -> Any:
    if not options:
        return None
    from prefect.client.schemas.objects import ConcurrencyOptions

    return ConcurrencyOptions(**options)


def to_live(
    response: DeploymentResponse, flow_name: str, automations: Sequence[dict[str, Any]] = ()
) -> LiveDeployment:
    """A server deployment in the normal form the plan compares."""
    # `concurrency_limit` on the response is deprecated; the limit lives in its own object.
    gcl = response.global_concurrency_limit
    limit = gcl.limit if gcl is not None else None
    options = response.concurrency_options
    return LiveDeployment(
        id=str(response.id),
        name=response.name,
        flow_name=flow_name,
        entrypoint=response.entrypoint,
        description=response.description,
        version=response.version,
        tags=tuple(sorted(response.tags)),
        parameters=dict(response.parameters),
        parameter_openapi_schema=dict(response.parameter_openapi_schema or {}),
        work_pool_name=response.work_pool_name,
        work_queue_name=response.work_queue_name,
        job_variables=dict(response.job_variables or {}),
        schedules=sort_schedules(_dump_schedule(s) for s in response.schedules),
        automations=tuple(sorted(automations, key=lambda a: a["name"])),
        concurrency_limit=limit,
        concurrency_options=options.model_dump(mode="json") if options else None,
        enforce_parameter_schema=response.enforce_parameter_schema,
        paused=response.paused,
        pull_steps=tuple(response.pull_steps) if response.pull_steps else None,
    )
