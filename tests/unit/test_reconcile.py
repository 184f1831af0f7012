"""The pure steps of a reconcile: desired state, pinned pull steps, the report."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from control_plane.checkouts import Checkout
from control_plane.discovery import discover
from control_plane.errors import ApplyError, TransientError
from control_plane.plans import Change
from control_plane.reconcile import (
    GIT_CLONE_STEP,
    Outcome,
    ReconcileOptions,
    apply_change,
    batch_changes,
    build_desired,
    build_report,
    compute_plan,
    finalize_specs,
    pinned_pull_steps,
    prune_skip_reason,
    render_report_table,
)
from tests.conftest import EXAMPLES
from tests.unit.test_plans import live_of

SHA = "0123456789abcdef0123456789abcdef01234567"


def checkout(branch: str | None = "main") -> Checkout:
    return Checkout(
        path=EXAMPLES, source="examples", commit=SHA, branch=branch, remote_url="https://x/r.git"
    )


def test_desired_maps_the_branch_and_tags_ownership() -> None:
    desired = build_desired(checkout("feature/x"), discover(EXAMPLES), ReconcileOptions())
    assert desired.environment.name == "preview"
    names = sorted(s.full_name for s in desired.specs)
    assert "daily-etl/daily-feature-x" in names
    assert desired.scope_tags == {
        "deploy-manager", "source:examples", "env:preview", "branch:feature-x",
    }  # fmt: skip
    spec = next(s for s in desired.specs if s.flow_name == "daily-etl")
    assert desired.scope_tags <= set(spec.tags)
    assert spec.version == SHA[:8]
    assert spec.parameters["dry_run"] is True  # the environment's default, the flow accepts it


def test_only_selects_by_glob() -> None:
    desired = build_desired(checkout(), discover(EXAMPLES), ReconcileOptions(only=("daily-*",)))
    assert [s.full_name for s in desired.specs] == ["daily-etl/daily"]


def test_process_pools_get_a_clone_pinned_to_the_commit() -> None:
    desired = build_desired(checkout(), discover(EXAMPLES), ReconcileOptions())
    specs = finalize_specs(desired.specs, [], {"local-process": "process"}, checkout())
    for spec in specs:
        assert spec.pull_steps == (
            {GIT_CLONE_STEP: {"repository": "https://x/r.git", "commit_sha": SHA}},
        )
    docker = finalize_specs(desired.specs, [], {"local-process": "docker"}, checkout())
    assert all(spec.pull_steps is None for spec in docker)


def test_the_pinned_clone_is_the_step_prefect_writes_for_a_git_repository_at_a_commit() -> None:
    """Prefect's step (the oracle) also names `branch: None`, git_clone's default, which
    the plan does not compare; the credentials' form is held to it on a real server in
    tests/integration/test_credentials.py."""
    from prefect.runner.storage import GitRepository

    (ours,) = pinned_pull_steps(checkout()) or ()
    prefects = GitRepository(url="https://x/r.git", commit_sha=SHA).to_pull_step()
    assert prefects == {GIT_CLONE_STEP: {**ours[GIT_CLONE_STEP], "branch": None}}


def test_a_new_commit_with_the_same_code_is_unchanged() -> None:
    desired = build_desired(checkout(), discover(EXAMPLES), ReconcileOptions())
    specs = finalize_specs(desired.specs, [], {"local-process": "process"}, checkout())
    live = [live_of(spec) for spec in specs]  # what the server returns for them
    newer = Checkout(**{**checkout().__dict__, "commit": "f" * 40})
    desired2 = build_desired(newer, discover(EXAMPLES), ReconcileOptions())
    specs2 = finalize_specs(desired2.specs, live, {"local-process": "process"}, newer)
    plan = compute_plan(desired2, specs2, live, ReconcileOptions())
    assert plan.counts["unchanged"] == len(specs)


def test_report_statuses_and_table() -> None:
    desired = build_desired(checkout(), discover(EXAMPLES), ReconcileOptions())
    specs = finalize_specs(desired.specs, [], {}, checkout())
    plan = compute_plan(desired, specs, [], ReconcileOptions())
    first, second, *_ = [c.name for c in plan.changes]
    outcomes = [
        Outcome(deployment=first, action="create", status="done", deployment_id="abc"),
        Outcome(deployment=second, action="create", status="failed", detail="pool missing"),
    ]
    report = build_report(plan, outcomes, checkout(), desired, ref=None, dry_run=False)
    assert report.failed
    assert [i.status for i in report.items[:2]] == ["done", "failed"]
    table = render_report_table(report)
    assert "pool missing" in table and "FAILED: 1 change(s)" in table


def test_prune_is_skipped_after_a_failed_registration() -> None:
    assert prune_skip_reason([Outcome(deployment="a/b", action="create", status="done")]) is None
    reason = prune_skip_reason([Outcome(deployment="a/b", action="update", status="failed")])
    assert reason is not None and "a/b" in reason


def test_a_deployment_with_pull_steps_of_its_own_registers_its_entrypoint_as_declared(
    tmp_path,
) -> None:
    """Prefect resolves it against the pull steps' working directory at run time."""
    (tmp_path / "pipelines/ml").mkdir(parents=True)
    (tmp_path / "pipelines/ml/train.py").write_text(
        "from prefect import flow\n@flow\ndef train(): pass\n"
    )
    (tmp_path / "pipelines/ml/prefect.yaml").write_text(
        "pull:\n  - prefect.deployments.steps.set_working_directory:\n"
        "      directory: /opt/ml\n"
        "deployments:\n  - name: nightly\n    entrypoint: train.py:train\n"
    )
    found = Checkout(path=tmp_path, source="s", commit=SHA, branch="main")
    desired = build_desired(found, discover(tmp_path), ReconcileOptions())
    by_name = {s.name: s for s in desired.specs}
    assert by_name["nightly"].entrypoint == "train.py:train"
    assert by_name["nightly"].defining_files == {
        "pipelines/ml/prefect.yaml", "pipelines/ml/train.py",
    }  # fmt: skip


