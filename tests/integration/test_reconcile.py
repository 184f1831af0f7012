"""The deploy-manager flow against a real Prefect server and a real git remote."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import pytest

from control_plane.cli import run_apply
from control_plane.reconcile import Report
from tests.integration.conftest import GitRemote, run_sync, unique

pytestmark = pytest.mark.integration


def flow_file(flow: str, body: str = "return x", default: int = 1) -> str:
    return f"""
from prefect import flow


@flow(name="{flow}")
def main(x: int = {default}) -> int:
    \"\"\"A test flow.\"\"\"
    {body}
"""


def prefect_yaml(pool: str, deployments: list[dict[str, Any]]) -> str:
    import yaml

    return yaml.safe_dump({"deployments": deployments}, sort_keys=False)


def entry(
    name: str, path: str, pool: str, job_variables: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    work_pool: dict[str, Any] = {"name": pool}
    if job_variables is not None:
        work_pool["job_variables"] = job_variables
    return {"name": name, "entrypoint": f"{path}:main", "work_pool": work_pool, **extra}


async def create_pool(name: str, pool_type: str = "process") -> None:
    from prefect import get_client
    from prefect.client.schemas.actions import WorkPoolCreate

    async with get_client() as client:
        await client.create_work_pool(WorkPoolCreate(name=name, type=pool_type))


def line_of(remote: GitRemote, deployment: str, file: str = "prefect.yaml") -> int:
    """The line of a deployment's entry (`- name: ...`) in the committed prefect.yaml."""
    lines = (remote.work / file).read_text().splitlines()
    return next(n for n, line in enumerate(lines, 1) if line.strip() == f"- name: {deployment}")


def apply(source: str, **options: Any) -> tuple[Report, Any]:
    report, state = run_sync(run_apply(source, **options))
    assert isinstance(report, Report), (state, report)
    return report, state


async def read_deployments(tag: str) -> dict[str, Any]:
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterTags

    async with get_client() as client:
        found = await client.read_deployments(
            deployment_filter=DeploymentFilter(tags=DeploymentFilterTags(all_=[tag]))
        )
        return {d.name: d for d in found}


TRIGGER = {
    "enabled": True,
    "match": {"prefect.resource.id": "x.y"},
    "expect": ["external.happened"],
}


def repo_yaml(
    pool: str,
    *drop: str,
    a: dict[str, Any] | None = None,
    b: dict[str, Any] | None = None,
    c: dict[str, Any] | None = None,
) -> str:
    """The test repository's prefect.yaml, without the entries in `drop`; `a`, `b`, `c`
    override fields of a-prod, b-prod, c-prod."""
    a_fields: dict[str, Any] = {
        "parameters": {"x": 1},
        "schedules": [{"cron": "0 3 * * *", "timezone": "UTC"}],
        "job_variables": {"env": {"LEVEL": "info"}},
        **(a or {}),
    }
    entries = {
        "a": entry("a-prod", "flows/a.py", pool, **a_fields),
        "b": entry("b-prod", "flows/b.py", pool, **{"triggers": [TRIGGER], **(b or {})}),
        "c": entry("c-prod", "flows/c.py", pool, **(c or {})),
    }
    return prefect_yaml(pool, [e for k, e in entries.items() if k not in drop])


def _yaml_without(repo: dict[str, str], *drop: str) -> str:
    return repo_yaml(repo["pool"], *drop)


@pytest.fixture
def repo(remote: GitRemote) -> dict[str, str]:
    """Three flows of unique names, a process pool, a prefect.yaml; committed and pushed."""
    token = unique("t")
    pool = f"pool-{token}"
    run_sync(create_pool(pool))
    names = {"a": f"alpha-{token}", "b": f"beta-{token}", "c": f"gamma-{token}"}
    remote.commit(
        {
            "flows/a.py": flow_file(names["a"]),
            "flows/b.py": flow_file(names["b"]),
            "flows/c.py": flow_file(names["c"]),
            "prefect.yaml": repo_yaml(pool),
        },
        "initial",
    )  # fmt: skip
    return {"pool": pool, "token": token, **names}


