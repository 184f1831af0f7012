"""The Prefect API seam: read live deployments, register, delete. Only this module talks to it.

`PrefectDeployments` wraps Prefect's own client (`prefect.client.orchestration`) and
schemas; it never hand-rolls HTTP. Reads are O(1) calls in the number of deployments
(paged queries by tag and name, one query for flow names, one for automations), so a
no-op reconcile stays cheap. Registration goes through `client.create_deployment`
(Prefect's upsert on flow + name), triggers through Prefect's `DeploymentTrigger`
models as `prefect deploy` does.

`canonical_*` functions put desired values in the exact form the server returns, so the
pure plan can compare them with live ones. Errors from the client are translated into
our own (`TransientError` for what a retry can fix, `ApplyError` otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import hashlib
import json
import random
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol
from uuid import UUID

import httpx

from control_plane.deployments import (
    DERIVED_COMPARED,
    DeploymentFields,
    DeploymentSpec,
    LiveDeployment,
)
from control_plane.errors import ApplyError, TransientError
from control_plane.markers import PROTECT_TAG, is_protected
from control_plane.plans import WorkPool
from control_plane.prefect_yaml import is_templated

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.actions import DeploymentScheduleCreate
    from prefect.client.schemas.responses import DeploymentResponse

PAGE = 200
PAGES_AT_ONCE = 3  # pages of a large read asked for side by side
REFUSED_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6)  # see RetryRefused
# What Prefect's client re-sends too (prefect.client.base.PrefectHttpxAsyncClient.send).
RESENT_ERRORS = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)
SCHEDULE_FIELDS = {"schedule", "active", "parameters", "slug", "max_scheduled_runs"}
# The field of DeploymentUpdate a compared field is written through (the plan's diff names).
# What create_deployment is sent: every field of the model but the flow's name (the flow
# id stands for it) and the automations (made from the triggers, owned by the deployment).
NOT_SENT = frozenset({"flow_name", "automations"})
# What a trigger's automation looks like, minus what the server adds or sets itself.
AUTOMATION_FIELDS = {"name", "description", "enabled", "trigger", "actions",
                     "actions_on_trigger", "actions_on_resolve"}  # fmt: skip


class DeploymentsAPI(Protocol):
    """What reconcile needs from a Prefect server."""

    async def read_live(
        self, scope_tags: frozenset[str], full_names: Iterable[str]
    ) -> list[LiveDeployment]: ...

    async def read_work_pools(self) -> dict[str, WorkPool]: ...

    async def create_work_pool(self, name: str, pool_type: str) -> None: ...

    async def register(
        self,
        spec: DeploymentSpec,
        live: LiveDeployment | None = None,
        changed: Collection[str] | None = None,
    ) -> str: ...

    async def delete(self, live: LiveDeployment) -> None: ...


# --- canonical forms --------------------------------------------------------------------


def remember_timezone_list() -> None:
    """Let Prefect 3.8's schedule validation read the IANA zone list from disk once, not per call.

    Needed on Prefect 3.8 only. There every `CronSchedule`/`IntervalSchedule`/`RRuleSchedule`
    Prefect validates calls `zoneinfo.available_timezones()` (via `prefect._internal.schemas.
    validators.get_timezones`), which walks the whole tz database: ~5 ms here, several
    times per deployment read or written, most of a reconcile's client time at a few
    hundred deployments. The list cannot change while this process runs, so it is cached
    in this process only. Prefect 3.9 caches `prefect.types._datetime.get_timezones`
    itself (`@cache`), and validators uses that function: there this is a no-op, as it is
    with a Prefect that has no such function. Drop it with Prefect 3.8.
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


class RetryRefused(httpx.AsyncBaseTransport):
    """An httpx transport that sends a request again, soon, while the server answers 503.

    Prefect's server answers 503 when it could not do a request *now* and wrote nothing:
    on SQLite, a write that meets another commit ("database is locked", which a reconcile
    meets all the time: its own task runs' events are being written meanwhile). Prefect's
    client retries 503 too, after 2, 4, 8... s (and sleeps 2 s even with retries off);
    a reconcile of hundreds of deployments would spend most of its time asleep. Here a
    503 is sent again after 0.05, 0.1, 0.2... s with jitter, about a minute in all, as
    patient as Prefect's client, which still gets the last answer. A connection the
    server dropped is sent again the same way. Both are what Prefect's client re-sends
    for every method, writes included; this only does it sooner.
    """

    refusals = 0  # 503s seen in this process, by any instance: see `WriteLimit`

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        for delay in REFUSED_RETRY_DELAYS:
            try:
                response = await self.inner.handle_async_request(request)
            except RESENT_ERRORS:
                pass  # the server dropped a kept-alive connection (it does after a 503)
            else:
                if response.status_code != 503:
                    return response
                RetryRefused.refusals += 1
                await response.aread()
                await response.aclose()
            await asyncio.sleep(delay * random.uniform(0.5, 1.5))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


