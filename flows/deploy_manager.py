"""The `deploy-manager` flow: make the live deployments match a git repository at one commit.

Thin on purpose: every task wraps one call into `control_plane` and names itself so a
person reading the Prefect UI knows what it did (`fetch-source`, `discover-flows`,
`step[<id>]` for each distinct build or push step of the prefect.yaml files,
`read-live-deployments` beside `resolve-templates`, `plan`, `register[batch 3/10: 50
deployments]` (or `register[flow/deployment]` for a single change), `prune[...]`,
`report`). A failure of one deployment is recorded and the others go on; the run ends
Failed, with every reason listed, after all independent work is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import gc
import re
import shutil
from collections.abc import (
    AsyncIterator,
    Callable,
    Coroutine,
    Iterator,
    Mapping,
    Sequence,
)
from pathlib import Path
from typing import Any, ParamSpec, TypeVar, cast

from prefect import flow, get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import PrefectClient
from prefect.client.schemas.objects import State
from prefect.states import Completed, Failed
from prefect.utilities.annotations import quote

from control_plane.checkouts import Checkout
from control_plane.discovery import Discovery, discover
from control_plane.errors import ConfigError, TransientError
from control_plane.liveness import ensure_crash_automation, heartbeats
from control_plane.plans import Change, Plan, PoolToCreate, render_table
from control_plane.prefect_api import PrefectDeployments, WriteLimit, api_client, one_api_client
from control_plane.prefect_steps import Resolved, run_step
from control_plane.reconcile import (
    Desired,
    LiveState,
    Outcome,
    ReconcileOptions,
    Report,
    batch_changes,
    build_desired,
    build_report,
    failure_detail,
    render_report_table,
    restrict_steps,
)
from control_plane.reconciler import Reconciler
from control_plane.sources import fetch_checkout
from control_plane.steps import StepPolicy, StepRun, StepRuns, plan_step_runs
from control_plane.tables import render_counts, short_sha

T = TypeVar("T")
P = ParamSpec("P")
R = TypeVar("R")
A = TypeVar("A")
B = TypeVar("B")
WRITE_BATCH = 50  # changes per register/prune task run
STEP_CONCURRENCY = 4  # build/push steps at once (each a process; docker builds are heavy)
STEP_TIMEOUT_SECONDS = 3600  # a hung step must not hold the reconcile forever


def _retry_transient(task: Any, task_run: Any, state: State) -> bool:
    """Retry only what a retry can fix: an unreachable or overloaded API, a flaky clone.

    Prefect hands the exception over as the failed state's data.
    """
    return isinstance(state.data, TransientError)


def unwalked(value: T) -> T:
    """A task argument Prefect hands over as it is, without walking into it.

    Prefect visits every argument of a task run recursively (looking for futures and
    states to link, then copying it as it resolves them): for the specs and live
    deployments of hundreds of deployments that was most of a no-op run's time. None of
    our arguments holds a future or a state. (`quote`, typed as what it wraps.)
    """
    return cast(T, quote(value))


def _artifact_key(kind: str, source: str) -> str:
    slug = re.sub(r"[^a-z0-9-]+", "-", source.lower()).strip("-") or "source"
    return f"deploy-manager-{kind}-{slug}"


@task(
    name="fetch-source",
    task_run_name="fetch-source",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=_retry_transient,
)
async def fetch_source(source: str, ref: str | None, repository_url: str | None = None) -> Checkout:
    return await fetch_checkout(source, ref, repository_url)


# Async, though discovery blocks this thread as a sync task would: a sync task run in
# this async flow opens a sync Prefect client of its own (~30 ms, mostly its TLS context).
@task(name="discover-flows", task_run_name="discover-flows", cache_policy=NO_CACHE)
async def discover_flows(checkout: Checkout) -> Discovery:
    return discover(checkout.path)


@task(name="step", cache_policy=NO_CACHE, timeout_seconds=STEP_TIMEOUT_SECONDS)
async def run_build_step(
    run: StepRun, upstream: dict[str, Any], checkout: Checkout
) -> dict[str, Any]:
    result = await run_step(run.step, upstream, Path(checkout.path))
    if result.log.strip():
        get_run_logger().info("%s", result.log.rstrip())
    return result.outputs


async def _run_steps(
    runs: StepRuns, checkout: Checkout
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Every distinct step once, each after the steps before it; per deployment its
    outputs, or why it has none (the first of its steps that failed)."""
    results: dict[str, dict[str, Any]] = {}
    errors: dict[str, str] = {}
    slots = asyncio.Semaphore(STEP_CONCURRENCY)

    async def walk(run: StepRun, upstream: dict[str, Any]) -> None:
        async with slots:
            # Prefect's Task.__call__ overloads do not model an async task with return_state.
            state = await run_build_step.with_options(task_run_name=run.name)(  # type: ignore[misc]
                run, upstream, checkout, return_state=True
            )
        try:
            results[run.key] = await state.aresult()
        except Exception as exc:
            errors[run.key] = f"{run.name} failed: {failure_detail(exc)}"
            return
        await asyncio.gather(*(walk(child, results[run.key]) for child in runs.children(run.key)))

    await asyncio.gather(*(walk(run, {}) for run in runs.children(None)))
    outputs, failures = {}, {}
    for name, key in runs.last.items():
        if key in results:
            outputs[name] = results[key]
        else:
            failed = next(r for r in runs.chain(name) if r.key in errors)
            failures[name] = errors[failed.key]
    return outputs, failures