def test_task_runs_are_the_named_steps(source_block: str, repo: dict[str, str]) -> None:
    report, state = apply(source_block)
    assert state.is_completed(), state.message
    assert report.counts["create"] == 3

    async def task_runs() -> list[tuple[str, str]]:
        from prefect import get_client
        from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(
                    id=FlowRunFilterId(any_=[state.state_details.flow_run_id])
                )
            )
        return sorted((r.name, r.state.type.value) for r in runs)

    assert run_sync(task_runs()) == sorted(
        [
            ("fetch-source", "COMPLETED"),
            ("discover-flows", "COMPLETED"),
            ("resolve-templates", "COMPLETED"),
            ("read-live-deployments", "COMPLETED"),
            ("plan", "COMPLETED"),
            ("register[batch 1/1: 3 deployments]", "COMPLETED"),
            ("report", "COMPLETED"),
        ]
    )

    async def batch_table() -> list[dict[str, str]]:
        from prefect import get_client
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

        async with get_client() as client:
            artifacts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(
                    flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id])
                )
            )
        (batch,) = [a for a in artifacts if a.key is None and a.task_run_id is not None]
        rows: list[dict[str, str]] = (
            json.loads(batch.data) if isinstance(batch.data, str) else batch.data
        )
        return rows

    ids = {i.deployment: i.deployment_id for i in report.items}
    assert sorted(
        (r["deployment"], r["status"], r["deployment_id"]) for r in run_sync(batch_table())
    ) == sorted((name, "done", ids[name]) for name in ids)


def test_second_run_on_the_same_commit_writes_nothing(
    source_block: str, repo: dict[str, str]
) -> None:
    first, _ = apply(source_block)
    assert first.counts["create"] == 3
    before = run_sync(read_deployments(f"source:{source_block}"))
    second, state = apply(source_block)
    assert state.is_completed()
    assert second.counts == {
        "create": 0, "update": 0, "unchanged": 3, "prune": 0, "keep": 0, "conflict": 0,
        "invalid": 0,
    }  # fmt: skip
    after = run_sync(read_deployments(f"source:{source_block}"))
    assert {n: d.updated for n, d in after.items()} == {n: d.updated for n, d in before.items()}


def test_change_three_fields_updates_only_that_deployment(
    source_block: str, repo: dict[str, str], remote: GitRemote
) -> None:
    apply(source_block)
    pool = repo["pool"]
    remote.commit(
        {
            "prefect.yaml": repo_yaml(
                pool,
                a={
                    "parameters": {"x": 2},
                    "schedules": [{"cron": "30 4 * * *", "timezone": "UTC"}],
                    "job_variables": {"env": {"LEVEL": "debug"}},
                },
            )
        },
        "three changes",
    )  # fmt: skip
    report, state = apply(source_block)
    assert state.is_completed()
    (update,) = [i for i in report.items if i.action == "update"]
    assert update.deployment == f"{repo['a']}/a-prod"
    assert set(update.fields) == {"parameters", "schedules", "job_variables"}
    assert report.count("unchanged") == 2
    diffs = {d["field"]: (d["old"], d["new"]) for d in update.diffs}
    assert diffs["parameters"] == ({"x": 1}, {"x": 2})
    assert diffs["job_variables"] == ({"env": {"LEVEL": "info"}}, {"env": {"LEVEL": "debug"}})


def test_removed_flow_is_pruned_with_its_automation(
    source_block: str, repo: dict[str, str], remote: GitRemote
) -> None:
    apply(source_block)
    deployments = run_sync(read_deployments(f"source:{source_block}"))
    b_id = deployments["b-prod"].id
    unmanaged_id = run_sync(_create_unmanaged(repo["b"], "hand-made"))
    pool = repo["pool"]
    remote.commit(
        {
            "flows/b.py": None,
            "flows/d.py": flow_file(f"delta-{repo['token']}"),
            "prefect.yaml": prefect_yaml(
                pool,
                [
                    entry("a-prod", "flows/a.py", pool, parameters={"x": 1},
                          schedules=[{"cron": "0 3 * * *", "timezone": "UTC"}],
                          job_variables={"env": {"LEVEL": "info"}}),
                    entry("c-prod", "flows/c.py", pool),
                    entry("d-prod", "flows/d.py", pool),
                ],
            ),
        },
        "remove b",
    )  # fmt: skip
    report, state = apply(source_block)
    assert state.is_completed(), state.message
    assert [i.deployment for i in report.items if i.action == "prune"] == [f"{repo['b']}/b-prod"]
    assert "b-prod" not in run_sync(read_deployments(f"source:{source_block}"))
    assert run_sync(_owned_automations(b_id)) == []
    assert run_sync(_exists(unmanaged_id))


