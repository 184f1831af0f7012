"""The `deploy-manager` flow: make the live deployments match a git repository at one commit.

Thin on purpose: every task wraps one call into `control_plane` and names itself so a
person reading the Prefect UI knows what it did (`fetch-source`, `discover-flows`,
`read-live-deployments`, `plan`, `register[batch 3/10: 50 deployments]` (or
`register[flow/deployment]` for a single change), `prune[...]`, `report`). A failure of
one deployment is recorded and the others go on; the run ends Failed, with every reason
listed, after all independent work is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
from collections.abc import Sequence
from typing import Any, TypeVar, cast

from prefect import flow, get_run_logger, task
from prefect.artifacts import acreate_markdown_artifact, acreate_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import State
from prefect.states import Completed, Failed
from prefect.utilities.annotations import quote

from control_plane.discovery import Discovery, discover
from control_plane.errors import TransientError
from control_plane.plans import Change, Plan, PoolToCreate, render_table
from control_plane.prefect_api import PrefectDeployments, WriteLimit, api_client
from control_plane.reconcile import (
    Desired,
    LiveState,
    Outcome,
    ReconcileOptions,
    Report,
    apply_change,
    batch_changes,
    build_desired,
    build_report,
    failure_detail,
    make_plan,
    prune_skip_reason,
    read_state,
    register_changes,
    render_report_table,
)
from control_plane.sources import Checkout, fetch_checkout

T = TypeVar("T")
REGISTER_CONCURRENCY = 8  # writes at most; one at a time once the server refuses (WriteLimit)
WRITE_BATCH = 50  # changes per register/prune task run


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
async def fetch_source(source: str, ref: str | None) -> Checkout:
    return await fetch_checkout(source, ref)


@task(name="discover-flows", task_run_name="discover-flows", cache_policy=NO_CACHE)
def discover_flows(checkout: Checkout) -> Discovery:
    return discover(checkout.path)


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
        return await read_state(PrefectDeployments(client), desired)


@task(name="plan", task_run_name="plan", cache_policy=NO_CACHE)
async def plan_changes(
    desired: Desired, state: LiveState, checkout: Checkout, options: ReconcileOptions
) -> Plan:
    plan = make_plan(desired, state, checkout, options)
    await acreate_markdown_artifact(
        key=_artifact_key("plan", checkout.source),
        markdown=f"# Plan for {checkout.source}@{(checkout.commit or '-')[:8]}\n\n"
        f"```\n{render_table(plan)}\n```\n",
        description=f"deploy-manager plan, environment {desired.environment.name}",
    )
    return plan


@task(name="create-work-pool", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2,
      retry_condition_fn=_retry_transient)  # fmt: skip
async def create_work_pool(pool: PoolToCreate) -> None:
    async with api_client() as client:
        await PrefectDeployments(client).create_work_pool(pool.name, pool.type)


async def _apply_batch(verb: str, changes: Sequence[Change], limit: WriteLimit) -> list[Outcome]:
    """Apply changes one after another through one client; each is retried on its own."""
    logger = get_run_logger()
    outcomes: list[Outcome] = []
    async with api_client() as client:
        api = PrefectDeployments(client)
        for change in changes:
            async with limit:
                outcome = await apply_change(api, change)
            if outcome.status == "failed":
                logger.warning("%s[%s] failed: %s", verb, change.name, outcome.detail)
            outcomes.append(outcome)
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
    get_run_logger().info("%s", render_report_table(report))
    await acreate_markdown_artifact(
        key=_artifact_key("report", report.source),
        markdown=f"# deploy-manager report\n\n```\n{render_report_table(report)}\n```\n",
        description=f"{report.source}@{(report.commit or '-')[:8]} -> {report.environment}",
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


@flow(name="deploy-manager", log_prints=True)
async def deploy_manager(
    source: str,
    ref: str | None = None,
    environment: str | None = None,
    dry_run: bool = False,
    prune: bool = True,
    force_prune: bool = False,
    only: list[str] | None = None,
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
    """
    from prefect.concurrency.asyncio import concurrency

    options = ReconcileOptions(
        environment=environment or None,
        dry_run=dry_run,
        prune=prune,
        force_prune=force_prune,
        only=tuple(only or ()),
    )
    checkout = await fetch_source(source, ref or None)
    try:
        discovery = discover_flows(checkout)
        desired = build_desired(checkout, discovery, options)
        lock = _artifact_key("lock", source)
        await _ensure_lock(lock)
        # One reconcile of a source at a time: the plan must see what the last one wrote.
        async with concurrency(lock, occupy=1, strict=True):
            state = await read_live_deployments(unwalked(desired))
            plan = await plan_changes(unwalked(desired), unwalked(state), checkout, options)
            outcomes, notes = await _apply(plan, options)
        report = build_report(
            plan, outcomes, checkout, desired, ref=ref, dry_run=dry_run, notes=notes
        )
        report = await report_task(unwalked(report))
    finally:
        shutil.rmtree(checkout.path, ignore_errors=True)
    if report.failed:
        reasons = [f"{i.deployment}: {i.detail}" for i in report.failures] + [
            f"{p['file']}:{p['line']}: {p['message']}" for p in report.errors
        ]
        return Failed(message="; ".join(reasons)[:4000], data=report)  # type: ignore[return-value]
    return Completed(message=render_counts(report), data=report)  # type: ignore[return-value]


def render_counts(report: Report) -> str:
    return ", ".join(f"{n} {a}" for a, n in report.counts.items() if n) or "nothing to do"


async def _apply(plan: Plan, options: ReconcileOptions) -> tuple[list[Outcome], list[str]]:
    if options.dry_run:
        return [], ["dry run: nothing was changed"]
    notes: list[str] = []
    changes = register_changes(plan)
    outcomes: list[Outcome] = []
    for pool in plan.pools:
        # Prefect's Task.__call__ overloads do not model an async task with return_state.
        state = await create_work_pool.with_options(task_run_name=f"create-work-pool[{pool.name}]")(  # type: ignore[misc]
            pool, return_state=True
        )
        if state.is_completed():
            notes.append(f"created work pool {pool.name} ({pool.type})")
            continue
        reason = f"work pool {pool.name} could not be created: {state.message}"
        notes.append(reason)
        outcomes += [
            Outcome(deployment=c.name, action=c.action, status="failed", detail=reason)
            for c in changes
            if c.name in pool.used_by
        ]
        changes = tuple(c for c in changes if c.name not in pool.used_by)
    limit = WriteLimit(REGISTER_CONCURRENCY)
    outcomes += await _run_batches(register, changes, limit)
    prunes = plan.by_action("prune")
    skip = prune_skip_reason(outcomes, plan)
    if prunes and skip:
        notes.append(skip)
        outcomes += [
            Outcome(deployment=c.name, action="prune", status="skipped", detail=skip)
            for c in prunes
        ]
    else:
        outcomes += await _run_batches(prune_deployment, prunes, limit)
    return outcomes, notes
