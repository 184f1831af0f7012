"""Build and push steps at apply time, with `prefect deploy` itself as the oracle.

The fixture `tests/fixtures/steps-monorepo` is deployed twice on one real server: by
deploy-manager (environment `staging`, so its names end in `-staging`) and by
`prefect deploy --all` run from the test, one prefect.yaml at a time, as a person would.
Every field both write is then compared; the intended differences are spelled out.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from control_plane.server import LocalServer
from tests.conftest import REPO_ROOT
from tests.integration.conftest import GitRemote, git, run_sync, unique
from tests.integration.test_reconcile import apply, create_pool, entry, flow_file, prefect_yaml

pytestmark = pytest.mark.integration

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "steps-monorepo"
PIPELINES = ("orders", "billing")  # legacy declares `deployments: []`
POOL = "steps-monorepo-docker"
ENVIRONMENT = {
    "WAREHOUSE_URL": "postgres://warehouse.internal/analytics",
    "TEAM": "data",
    "PIPELINE_BRANCH": "main",
}
VARIABLES = {
    "steps_orders_source": "shop-eu",
    "steps_billing_currency": "CHF",
    "steps_invoices_active": "false",
}
SECRET_BLOCK, SECRET_VALUE = "steps-orders-api-token", "tok-8f1c2e9a7b"
MARKER_PREFIXES = ("deploy-manager:", "source:", "env:", "branch:")


def fixture_files(root: Path = FIXTURE) -> dict[str, str]:
    return {
        path.relative_to(root).as_posix(): path.read_text()
        for path in sorted(root.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


async def _prepare_server() -> None:
    """The pool, variables and block the fixture's templates name."""
    from prefect import get_client
    from prefect.blocks.system import Secret
    from prefect.client.schemas.actions import VariableCreate, VariableUpdate, WorkPoolCreate
    from prefect.exceptions import ObjectAlreadyExists

    async with get_client() as client:
        with contextlib.suppress(ObjectAlreadyExists):
            await client.create_work_pool(WorkPoolCreate(name=POOL, type="docker"))
        for name, value in VARIABLES.items():
            if await client.read_variable_by_name(name) is None:
                await client.create_variable(VariableCreate(name=name, value=value))
            else:
                await client.update_variable(VariableUpdate(name=name, value=value))
    await Secret(value=SECRET_VALUE).asave(SECRET_BLOCK, overwrite=True)


def prefect_deploy(work: Path, prefect_file: str, server: LocalServer) -> None:
    """`prefect deploy --all` from the repository root, as a person would run it."""
    prefect = Path(sys.executable).with_name("prefect")
    completed = subprocess.run(
        [str(prefect), "--no-prompt", "deploy", "--all", "--prefect-file", prefect_file],
        cwd=work, env={**server.environment(), **ENVIRONMENT}, capture_output=True, text=True,
        timeout=300, check=False,
    )  # fmt: skip
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]