async def _create_unmanaged(flow_name: str, name: str) -> Any:
    from prefect import get_client

    async with get_client() as client:
        flow_id = await client.create_flow_from_name(flow_name)
        return await client.create_deployment(flow_id=flow_id, name=name, tags=["team"])


async def _owned_automations(deployment_id: Any) -> list[str]:
    from prefect import get_client

    async with get_client() as client:
        automations = await client.read_automations()
    return [
        a.name for a in automations if a.owner_resource == f"prefect.deployment.{deployment_id}"
    ]


async def _exists(deployment_id: Any) -> bool:
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    async with get_client() as client:
        try:
            await client.read_deployment(deployment_id)
        except ObjectNotFound:
            return False
    return True


def test_name_taken_by_an_unmanaged_deployment_is_a_conflict(
    source_block: str, repo: dict[str, str]
) -> None:
    unmanaged = run_sync(_create_unmanaged(repo["c"], "c-prod"))
    report, state = apply(source_block)
    assert state.is_failed()
    (conflict,) = [i for i in report.items if i.action == "conflict"]
    assert conflict.deployment == f"{repo['c']}/c-prod"
    assert report.count("create", "done") == 2
    assert run_sync(_exists(unmanaged))


def test_a_name_outside_the_scope_is_read_in_its_own_flow_only(
    prefect_server: Any, repo: dict[str, str]
) -> None:
    """The collision read asks for flow and name: another flow's deployment of the same
    name is neither read nor taken for the desired one."""
    from control_plane.prefect_api import PrefectDeployments, api_client

    mine = run_sync(_create_unmanaged(repo["c"], "shared-name"))
    run_sync(_create_unmanaged(unique("other-flow"), "shared-name"))

    async def read() -> list[Any]:
        async with api_client() as client:
            return await PrefectDeployments(client).read_live(
                frozenset({"deploy-manager", f"source:{unique('none')}"}),
                [f"{repo['c']}/shared-name"],
            )

    assert [(d.id, d.full_name) for d in run_sync(read())] == [
        (str(mine), f"{repo['c']}/shared-name")
    ]


def test_unknown_work_pool_is_invalid_in_the_plan_and_skips_prune(
    source_block: str, repo: dict[str, str], remote: GitRemote
) -> None:
    apply(source_block)
    pool = repo["pool"]
    missing = f"no-such-pool-{repo['token']}"
    remote.commit(
        {
            "prefect.yaml": repo_yaml(
                pool, "c", a={"parameters": {"x": 5}}, b={"work_pool": {"name": missing}}
            ),
            "flows/c.py": None,
        },
        "bad pool, drop c",
    )  # fmt: skip
    before = run_sync(read_deployments(f"source:{source_block}"))
    report, state = apply(source_block)
    assert state.is_failed()
    statuses = {(i.deployment.split("/")[1], i.action): i.status for i in report.items}
    assert statuses == {
        ("a-prod", "update"): "done", ("b-prod", "invalid"): "failed",
        ("c-prod", "prune"): "skipped",
    }  # fmt: skip
    invalid = next(i for i in report.items if i.action == "invalid")
    assert f"work pool {missing!r} does not exist" in (invalid.detail or "")
    assert f"prefect work-pool create {missing} --type process" in (invalid.detail or "")
    (problem,) = [p for p in report.problems if p.code == "refused-by-server"]
    assert (problem.file, problem.line) == ("prefect.yaml", line_of(remote, "b-prod"))
    after = run_sync(read_deployments(f"source:{source_block}"))
    assert after["b-prod"].updated == before["b-prod"].updated  # never sent: no 404 to read
    assert "c-prod" in after
    assert "b-prod" in (state.message or "")


