"""The Prefect API seam: read live deployments, register, delete. Only this module talks to it.

`PrefectDeployments` wraps Prefect's own client (`prefect.client.orchestration`) and
schemas; it never hand-rolls HTTP. Reads are O(1) calls in the number of deployments
(paged queries by tag and name, one query for flow names, one for automations), so a
no-op reconcile stays cheap. Registration goes through `client.create_deployment`
(Prefect's upsert on flow + name), triggers through Prefect's `DeploymentTrigger`
models as `prefect deploy` does.

What is sent and what is read back is converted in `control_plane.prefect_objects` (the
model in Prefect's objects and back); this module makes the requests. Its client re-sends
a refused request soon (`RetryRefused`, installed through `get_client`'s httpx settings);
errors from the client are translated into our own (`TransientError` for what a retry
can fix, `ApplyError` otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any
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
from control_plane.prefect_objects import (
    AUTOMATION_FIELDS,
    NOT_SENT,
    create_arguments,
    remember_timezone_list,
    schedule_creates,
    sent_value,
    to_live,
    trigger_objects,
)

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient
    from prefect.client.schemas.responses import DeploymentResponse

PAGE = 200
PAGES_AT_ONCE = 3  # pages of a large read asked for side by side
REFUSED_RETRY_DELAYS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 12.8, 25.6)  # see RetryRefused
# What Prefect's client re-sends too (prefect.client.base.PrefectHttpxAsyncClient.send).
RESENT_ERRORS = (httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError)


# --- canonical forms --------------------------------------------------------------------


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
        (`/automations/related-to/...`), PAGES_AT_ONCE requests at a time: a no-op of
        deployments with triggers waited for one round trip per deployment in turn.
        """
        slots = asyncio.Semaphore(PAGES_AT_ONCE)

        async def of(deployment_id: str) -> tuple[str, list[dict[str, Any]]]:
            async with slots:
                related = await self.client.read_resource_related_automations(
                    f"prefect.deployment.{deployment_id}"
                )
            return deployment_id, [
                a.model_dump(mode="json", include=AUTOMATION_FIELDS) for a in related
            ]

        return dict(await asyncio.gather(*(of(d) for d in sorted(candidates))))

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
                values[target] = sent_value(target, getattr(spec, target))
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