async def read_by_flow(flow_names: set[str]) -> dict[str, Any]:
    """Every deployment of these flows, by deployment name."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    async with get_client() as client:
        found = await client.read_deployments(
            flow_filter=FlowFilter(name=FlowFilterName(any_=sorted(flow_names)))
        )
    return {d.name: d for d in found}


def comparable(deployment: Any) -> dict[str, Any]:
    """What a deployment is, field by field, in a form two registrations can be compared in."""
    gcl = deployment.global_concurrency_limit
    return {
        "version": deployment.version,
        "description": deployment.description,
        "entrypoint": deployment.entrypoint,
        "tags": sorted(deployment.tags),
        "parameters": deployment.parameters,
        "parameter_openapi_schema": deployment.parameter_openapi_schema,
        "enforce_parameter_schema": deployment.enforce_parameter_schema,
        "work_pool_name": deployment.work_pool_name,
        "work_queue_name": deployment.work_queue_name,
        "job_variables": deployment.job_variables,
        "pull_steps": deployment.pull_steps,
        "paused": deployment.paused,
        "concurrency_limit": gcl.limit if gcl else None,
        "concurrency_options": deployment.concurrency_options,
        "schedules": sorted(
            json.dumps(
                {
                    "schedule": s.schedule.model_dump(mode="json"),
                    "parameters": s.parameters,
                    "active": s.active,
                    "slug": s.slug,
                },
                sort_keys=True,
            )
            for s in deployment.schedules
        ),
    }


def without_generated_slugs(schedules: list[str]) -> list[str]:
    """deploy-manager names each schedule the repository does not (`dm-<digest>`)."""
    out = []
    for text in schedules:
        schedule = json.loads(text)
        if (schedule["slug"] or "").startswith("dm-"):
            schedule["slug"] = None
        out.append(json.dumps(schedule, sort_keys=True))
    return sorted(out)


def without_markers(tags: list[str]) -> list[str]:
    return sorted(t for t in tags if t != "deploy-manager" and not t.startswith(MARKER_PREFIXES))


async def task_runs(flow_run_id: Any) -> list[tuple[str, str]]:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    async with get_client() as client:
        runs = await client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return sorted((r.name, r.state.type.value) for r in runs)


@pytest.fixture
def monorepo(
    prefect_server: LocalServer, remote: GitRemote, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    """The fixture committed to the remote, the server prepared, the environment set."""
    for name, value in ENVIRONMENT.items():
        monkeypatch.setenv(name, value)
    run_sync(_prepare_server())
    remote.commit(fixture_files(), "the data platform")
    yield git(remote.work, "rev-parse", "--short", "HEAD")
    run_sync(_delete_deployments(FLOWS))  # the fixture's flow names are fixed


FLOWS = {"steps-ingest-orders", "steps-backfill-orders", "steps-send-invoices",
         "steps-close-month", "steps-legacy-export"}  # fmt: skip


async def _delete_deployments(flow_names: set[str]) -> None:
    from prefect import get_client

    async with get_client() as client:
        for deployment in (await read_by_flow(flow_names)).values():
            await client.delete_deployment(deployment.id)


def test_registered_deployments_equal_what_prefect_deploy_registers(
    prefect_server: LocalServer, source_block: str, remote: GitRemote, monorepo: str
) -> None:
    short_sha = monorepo
    report, state = apply(source_block, environment="staging")
    assert state.is_completed(), state.message
    assert report.counts["create"] == 4, report
    # One run of each distinct step: every pipeline's root build is the same step.
    runs = run_sync(task_runs(state.state_details.flow_run_id))
    assert [r for r in runs if r[0].startswith("step[")] == [
        ("step[commit-date]", "COMPLETED"),
        ("step[get-commit-hash]", "COMPLETED"),
    ]
    assert ("resolve-templates", "COMPLETED") in runs

    for pipeline in PIPELINES:
        prefect_deploy(remote.work, f"pipelines/{pipeline}/prefect.yaml", prefect_server)
    deployed = run_sync(read_by_flow(FLOWS))
    oracle = {n: d for n, d in deployed.items() if not n.endswith("-staging")}
    ours = {n.removesuffix("-staging"): d for n, d in deployed.items() if n.endswith("-staging")}
    assert sorted(oracle) == sorted(ours) == [
        "close-month", "invoices-every-30m", "orders-backfill", "orders-hourly",
    ]  # fmt: skip

    for name in sorted(oracle):
        expected, actual = comparable(oracle[name]), comparable(ours[name])
        # Intended: deploy-manager's ownership markers are tags of their own, and it gives
        # the schedules the repository leaves unnamed a stable slug (a UI pause survives).
        assert without_markers(actual.pop("tags")) == expected.pop("tags"), name
        actual["schedules"] = without_generated_slugs(actual["schedules"])
        if name == "orders-backfill":
            # Intended: no version declared -> the commit; Prefect takes the flow's file hash.
            assert actual.pop("version") == git(remote.work, "rev-parse", "HEAD")[:8]
            expected.pop("version")
        assert actual == expected, name

    # What that means, spelled out for the deployment that uses every kind of template.
    hourly = comparable(ours["orders-hourly"])
    assert hourly["version"] == short_sha
    assert hourly["job_variables"] == {
        "image": f"registry.example.com/data/orders:{short_sha}",
        "env": {
            "WAREHOUSE_URL": ENVIRONMENT["WAREHOUSE_URL"],
            "RELEASE": short_sha,
            "ORDERS_API_TOKEN": SECRET_VALUE,  # prefect deploy resolves blocks in job variables
        },
    }
    assert hourly["parameters"] == {"source": "shop-eu", "batch_size": 500}
    assert "team-data" in hourly["tags"]
    clone, workdir = hourly["pull_steps"]
    assert clone["prefect.deployments.steps.git_clone"] == {
        "id": "clone",
        "repository": "https://git.example.com/data/platform.git",
        "branch": "main",
        "commit_sha": short_sha,
        # left for the worker, which resolves blocks when it runs the pull steps
        "access_token": "{{ prefect.blocks.secret.steps-git-token }}",
    }
    assert workdir == {
        "prefect.deployments.steps.set_working_directory": {"directory": "{{ clone.directory }}"}
    }
    invoices = comparable(ours["invoices-every-30m"])
    assert json.loads(invoices["schedules"][0])["active"] is False  # a variable's "false"

    # The legacy pipeline (`deployments: []`) registers nothing.
    assert not [n for n, d in deployed.items() if "legacy" in n]


def test_second_reconcile_of_the_same_commit_writes_nothing(
    source_block: str, remote: GitRemote, monorepo: str
) -> None:
    first, _ = apply(source_block, environment="staging")
    assert first.counts["create"] == 4
    before = run_sync(read_by_flow(FLOWS))
    second, state = apply(source_block, environment="staging")
    assert state.is_completed(), state.message
    assert second.counts["unchanged"] == 4, second
    after = run_sync(read_by_flow(FLOWS))
    assert {n: d.updated for n, d in after.items()} == {n: d.updated for n, d in before.items()}


def test_a_dry_run_runs_no_step_and_never_shows_a_block_value(
    source_block: str, remote: GitRemote, monorepo: str
) -> None:
    report, state = apply(source_block, environment="staging", dry_run=True)
    assert state.is_completed(), state.message
    runs = run_sync(task_runs(state.state_details.flow_run_id))
    assert not [r for r in runs if r[0].startswith("step[")]
    versions = {i.deployment.split("/")[1]: i.version for i in report.items}
    assert versions["orders-hourly-staging"] == "<from step get-commit-hash>"
    assert not run_sync(read_by_flow(FLOWS))

    apply(source_block, environment="staging")
    from prefect.blocks.system import Secret

    run_sync(Secret(value="tok-rotated-5521").asave(SECRET_BLOCK, overwrite=True))
    report, _ = apply(source_block, environment="staging", dry_run=True)
    (hourly,) = [i for i in report.items if i.deployment.endswith("/orders-hourly-staging")]
    assert hourly.action == "update" and "job_variables" in hourly.fields
    shown = json.dumps(report.model_dump(mode="json"))
    assert SECRET_VALUE not in shown and "tok-rotated-5521" not in shown
    assert "<from a block>" in shown


def test_a_step_outside_the_allow_list_keeps_its_deployments(
    source_block: str, remote: GitRemote, monorepo: str
) -> None:
    apply(source_block, environment="staging")
    before = run_sync(read_by_flow(FLOWS))
    report, state = apply(
        source_block, environment="staging", allowed_steps=["prefect_docker.deployments.steps.*"]
    )
    assert state.is_failed()
    refused = {(p.file, p.line) for p in report.problems if p.code == "step-not-allowed"}
    assert refused == {  # each run_shell_script line of the pipelines that deploy something
        (f"pipelines/{pipeline}/prefect.yaml", number)
        for pipeline in PIPELINES
        for number, line in enumerate(
            (FIXTURE / "pipelines" / pipeline / "prefect.yaml").read_text().splitlines(), 1
        )
        if "run_shell_script:" in line
    }
    actions = {i.deployment.split("/")[1]: (i.action, i.status) for i in report.items}
    assert actions == {
        "orders-hourly-staging": ("keep", "skipped"),
        "invoices-every-30m-staging": ("keep", "skipped"),
        "close-month-staging": ("keep", "skipped"),
        "orders-backfill-staging": ("unchanged", "unchanged"),  # it runs no step
    }
    after = run_sync(read_by_flow(FLOWS))
    assert {n: d.updated for n, d in after.items()} == {n: d.updated for n, d in before.items()}


def test_a_failed_step_fails_only_the_deployments_that_run_it(
    source_block: str, remote: GitRemote
) -> None:
    token = unique("t")
    pool = f"pool-{token}"
    run_sync(create_pool(pool))
    flows = {k: f"{k}-{token}" for k in ("broken", "plain", "hashed")}
    broken_build = [
        {"prefect.deployments.steps.run_shell_script": {"id": "tag", "script": "git no-such-cmd"}}
    ]
    hashed_build = [
        {
            "prefect.deployments.steps.run_shell_script": {
                "id": "get-commit-hash",
                "script": "git rev-parse --short HEAD",
                "stream_output": False,
            }
        }
    ]
    remote.commit(
        {
            **{f"flows/{k}.py": flow_file(name) for k, name in flows.items()},
            "prefect.yaml": prefect_yaml(
                pool,
                [
                    entry("broken", "flows/broken.py", pool, version="{{ tag.stdout }}",
                          build=broken_build),
                    entry("plain", "flows/plain.py", pool),
                    entry("hashed", "flows/hashed.py", pool,
                          version="{{ get-commit-hash.stdout }}", build=hashed_build),
                ],
            ),
        },
        "one broken build",
    )  # fmt: skip
    report, state = apply(source_block)
    assert state.is_failed()
    items = {i.deployment.split("/")[1]: i for i in report.items}
    assert (items["broken"].action, items["broken"].status) == ("create", "failed")
    assert "step[tag] failed" in (items["broken"].detail or "")
    assert "no-such-cmd" in (items["broken"].detail or "")
    assert items["plain"].status == items["hashed"].status == "done"
    deployed = run_sync(read_by_flow(set(flows.values())))
    assert sorted(deployed) == ["hashed", "plain"]
    assert deployed["hashed"].version == git(remote.work, "rev-parse", "--short", "HEAD")


# --- prefect-docker, for real -----------------------------------------------------------

# the team's offline Docker setup (engine, Prefect base images, registries), beside the clone
DOCKER_OFFLINE = REPO_ROOT.parent / "shared" / "tools" / "docker-offline"
REGISTRY = "127.0.0.1:5000"


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """A Docker engine, the local base images and a registry on 127.0.0.1:5000."""
    if shutil.which("docker") is None and not DOCKER_OFFLINE.exists():
        if os.environ.get("DEPLOY_MANAGER_CI"):  # CI has Docker: a skip there hides a gap
            pytest.fail(f"no Docker and no {DOCKER_OFFLINE} on the CI machine")
        pytest.skip("no Docker on this machine")
    if DOCKER_OFFLINE.exists():
        subprocess.run([str(DOCKER_OFFLINE), "all"], check=True, capture_output=True, timeout=900)


def test_build_docker_image_feeds_the_image_into_job_variables(
    docker_engine: None, source_block: str, remote: GitRemote
) -> None:
    token = unique("t")
    pool = f"docker-{token}"
    run_sync(create_pool(pool, "docker"))
    name = f"docker-flow-{token}"
    image_name = f"{REGISTRY}/steps-{token}/app"
    text = (
        "build:\n"
        "  - prefect.deployments.steps.run_shell_script:\n"
        "      id: get-commit-hash\n"
        "      script: git rev-parse --short HEAD\n"
        "      stream_output: false\n"
        "  - prefect_docker.deployments.steps.build_docker_image:\n"
        "      id: build-image\n"
        "      requires: prefect-docker>=0.6\n"
        f"      image_name: {image_name}\n"
        '      tag: "{{ get-commit-hash.stdout }}"\n'
        "      dockerfile: Dockerfile\n"
        "      pull: false\n"  # no registry is reachable: the base image is local
        "      rm: true\n"
        "      forcerm: true\n"
        "push:\n"
        "  - prefect_docker.deployments.steps.push_docker_image:\n"
        "      requires: prefect-docker>=0.6\n"
        '      image_name: "{{ build-image.image_name }}"\n'
        '      tag: "{{ build-image.tag }}"\n'
        "deployments:\n"
        "  - name: in-a-container\n"
        "    entrypoint: flows/app.py:main\n"
        "    pull: []\n"
        "    work_pool:\n"
        f"      name: {pool}\n"
        "      job_variables:\n"
        '        image: "{{ build-image.image }}"\n'
        "        image_pull_policy: Never\n"
    )
    remote.commit(
        {
            "flows/app.py": flow_file(name),
            "Dockerfile": "FROM prefecthq/prefect:3-python3.11\nCOPY flows /opt/prefect/flows\n",
            "prefect.yaml": text,
        },
        "an image per commit",
    )
    short_sha = git(remote.work, "rev-parse", "--short", "HEAD")
    _, state = apply(source_block)
    assert state.is_completed(), state.message
    runs = run_sync(task_runs(state.state_details.flow_run_id))
    assert [r for r in runs if r[0].startswith("step[")] == [
        ("step[build-image]", "COMPLETED"),
        ("step[get-commit-hash]", "COMPLETED"),
        ("step[push_docker_image]", "COMPLETED"),
    ]
    deployment = run_sync(read_by_flow({name}))["in-a-container"]
    assert deployment.job_variables == {
        "image": f"{image_name}:{short_sha}",
        "image_pull_policy": "Never",
    }
    # The image was built from the checkout and pushed to the registry.
    listed = subprocess.run(
        ["docker", "image", "inspect", f"{image_name}:{short_sha}"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    with urllib.request.urlopen(f"http://{REGISTRY}/v2/steps-{token}/app/tags/list") as answer:
        assert json.load(answer)["tags"] == [short_sha]