@task(name="resolve-templates", task_run_name="resolve-templates", cache_policy=NO_CACHE)
async def resolve_templates(
    desired: Desired,
    outputs: Mapping[str, Mapping[str, Any]] | None,
    failures: Mapping[str, str],
) -> Resolved:
    async with api_client() as client:
        return await _on_server(client).resolve(desired, outputs, failures)


@task(
    name="read-live-deployments",
    task_run_name="read-live-deployments",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=_retry_transient,
)
async def read_live_deployments(desired: Desired) -> LiveState:
    async with api_client() as client:
        return await _on_server(client).read_live(desired)


@task(name="plan", task_run_name="plan", cache_policy=NO_CACHE)
async def plan_changes(
    desired: Desired,
    state: LiveState,
    checkout: Checkout,
    options: ReconcileOptions,
    resolved: Resolved,
) -> Plan:
    async with api_client() as client:
        plan = await _on_server(client).plan(desired, state, checkout, options, resolved)
    await acreate_markdown_artifact(
        key=_artifact_key("plan", checkout.source),
        markdown=f"# Plan for {checkout.source}@{short_sha(checkout.commit)}\n\n"
        f"```\n{render_table(plan)}\n```\n",
        description=f"deploy-manager plan, environment {desired.environment.name}",
    )
    return plan


@task(name="create-work-pool", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2,
      retry_condition_fn=_retry_transient)  # fmt: skip
async def create_work_pool(pool: PoolToCreate) -> None:
    async with api_client() as client:
        await _on_server(client).create_pool(pool)


async def _apply_batch(verb: str, changes: Sequence[Change], limit: WriteLimit) -> list[Outcome]:
    """Apply a batch of changes through the run's client; each is retried on its own."""
    logger = get_run_logger()
    async with api_client() as client:
        outcomes = await _on_server(client).write(verb, changes, limit)
    for outcome in outcomes:
        if outcome.status == "failed":
            logger.warning("%s[%s] failed: %s", verb, outcome.deployment, outcome.detail)
    done = sum(o.status == "done" for o in outcomes)
    logger.info("%s: %d done, %d failed", verb, done, len(outcomes) - done)
    await acreate_table_artifact(
        table=[
            {
                "deployment": o.deployment,
                "action": o.action,
                "status": o.status,
                "deployment_id": o.deployment_id or "",
                "detail": o.detail or "",
            }
            for o in outcomes
        ],
        description=f"{verb}: what happened to each deployment of this batch.",
    )
    return outcomes


# One task run per batch of changes, not per change: a task run costs the SQLite server
# about as much writing (its states, as events) as the deployment write itself, and the
# two collide (bench/README.md). Each change is still retried alone (`apply_change`).
@task(name="register", cache_policy=NO_CACHE)
async def register(changes: Sequence[Change], limit: WriteLimit) -> list[Outcome]:
    return await _apply_batch("register", changes, limit)


