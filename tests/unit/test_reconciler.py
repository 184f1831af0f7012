"""The reconcile pipeline (`Reconciler.plan_reconcile`, `apply_plan`) on the in-memory seam.

Every live deployment here is one `InMemoryDeployments` stored when the pipeline
registered it and read back as the server would (tests/integration/test_api_contract.py
holds it to a real server): no live state is written by hand.
"""

from __future__ import annotations

import asyncio
import textwrap
from collections.abc import Collection
from pathlib import Path
from typing import Any

from control_plane.checkouts import Checkout
from control_plane.deployments import DeploymentSpec, LiveDeployment
from control_plane.discovery import discover
from control_plane.errors import ApplyError
from control_plane.memory_api import InMemoryDeployments
from control_plane.plans import WorkPool
from control_plane.reconcile import ReconcileOptions, build_desired
from control_plane.reconciler import Applied, Planned, Reconciler

SHA = "0123456789abcdef0123456789abcdef01234567"
FLOW = "from prefect import flow\n\n@flow(name={name!r})\ndef main(x: int = 1):\n    pass\n"


def write_repo(root: Path, deployments: dict[str, dict[str, Any]], pool: str = "pool") -> None:
    """flows/<flow>.py per deployment (its flow is named after it) and one prefect.yaml."""
    (root / "flows").mkdir(parents=True, exist_ok=True)
    entries = []
    for name, fields in deployments.items():
        (root / "flows" / f"{name}.py").write_text(FLOW.format(name=f"flow-{name}"))
        lines = [f"  - name: {name}", f"    entrypoint: flows/{name}.py:main"]
        lines += [f"    {key}: {value}" for key, value in fields.items()]
        entries.append("\n".join(lines))
    (root / "prefect.yaml").write_text(
        textwrap.dedent(f"""\
            name: repo
            definitions:
              pool: &pool
                name: {pool}
            deployments:
            """)
        + "\n".join(entries).replace("    entrypoint", "    work_pool: *pool\n    entrypoint")
        + "\n"
    )


def reconcile(
    root: Path,
    api: InMemoryDeployments,
    commit: str = SHA,
    **options: Any,
) -> tuple[Planned, Applied]:
    checkout = Checkout(
        path=root, source="s", commit=commit, branch="main", remote_url="https://x/r.git"
    )
    opts = ReconcileOptions(**options)
    desired = build_desired(checkout, discover(root), opts)
    reconciler = Reconciler(api)

    async def run() -> tuple[Planned, Applied]:
        planned = await reconciler.plan_reconcile(desired, checkout, opts)
        applied = await reconciler.apply_plan(planned.plan, opts, planned.resolved.failures)
        return planned, applied

    return asyncio.run(run())


def actions(planned: Planned) -> dict[str, str]:
    return {c.name: c.action for c in planned.plan.changes}


def statuses(applied: Applied) -> dict[str, str]:
    return {o.deployment: f"{o.action}:{o.status}" for o in applied.outcomes}


def test_create_then_a_no_op_then_an_update_then_a_prune(tmp_path: Path) -> None:
    api = InMemoryDeployments([WorkPool(name="pool", type="process")])
    write_repo(tmp_path, {"a": {"parameters": "{x: 1}"}, "b": {}})

    planned, applied = reconcile(tmp_path, api)
    assert actions(planned) == {"flow-a/a": "create", "flow-b/b": "create"}
    assert statuses(applied) == {"flow-a/a": "create:done", "flow-b/b": "create:done"}
    assert sorted(api.deployments) == ["flow-a/a", "flow-b/b"]
    pulled = api.deployments["flow-a/a"].pull_steps
    assert (
        pulled is not None and pulled[0]["prefect.deployments.steps.git_clone"]["commit_sha"] == SHA
    )

    # the same code at another commit: nothing to write
    planned, applied = reconcile(tmp_path, api, commit="f" * 40)
    assert set(actions(planned).values()) == {"unchanged"}
    assert applied.outcomes == []

    write_repo(tmp_path, {"a": {"parameters": "{x: 2}"}, "b": {}})
    planned, applied = reconcile(tmp_path, api)
    (update,) = planned.plan.by_action("update")
    assert [(d.field, d.old, d.new) for d in update.diffs] == [("parameters", {"x": 1}, {"x": 2})]
    assert api.deployments["flow-a/a"].parameters == {"x": 2}

    (tmp_path / "flows" / "b.py").unlink()
    write_repo(tmp_path, {"a": {"parameters": "{x: 2}"}})
    planned, applied = reconcile(tmp_path, api, force_prune=True)
    assert actions(planned) == {"flow-a/a": "unchanged", "flow-b/b": "prune"}
    assert statuses(applied) == {"flow-b/b": "prune:done"}
    assert sorted(api.deployments) == ["flow-a/a"]