def test_an_environment_creates_its_missing_work_pool(
    source_block: str, repo: dict[str, str], remote: GitRemote
) -> None:
    from prefect import get_client

    pool = f"made-{repo['token']}"
    remote.commit(
        {
            "deploy-manager.yaml": (
                "environments:\n  production:\n    branches: [main]\n"
                f"    work_pool: {{name: {pool}, type: process, create: true}}\n"
            ),
            "flows/d.py": flow_file(f"delta-{repo['token']}"),
        },
        "a default deployment in a pool the server lacks",
    )
    report, state = apply(source_block)
    assert state.is_completed(), state.message
    assert f"created work pool {pool} (process)" in report.notes
    (created,) = [i for i in report.items if i.action == "create" and "delta" in i.deployment]
    assert created.status == "done"

    async def read_pool() -> Any:
        async with get_client() as client:
            return await client.read_work_pool(pool)

    made = run_sync(read_pool())
    assert made.type == "process"
    assert "stream_output" in made.base_job_template["variables"]["properties"]
    again, _ = apply(source_block)
    assert again.counts["create"] == 0 and not again.notes


def test_job_variables_the_pool_refuses_are_invalid_before_any_write(
    source_block: str, repo: dict[str, str], remote: GitRemote
) -> None:
    """deploy-manager refuses exactly what the server refuses (the server is the oracle)."""
    from prefect import get_client
    from prefect.exceptions import PrefectHTTPStatusError

    from control_plane.prefect_api import PrefectDeployments

    pool = f"typed-{repo['token']}"

    async def make_pool() -> None:
        async with get_client() as client:
            await PrefectDeployments(client).create_work_pool(pool, "process")

    run_sync(make_pool())
    bad = {"stream_output": "loudly"}
    remote.commit(
        {
            "prefect.yaml": prefect_yaml(
                pool,
                [
                    entry("a-prod", "flows/a.py", pool, job_variables=bad),
                    entry("b-prod", "flows/b.py", pool, job_variables={"imagee": "x"}),
                    entry("c-prod", "flows/c.py", pool, job_variables={"env": {"A": "1"}}),
                ],
            )
        },
        "an ill-typed and an unknown job variable",
    )  # fmt: skip
    report, state = apply(source_block)
    assert state.is_failed()
    actions = {i.deployment.split("/")[1]: (i.action, i.status) for i in report.items}
    assert actions == {
        "a-prod": ("invalid", "failed"), "b-prod": ("create", "done"),
        "c-prod": ("create", "done"),
    }  # fmt: skip
    invalid = next(i for i in report.items if i.action == "invalid")
    assert "stream_output" in (invalid.detail or "") and "boolean" in (invalid.detail or "")
    (unknown,) = [p for p in report.problems if p.code == "unknown-job-variable"]
    assert unknown.severity == "warning" and "imagee" in unknown.message
    assert unknown.line == line_of(remote, "b-prod")

    async def server_answer() -> tuple[int, str]:
        async with get_client() as client:
            flow_id = await client.create_flow_from_name(repo["a"])
            try:
                await client.create_deployment(
                    flow_id=flow_id, name="oracle", work_pool_name=pool, job_variables=bad
                )
            except PrefectHTTPStatusError as exc:
                return exc.response.status_code, exc.response.text
        return 201, ""

    status, text = run_sync(server_answer())
    assert status in (409, 422) and "stream_output" in text


def test_an_update_sends_only_what_changed_so_ui_pauses_survive(
    source_block: str, repo: dict[str, str], remote: GitRemote
) -> None:
    """A person paused a-prod's schedule and c-prod itself; the repository changes a parameter."""
    from prefect import get_client

    apply(source_block)
    deployments = run_sync(read_deployments(f"source:{source_block}"))
    a, c = deployments["a-prod"], deployments["c-prod"]
    (schedule,) = a.schedules
    assert schedule.slug  # every schedule gets a stable slug

    async def pause() -> None:
        async with get_client() as client:
            await client.update_deployment_schedule(a.id, schedule.id, active=False)
            await client.pause_deployment(c.id)

    run_sync(pause())
    paused_view, _ = apply(source_block)
    assert paused_view.counts["unchanged"] == 3  # a UI pause is not drift
    remote.commit(
        {"prefect.yaml": repo_yaml(repo["pool"], a={"parameters": {"x": 2}})}, "x=2 for a"
    )
    report, state = apply(source_block)
    assert state.is_completed(), state.message
    (update,) = [i for i in report.items if i.action == "update"]
    assert update.fields == ("parameters",)
    after = run_sync(read_deployments(f"source:{source_block}"))
    assert after["a-prod"].parameters == {"x": 2}
    (kept,) = after["a-prod"].schedules
    assert (kept.id, kept.slug, kept.active) == (schedule.id, schedule.slug, False)
    assert after["c-prod"].paused is True
    remote.commit(
        {"prefect.yaml": repo_yaml(repo["pool"], a={
            "parameters": {"x": 2}, "schedules": [{"cron": "15 3 * * *", "timezone": "UTC"}]})},
        "a new cron for a",
    )  # fmt: skip
    report, _ = apply(source_block)
    assert [i.fields for i in report.items if i.action == "update"] == [("schedules",)]
    (replaced,) = run_sync(read_deployments(f"source:{source_block}"))["a-prod"].schedules
    assert replaced.schedule.cron == "15 3 * * *" and replaced.active is True
    assert replaced.slug != schedule.slug