class WriteLimit:
    """How many registrations and prunes run at once: `limit`, until the server refuses one.

    Against a server that writes in parallel (PostgreSQL, Prefect Cloud) concurrent
    writes hide each request's latency. A SQLite server takes one writer at a time and
    refuses (503) a write that meets another commit; concurrent writes there only collide
    and are sent again and again (measured, 100 creates: 23 s one at a time, 117 s eight
    at a time). So the first refusal this process sees narrows the limit to one.
    """

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.active = 0
        self._refusals = RetryRefused.refusals
        self._changed = asyncio.Condition()

    async def __aenter__(self) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.active < self.limit)
            self.active += 1

    async def __aexit__(self, *exc_info: object) -> None:
        async with self._changed:
            self.active -= 1
            if RetryRefused.refusals > self._refusals:
                self.limit = 1
            self._changed.notify_all()


def _inner_transport() -> httpx.AsyncHTTPTransport:
    """The transport Prefect's client would make for itself (TLS, HTTP/2, pool, 3 connect
    retries, from the same settings): with a transport of our own, httpx takes these from
    the transport, not from the client."""
    import ssl

    import certifi
    from prefect.settings import (
        PREFECT_API_ENABLE_HTTP2,
        PREFECT_API_SSL_CERT_FILE,
        PREFECT_API_TLS_INSECURE_SKIP_VERIFY,
    )

    if PREFECT_API_TLS_INSECURE_SKIP_VERIFY.value():
        verify = ssl.create_default_context()
        verify.check_hostname = False
        verify.verify_mode = ssl.CERT_NONE
    else:
        verify = ssl.create_default_context(
            cafile=PREFECT_API_SSL_CERT_FILE.value() or certifi.where()
        )
    return httpx.AsyncHTTPTransport(
        verify=verify,
        http2=bool(PREFECT_API_ENABLE_HTTP2.value()),
        limits=httpx.Limits(max_connections=16, max_keepalive_connections=8, keepalive_expiry=25),
        retries=3,
    )


# The client every `api_client()` inside `one_api_client()` uses, with the loop it runs on.
_SHARED_CLIENT: contextvars.ContextVar[tuple[asyncio.AbstractEventLoop, PrefectClient] | None] = (
    contextvars.ContextVar("deploy_manager_api_client", default=None)
)


@contextlib.asynccontextmanager
async def api_client() -> AsyncIterator[PrefectClient]:
    """Prefect's client for PREFECT_API_URL, quick to re-send a refused request.

    `RetryRefused` goes in through `get_client(httpx_settings={"transport": ...})`, the
    client's public seam: a client of its own, so the flow engine's client (which writes
    the run's states) keeps Prefect's behaviour. Inside `one_api_client()` (a whole
    reconcile), that one client.
    """
    from prefect.client.orchestration import get_client

    shared = _SHARED_CLIENT.get()
    if shared is not None and shared[0] is asyncio.get_running_loop():
        async with shared[1] as client:  # re-entrant: the outermost exit closes it
            yield client
        return
    async with get_client(httpx_settings={"transport": RetryRefused(_inner_transport())}) as client:
        yield client


@contextlib.asynccontextmanager
async def one_api_client() -> AsyncIterator[PrefectClient]:
    """One `api_client()` for every call made inside this block (on this event loop).

    A client of its own costs a TLS context (~27 ms here) and, until its first write is
    answered, a CSRF-token request before each write: a reconcile that opened one per task
    sent eight of those at once before the live read's pages. Sharing one keeps its
    connections warm too.
    """
    async with api_client() as client:
        token = _SHARED_CLIENT.set((asyncio.get_running_loop(), client))
        try:
            yield client
        finally:
            _SHARED_CLIENT.reset(token)


