"""Plans: what must change on the server to make it match the repository, as pure data.

`compute(desired, live, policy)` compares the deployments a commit asks for with the
managed deployments the server has and returns an immutable `Plan`: per deployment
`create`, `update` (with old -> new per field), `unchanged`, `prune`, `keep` (with the
reason) or `conflict` (the name is taken by a deployment we do not own), and the images
to build. It touches no network, clock or environment; rendering a plan as a table or
as JSON lives here too. Applying it is `control_plane.reconcile`'s job.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from control_plane.deployments import COMPARED_FIELDS, DeploymentSpec, LiveDeployment
from control_plane.errors import Problem
from control_plane.markers import (
    PROTECT_TAG,
    is_owned,
    is_protected,
    without_derived,
)
from control_plane.tables import column_widths, render_columns, render_counts

Action = Literal["create", "update", "unchanged", "prune", "keep", "conflict", "invalid"]
ACTIONS: tuple[Action, ...] = (
    "create", "update", "unchanged", "prune", "keep", "conflict", "invalid",
)  # fmt: skip


@dataclass(frozen=True)
class UnreadFile:
    """A prefect.yaml this run could not read: which deployments it declares is unknown.

    What it may declare is kept: deployments it defined (its file marker) and deployments
    whose files lie in its directory, where a prefect.yaml's entrypoints usually point
    (the whole repository for the root prefect.yaml).
    """

    file: str
    reason: str

    @property
    def directory(self) -> str:
        return self.file.rpartition("/")[0]

    def may_declare(self, defining_files: frozenset[str]) -> bool:
        if self.file in defining_files or not self.directory:
            return True
        return any(f.startswith(f"{self.directory}/") for f in defining_files)


@dataclass(frozen=True)
class PlanPolicy:
    """How far the plan may go: the scope it manages and the prune guards."""

    scope_tags: frozenset[str]  # a live deployment with all of these is ours
    prune: bool = True
    force_prune: bool = False
    max_prune_fraction: float = 0.5
    failed_files: frozenset[str] = frozenset()  # files that had errors in this run
    unread_files: tuple[UnreadFile, ...] = ()  # prefect.yaml files that could not be read
    prune_blocked_reason: str | None = None  # e.g. deploy-manager.yaml failed to parse
    creatable_pools: Mapping[str, str] = field(default_factory=dict)  # name -> type (create: true)


@dataclass(frozen=True)
class FieldDiff:
    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class Change:
    action: Action
    name: str  # flow/deployment
    desired: DeploymentSpec | None = None
    live: LiveDeployment | None = None
    diffs: tuple[FieldDiff, ...] = ()
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"action": self.action, "deployment": self.name}
        if self.desired is not None:
            data["entrypoint"] = self.desired.entrypoint
            data["work_pool"] = self.desired.work_pool_name
            data["version"] = self.desired.version
        if self.live is not None:
            data["id"] = self.live.id
        if self.diffs:
            data["diffs"] = [{"field": d.field, "old": d.old, "new": d.new} for d in self.diffs]
        if self.reason:
            data["reason"] = self.reason
        return data


@dataclass(frozen=True)
class ImageToBuild:
    """A distinct build step the deployments being written need."""

    step: str
    image_name: str
    tag: str | None
    dockerfile: str | None
    used_by: tuple[str, ...]


@dataclass(frozen=True)
class WorkPool:
    """A work pool as the server has it: what the plan checks deployments against."""

    name: str
    type: str
    variables: Mapping[str, Any] = field(default_factory=dict)  # base job template's schema


@dataclass(frozen=True)
class PoolToCreate:
    """A work pool the environment asks for (`create: true`) and the server lacks."""

    name: str
    type: str
    used_by: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    changes: tuple[Change, ...]
    images: tuple[ImageToBuild, ...] = ()
    pools: tuple[PoolToCreate, ...] = ()
    problems: tuple[Problem, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def by_action(self, action: Action) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action == action)

    @property
    def counts(self) -> dict[str, int]:
        return {action: len(self.by_action(action)) for action in ACTIONS}

    @property
    def writes(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.action in ("create", "update", "prune"))

    def as_dict(self) -> dict[str, Any]:
        return {
            "counts": self.counts,
            "changes": [c.as_dict() for c in self.changes],
            "pools": [
                {"name": p.name, "type": p.type, "used_by": list(p.used_by)} for p in self.pools
            ],
            "images": [
                {
                    "step": i.step,
                    "image_name": i.image_name,
                    "tag": i.tag,
                    "dockerfile": i.dockerfile,
                    "used_by": list(i.used_by),
                }
                for i in self.images
            ],
            "problems": [p.as_dict() for p in self.problems],
            "notes": list(self.notes),
        }


# --- comparing --------------------------------------------------------------------------


def _normal(value: Any) -> Any:
    """One form for equal values: tuples as lists, mappings without None values."""
    if isinstance(value, Mapping):
        return {str(k): _normal(v) for k, v in sorted(value.items()) if v is not None}
    if isinstance(value, list | tuple):
        return [_normal(v) for v in value]
    return value


def _field_value(obj: DeploymentSpec | LiveDeployment, name: str) -> Any:
    value = getattr(obj, name)
    if name == "tags":
        return without_derived(value)
    if name == "description":
        return value or None
    if name == "pull_steps":
        return _mask_pins(_normal(value)) if value else None
    return _normal(value)


def _mask_pins(value: Any) -> Any:
    """Pull steps with their commit pins hidden: the code digest decides about those."""
    if isinstance(value, dict):
        return {k: "<pinned>" if k == "commit_sha" else _mask_pins(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask_pins(v) for v in value]
    return value


def compute_diffs(desired: DeploymentSpec, live: LiveDeployment) -> tuple[FieldDiff, ...]:
    diffs = []
    for name in COMPARED_FIELDS:
        if name == "work_queue_name" and desired.work_queue_name is None:
            continue  # the server puts the deployment in the pool's default queue
        old, new = _field_value(live, name), _field_value(desired, name)
        if old != new:
            diffs.append(FieldDiff(name, old, new))
    if desired.paused is not None and bool(live.paused) != desired.paused:
        diffs.append(FieldDiff("paused", live.paused, desired.paused))
    return tuple(diffs)


def _owned(live: LiveDeployment, scope: frozenset[str]) -> bool:
    return is_owned(live.tags, scope)


def _images(specs: Iterable[DeploymentSpec]) -> tuple[ImageToBuild, ...]:
    found: dict[str, tuple[dict[str, Any], list[str]]] = {}
    for spec in specs:
        for step in spec.build_steps or ():
            for step_name, args in step.items():
                if not step_name.endswith("build_docker_image") or not isinstance(args, Mapping):
                    continue
                key = json.dumps([step_name, _normal(args)], sort_keys=True, default=str)
                found.setdefault(key, ({step_name: args}, []))[1].append(spec.full_name)
    images = []
    for step, users in found.values():
        ((step_name, args),) = step.items()
        images.append(
            ImageToBuild(
                step=step_name,
                image_name=str(args.get("image_name", "")),
                tag=None if args.get("tag") is None else str(args.get("tag")),
                dockerfile=None if args.get("dockerfile") is None else str(args["dockerfile"]),
                used_by=tuple(users),
            )
        )
    return tuple(sorted(images, key=lambda i: (i.image_name, i.tag or "")))


def compute(
    desired: Sequence[DeploymentSpec],
    live: Sequence[LiveDeployment],
    policy: PlanPolicy,
    problems: Sequence[Problem] = (),
    *,
    pools: Collection[str] | None = None,
    refused: Mapping[str, tuple[str, str]] | None = None,
) -> Plan:
    """The changes that make `live` match `desired`, within `policy`.

    `pools` are the work pool names the server has (None: unknown, not checked);
    `refused` maps a deployment (`flow/name`) to why the server would refuse it as
    declared and the remedy (its job variables, checked against the pool by the caller). Such a
    deployment, and one naming a pool that does not exist, is `invalid`: not written,
    its live version (if any) left as it is, and a problem at its file and line.
    """
    live_by_name = {d.full_name: d for d in live}
    refused = dict(refused or {})
    found = list(problems)
    to_create: dict[str, list[str]] = {}
    if pools is not None:
        for spec in desired:
            pool = spec.work_pool_name
            if not pool or pool in pools or spec.full_name in refused:
                continue
            if pool in policy.creatable_pools:
                to_create.setdefault(pool, []).append(spec.full_name)
            else:
                refused[spec.full_name] = _missing_pool_reason(spec, pools)
    changes: list[Change] = []
    for spec in desired:
        current = live_by_name.get(spec.full_name)
        if current is not None and not _owned(current, policy.scope_tags):
            missing = sorted(policy.scope_tags - set(current.tags))
            changes.append(
                Change(
                    "conflict",
                    spec.full_name,
                    desired=spec,
                    live=current,
                    reason=(
                        "a deployment with this name exists and is not managed by this source "
                        f"(it lacks the tags {', '.join(missing)}); it is left alone. Rename "
                        "the deployment, or delete the existing one, or add those tags to it "
                        "to hand it over"
                    ),
                )
            )
        elif spec.full_name in refused:
            what, remedy = refused[spec.full_name]
            changes.append(Change("invalid", spec.full_name, desired=spec, live=current,
                                  reason=f"{what}; {remedy}"))  # fmt: skip
            found.append(
                Problem(
                    spec.source_file,
                    spec.source_line,
                    "refused-by-server",
                    f"deployment {spec.full_name}: {what}",
                    remedy,
                )
            )
        elif current is None:
            changes.append(Change("create", spec.full_name, desired=spec))
        else:
            diffs = compute_diffs(spec, current)
            action: Action = "update" if diffs else "unchanged"
            changes.append(Change(action, spec.full_name, desired=spec, live=current, diffs=diffs))

    wanted = {spec.full_name for spec in desired}
    orphans = [d for d in live if d.full_name not in wanted and _owned(d, policy.scope_tags)]
    changes.extend(_prune_changes(orphans, live, policy))
    writes = [c.desired for c in changes if c.action in ("create", "update") and c.desired]
    return Plan(
        changes=tuple(sorted(changes, key=lambda c: (ACTIONS.index(c.action), c.name))),
        images=_images(w for w in writes if w is not None),
        pools=tuple(
            PoolToCreate(name, policy.creatable_pools[name], tuple(users))
            for name, users in sorted(to_create.items())
        ),
        problems=tuple(found),
    )


def _missing_pool_reason(spec: DeploymentSpec, pools: Collection[str]) -> tuple[str, str]:
    names = sorted(pools)
    known = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    known = known or "none"
    return (
        f"work pool {spec.work_pool_name!r} does not exist on the server (it has: {known})",
        f"create it (prefect work-pool create {spec.work_pool_name} --type process), or name "
        "an existing pool in the deployment's work_pool.name or in deploy-manager.yaml, or "
        "let deploy-manager.yaml create it: work_pool: {name: ..., type: process, create: true}",
    )


def _prune_changes(
    orphans: list[LiveDeployment], live: Sequence[LiveDeployment], policy: PlanPolicy
) -> list[Change]:
    changes: list[Change] = []
    candidates: list[LiveDeployment] = []
    for deployment in sorted(orphans, key=lambda d: d.full_name):
        reason = None
        if not policy.prune:
            reason = "pruning is switched off for this run"
        elif policy.prune_blocked_reason:
            reason = policy.prune_blocked_reason
        elif is_protected(deployment.tags):
            reason = f"tagged {PROTECT_TAG}: never pruned"
        else:
            files = deployment.defining_files
            broken = sorted(files & policy.failed_files)
            unread = [u for u in policy.unread_files if u.may_declare(files)]
            if unread:
                reason = (
                    f"{unread[0].file} could not be read ({unread[0].reason}); the deployments "
                    "it may declare are kept until it is fixed"
                )
            elif broken:
                reason = (
                    f"{', '.join(broken)} had errors in this run; the deployment is kept "
                    "until the file is fixed"
                )
        if reason:
            changes.append(Change("keep", deployment.full_name, live=deployment, reason=reason))
        else:
            candidates.append(deployment)

    managed = sum(1 for d in live if _owned(d, policy.scope_tags))
    if candidates and not policy.force_prune:
        limit = policy.max_prune_fraction * managed
        everything = len(candidates) == managed
        if everything or len(candidates) > limit:
            why = (
                f"all {managed} managed deployments"
                if everything
                else f"{len(candidates)} of {managed} managed deployments, more than the "
                f"policy's {policy.max_prune_fraction:.0%}"
            )
            reason = (
                f"prune refused as a whole: it would delete {why}; check the repository, "
                "then rerun with force_prune (CLI: --force-prune) if that is intended"
            )
            changes.extend(Change("keep", d.full_name, live=d, reason=reason) for d in candidates)
            return changes
    changes.extend(Change("prune", d.full_name, live=d) for d in candidates)
    return changes


# --- rendering --------------------------------------------------------------------------


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, sort_keys=True, default=str) if not isinstance(value, str) else value
    return text if len(text) <= width else text[: width - 3] + "..."


def render_table(plan: Plan) -> str:
    """A plain-text table of the plan: one line per deployment, diffs indented below."""
    headers = ("ACTION", "DEPLOYMENT", "DETAIL")
    rows = []
    for change in plan.changes:
        detail = change.reason or ""
        if change.action == "update":
            detail = ", ".join(d.field for d in change.diffs)
        elif change.action == "create" and change.desired:
            detail = f"pool={change.desired.work_pool_name} version={change.desired.version}"
        rows.append((change.action, change.name, detail))
    header, *row_lines = render_columns(headers, rows)
    indent = " " * (column_widths(headers, rows)[0] + 4)  # under DEPLOYMENT, two further in
    lines = [header]
    for change, line in zip(plan.changes, row_lines, strict=True):
        lines.append(line)
        lines.extend(
            f"{indent}{diff.field}: {_short(diff.old)} -> {_short(diff.new)}"
            for diff in change.diffs
        )
    lines.append("")
    lines.append(f"plan: {render_counts(plan.counts)}")
    for pool in plan.pools:
        lines.append(f"work pool to create: {pool.name} ({pool.type}), for {len(pool.used_by)}")
    for image in plan.images:
        lines.append(f"image: {image.image_name}:{image.tag or '<content tag>'}")
    return "\n".join(lines)