def test_dry_run_changes_nothing(source_block: str, repo: dict[str, str]) -> None:
    report, state = apply(source_block, dry_run=True)
    assert state.is_completed()
    assert {i.status for i in report.items} == {"planned"}
    assert run_sync(read_deployments(f"source:{source_block}")) == {}


def test_ref_as_a_commit_sha_deploys_that_commit(
    source_block: str, repo: dict[str, str], remote: GitRemote
) -> None:
    first = remote.commit({}, "empty")
    remote.commit(
        {
            "flows/e.py": flow_file(f"eps-{repo['token']}"),
            "deploy-manager.yaml": f"environments:\n  production:\n    branches: [main]\n"
            f"    work_pool: {{name: {repo['pool']}}}\n",
        },
        "add e, in the test's pool by default",
    )
    report, _ = apply(source_block, ref=first)
    assert report.commit == first
    assert report.counts["create"] == 3
    latest, _ = apply(source_block)
    assert latest.counts["create"] == 1  # the default deployment of flows/e.py


def test_ref_as_a_short_sha_as_reports_show_it(
    source_block: str, repo: dict[str, str], remote: GitRemote
) -> None:
    from control_plane.errors import ConfigError

    first = remote.commit({}, "one")
    remote.commit({}, "two")
    report, state = apply(source_block, ref=first[:8])
    assert state.is_completed(), state.message
    assert report.commit == first
    missing, state = run_sync(run_apply(source_block, ref="0000000f"))
    assert state.is_failed() and isinstance(missing, ConfigError)
    assert "no commit of" in str(missing) and "'0000000f'" in str(missing)


def test_two_runs_do_not_interleave(
    source_block: str, repo: dict[str, str], remote: GitRemote
) -> None:
    """Two concurrent reconciles of one source: the second reads what the first wrote."""
    first_sha = remote.commit({}, "one")

    async def both() -> list[Any]:
        return await asyncio.gather(run_apply(source_block, ref=first_sha), run_apply(source_block))

    (r1, s1), (r2, s2) = run_sync(both())
    assert s1.is_completed() and s2.is_completed()
    # exactly one of them created the deployments; the other saw them and did nothing
    assert sorted([r1.counts["create"], r2.counts["create"]]) == [0, 3]


