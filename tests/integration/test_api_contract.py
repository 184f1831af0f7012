"""The in-memory seam and the real one, through the same cases: they must read back equal.

`control_plane.memory_api.InMemoryDeployments` stands in for a Prefect server in unit
tests; this test is what keeps it honest. Every case registers, updates or deletes the
same deployments through it and through `PrefectDeployments` on a real server, then reads
both back: the deployments must be equal field by field (all but the id).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from control_plane.deployments import DeploymentSpec, LiveDeployment
from control_plane.markers import render_marker_tags
from control_plane.memory_api import InMemoryDeployments
from control_plane.plans import WorkPool
from control_plane.prefect_objects import canonical_schedules
from tests.integration.conftest import run_sync, unique

pytestmark = pytest.mark.integration


def spec(scope: tuple[str, ...], name: str, flow: str, pool: str, **fields: Any) -> DeploymentSpec:
    tags = render_marker_tags(scope, ("prefect.yaml", f"flows/{flow}.py"), "c0de")
    schedules = canonical_schedules(fields.pop("schedules", ()))
    return DeploymentSpec(
        name=name, flow_name=flow, entrypoint=f"flows/{flow}.py:main", source_file="prefect.yaml",
        flow_file=f"flows/{flow}.py", environment="production", work_pool_name=pool,
        version="abc12345", tags=tuple(sorted({*tags, *fields.pop("tags", ())})),
        schedules=schedules, **fields,
    )  # fmt: skip


def without_ids(found: list[LiveDeployment]) -> list[dict[str, Any]]:
    """The deployments without their ids (each server gives its own), also where their
    automations name them."""
    return [
        json.loads(d.model_dump_json(exclude={"id"}).replace(d.id, "<its id>"))
        for d in sorted(found, key=lambda d: d.full_name)
    ]


def test_the_in_memory_seam_reads_back_what_the_real_server_does(prefect_server: Any) -> None:
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    from control_plane.prefect_api import PrefectDeployments

    token = unique("contract")
    pool, flow = f"pool-{token}", f"flow-{token}"
    scope = ("deploy-manager", f"source:{token}", "env:production")
    trigger = {"enabled": True, "match": {"prefect.resource.id": f"x.{token}"},
               "expect": ["external.happened"]}  # fmt: skip
    a = spec(scope, "a", flow, pool, parameters={"x": 1}, description="daily",
             schedules=[{"schedule": {"cron": "0 3 * * *", "timezone": "UTC"}}],
             triggers=(trigger,))  # fmt: skip
    b = spec(scope, "b", flow, pool, job_variables={"env": {"LEVEL": "info"}},
             concurrency_limit=2, pull_steps=({"prefect.deployments.steps.git_clone": {
                 "repository": "https://example.com/r.git", "commit_sha": "a" * 40}},))  # fmt: skip
    memory = InMemoryDeployments([WorkPool(name=pool, type="process")])

    async def case() -> list[tuple[list[dict[str, Any]], list[dict[str, Any]]]]:
        seen = []
        async with get_client() as client:
            await client.create_work_pool(WorkPoolCreate(name=pool, type="process"))
            real = PrefectDeployments(client)

            async def both() -> None:
                names, tags = [a.full_name, b.full_name], frozenset(scope)
                seen.append((without_ids(await real.read_live(tags, names)),
                             without_ids(await memory.read_live(tags, names))))  # fmt: skip

            for api in (real, memory):
                for desired in (a, b):
                    await api.register(desired)
            await both()
            changed_b = b.model_copy(
                update={
                    "parameters": {"y": 2},
                    "version": "def67890",
                    "triggers": (trigger, {**trigger, "name": "t2"}),
                }
            )
            for api in (real, memory):
                (live_b,) = [d for d in await api.read_live(frozenset(scope), ()) if d.name == "b"]
                await api.register(changed_b, live_b, {"parameters", "automations"})
            await both()
            for api in (real, memory):  # an update that leaves the automations alone
                (live_a,) = [d for d in await api.read_live(frozenset(scope), ()) if d.name == "a"]
                await api.register(a.model_copy(update={"triggers": ()}), live_a, {"version"})
            await both()
            for api in (real, memory):
                (live_a,) = [d for d in await api.read_live(frozenset(scope), ()) if d.name == "a"]
                await api.delete(live_a)
            await both()
        return seen

    steps = run_sync(case())
    assert [len(real) for real, _ in steps] == [2, 2, 2, 1]
    first, updated = steps[0][0], steps[1][0]
    assert [len(d["automations"]) for d in first] == [1, 0]
    assert [len(d["automations"]) for d in updated] == [1, 2]
    assert [len(d["automations"]) for d in steps[2][0]] == [1, 2]  # kept: not in `changed`
    for real, memory_view in steps:
        differing = [
            (r["name"], k, r[k], m[k])
            for r, m in zip(real, memory_view, strict=True)
            for k in r
            if r[k] != m[k]
        ]
        assert differing == [], "\n".join(
            f"{n} {k}:\n  real   {r}\n  memory {m}" for n, k, r, m in differing
        )
