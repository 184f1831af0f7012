"""One reconcile through the `DeploymentsAPI` seam: the plan, then the plan applied.

The pipeline after the desired state is built (`reconcile.build_desired`,
`restrict_steps`) and the build steps ran, written once:

- `Reconciler.plan_reconcile`: `read_live` beside `resolve` (the server reads while this
  process resolves the templates), then `plan`;
- `Reconciler.apply_plan`: `create_pool` for each missing pool, `write` the registrations,
  then `write` the prunes (skipped after a failed registration, `prune_skip_reason`).

A `Reconciler` runs each step in the caller's coroutine: the CLI's `plan` on a server
(`PrefectDeployments`), unit tests in memory (`InMemoryDeployments`, held to the real
adapter by tests/integration/test_api_contract.py). The flow runs the same two methods on
its subclass (`flows/deploy_manager.py`: `TaskRunReconciler`), whose steps are the named
task runs a person sees in the UI, each calling the base step.

`client` is Prefect's client for what templates read from the server (`{{ prefect.
variables.* }}`, block references); None where there is no server: a template that needs
one then fails its deployment with the reason (`prefect_steps.resolve_specs`).
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

from control_plane.checkouts import Checkout
from control_plane.plans import Change, Plan, PoolToCreate
from control_plane.prefect_api import WriteLimit
from control_plane.prefect_steps import Resolved, resolve_specs
from control_plane.reconcile import (
    DeploymentsAPI,
    Desired,
    LiveState,
    Outcome,
    ReconcileOptions,
    apply_change,
    failure_detail,
    make_plan,
    prune_skip_reason,
    read_state,
    register_changes,
)
from control_plane.steps import redact_plan

if TYPE_CHECKING:
    from prefect.client.orchestration import PrefectClient

A = TypeVar("A")
B = TypeVar("B")
REGISTER_CONCURRENCY = 8  # writes at most; one at a time once the server refuses (WriteLimit)


async def together(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Both results, the two run side by side; a failure of either is raised once both
    have ended (neither is left running behind the caller)."""
    results = await asyncio.gather(first, second, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result
    return cast(A, results[0]), cast(B, results[1])


@dataclass(frozen=True)
class Planned:
    """A plan and what it was made from: the specs with their templates resolved."""

    plan: Plan
    desired: Desired  # its specs resolved: what the plan compared and will send
    resolved: Resolved


@dataclass(frozen=True)
class Applied:
    outcomes: list[Outcome]
    notes: list[str]


class Reconciler:
    """The steps of a reconcile against one `DeploymentsAPI`, and the pipeline of them."""

    def __init__(self, api: DeploymentsAPI, client: PrefectClient | None = None) -> None:
        self.api = api
        self.client = client

    # --- the steps (the flow's subclass runs each as a task run) ------------------------

    async def read_live(self, desired: Desired) -> LiveState:
        return await read_state(self.api, desired)

    async def resolve(
        self,
        desired: Desired,
        outputs: Mapping[str, Mapping[str, Any]] | None,
        failures: Mapping[str, str],
    ) -> Resolved:
        return await resolve_specs(
            desired.specs,
            self.client,
            outputs=outputs,
            failures=failures,
            default_version=desired.context.short_commit,
        )

    async def plan(
        self,
        desired: Desired,
        state: LiveState,
        checkout: Checkout,
        options: ReconcileOptions,
        resolved: Resolved,
    ) -> Plan:
        plan = make_plan(desired, state, checkout, options)
        # block values never show in a plan, a report or an artifact
        return redact_plan(plan, resolved.secrets, resolved.block_paths)

    async def create_pool(self, pool: PoolToCreate) -> None:
        await self.api.create_work_pool(pool.name, pool.type)

    async def write(self, verb: str, changes: Sequence[Change], limit: WriteLimit) -> list[Outcome]:
        """Register or prune `changes`, `limit` writes at a time; a failure is its Outcome."""

        async def one(change: Change) -> Outcome:
            async with limit:
                return await apply_change(self.api, change)

        return list(await asyncio.gather(*(one(c) for c in changes)))

    # --- the pipeline -------------------------------------------------------------------

    async def plan_reconcile(
        self,
        desired: Desired,
        checkout: Checkout,
        options: ReconcileOptions,
        *,
        outputs: Mapping[str, Mapping[str, Any]] | None = None,
        step_failures: Mapping[str, str] | None = None,
    ) -> Planned:
        """The plan of one reconcile. `outputs` are the build steps' outputs per deployment
        (None: no step ran, what a step fills shows `<from step ...>`); `step_failures`
        the deployments whose steps failed (planned, never written)."""
        # The live read needs the deployments' names only, which no template sets.
        state, resolved = await together(
            self.read_live(desired), self.resolve(desired, outputs, step_failures or {})
        )
        desired = dataclasses.replace(desired, specs=resolved.specs)
        plan = await self.plan(desired, state, checkout, options, resolved)
        return Planned(plan, desired, resolved)

    async def apply_plan(
        self, plan: Plan, options: ReconcileOptions, failures: Mapping[str, str] | None = None
    ) -> Applied:
        """Create the missing pools, register, then prune; a deployment whose steps or
        templates failed (`failures`) is not written, and its failure is an Outcome."""
        failures = failures or {}
        outcomes = [
            Outcome(deployment=c.name, action=c.action, status="failed", detail=failures[c.name])
            for c in plan.changes
            if c.name in failures and c.desired is not None
        ]
        if options.dry_run:
            return Applied(outcomes, ["dry run: nothing was changed"])
        notes: list[str] = []
        changes = tuple(c for c in register_changes(plan) if c.name not in failures)
        for pool in plan.pools:
            try:
                await self.create_pool(pool)
            except Exception as exc:
                reason = f"work pool {pool.name} could not be created: {failure_detail(exc)}"
                notes.append(reason)
                outcomes += [
                    Outcome(deployment=c.name, action=c.action, status="failed", detail=reason)
                    for c in changes
                    if c.name in pool.used_by
                ]
                changes = tuple(c for c in changes if c.name not in pool.used_by)
            else:
                notes.append(f"created work pool {pool.name} ({pool.type})")
        limit = WriteLimit(REGISTER_CONCURRENCY)
        outcomes += await self.write("register", changes, limit)
        prunes = plan.by_action("prune")
        skip = prune_skip_reason(outcomes, plan)
        if prunes and skip:
            notes.append(skip)
            outcomes += [
                Outcome(deployment=c.name, action="prune", status="skipped", detail=skip)
                for c in prunes
            ]
        elif prunes:
            outcomes += await self.write("prune", prunes, limit)
        return Applied(outcomes, notes)