def test_a_run_killed_holding_the_lock_is_marked_crashed_and_the_next_run_goes_on(
    prefect_server: Any, source_block: str, remote: GitRemote
) -> None:
    """`kill -9` of an `apply` while it writes: its lease lapses, the waiting run says
    what it waits for and then reconciles, and the killed run ends Crashed (the heartbeat
    automation), not Running forever. All through the CLI, as a user runs it."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
        LogFilter,
        LogFilterFlowRunId,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    from control_plane.liveness import CRASH_AUTOMATION, CRASH_MESSAGE
    from flows.deploy_manager import LOCK_LEASE_SECONDS, _artifact_key
    from tests.conftest import REPO_ROOT

    token = unique("k")
    pool = f"pool-{token}"
    run_sync(create_pool(pool))
    count = 80  # enough writes to be killed in the middle of them
    entries = [entry(f"d{i:02d}", "flows/k.py", pool) for i in range(count)]
    remote.commit({"flows/k.py": flow_file(f"killed-{token}"),
                   "prefect.yaml": prefect_yaml(pool, entries)}, "many")  # fmt: skip
    lock = _artifact_key("lock", source_block)
    command = [sys.executable, "-m", "control_plane.cli", "apply", "--source", source_block,
               "--json"]  # fmt: skip

    async def held() -> bool:
        async with get_client() as client:
            return bool((await client.read_global_concurrency_limit_by_name(lock)).active_slots)

    async def newest_run() -> Any:
        async with get_client() as client:
            runs = await client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["deploy-manager"])),
                sort=FlowRunSort.START_TIME_DESC,
                limit=5,
            )  # only deploy-manager's: the server's scheduler adds runs of other flows
        return next(r for r in runs if r.parameters.get("source") == source_block)

    first = subprocess.Popen(command, cwd=REPO_ROOT, env=prefect_server.environment(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             start_new_session=True)  # fmt: skip
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and first.poll() is None:
        with contextlib.suppress(Exception):
            if run_sync(held()):
                break
        time.sleep(0.2)
    from control_plane.liveness import SECOND_BEAT_SECONDS

    time.sleep(SECOND_BEAT_SECONDS)  # killed after its second beat, as almost any run is
    if first.poll() is not None:
        pytest.fail(f"the first apply ended before it was killed: {first.communicate()[1]}")
    killed = run_sync(newest_run())
    os.killpg(first.pid, signal.SIGKILL)
    first.communicate()  # reaped, its pipe closed
    killed_at = time.monotonic()

    second = subprocess.run(command, cwd=REPO_ROOT, env=prefect_server.environment(),
                            capture_output=True, text=True, timeout=600, check=False)  # fmt: skip
    waited = time.monotonic() - killed_at
    assert second.returncode == 0, second.stderr
    report = json.loads(second.stdout)
    assert report["state"] == "COMPLETED"
    assert {i["status"] for i in report["items"]} <= {"done", "unchanged"}
    assert len(report["items"]) == count
    assert waited < LOCK_LEASE_SECONDS + 15 + 60  # the lease, not Prefect's default 300 s
    assert run_sync(held()) is False

    async def state_and_logs() -> tuple[Any, list[str]]:
        async with get_client() as client:
            (run,) = await client.read_flow_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[killed.id]))
            )
            waiting = await newest_run()
            logs = await client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[waiting.id]))
            )
        return run.state, [log.message for log in logs]

    deadline = time.monotonic() + 180
    state, logs = run_sync(state_and_logs())
    while not state.is_crashed() and time.monotonic() < deadline:
        time.sleep(5)
        state, logs = run_sync(state_and_logs())
    assert state.is_crashed(), f"{state.type}: {state.message}; automation {CRASH_AUTOMATION}"
    assert state.message == CRASH_MESSAGE
    assert any(m.startswith(f"waiting for the lock {lock} since ") for m in logs)


def test_guard_a_file_with_a_problem_keeps_its_deployment(
    source_block: str, repo: dict[str, str], remote: GitRemote
) -> None:
    apply(source_block)
    remote.commit({"flows/c.py": "from prefect import flow\n@flow\ndef main(:\n"}, "break c")
    report, state = apply(source_block)
    assert state.is_failed()  # the syntax error is an error of the run
    (keep,) = [i for i in report.items if i.action == "keep"]
    assert keep.deployment == f"{repo['c']}/c-prod"
    assert "flows/c.py had errors in this run" in (keep.detail or "")
    assert "c-prod" in run_sync(read_deployments(f"source:{source_block}"))


def test_guard_b_mass_prune_is_refused_unless_forced(
    source_block: str, repo: dict[str, str], remote: GitRemote
) -> None:
    apply(source_block)
    remote.commit(
        {"flows/b.py": None, "flows/c.py": None, "prefect.yaml": _yaml_without(repo, "b", "c")},
        "remove two of three",
    )
    report, _ = apply(source_block)
    assert report.count("prune") == 0 and report.count("keep") == 2
    assert all("refused as a whole" in (i.detail or "") for i in report.items if i.action == "keep")
    assert len(run_sync(read_deployments(f"source:{source_block}"))) == 3
    forced, state = apply(source_block, force_prune=True)
    assert state.is_completed()
    assert forced.count("prune", "done") == 2
    assert set(run_sync(read_deployments(f"source:{source_block}"))) == {"a-prod"}


def test_guard_c_protected_deployment_is_never_pruned(
    source_block: str, repo: dict[str, str], remote: GitRemote
) -> None:
    apply(source_block)
    run_sync(_add_tag(source_block, "c-prod", "deploy-manager:protect"))
    remote.commit({"flows/c.py": None, "prefect.yaml": _yaml_without(repo, "c")}, "remove c")
    report, _ = apply(source_block, force_prune=True)
    (keep,) = [i for i in report.items if i.action == "keep"]
    assert "never pruned" in (keep.detail or "")
    assert "c-prod" in run_sync(read_deployments(f"source:{source_block}"))


async def _add_tag(source: str, name: str, tag: str) -> None:
    from prefect import get_client
    from prefect.client.schemas.actions import DeploymentUpdate

    deployment = (await read_deployments(f"source:{source}"))[name]
    async with get_client() as client:
        await client.update_deployment(
            deployment.id, DeploymentUpdate(tags=[*deployment.tags, tag])
        )


def test_cli_plan_against_the_server_matches_the_flow(
    prefect_server: Any, source_block: str, repo: dict[str, str], remote: GitRemote
) -> None:
    """`deploy-manager plan` reads the server as the flow does: after an apply, no changes."""
    import json
    import subprocess
    import sys

    from tests.conftest import REPO_ROOT

    apply(source_block)
    result = subprocess.run(
        [sys.executable, "-m", "control_plane.cli", "plan", str(remote.work),
         "--source", source_block, "--json"],
        capture_output=True, text=True, cwd=REPO_ROOT, check=False, timeout=120,
        env=prefect_server.environment(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["counts"]["unchanged"] == 3, [c.get("diffs") for c in plan["changes"]]
    assert plan["counts"]["create"] + plan["counts"]["update"] == 0


def test_markers_the_plan_reads_round_trip_through_the_server(
    prefect_server: Any, source_block: str, repo: dict[str, str], remote: GitRemote
) -> None:
    """Every marker the plan reads of a live deployment is one registration wrote."""
    from control_plane.discovery import discover
    from control_plane.markers import is_owned
    from control_plane.prefect_api import PrefectDeployments, api_client
    from control_plane.reconcile import ReconcileOptions, build_desired
    from control_plane.sources import read_local_checkout

    apply(source_block)
    checkout = read_local_checkout(remote.work, source=source_block)
    desired = build_desired(checkout, discover(remote.work), ReconcileOptions())

    async def read() -> list[Any]:
        async with api_client() as client:
            return await PrefectDeployments(client).read_live(desired.scope_tags, [])

    live = {d.full_name: d for d in run_sync(read())}
    assert sorted(live) == sorted(s.full_name for s in desired.specs)
    for spec in desired.specs:
        got = live[spec.full_name]
        assert got.defining_files == spec.defining_files == {"prefect.yaml", spec.flow_file}
        assert got.code_fingerprint == spec.code_fingerprint is not None
        assert is_owned(got.tags, desired.scope_tags)


def test_a_typo_in_one_entry_keeps_its_deployment_and_updates_the_others(
    source_block: str, repo: dict[str, str], remote: GitRemote
) -> None:
    """The data-loss reproduction: one entry's cron made invalid must not prune it."""
    apply(source_block)
    before = run_sync(read_deployments(f"source:{source_block}"))
    remote.commit(
        {
            "prefect.yaml": repo_yaml(
                repo["pool"],
                a={"schedules": [{"cron": "61 * * * *", "timezone": "UTC"}]},
                b={"parameters": {"x": 7}},
                c={"parameters": {"x": 8}},
            )
        },
        "a typo in a-prod's cron, new parameters for b and c",
    )  # fmt: skip
    report, state = apply(source_block)
    assert state.is_failed()  # the invalid cron is an error of the run
    actions = {i.deployment.split("/")[1]: (i.action, i.status) for i in report.items}
    assert actions == {
        "a-prod": ("keep", "skipped"), "b-prod": ("update", "done"), "c-prod": ("update", "done"),
    }  # fmt: skip
    keep = next(i for i in report.items if i.action == "keep")
    assert "prefect.yaml had errors in this run" in (keep.detail or "")
    assert any(p.code == "invalid-cron" for p in report.problems)
    after = run_sync(read_deployments(f"source:{source_block}"))
    assert after["a-prod"].id == before["a-prod"].id
    assert after["a-prod"].updated == before["a-prod"].updated  # untouched
    assert (after["b-prod"].parameters, after["c-prod"].parameters) == ({"x": 7}, {"x": 8})