def _translate(exc: Exception, change: str) -> Exception:
    """Prefect/httpx errors as ours: 5xx and connection trouble may be retried."""
    from prefect.exceptions import ObjectNotFound, PrefectHTTPStatusError

    if isinstance(exc, PrefectHTTPStatusError):
        status = exc.response.status_code
        try:
            detail = exc.response.json().get("detail", exc.response.text)
        except ValueError:
            detail = exc.response.text
        if status >= 500 or status == 429:
            return TransientError(f"{change}: the Prefect API answered {status}: {detail}")
        return ApplyError(change, f"the Prefect API refused it ({status}): {detail}")
    if isinstance(exc, ObjectNotFound):
        return ApplyError(change, f"not found: {exc}")
    if isinstance(exc, httpx.TransportError):
        return TransientError(f"{change}: cannot reach the Prefect API: {exc}")
    return ApplyError(change, f"{type(exc).__name__}: {exc}")


class PrefectDeployments:
    """The real `DeploymentsAPI`: Prefect's client against PREFECT_API_URL."""

    def __init__(self, client: PrefectClient) -> None:
        self.client = client
        remember_timezone_list()

    async def _paged_deployments(
        self, deployment_filter: Any, flow_filter: Any = None, expected: int = 0
    ) -> list[DeploymentResponse]:
        """Every deployment the filters match, its pages asked for side by side (the
        server answers one while this process parses another).

        The pages `expected` deployments fill are asked for at once; as many more as
        PAGES_AT_ONCE while the last page came back full. A reconcile expects as many
        deployments in its scope as the repository declares: a no-op reads them all in
        one go, not one page first and the others once that page is parsed.
        """

        async def page(offset: int) -> list[DeploymentResponse]:
            return await self.client.read_deployments(
                deployment_filter=deployment_filter,
                flow_filter=flow_filter,
                limit=PAGE,
                offset=offset,
            )

        found: list[DeploymentResponse] = []
        count = expected // PAGE + 1  # a full last page: one more, to see that it was the last
        offset = 0
        while len(found) == offset:
            pages = await asyncio.gather(*(page(offset + i * PAGE) for i in range(count)))
            for chunk in pages:
                found.extend(chunk)
            offset += PAGE * count
            count = PAGES_AT_ONCE
        return found

    async def _flows(self, flow_filter: Any, keys: Sequence[Any]) -> dict[UUID, str]:
        names: dict[UUID, str] = {}
        chunks = [keys[start : start + PAGE] for start in range(0, len(keys), PAGE)]
        reads = (self.client.read_flows(flow_filter=flow_filter(c), limit=PAGE) for c in chunks)
        for flows in await asyncio.gather(*reads):
            names.update({flow.id: flow.name for flow in flows})
        return names

    async def _flow_names(self, flow_ids: set[UUID]) -> dict[UUID, str]:
        from prefect.client.schemas.filters import FlowFilter, FlowFilterId

        return await self._flows(
            lambda chunk: FlowFilter(id=FlowFilterId(any_=chunk)), sorted(flow_ids, key=str)
        )

    async def _flows_named(self, names: Iterable[str]) -> dict[UUID, str]:
        from prefect.client.schemas.filters import FlowFilter, FlowFilterName

        return await self._flows(
            lambda chunk: FlowFilter(name=FlowFilterName(any_=chunk)), sorted(set(names))
        )

    async def _deployments_run_by_automations(self) -> set[str]:
        """The deployments some automation runs: the candidates for owning one (its
        triggers). Read side by side with the deployments, as it does not depend on them."""
        targets: set[str] = set()
        offset = 0
        while True:
            page = await self.client.read_automations(limit=PAGE, offset=offset)
            for automation in page:
                for action in automation.actions:
                    target = getattr(action, "deployment_id", None)
                    if target is not None:
                        targets.add(str(target))
            if len(page) < PAGE:
                return targets
            offset += PAGE

    async def _owned_automations(self, candidates: set[str]) -> dict[str, list[dict[str, Any]]]:
        """The automations each deployment owns (its triggers), in the server's form.

        The server does not return an automation's owner, so the candidates are the
        deployments an automation runs; ownership is then confirmed per candidate
        (`/automations/related-to/...`).
        """
        owned: dict[str, list[dict[str, Any]]] = {}
        for deployment_id in sorted(candidates):
            related = await self.client.read_resource_related_automations(
                f"prefect.deployment.{deployment_id}"
            )
            owned[deployment_id] = [
                a.model_dump(mode="json", include=AUTOMATION_FIELDS) for a in related
            ]
        return owned

    async def read_live(
        self, scope_tags: frozenset[str], full_names: Iterable[str]
    ) -> list[LiveDeployment]:
        """The deployments in scope, and any deployment a desired one (`flow/name`) collides with.

        The scope's deployments are read once; deployments are read by flow and name only
        for the desired ones the scope does not hold (on a no-op reconcile: none). A
        deployment's name alone would match every flow's deployment of that name (`d`,
        `prod`): hundreds of deployments read and parsed for nothing.
        """
        from prefect.client.schemas.filters import (
            DeploymentFilter,
            DeploymentFilterName,
            DeploymentFilterTags,
            FlowFilter,
            FlowFilterName,
        )

        full_names = list(full_names)
        try:
            # The desired flows' names and the automations' targets are asked for while
            # the deployments are read.
            responses, flow_names, run_by_automations = await asyncio.gather(
                self._paged_deployments(
                    DeploymentFilter(tags=DeploymentFilterTags(all_=sorted(scope_tags))),
                    expected=len(full_names),
                ),
                self._flows_named(full.split("/", 1)[0] for full in full_names),
                self._deployments_run_by_automations(),
            )
            unnamed = {r.flow_id for r in responses} - set(flow_names)
            if unnamed:  # flows that left the repository: their deployments may be pruned
                flow_names |= await self._flow_names(unnamed)
            held = {f"{flow_names.get(r.flow_id, '?')}/{r.name}" for r in responses}
            missing = [full.split("/", 1) for full in sorted(set(full_names) - held)]
            for start in range(0, len(missing), PAGE):
                chunk = missing[start : start + PAGE]
                responses += await self._paged_deployments(
                    DeploymentFilter(name=DeploymentFilterName(any_=sorted({n for _, n in chunk}))),
                    FlowFilter(name=FlowFilterName(any_=sorted({f for f, _ in chunk}))),
                )
            unique = {r.id: r for r in responses}
            unnamed = {r.flow_id for r in unique.values()} - set(flow_names)
            if unnamed:
                flow_names |= await self._flow_names(unnamed)
            candidates = {str(i) for i in unique} & run_by_automations
            automations = await self._owned_automations(candidates) if candidates else {}
        except Exception as exc:
            raise _translate(exc, "read-live-deployments") from exc
        return [
            to_live(r, flow_names.get(r.flow_id, "?"), automations.get(str(r.id), []))
            for r in unique.values()
        ]

    async def read_work_pools(self) -> dict[str, WorkPool]:
        try:
            pools = await self.client.read_work_pools()
        except Exception as exc:
            raise _translate(exc, "read-work-pools") from exc
        return {
            pool.name: WorkPool(
                pool.name, pool.type, dict(pool.base_job_template.get("variables") or {})
            )
            for pool in pools
        }

    async def create_work_pool(self, name: str, pool_type: str) -> None:
        """Create a work pool with its type's default job template, as `prefect work-pool create`.

        One that exists by now (another run made it) is left as it is.
        """
        from prefect.client.schemas.actions import WorkPoolCreate
        from prefect.exceptions import ObjectAlreadyExists
        from prefect.workers.utilities import (
            get_default_base_job_template_for_infrastructure_type,
        )

        change = f"create-work-pool[{name}]"
        try:
            template = await get_default_base_job_template_for_infrastructure_type(pool_type)
            if template is None:
                raise ApplyError(
                    change,
                    f"unknown work pool type {pool_type!r}: no installed worker and no "
                    "collection registry entry provides it; use process, or install the "
                    "worker's package (e.g. prefect-docker for docker)",
                )
            with contextlib.suppress(ObjectAlreadyExists):
                await self.client.create_work_pool(
                    WorkPoolCreate(name=name, type=pool_type, base_job_template=template)
                )
        except ApplyError:
            raise
        except Exception as exc:
            raise _translate(exc, change) from exc

    async def register(
        self,
        spec: DeploymentSpec,
        live: LiveDeployment | None = None,
        changed: Collection[str] | None = None,
    ) -> str:
        """Create one deployment, or update the `changed` fields of `live`, and its triggers.

        An update sends only what changed (and the version with it), so what a person set
        in the UI that the repository does not mention survives: a paused deployment, a
        paused schedule (schedules are updated by slug), the rest of its settings.
        `changed=None` with a `live` deployment rewrites every field.
        """
        change = f"register[{spec.full_name}]"
        try:
            if live is None:
                deployment_id = await self._create(spec)
            else:
                deployment_id = UUID(live.id)
                await self._update(spec, live, set(changed) if changed is not None else None)
            if live is None or changed is None or "automations" in changed:
                if live is not None:
                    await self.client.delete_resource_owned_automations(
                        f"prefect.deployment.{deployment_id}"
                    )
                for trigger in trigger_objects(spec.name, spec.triggers):
                    trigger.set_deployment_id(deployment_id)
                    await self.client.create_automation(trigger.as_automation())
        except Exception as exc:
            raise _translate(exc, change) from exc
        return str(deployment_id)

    async def _create(self, spec: DeploymentSpec) -> UUID:
        flow_id = await self.client.create_flow_from_name(spec.flow_name)
        return await self.client.create_deployment(flow_id=flow_id, **create_arguments(spec))

    async def _update(
        self, spec: DeploymentSpec, live: LiveDeployment, changed: set[str] | None
    ) -> None:
        from prefect.client.schemas.actions import DeploymentScheduleUpdate, DeploymentUpdate

        sent = set(DeploymentFields.model_fields) - NOT_SENT - {"name", "version"}
        fields = sent if changed is None else changed
        values: dict[str, Any] = {"version": spec.version}
        for name in fields:
            target = "tags" if name in DERIVED_COMPARED else name  # markers are tags
            if target in sent and target != "schedules":
                values[target] = _sent_value(target, getattr(spec, target))
        if "work_pool_name" in values or "work_queue_name" in values:
            # the server resolves a queue in the named pool only when both are given
            values["work_pool_name"] = spec.work_pool_name
            if spec.work_queue_name is not None:
                values["work_queue_name"] = spec.work_queue_name
        if "tags" in values and is_protected(live.tags):
            values["tags"] = sorted({*values["tags"], PROTECT_TAG})  # a person's, kept
        if "schedules" in fields:
            values["schedules"] = [
                DeploymentScheduleUpdate(
                    schedule=create.schedule,
                    parameters=create.parameters,
                    slug=create.slug,
                    max_scheduled_runs=create.max_scheduled_runs,
                    # unset: the server keeps a schedule's flag (a UI pause) or makes it active
                    # (mypy checks a **dict[str, bool] against every keyword)
                    **({"active": False} if entry.get("active") is False else {}),  # type: ignore[arg-type]
                )
                for entry, create in zip(
                    spec.schedules, schedule_creates(spec.schedules), strict=True
                )
            ]
        deployment_id = UUID(live.id)
        await self.client.update_deployment(deployment_id, DeploymentUpdate(**values))
        if "schedules" in fields:
            await self._delete_schedules_not_in(deployment_id, spec.schedules)

    async def _delete_schedules_not_in(
        self, deployment_id: UUID, schedules: Sequence[dict[str, Any]]
    ) -> None:
        """Schedules of a deployment the repository no longer declares (a slug-wise update
        leaves them in place)."""
        wanted = {s.get("slug") for s in schedules}
        for current in await self.client.read_deployment_schedules(deployment_id):
            if current.slug not in wanted or current.slug is None:
                await self.client.delete_deployment_schedule(deployment_id, current.id)

    async def delete(self, live: LiveDeployment) -> None:
        """Delete a deployment, the automations it owns and its scheduled runs (#15697)."""
        from prefect.client.schemas.filters import (
            DeploymentFilter,
            DeploymentFilterId,
            FlowRunFilter,
            FlowRunFilterState,
            FlowRunFilterStateType,
        )
        from prefect.client.schemas.objects import StateType
        from prefect.exceptions import ObjectNotFound

        change = f"prune[{live.full_name}]"
        deployment_id = UUID(live.id)
        try:
            scheduled = await self.client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id])),
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(
                        type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])
                    )
                ),
            )
            await self.client.delete_resource_owned_automations(
                f"prefect.deployment.{deployment_id}"
            )
            with contextlib.suppress(ObjectNotFound):  # already gone: the desired end state
                await self.client.delete_deployment(deployment_id)
            for run in scheduled:
                with contextlib.suppress(ObjectNotFound):
                    await self.client.delete_flow_run(run.id)
        except Exception as exc:
            raise _translate(exc, change) from exc


def create_arguments(spec: DeploymentSpec) -> dict[str, Any]:
    """What `client.create_deployment` is sent for a new deployment (besides its flow id):
    every field of `DeploymentFields` but NOT_SENT, in the client's types."""
    return {
        name: _sent_value(name, getattr(spec, name))
        for name in DeploymentFields.model_fields
        if name not in NOT_SENT
    }


def _sent_value(name: str, value: Any) -> Any:
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
