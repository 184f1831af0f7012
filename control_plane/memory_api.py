"""The Prefect API seam held in memory: `DeploymentsAPI` without a server.

`InMemoryDeployments` keeps deployments and work pools as a Prefect server would return
them (`LiveDeployment`, the model the plan compares), so that unit tests can run a
reconcile's reads and writes in microseconds. It is held to the real adapter by one
contract test (tests/integration/test_api_contract.py): the same registrations, updates
and deletes through `InMemoryDeployments` and through `control_plane.prefect_api.
PrefectDeployments` on a real server must read back equal. httpx's `MockTransport` beside
its real transport is the model: a stand-in that is tested against the thing it stands in
for, never a form of live state made up by hand.

What a server does to what it is sent, and this module therefore does too: a missing
description is stored as "", `paused` as False, an empty parameter schema as an empty
object schema, a deployment without a queue lands in its
pool's `default` queue, tags are returned sorted, an update changes only the fields it
names (and the version, which travels with every write), keeps a person's protect tag,
and keeps the `active` flag of a schedule (matched by slug) that the update does not set
to false, and makes a deployment's triggers automations that name its id (rewritten on
create, on a full update, or when they changed, as the real adapter does). Not modelled:
what a person changes in the UI.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from control_plane.deployments import (
    DERIVED_COMPARED,
    DeploymentFields,
    DeploymentSpec,
    LiveDeployment,
)
from control_plane.markers import PROTECT_TAG, is_protected
from control_plane.plans import WorkPool
from control_plane.prefect_objects import canonical_triggers

_STORED = tuple(DeploymentFields.model_fields)


def _as_stored(values: Mapping[str, Any]) -> dict[str, Any]:
    stored = dict(values)
    stored["description"] = stored.get("description") or ""
    stored["paused"] = bool(stored.get("paused"))
    if stored.get("work_queue_name") is None and stored.get("work_pool_name"):
        stored["work_queue_name"] = "default"
    stored["tags"] = tuple(sorted(set(stored.get("tags", ()))))
    if not stored.get("parameter_openapi_schema"):  # the server's empty schema
        stored["parameter_openapi_schema"] = {"type": "object", "properties": {}}
    return stored


def _schedules_after_update(
    desired: Iterable[dict[str, Any]], current: Iterable[dict[str, Any]]
) -> tuple[dict[str, Any], ...]:
    """Schedules by slug: a schedule's `active` stays unless the update sets it false."""
    by_slug = {s.get("slug"): s for s in current if s.get("slug")}
    out = []
    for schedule in desired:
        kept = dict(schedule)
        before = by_slug.get(schedule.get("slug"))
        if before is not None and schedule.get("active") is not False:
            kept["active"] = before.get("active", True)
        out.append(kept)
    return tuple(out)


class InMemoryDeployments:
    """A Prefect server's deployments and work pools, in memory (a `DeploymentsAPI`)."""

    def __init__(self, pools: Iterable[WorkPool] = ()) -> None:
        self.deployments: dict[str, LiveDeployment] = {}  # by flow/name
        self.pools: dict[str, WorkPool] = {pool.name: pool for pool in pools}

    async def read_live(
        self, scope_tags: frozenset[str], full_names: Iterable[str]
    ) -> list[LiveDeployment]:
        wanted = set(full_names)
        found = [
            d
            for d in self.deployments.values()
            if scope_tags <= set(d.tags) or d.full_name in wanted
        ]
        return sorted(found, key=lambda d: d.full_name)

    async def read_work_pools(self) -> dict[str, WorkPool]:
        return dict(self.pools)

    async def create_work_pool(self, name: str, pool_type: str) -> None:
        self.pools.setdefault(name, WorkPool(name=name, type=pool_type))

    async def register(
        self,
        spec: DeploymentSpec,
        live: LiveDeployment | None = None,
        changed: Collection[str] | None = None,
    ) -> str:
        sent = spec.model_dump(include=set(_STORED))
        current = self.deployments.get(spec.full_name)
        if live is None or current is None:
            deployment_id = current.id if current is not None else str(uuid.uuid4())
            sent["automations"] = canonical_triggers(spec, deployment_id)
            self.deployments[spec.full_name] = LiveDeployment(id=deployment_id, **_as_stored(sent))
            return deployment_id
        fields = set(_STORED) - {"name", "flow_name"} if changed is None else set(changed)
        names = {"tags" if f in DERIVED_COMPARED else f for f in fields} | {"version"}
        values = current.model_dump(include=set(_STORED))
        for name in names & set(_STORED):
            values[name] = sent[name]
        if "tags" in names and is_protected(current.tags):
            values["tags"] = tuple({*values["tags"], PROTECT_TAG})
        if changed is None or "automations" in changed:
            values["automations"] = canonical_triggers(spec, current.id)
        if "schedules" in names:
            values["schedules"] = _schedules_after_update(sent["schedules"], current.schedules)
        self.deployments[spec.full_name] = LiveDeployment(id=current.id, **_as_stored(values))
        return current.id

    async def delete(self, live: LiveDeployment) -> None:
        self.deployments.pop(live.full_name, None)
