"""Reconcile: one commit of a repository made live, step by step, and what happened.

The functions the pipeline (`reconciler.Reconciler`: plan, then apply) is made of, each
one a step tests call directly, none of them a task run itself:

- `build_desired`: discovery + environment -> `DeploymentSpec`s (pure);
- `restrict_steps`: the deployments whose build/push steps the operator's allow-list
  refuses are set aside (a problem each, neither registered nor pruned); the steps of
  the others run and their templates are resolved at apply time (`prefect_steps`);
- `finalize_specs`: pin process-pool deployments to the commit with a `git_clone` pull
  step and put schedules and triggers in the form the server returns (no I/O);
- `read_state`: the live deployments and pools through the `DeploymentsAPI` seam (the
  Protocol is here, with its consumer; `prefect_api` and `memory_api` implement it);
- `make_plan` / `compute_plan`: the pure plan against the live deployments;
- `apply_change`: one create, update or prune through a `DeploymentsAPI`, retried alone
  on a transient error; `batch_changes` groups changes for the task runs that apply them;
- `build_report`: the plan and the outcomes as one `Report`.

Orchestration only: talking to Prefect is `prefect_api`'s job, git is `sources`'.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field

from control_plane import plans
from control_plane.checkouts import Checkout
from control_plane.deployments import (
    DeploymentSpec,
    LiveDeployment,
    build_deployment_specs,
    matches_only,
    select,
)
from control_plane.discovery import UNREAD_CODES, Discovery
from control_plane.environments import Environment
from control_plane.errors import DeployManagerError, Problem, TransientError
from control_plane.markers import scope_tags
from control_plane.plans import Change, Plan, PlanPolicy, UnreadFile, WorkPool
from control_plane.steps import StepPolicy, check_step_policy
from control_plane.tables import render_columns, render_counts, short_sha

PROCESS_POOL_TYPES = frozenset({"process"})
GIT_CLONE_STEP = "prefect.deployments.steps.git_clone"


@dataclass(frozen=True)
class ReconcileOptions:
    environment: str | None = None  # overrides the branch mapping
    dry_run: bool = False
    prune: bool = True
    force_prune: bool = False
    only: tuple[str, ...] = ()  # flow or deployment name globs


@dataclass(frozen=True)
class Desired:
    """What one commit asks for in one environment."""

    environment: Environment
    context: Checkout  # the checkout it was built from
    specs: tuple[DeploymentSpec, ...]
    problems: tuple[Problem, ...]
    failed_files: frozenset[str]
    unread_files: tuple[UnreadFile, ...]
    scope_tags: frozenset[str]
    prune_blocked_reason: str | None
    creatable_pools: Mapping[str, str] = field(default_factory=dict)  # name -> type


def build_desired(checkout: Checkout, discovery: Discovery, options: ReconcileOptions) -> Desired:
    environment = discovery.config.environment_for(checkout.branch, options.environment)
    specs, name_problems = build_deployment_specs(discovery, environment, checkout)
    specs = select(specs, options.only)
    problems = (*discovery.problems, *name_problems)
    blocked = None
    if not environment.prune.enabled:
        blocked = f"the prune policy of environment {environment.name!r} is switched off"
    elif any(p.code == "invalid-config" for p in problems):
        blocked = "deploy-manager.yaml failed to parse; nothing is pruned until it is fixed"
    return Desired(
        environment=environment,
        context=checkout,
        specs=specs,
        problems=problems,
        failed_files=discovery.failed_files | {p.file for p in name_problems},
        unread_files=unread_files(discovery),
        scope_tags=scope_tags(checkout.source, environment, checkout.branch),
        prune_blocked_reason=blocked,
        creatable_pools=(
            {environment.work_pool.name: environment.work_pool.type or "process"}
            if environment.work_pool.create
            else {}
        ),
    )


def restrict_steps(desired: Desired, discovery: Discovery, policy: StepPolicy) -> Desired:
    """`desired` without the deployments that would run a step `policy` refuses.

    Each refused step is an error at its file and line; the deployments that run it are
    not registered, and their file counts as failed, so what they registered before is
    kept rather than pruned.
    """
    step_lines = {
        (yaml_file.path, line): lines
        for yaml_file in discovery.prefect_yaml_files
        for line, lines in yaml_file.step_lines.items()
    }
    problems, blocked = check_step_policy(desired.specs, policy, step_lines)
    if not problems:
        return desired
    return dataclasses.replace(
        desired,
        specs=tuple(s for s in desired.specs if s.full_name not in blocked),
        problems=(*desired.problems, *problems),
        failed_files=desired.failed_files | {p.file for p in problems},
    )


def unread_files(discovery: Discovery) -> tuple[UnreadFile, ...]:
    """The prefect.yaml files whose deployments this run could not enumerate."""
    unread = {}
    for yaml_file in discovery.prefect_yaml_files:
        for problem in yaml_file.errors:
            if problem.code in UNREAD_CODES and yaml_file.path not in unread:
                unread[yaml_file.path] = UnreadFile(yaml_file.path, problem.code)
    return tuple(unread.values())


def pinned_pull_steps(checkout: Checkout) -> tuple[dict[str, Any], ...] | None:
    """A `git_clone` of the source at exactly this commit: what a process worker runs.

    The step Prefect writes for `GitRepository(url=..., commit_sha=..., credentials=block)
    .to_pull_step()` (`prefect/runner/storage.py`), written out here rather than made by it:

    - `to_pull_step` refers to credentials only through a saved `Block` instance
      (`block.get_block_placeholder()`, which needs the document name that loading the
      block from the API sets); a block's name cannot be given instead, a dict of
      credentials becomes a dict in the step, a plain token raises. Here there is no I/O
      (`deploy-manager plan` runs without a server) and the checkout carries the
      credentials block's name, never the block and its token;
    - importing `prefect.runner.storage` imports Prefect's `Runner`: ~0.09 s more in the
      flow's process, nearly the whole `plan` task of a no-op reconcile (0.11 s in
      bench/README.md);
    - Prefect's step also has `"branch": None` (git_clone's default). A plan drops None
      values when it compares (`plans._normal`), so it would decide nothing differently;
      leaving it out keeps the step every registered deployment already has, byte for byte.

    tests/unit/test_reconcile.py and tests/integration/test_credentials.py (a saved
    credentials block on a real server) hold this step to Prefect's `to_pull_step()`.
    """
    if not checkout.remote_url or not checkout.commit:
        return None
    args: dict[str, Any] = {"repository": checkout.remote_url, "commit_sha": checkout.commit}
    if checkout.credentials_block:
        args["credentials"] = (
            "{{ prefect.blocks.github-credentials." + checkout.credentials_block + " }}"
        )
    return ({GIT_CLONE_STEP: args},)


def finalize_specs(
    specs: Sequence[DeploymentSpec],
    live: Sequence[LiveDeployment],
    pool_types: Mapping[str, str],
    checkout: Checkout,
) -> tuple[DeploymentSpec, ...]:
    """Specs as they will be written: pull steps pinned, schedules and triggers canonical.

    A spec still waiting for its build steps (`<from step ...>` in a cron) keeps the
    schedules and triggers it has: it is shown, never written.
    """
    from control_plane.prefect_objects import canonical_schedules, canonical_triggers

    live_by_name = {d.full_name: d for d in live}
    pull = pinned_pull_steps(checkout)
    out = []
    for spec in specs:
        current = live_by_name.get(spec.full_name)
        update: dict[str, Any] = {}
        try:
            update["schedules"] = canonical_schedules(
                spec.schedules, current.schedules if current else ()
            )
            update["automations"] = canonical_triggers(spec, current.id if current else None)
        except ValueError:
            update.pop("schedules", None)
        pool_type = pool_types.get(spec.work_pool_name or "")
        if spec.pull_steps is None and pool_type in PROCESS_POOL_TYPES and pull:
            update["pull_steps"] = pull
        out.append(spec.model_copy(update=update))
    return tuple(out)


class DeploymentsAPI(Protocol):
    """What a reconcile needs from a Prefect server: the seam its steps take.

    `prefect_api.PrefectDeployments` is the real one (Prefect's client);
    `memory_api.InMemoryDeployments` the one unit tests use, held to the real one by
    tests/integration/test_api_contract.py.
    """

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


@dataclass(frozen=True)
class LiveState:
    """What the server has that the plan compares with and checks against."""

    deployments: tuple[LiveDeployment, ...]
    pools: Mapping[str, WorkPool] | None  # None: not read (a plan without a server)


async def read_state(api: DeploymentsAPI, desired: Desired) -> LiveState:
    """The managed deployments in scope, the names the desired ones collide with, the pools."""
    live, pools = await asyncio.gather(
        api.read_live(desired.scope_tags, [s.full_name for s in desired.specs]),
        api.read_work_pools(),
    )
    return LiveState(tuple(live), pools)


def make_plan(
    desired: Desired, state: LiveState, checkout: Checkout, options: ReconcileOptions
) -> Plan:
    """The plan of one reconcile; the flow and `deploy-manager plan` both make it here."""
    creatable = desired.creatable_pools
    pool_types = {**creatable, **{n: p.type for n, p in (state.pools or {}).items()}}
    specs = finalize_specs(desired.specs, state.deployments, pool_types, checkout)
    refused: dict[str, tuple[str, str]] = {}
    warnings: list[Problem] = []
    if state.pools is not None:
        refused, warnings = job_variable_problems(specs, state.pools)
    return compute_plan(
        desired,
        specs,
        state.deployments,
        options,
        problems=(*desired.problems, *warnings),
        pools=None if state.pools is None else set(state.pools),
        refused=refused,
    )


def job_variable_problems(
    specs: Sequence[DeploymentSpec], pools: Mapping[str, WorkPool]
) -> tuple[dict[str, tuple[str, str]], list[Problem]]:
    """Job variables the pool's template refuses (the deployment is not written) or ignores."""
    from control_plane.prefect_objects import check_job_variables

    refused: dict[str, tuple[str, str]] = {}
    warnings: list[Problem] = []
    for spec in specs:
        pool = pools.get(spec.work_pool_name or "")
        if pool is None or not spec.job_variables:
            continue
        error, unknown = check_job_variables(spec.job_variables, pool)
        if error:
            refused[spec.full_name] = (
                f"job variables refused by work pool {pool.name!r} ({pool.type}): {error}",
                f"fix job_variables of the deployment (or of its environment in "
                f"deploy-manager.yaml); `prefect work-pool inspect {pool.name}` shows the "
                "variables the pool takes",
            )
        if unknown:
            known = ", ".join(sorted(pool.variables.get("properties") or {}))
            warnings.append(
                Problem(
                    spec.source_file,
                    spec.source_line,
                    "unknown-job-variable",
                    f"deployment {spec.full_name}: job variable(s) {', '.join(unknown)} are not "
                    f"in the job template of work pool {pool.name!r} ({pool.type}); its worker "
                    "ignores them",
                    f"use one of: {known}",
                    "warning",
                )
            )
    return refused, warnings


def compute_plan(
    desired: Desired,
    specs: Sequence[DeploymentSpec],
    live: Sequence[LiveDeployment],
    options: ReconcileOptions,
    *,
    problems: Sequence[Problem] | None = None,
    pools: set[str] | None = None,
    refused: Mapping[str, tuple[str, str]] | None = None,
) -> Plan:
    live = [d for d in live if _selected(d, options.only)]
    return plans.compute(
        specs,
        live,
        PlanPolicy(
            scope_tags=desired.scope_tags,
            prune=options.prune,
            force_prune=options.force_prune,
            max_prune_fraction=desired.environment.prune.max_fraction,
            failed_files=desired.failed_files,
            unread_files=desired.unread_files,
            prune_blocked_reason=desired.prune_blocked_reason,
            creatable_pools=desired.creatable_pools,
        ),
        desired.problems if problems is None else problems,
        pools=pools,
        refused=refused,
    )


def _selected(live: LiveDeployment, only: Sequence[str]) -> bool:
    return matches_only((live.name, live.flow_name, live.full_name), only)


# --- outcomes and the report -------------------------------------------------------------

Status = Literal["done", "failed", "skipped", "planned", "unchanged"]


class Outcome(BaseModel):
    """What happened to one change."""

    model_config = ConfigDict(frozen=True)

    deployment: str
    action: str
    status: Status
    detail: str | None = None
    deployment_id: str | None = None


class ReportItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    deployment: str = Field(description="flow/deployment")
    action: str = Field(description="create, update, unchanged, prune, keep or conflict")
    status: Status
    detail: str | None = None
    fields: tuple[str, ...] = Field(default=(), description="Fields an update changes.")
    diffs: tuple[dict[str, Any], ...] = ()
    version: str | None = None
    deployment_id: str | None = None


class Report(BaseModel):
    """What one reconcile planned, did, skipped and failed, and why."""

    model_config = ConfigDict(frozen=True)

    source: str
    ref: str | None = None
    branch: str | None = None
    commit: str | None = None
    environment: str
    dry_run: bool = False
    items: tuple[ReportItem, ...] = ()
    problems: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = ()

    def count(self, action: str, status: str | None = None) -> int:
        return sum(
            1 for i in self.items if i.action == action and (status is None or i.status == status)
        )

    @property
    def counts(self) -> dict[str, int]:
        return {action: self.count(action) for action in plans.ACTIONS}

    @property
    def failures(self) -> tuple[ReportItem, ...]:
        return tuple(i for i in self.items if i.status == "failed")

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")

    @property
    def failed(self) -> bool:
        return bool(self.failures or self.errors)


def build_report(
    plan: Plan,
    outcomes: Sequence[Outcome],
    checkout: Checkout,
    desired: Desired,
    *,
    ref: str | None,
    dry_run: bool,
    notes: Sequence[str] = (),
) -> Report:
    by_name = {(o.deployment, o.action): o for o in outcomes}
    items = []
    for change in plan.changes:
        outcome = by_name.get((change.name, change.action))
        if outcome is not None and outcome.status == "failed":
            status: Status = "failed"  # e.g. its build steps failed, whatever it planned
        elif change.action in ("unchanged",):
            status = "unchanged"
        elif change.action in ("conflict", "invalid"):
            status = "failed"
        elif change.action == "keep":
            status = "skipped"
        elif outcome is not None:
            status = outcome.status
        else:
            status = "planned" if dry_run else "skipped"
        detail = change.reason or (outcome.detail if outcome else None)
        items.append(
            ReportItem(
                deployment=change.name,
                action=change.action,
                status=status,
                detail=detail,
                fields=tuple(d.field for d in change.diffs),
                diffs=tuple({"field": d.field, "old": d.old, "new": d.new} for d in change.diffs),
                version=change.desired.version if change.desired else None,
                deployment_id=(outcome.deployment_id if outcome else None)
                or (change.live.id if change.live else None),
            )
        )
    return Report(
        source=checkout.source,
        ref=ref,
        branch=checkout.branch,
        commit=checkout.commit,
        environment=desired.environment.name,
        dry_run=dry_run,
        items=tuple(items),
        problems=tuple(plan.problems),
        notes=tuple(notes),
    )


def render_report_table(report: Report) -> str:
    rows = []
    for item in report.items:
        detail = ", ".join(item.fields) if item.fields else (item.detail or "")
        rows.append((item.action, item.status, item.deployment, detail))
    lines = render_columns(("ACTION", "STATUS", "DEPLOYMENT", "DETAIL"), rows)
    head = (
        f"{'DRY RUN: ' if report.dry_run else ''}{report.source}@{short_sha(report.commit)} "
        f"({report.branch or report.ref or '-'}) -> {report.environment}: "
        f"{render_counts(report.counts)}"
    )
    out = [head, *lines]
    for problem in report.problems:
        where = f"{problem.file}:{problem.line}" if problem.line else problem.file
        remedy = f" ({problem.remedy})" if problem.remedy else ""
        out.append(f"{problem.severity}: {where}: {problem.code}: {problem.message}{remedy}")
    out.extend(report.notes)
    if report.failed:
        out.append(f"FAILED: {len(report.failures)} change(s), {len(report.errors)} problem(s)")
    return "\n".join(out)


def prune_skip_reason(outcomes: Sequence[Outcome], plan: Plan | None = None) -> str | None:
    failed = [o.deployment for o in outcomes if o.status == "failed"]
    failed += [c.name for c in plan.by_action("invalid")] if plan else []
    if not failed:
        return None
    return (
        f"pruning skipped: {len(failed)} deployment(s) could not be written "
        f"({', '.join(failed[:5])}{', ...' if len(failed) > 5 else ''}); a prune after a "
        "partial apply could remove what the failed ones were meant to replace"
    )


def failure_detail(exc: BaseException) -> str:
    if isinstance(exc, DeployManagerError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def register_changes(plan: Plan) -> tuple[Change, ...]:
    return tuple(c for c in plan.changes if c.action in ("create", "update"))


# --- applying changes ---------------------------------------------------------------------

RETRY_DELAYS = (1.0, 2.0, 4.0)  # a transient error of one change: sent again after these (s)


async def apply_change(
    api: DeploymentsAPI, change: Change, *, retry_delays: Sequence[float] = RETRY_DELAYS
) -> Outcome:
    """Register (create/update) or prune one change, and say what happened.

    Never raises: a failure is this change's failed `Outcome`, so the caller goes on with
    the others. A `TransientError` (an unreachable or overloaded API) is retried for this
    change alone after each of `retry_delays`; anything else fails at once.
    """
    for delay in (*retry_delays, None):
        try:
            if change.action == "prune":
                if change.live is None:
                    raise ValueError(f"prune of {change.name} without a live deployment")
                await api.delete(change.live)
                return Outcome(deployment=change.name, action="prune", status="done")
            if change.desired is None:
                raise ValueError(f"{change.action} of {change.name} without a desired spec")
            changed = [d.field for d in change.diffs] if change.live else None
            deployment_id = await api.register(change.desired, change.live, changed)
            return Outcome(
                deployment=change.name, action=change.action, status="done",
                deployment_id=deployment_id,
            )  # fmt: skip
        except Exception as exc:
            if isinstance(exc, TransientError) and delay is not None:
                await asyncio.sleep(delay)
                continue
            return Outcome(
                deployment=change.name, action=change.action, status="failed",
                detail=failure_detail(exc),
            )  # fmt: skip
    raise AssertionError("unreachable: the last attempt returns")


def batch_changes(changes: Sequence[Change], size: int) -> list[tuple[Change, ...]]:
    """`changes` in order, in batches of at most `size` (sizes differing by at most one)."""
    if not changes:
        return []
    count = -(-len(changes) // max(1, size))
    base, extra = divmod(len(changes), count)
    out, start = [], 0
    for index in range(count):
        end = start + base + (1 if index < extra else 0)
        out.append(tuple(changes[start:end]))
        start = end
    return out