@task(name="prune", cache_policy=NO_CACHE)
async def prune_deployment(changes: Sequence[Change], limit: WriteLimit) -> list[Outcome]:
    return await _apply_batch("prune", changes, limit)


@task(name="report", task_run_name="report", cache_policy=NO_CACHE)
async def report_task(report: Report) -> Report:
    table = render_report_table(report)
    get_run_logger().info("%s", table)
    await acreate_markdown_artifact(
        key=_artifact_key("report", report.source),
        markdown=f"# deploy-manager report\n\n```\n{table}\n```\n",
        description=f"{report.source}@{short_sha(report.commit)} -> {report.environment}",
    )
    await acreate_table_artifact(
        key=_artifact_key("deployments", report.source),
        table=[
            {
                "deployment": item.deployment,
                "action": item.action,
                "status": item.status,
                "version": item.version or "",
                "deployment_id": item.deployment_id or "",
                "detail": ", ".join(item.fields) or item.detail or "",
            }
            for item in report.items
        ],
        description="Every deployment of the reconcile with its action, status, version and id.",
    )
    return report


def batch_run_name(verb: str, batch: Sequence[Change], index: int, count: int) -> str:
    """`register[flow/deployment]` for a batch of one, else
    `register[batch 3/10: 50 deployments]`."""
    if len(batch) == 1:
        return f"{verb}[{batch[0].name}]"
    return f"{verb}[batch {index}/{count}: {len(batch)} deployments]"


async def _run_batches(task_fn: Any, changes: Sequence[Change], limit: WriteLimit) -> list[Outcome]:
    verb = "register" if task_fn is register else "prune"
    batches = batch_changes(changes, WRITE_BATCH)

    async def run(index: int, batch: tuple[Change, ...]) -> list[Outcome]:
        name = batch_run_name(verb, batch, index, len(batches))
        state = await task_fn.with_options(task_run_name=name)(
            unwalked(batch), limit, return_state=True
        )
        try:
            outcomes: list[Outcome] = await state.aresult()
            return outcomes
        except Exception as exc:  # the batch itself broke (apply_change never raises)
            return [
                Outcome(deployment=c.name, action=c.action, status="failed",
                        detail=failure_detail(exc))
                for c in batch
            ]  # fmt: skip

    # Batches run side by side while the server takes concurrent writes; `limit` gates
    # each write, and narrows to one at a time at the server's first refusal.
    results = await asyncio.gather(*(run(i, b) for i, b in enumerate(batches, start=1)))
    return [outcome for outcomes in results for outcome in outcomes]


async def _ensure_lock(name: str) -> None:
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

    async with api_client() as client:
        try:
            await client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            with contextlib.suppress(ObjectAlreadyExists):  # another run made it meanwhile
                await client.create_global_concurrency_limit(
                    GlobalConcurrencyLimitCreate(name=name, limit=1)
                )


async def _ensure_crash_detection() -> None:
    """The automation that marks a killed reconcile Crashed (`control_plane.liveness`)."""
    try:
        async with api_client() as client:
            await ensure_crash_automation(client)
    except Exception as exc:  # a server without automations still reconciles
        get_run_logger().warning(
            "the automation that marks a killed reconcile Crashed could not be saved (%s); "
            "a killed run will stay Running in the UI", failure_detail(exc)
        )  # fmt: skip


LOCK_LEASE_SECONDS = 60  # the server's minimum: a killed run's hold ends about this long after
LOCK_WAIT_LOG_SECONDS = 15  # a waiting run says what it waits for this often


