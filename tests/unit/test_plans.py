"""The pure plan: create, update with diffs, unchanged, prune, keep, conflict."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from control_plane.deployments import DeploymentFields, DeploymentSpec, LiveDeployment
from control_plane.markers import MANAGED_TAG, PROTECT_TAG, render_marker_tags
from control_plane.memory_api import InMemoryDeployments
from control_plane.plans import PlanPolicy, UnreadFile, compute, render_table

SCOPE = frozenset({MANAGED_TAG, "source:repo", "env:production"})
# what a deployment spec and a live deployment have in common: what the server stores
SHARED_FIELDS = set(DeploymentFields.model_fields) - {"paused"}


def spec(name: str, flow: str = "etl", **fields: Any) -> DeploymentSpec:
    """A spec with the markers `build_deployment_spec` writes (scope, defining files)."""
    values: dict[str, Any] = {
        "name": name,
        "flow_name": flow,
        "entrypoint": f"flows/{flow}.py:{flow}",
        "source_file": "prefect.yaml",
        "flow_file": f"flows/{flow}.py",
        "environment": "production",
        "work_pool_name": "pool",
        "version": "abc12345",
        # what discovery gives a flow without parameters, and the server keeps
        "parameter_openapi_schema": {"title": "Parameters", "type": "object", "properties": {}},
    }
    values.update(fields)
    markers = render_marker_tags(SCOPE, (values["source_file"], values["flow_file"]), None)
    values["tags"] = tuple(sorted({*markers, *values.get("tags", ())}))
    return DeploymentSpec(**values)


def live_of(desired: DeploymentSpec, **changes: Any) -> LiveDeployment:
    """What the server returns for `desired` (with `changes`) once registered: written
    through `InMemoryDeployments` and read back, never built by hand.

    tests/integration/test_api_contract.py holds the in-memory seam to a real server, and
    test_reconcile.py::test_markers_the_plan_reads_round_trip_through_the_server checks
    that the markers the plan reads come back from one.
    """
    api = InMemoryDeployments()
    sent = desired.model_copy(update=changes)
    asyncio.run(api.register(sent))
    (live,) = asyncio.run(api.read_live(frozenset(), [sent.full_name]))
    return live


def policy(**fields: Any) -> PlanPolicy:
    return PlanPolicy(scope_tags=SCOPE, **fields)


def test_create_unchanged_update_with_field_diffs() -> None:
    a, b, c = spec("a"), spec("b", parameters={"x": 2}), spec("c")
    live = [live_of(b, parameters={"x": 1}, version="old"), live_of(c, version="older")]
    plan = compute([a, b, c], live, policy())
    assert [(ch.action, ch.name) for ch in plan.changes] == [
        ("create", "etl/a"),
        ("update", "etl/b"),
        ("unchanged", "etl/c"),
    ]
    (update,) = plan.by_action("update")
    assert [(d.field, d.old, d.new) for d in update.diffs] == [("parameters", {"x": 1}, {"x": 2})]


def test_a_new_commit_alone_changes_nothing() -> None:
    desired = spec("a", version="new")
    assert compute([desired], [live_of(desired, version="old")], policy()).counts["unchanged"] == 1


def test_paused_is_compared_only_when_declared() -> None:
    desired = spec("a")
    assert compute([desired], [live_of(desired, paused=True)], policy()).counts["unchanged"] == 1
    declared = spec("a", paused=False)
    plan = compute([declared], [live_of(declared, paused=True)], policy())
    assert [(d.field, d.old, d.new) for d in plan.changes[0].diffs] == [("paused", True, False)]


def test_unmanaged_name_collision_is_a_conflict() -> None:
    desired = spec("a")
    foreign = live_of(desired, tags=("team",))
    plan = compute([desired], [foreign], policy())
    (change,) = plan.changes
    assert change.action == "conflict"
    assert "deploy-manager" in (change.reason or "")


def test_unmanaged_and_other_scopes_are_never_pruned() -> None:
    keep = spec("keep")
    stray = live_of(spec("stray"), tags=("team",))
    other_env = live_of(spec("staging"), tags=(MANAGED_TAG, "source:repo", "env:staging"))
    other_source = live_of(spec("o"), tags=(MANAGED_TAG, "source:other", "env:production"))
    assert "env:production" in spec("keep").tags  # the scope the others lack
    plan = compute([keep], [live_of(keep), stray, other_env, other_source], policy())
    assert [(c.action, c.name) for c in plan.changes] == [("unchanged", "etl/keep")]


def managed(n: int) -> list[LiveDeployment]:
    return [live_of(spec(f"d{i}")) for i in range(n)]


def test_prune_within_the_fraction() -> None:
    live = managed(4)
    plan = compute([spec("d0"), spec("d1"), spec("d2")], live, policy())
    assert [c.name for c in plan.by_action("prune")] == ["etl/d3"]


@pytest.mark.parametrize(("kept", "total"), [(1, 4), (0, 3)])
def test_prune_refused_as_a_whole_beyond_the_fraction_or_all(kept: int, total: int) -> None:
    live = managed(total)
    desired = [spec(f"d{i}") for i in range(kept)]
    plan = compute(desired, live, policy())
    assert plan.by_action("prune") == ()
    keeps = plan.by_action("keep")
    assert len(keeps) == total - kept
    assert all("refused as a whole" in (c.reason or "") for c in keeps)
    forced = compute(desired, live, policy(force_prune=True))
    assert len(forced.by_action("prune")) == total - kept


def test_protected_deployment_is_never_pruned() -> None:
    protected = live_of(spec("p", tags=(PROTECT_TAG,)))
    plan = compute(
        [spec("a"), spec("b")], [live_of(spec("a")), live_of(spec("b")), protected], policy()
    )
    (keep,) = plan.by_action("keep")
    assert keep.name == "etl/p" and PROTECT_TAG in (keep.reason or "")


def test_deployment_whose_flow_file_failed_is_kept() -> None:
    gone = live_of(spec("gone", flow="broken"))
    plan = compute(
        [spec("a"), spec("b")],
        [live_of(spec("a")), live_of(spec("b")), gone],
        policy(failed_files=frozenset({"flows/broken.py"})),
    )
    (keep,) = plan.by_action("keep")
    assert "flows/broken.py had errors in this run" in (keep.reason or "")


def test_deployment_whose_prefect_yaml_entry_failed_is_kept_by_its_file_marker() -> None:
    """The entry is missing from the desired state; its prefect.yaml marker keeps it."""
    nested = {"source_file": "pipelines/x/prefect.yaml"}
    live = [live_of(spec(n, **nested)) for n in ("a", "b", "c")]
    plan = compute(
        [spec("a", **nested), spec("b", **nested)],
        live,
        policy(failed_files=frozenset({"pipelines/x/prefect.yaml"})),
    )
    (keep,) = plan.by_action("keep")
    assert keep.name == "etl/c"
    assert "pipelines/x/prefect.yaml had errors" in (keep.reason or "")


def test_unread_prefect_yaml_keeps_what_it_may_declare_and_nothing_else() -> None:
    ml = {"source_file": "pipelines/ml/prefect.yaml", "flow_file": "pipelines/ml/train.py"}
    live = [
        live_of(spec("declared-there", flow="t", **ml)),
        live_of(spec("default-below", flow="u", source_file="pipelines/ml/u.py",
                     flow_file="pipelines/ml/u.py")),
        live_of(spec("elsewhere", flow="v")),
        *(live_of(spec(f"k{i}")) for i in range(4)),
    ]  # fmt: skip
    unread = UnreadFile("pipelines/ml/prefect.yaml", "invalid-yaml")
    plan = compute([spec(f"k{i}") for i in range(4)], live, policy(unread_files=(unread,)))
    assert sorted(c.name for c in plan.by_action("keep")) == ["t/declared-there", "u/default-below"]
    assert [c.name for c in plan.by_action("prune")] == ["v/elsewhere"]
    root = UnreadFile("prefect.yaml", "invalid-yaml")
    everything = compute([spec(f"k{i}") for i in range(4)], live, policy(unread_files=(root,)))
    assert everything.by_action("prune") == ()


def test_prune_switched_off() -> None:
    plan = compute([spec("a")], [live_of(spec("a")), live_of(spec("b"))], policy(prune=False))
    assert [(c.action, c.reason) for c in plan.by_action("keep")] == [
        ("keep", "pruning is switched off for this run")
    ]


def test_images_to_build_are_distinct() -> None:
    step = {
        "prefect_docker.deployments.steps.build_docker_image": {"image_name": "reg/app", "tag": "t"}
    }
    plan = compute([spec("a", build_steps=(step,)), spec("b", build_steps=(step,))], [], policy())
    assert [(i.image_name, i.used_by) for i in plan.images] == [("reg/app", ("etl/a", "etl/b"))]


def test_render_table_lists_every_change_and_the_diffs() -> None:
    b = spec("b", parameters={"x": 2})
    plan = compute([spec("a"), b], [live_of(b, parameters={"x": 1})], policy())
    table = render_table(plan)
    assert "create" in table and "etl/a" in table
    assert 'parameters: {"x": 1} -> {"x": 2}' in table
    assert table.endswith("plan: 1 create, 1 update")


def test_render_table_aligns_the_columns_and_indents_the_diffs_under_the_deployment() -> None:
    b = spec("bbbbbbbbbb", parameters={"x": 2})
    plan = compute([spec("a"), b], [live_of(b, parameters={"x": 1})], policy())
    assert render_table(plan).splitlines() == [
        "ACTION  DEPLOYMENT      DETAIL",
        "create  etl/a           pool=pool version=abc12345",
        "update  etl/bbbbbbbbbb  parameters",
        '          parameters: {"x": 1} -> {"x": 2}',
        "",
        "plan: 1 create, 1 update",
    ]


def test_a_pool_the_server_lacks_makes_the_deployment_invalid_at_its_line() -> None:
    ok, lost = spec("ok"), spec("lost", work_pool_name="nope", source_line=12)
    plan = compute([ok, lost], [], policy(), pools={"pool"})
    assert [(c.action, c.name) for c in plan.changes] == [
        ("create", "etl/ok"),
        ("invalid", "etl/lost"),
    ]
    (problem,) = plan.problems
    assert (problem.file, problem.line, problem.code) == ("prefect.yaml", 12, "refused-by-server")
    assert "prefect work-pool create nope --type process" in problem.remedy
    assert plan.writes == (plan.changes[0],)


def test_a_pool_the_environment_creates_is_planned_not_invalid() -> None:
    made = [spec(n, work_pool_name="made") for n in ("a", "b")]
    plan = compute(made, [], policy(creatable_pools={"made": "process"}), pools=set())
    assert plan.counts["create"] == 2 and plan.counts["invalid"] == 0
    assert [(p.name, p.type, p.used_by) for p in plan.pools] == [
        ("made", "process", ("etl/a", "etl/b"))
    ]
    assert "work pool to create: made (process), for 2" in render_table(plan)


def test_pools_are_not_checked_when_unknown_and_refusals_keep_the_live_one() -> None:
    desired = spec("a", parameters={"x": 2})
    assert compute([desired], [], policy(), pools=None).counts["create"] == 1
    live = live_of(desired, parameters={"x": 1})
    plan = compute([desired], [live], policy(), refused={"etl/a": ("bad job variable", "fix")})
    (change,) = plan.changes
    assert (change.action, change.live, change.reason) == ("invalid", live, "bad job variable; fix")
    assert plan.writes == ()