def test_a_dry_run_writes_nothing(tmp_path: Path) -> None:
    api = InMemoryDeployments([WorkPool(name="pool", type="process")])
    write_repo(tmp_path, {"a": {}})
    planned, applied = reconcile(tmp_path, api, dry_run=True)
    assert actions(planned) == {"flow-a/a": "create"}
    assert applied.outcomes == [] and applied.notes == ["dry run: nothing was changed"]
    assert api.deployments == {}


class Refusing(InMemoryDeployments):
    """The in-memory server, refusing to write the deployments named in `refused`."""

    def __init__(self, refused: Collection[str], pools: list[WorkPool]) -> None:
        super().__init__(pools)
        self.refused = set(refused)

    async def register(
        self,
        spec: DeploymentSpec,
        live: LiveDeployment | None = None,
        changed: Collection[str] | None = None,
    ) -> str:
        if spec.full_name in self.refused:
            raise ApplyError(f"refused {spec.full_name}")
        return await super().register(spec, live, changed)


def test_a_failed_registration_fails_alone_and_skips_the_prune(tmp_path: Path) -> None:
    api = Refusing((), [WorkPool(name="pool", type="process")])
    write_repo(tmp_path, {"a": {}, "b": {}, "c": {}})
    reconcile(tmp_path, api)

    (tmp_path / "flows" / "c.py").unlink()
    write_repo(tmp_path, {"a": {"parameters": "{x: 5}"}, "b": {"parameters": "{x: 6}"}})
    api.refused = {"flow-a/a"}
    planned, applied = reconcile(tmp_path, api, force_prune=True)
    assert actions(planned) == {"flow-a/a": "update", "flow-b/b": "update", "flow-c/c": "prune"}
    got = statuses(applied)
    assert got == {
        "flow-a/a": "update:failed",
        "flow-b/b": "update:done",
        "flow-c/c": "prune:skipped",
    }
    assert "flow-c/c" in api.deployments  # kept: a failed write may be what replaces it
    assert any("pruning skipped" in note and "flow-a/a" in note for note in applied.notes)


def test_a_template_that_needs_a_server_fails_its_deployment_only(tmp_path: Path) -> None:
    api = InMemoryDeployments([WorkPool(name="pool", type="process")])
    write_repo(tmp_path, {"a": {"description": "'{{ prefect.variables.owner }}'"}, "b": {}})
    _, applied = reconcile(tmp_path, api)
    assert statuses(applied) == {"flow-a/a": "create:failed", "flow-b/b": "create:done"}
    (failed,) = [o for o in applied.outcomes if o.status == "failed"]
    assert "{{ prefect.variables.owner }} can only be resolved by a Prefect server" in (
        failed.detail or ""
    )
    assert sorted(api.deployments) == ["flow-b/b"]


def test_a_missing_pool_the_environment_creates_is_created_first(tmp_path: Path) -> None:
    api = InMemoryDeployments()
    write_repo(tmp_path, {"a": {}}, pool="made-here")
    (tmp_path / "deploy-manager.yaml").write_text(
        "environments:\n  production:\n    branches: [main]\n"
        "    work_pool: {name: made-here, type: process, create: true}\n"
    )
    planned, applied = reconcile(tmp_path, api)
    assert [(p.name, p.type) for p in planned.plan.pools] == [("made-here", "process")]
    assert "created work pool made-here (process)" in applied.notes
    assert statuses(applied) == {"flow-a/a": "create:done"}
    assert api.pools["made-here"].type == "process"


def test_a_deployment_with_a_trigger_is_unchanged_the_second_time(tmp_path: Path) -> None:
    """Its automation names the deployment's id, which the plan of a create cannot know."""
    api = InMemoryDeployments([WorkPool(name="pool", type="process")])
    trigger = "[{enabled: true, match: {prefect.resource.id: x.y}, expect: [external.happened]}]"
    write_repo(tmp_path, {"a": {"triggers": trigger}})
    reconcile(tmp_path, api)
    (automation,) = api.deployments["flow-a/a"].automations
    assert automation["actions"][0]["deployment_id"] == api.deployments["flow-a/a"].id
    planned, applied = reconcile(tmp_path, api)
    assert actions(planned) == {"flow-a/a": "unchanged"} and applied.outcomes == []