@contextlib.asynccontextmanager
async def source_lock(name: str) -> AsyncIterator[None]:
    """Hold the source's lock (a Prefect global concurrency limit of 1) while reconciling.

    The hold is a lease that this process renews while it lives: a run killed with
    `kill -9` stops renewing, and the server (its repossessor, every 15 s) frees the slot
    within about LOCK_LEASE_SECONDS + 15 s, instead of Prefect's default 300 s. A waiting
    run logs what it waits for and since when.
    """
    from datetime import UTC, datetime

    from prefect.concurrency.asyncio import concurrency

    await _ensure_lock(name)
    since = datetime.now(UTC)
    while True:
        try:
            async with concurrency(
                name, occupy=1, strict=True, timeout_seconds=LOCK_WAIT_LOG_SECONDS,
                lease_duration=LOCK_LEASE_SECONDS,
            ):  # fmt: skip
                yield
                return
        except TimeoutError:
            waited = (datetime.now(UTC) - since).total_seconds()
            get_run_logger().warning(
                "waiting for the lock %s since %s (%.0f s): another reconcile of this source "
                "holds it; a run that was killed releases it within %d s",
                name, since.isoformat(timespec="seconds"), waited, LOCK_LEASE_SECONDS + 15,
            )  # fmt: skip


def collecting_only_what_the_run_makes(
    fn: Callable[P, Coroutine[Any, Any, R]],
) -> Callable[P, Coroutine[Any, Any, R]]:
    """Full garbage collections during a run walk only the objects the run made.

    When a run starts, the process already holds ~180 000 objects that outlive it
    (Prefect's, pydantic's and httpx's modules, classes and schemas); every full
    collection walked them again: 0.1-0.2 s each, twice in a no-op reconcile of 500
    deployments, 0.3 s of its 2.5 (measured with `gc.callbacks`). They are set aside
    for the run (`gc.freeze`) and handed back after it (`gc.unfreeze`), so a process
    that runs the flow again, as tests do, still collects them.
    """

    @functools.wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        gc.freeze()
        try:
            return await fn(*args, **kwargs)
        finally:
            gc.unfreeze()

    return run


_RETURNED: contextvars.ContextVar[list[State] | None] = contextvars.ContextVar(
    "deploy_manager_returned", default=None
)


@contextlib.contextmanager
def returned_states() -> Iterator[list[State]]:
    """The final states the flow returns while the block runs, for a caller in this process.

    The state the engine hands back is not always the one the flow returned: when the
    request that proposes it times out (a SQLite server waits up to 60 s on a write lock,
    the client's timeout), Prefect's client sends it again, the server keeps the first,
    answers the second with its own copy, and that copy carries no data: the Report is
    lost to `state.aresult()` (MissingResult). The CLI runs the flow in its own process
    and takes the Report from here instead.
    """
    returned: list[State] = []
    token = _RETURNED.set(returned)
    try:
        yield returned
    finally:
        _RETURNED.reset(token)


@flow(name="deploy-manager", log_prints=True)
@collecting_only_what_the_run_makes
async def deploy_manager(
    source: str,
    ref: str | None = None,
    environment: str | None = None,
    dry_run: bool = False,
    prune: bool = True,
    force_prune: bool = False,
    only: list[str] | None = None,
    repository_url: str | None = None,
    allowed_steps: list[str] | None = None,
) -> Report:
    """Make the Prefect deployments match a git repository at one commit.

    Args:
        source: Name of the GitHubRepository block that points at the repository.
        ref: Branch, tag or commit sha to deploy; empty means the block's reference.
        environment: Deploy to this environment instead of the one the branch maps to.
        dry_run: Plan and report only; change nothing.
        prune: Delete managed deployments whose flow or prefect.yaml entry left the repository.
        force_prune: Prune even when more than the policy's fraction would be deleted.
        only: Limit the run to flows or deployments matching these globs.
        repository_url: Clone this URL instead of the block's (unsaved; for a dry run of a
            repository whose block does not exist or would be re-pointed).
        allowed_steps: The build/push step functions a prefect.yaml may run (dotted names,
            `*` globs); empty means Prefect's and prefect-docker's built-in steps, without
            run_shell_script and pip_install_requirements in the preview environment.
    """
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    run = context.flow_run if context else None
    async with one_api_client():  # the run's own API calls share one client
        if not dry_run:  # before the first beat: the automation must see it to watch the run
            await _ensure_crash_detection()
        with heartbeats(run.id, run.name) if run else contextlib.nullcontext():
            state = await _deploy_manager(
                source, ref, environment, dry_run, prune, force_prune, only, repository_url,
                allowed_steps,
            )  # fmt: skip
    if (returned := _RETURNED.get()) is not None:
        returned.append(cast(State, state))
    return state