def test_report_lines_keep_the_remedy_discover_shows(tmp_path) -> None:
    (tmp_path / "a.py").write_text("from prefect import flow\n@flow\ndef a(:\n")
    found = Checkout(path=tmp_path, source="s", commit=SHA, branch="main")
    discovery = discover(tmp_path)
    desired = build_desired(found, discovery, ReconcileOptions())
    plan = compute_plan(desired, finalize_specs(desired.specs, [], {}, found), [],
                        ReconcileOptions())  # fmt: skip
    table = render_report_table(build_report(plan, [], found, desired, ref=None, dry_run=False))
    (problem,) = discovery.errors
    assert problem.remedy and f"({problem.remedy})" in table


class FlakyAPI:
    """An in-memory `DeploymentsAPI`: refuses the names in `transient` that many times
    (a TransientError), refuses the names in `broken` for good (an ApplyError)."""

    def __init__(self, transient: dict[str, int] | None = None, broken: tuple[str, ...] = ()):
        self.transient = dict(transient or {})
        self.broken = broken
        self.calls: list[str] = []

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if name in self.broken:
            raise ApplyError(f"register[{name}]", "the Prefect API refused it (422): bad")
        if self.transient.get(name, 0) > 0:
            self.transient[name] -= 1
            raise TransientError(f"register[{name}]: the Prefect API answered 503")

    async def register(self, spec: Any, live: Any = None, changed: Any = None) -> str:
        self._call(spec.full_name)
        return f"id-{spec.full_name}"

    async def delete(self, live: Any) -> None:
        self._call(live.full_name)


def _changes(names: list[str]) -> list[Change]:
    desired = build_desired(checkout(), discover(EXAMPLES), ReconcileOptions())
    spec = desired.specs[0]
    out = []
    for name in names:
        flow, deployment = name.split("/")
        renamed = spec.model_copy(update={"flow_name": flow, "name": deployment})
        out.append(Change(action="create", name=name, desired=renamed))
    return out


def test_apply_change_retries_a_transient_error_for_that_change_alone() -> None:
    a, b, c = _changes(["f/a", "f/b", "f/c"])
    api = FlakyAPI(transient={"f/a": 2, "f/c": 5}, broken=("f/b",))

    async def run() -> list[Outcome]:
        return [await apply_change(api, x, retry_delays=(0, 0, 0)) for x in (a, b, c)]  # type: ignore[arg-type]

    done, broken, flaky = asyncio.run(run())
    assert (done.status, done.deployment_id, done.detail) == ("done", "id-f/a", None)
    assert (broken.status, broken.deployment_id) == ("failed", None)
    assert broken.detail == "register[f/b]: the Prefect API refused it (422): bad"
    assert (flaky.status, flaky.detail) == (
        "failed", "register[f/c]: the Prefect API answered 503",
    )  # fmt: skip
    assert api.calls == ["f/a"] * 3 + ["f/b"] + ["f/c"] * 4  # never re-sends a refusal


@pytest.mark.parametrize(
    ("count", "size", "sizes"),
    [(0, 50, []), (1, 50, [1]), (3, 50, [3]), (50, 50, [50]), (51, 50, [26, 25]),
     (500, 50, [50] * 10), (101, 50, [34, 34, 33]), (5, 0, [1] * 5)],
)  # fmt: skip
def test_batches_keep_the_order_and_even_sizes(count: int, size: int, sizes: list[int]) -> None:
    changes = _changes([f"f/d{i}" for i in range(count)]) if count else []
    batches = batch_changes(changes, size)
    assert [len(b) for b in batches] == sizes
    assert [c for b in batches for c in b] == changes