def test_an_unreadable_nested_prefect_yaml_keeps_what_it_declares_and_the_rest_reconciles(
    source_block: str, repo: dict[str, str], remote: GitRemote
) -> None:
    nested_flow = f"nested-{repo['token']}"
    nested_yaml = prefect_yaml(repo["pool"], [entry("n-prod", "pipelines/n/n.py", repo["pool"])])
    remote.commit(
        {"pipelines/n/n.py": flow_file(nested_flow), "pipelines/n/prefect.yaml": nested_yaml},
        "a nested pipeline",
    )
    first, _ = apply(source_block)
    assert first.counts["create"] == 4
    remote.commit(
        {
            "pipelines/n/prefect.yaml": "deployments:\n  - name: n-prod\n    entrypoint: [oops\n",
            "flows/c.py": None,
            "prefect.yaml": _yaml_without(repo, "c"),
        },
        "break the nested prefect.yaml, remove c",
    )
    report, state = apply(source_block)
    assert state.is_failed()
    actions = {i.deployment.split("/")[1]: (i.action, i.status) for i in report.items}
    assert actions["n-prod"] == ("keep", "skipped")
    assert actions["c-prod"] == ("prune", "done")
    keep = next(i for i in report.items if i.action == "keep")
    assert "pipelines/n/prefect.yaml could not be read (invalid-yaml)" in (keep.detail or "")
    assert set(run_sync(read_deployments(f"source:{source_block}"))) == {
        "a-prod", "b-prod", "n-prod",
    }  # fmt: skip