async def _deploy_manager(
    source: str,
    ref: str | None,
    environment: str | None,
    dry_run: bool,
    prune: bool,
    force_prune: bool,
    only: list[str] | None,
    repository_url: str | None,
    allowed_steps: list[str] | None,
) -> Report:
    """The flow's body, while its heartbeats beat (`control_plane.liveness`)."""
    options = ReconcileOptions(
        environment=environment or None,
        dry_run=dry_run,
        prune=prune,
        force_prune=force_prune,
        only=tuple(only or ()),
    )
    try:
        checkout = await fetch_source(source, ref or None, repository_url or None)
    except ConfigError as exc:  # the user's to fix (a missing ref, a wrong URL): no traceback
        return Failed(message=str(exc), data=exc)  # type: ignore[return-value]
    try:
        discovery = await discover_flows(checkout)
        desired = build_desired(checkout, discovery, options)
        policy = StepPolicy.for_environment(desired.environment.name, allowed_steps)
        desired = restrict_steps(desired, discovery, policy)
        # Build and push steps run in a real run only; a dry run shows `<from step ...>`.
        outputs: dict[str, dict[str, Any]] | None = None
        step_failures: dict[str, str] = {}
        if not dry_run:
            outputs, step_failures = await _run_steps(plan_step_runs(desired.specs), checkout)
        # One reconcile of a source at a time: the plan must see what the last one wrote.
        # A dry run only reads: no lock to create or hold.
        lock = contextlib.nullcontext() if dry_run else source_lock(_artifact_key("lock", source))
        async with lock, api_client() as client:
            reconciler = TaskRunReconciler(PrefectDeployments(client), client)
            planned = await reconciler.plan_reconcile(
                desired, checkout, options, outputs=outputs, step_failures=step_failures
            )
            plan, desired = planned.plan, planned.desired
            applied = await reconciler.apply_plan(plan, options, planned.resolved.failures)
        report = build_report(
            plan, applied.outcomes, checkout, desired, ref=ref, dry_run=dry_run,
            notes=applied.notes,
        )  # fmt: skip
        report = await report_task(unwalked(report))
    finally:
        shutil.rmtree(checkout.path, ignore_errors=True)
    if report.failed:
        reasons = [f"{i.deployment}: {i.detail}" for i in report.failures] + [
            f"{p.file}:{p.line}: {p.message}" for p in report.errors
        ]
        return Failed(message="; ".join(reasons)[:4000], data=report)  # type: ignore[return-value]
    return Completed(message=render_counts(report.counts), data=report)  # type: ignore[return-value]


def _on_server(client: PrefectClient) -> Reconciler:
    """The reconcile's steps through the run's client (what each task run calls)."""
    return Reconciler(PrefectDeployments(client), client)


class TaskRunReconciler(Reconciler):
    """`Reconciler`'s pipeline with each step a named task run (the UI shows what ran)."""

    async def read_live(self, desired: Desired) -> LiveState:
        return await read_live_deployments(unwalked(desired))

    async def resolve(
        self,
        desired: Desired,
        outputs: Mapping[str, Mapping[str, Any]] | None,
        failures: Mapping[str, str],
    ) -> Resolved:
        return await resolve_templates(unwalked(desired), outputs, failures)

    async def plan(
        self,
        desired: Desired,
        state: LiveState,
        checkout: Checkout,
        options: ReconcileOptions,
        resolved: Resolved,
    ) -> Plan:
        return await plan_changes(
            unwalked(desired), unwalked(state), checkout, options, unwalked(resolved)
        )

    async def create_pool(self, pool: PoolToCreate) -> None:
        # Prefect's Task.__call__ overloads do not model an async task with return_state.
        state = await create_work_pool.with_options(task_run_name=f"create-work-pool[{pool.name}]")(  # type: ignore[misc]
            pool, return_state=True
        )
        await state.aresult()  # raises what failed it

    async def write(self, verb: str, changes: Sequence[Change], limit: WriteLimit) -> list[Outcome]:
        if not changes:
            return []
        task_fn = register if verb == "register" else prune_deployment
        return await _run_batches(task_fn, changes, limit)