def test_a_deploy_manager_yaml_that_stops_parsing_blocks_every_prune(
    source_block: str, repo: dict[str, str], remote: GitRemote
) -> None:
    apply(source_block)
    remote.commit(
        {
            "deploy-manager.yaml": "environments: [unclosed\n",
            "flows/c.py": None,
            "prefect.yaml": _yaml_without(repo, "c"),
        },
        "break deploy-manager.yaml, remove c",
    )
    report, state = apply(source_block)
    assert state.is_failed()
    (keep,) = [i for i in report.items if i.action == "keep"]
    assert keep.deployment.endswith("/c-prod")
    assert "deploy-manager.yaml failed to parse" in (keep.detail or "")
    assert "c-prod" in run_sync(read_deployments(f"source:{source_block}"))


def test_the_server_schedules_runs_of_a_registered_cron_schedule(
    source_block: str, repo: dict[str, str]
) -> None:
    """A cron schedule deploy-manager registers gets runs from the server's scheduler.

    Asks the server to schedule now (`POST /deployments/{id}/schedule`, the code path its
    scheduler service runs every minute) rather than waiting for the service's loop.
    Prefect 3.9.1's server cannot do it on Python < 3.13 (every cron schedule fails with
    "tzinfo must be of type ZoneInfo (exactly), got Timezone('UTC')"): the server
    deploy-manager starts carries a fix (control_plane/server_site/sitecustomize.py);
    without it this fails with a 500.
    """
    from prefect import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    report, _ = apply(source_block)
    assert report.counts["create"] == 3
    deployment = run_sync(read_deployments(f"source:{source_block}"))["a-prod"]

    async def schedule_and_read() -> list[Any]:
        async with get_client() as client:
            response = await client._client.post(f"/deployments/{deployment.id}/schedule")
            response.raise_for_status()
            return await client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment.id]))
            )

    runs = run_sync(schedule_and_read())
    assert runs, "the server made no scheduled run of a '0 3 * * *' schedule"
    assert {r.state.type.value for r in runs} == {"SCHEDULED"}
    assert all(r.expected_start_time.hour == 3 for r in runs), [r.expected_start_time for r in runs]


def test_apply_keeps_the_report_the_server_copy_of_the_final_state_lacks(
    source_block: str, repo: dict[str, str]
) -> None:
    """`run_apply` takes the Report the flow returned, not the final state's server copy.

    CI hit it: the final-state request waited out the client's 60 s timeout on a locked
    SQLite server, Prefect's client sent it again, and the engine got back the server's
    copy of the Completed state, which carries no data (MissingResult).
    """
    from prefect import get_client
    from prefect.exceptions import MissingResult

    report, state = apply(source_block)
    assert report.counts["create"] == 3

    async def server_copy() -> Any:
        async with get_client() as client:
            return (await client.read_flow_run(state.state_details.flow_run_id)).state

    copy = run_sync(server_copy())
    assert copy.is_completed() and copy.message == "3 create"
    with pytest.raises(MissingResult):
        run_sync(copy.aresult())
