"""Sources from the command line: one block per repository, never re-pointed or rewritten."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.integration.conftest import git, run_sync, unique

pytestmark = pytest.mark.integration


def make_repository(path: Path, flow: str, pool: str) -> Path:
    """A git work tree with one flow whose default deployment goes to `pool` (created)."""
    path.mkdir(parents=True)
    subprocess.run(["git", "init", "--quiet", "-b", "main", str(path)], check=True)
    (path / "flows.py").write_text(
        f'from prefect import flow\n\n\n@flow(name="{flow}")\ndef main(x: int = 1) -> int:\n'
        "    return x\n"
    )
    (path / "deploy-manager.yaml").write_text(
        "environments:\n  production:\n    branches: [main]\n"
        f"    work_pool: {{name: {pool}, type: process, create: true}}\n"
    )
    git(path, "add", "-A")
    git(path, "commit", "--quiet", "-m", "init")
    return path


def apply(server: Any, *args: str) -> tuple[int, Any, str]:
    """`deploy-manager apply ... --json` as a user runs it; (exit status, report, stderr)."""
    result = subprocess.run(
        [sys.executable, "-m", "control_plane.cli", "apply", *args, "--json"],
        capture_output=True, text=True, cwd=REPO_ROOT, check=False, timeout=300,
        env=server.environment(),
    )  # fmt: skip
    report = json.loads(result.stdout) if result.stdout.strip() else None
    return result.returncode, report, result.stderr


def created(report: dict[str, Any]) -> int:
    return sum(1 for i in report["items"] if i["action"] == "create" and i["status"] == "done")


async def read_block(name: str) -> Any:
    from prefect_github import GitHubRepository

    return await GitHubRepository.aload(name)


async def deployment_names(flow: str) -> list[str]:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    async with get_client() as client:
        found = await client.read_deployments(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow]))
        )
    return sorted(d.name for d in found)


def test_two_repositories_with_one_folder_name_never_share_a_source(
    prefect_server: Any, tmp_path: Path
) -> None:
    folder, pool = unique("etl"), unique("pool")
    a_flow, b_flow = unique("a-flow"), unique("b-flow")
    a = make_repository(tmp_path / "team-a" / folder, a_flow, pool)
    b = make_repository(tmp_path / "team-b" / folder, b_flow, pool)
    code, report, _ = apply(prefect_server, str(a))
    assert code == 0 and created(report) == 1
    code, report, err = apply(prefect_server, str(b))
    assert (code, report) == (2, None)
    assert f"the source {folder!r} is the GitHubRepository block for {a}" in err
    assert f"--source team-b-{folder}" in err and "--update-source" in err
    assert run_sync(read_block(folder)).repository_url == str(a)  # not re-pointed
    code, report, _ = apply(prefect_server, str(b), "--source", f"team-b-{folder}")
    assert code == 0 and created(report) == 1
    assert not [i for i in report["items"] if i["action"] == "prune"]
    assert run_sync(deployment_names(a_flow)) == [a_flow]  # team-a's deployment survived
    assert run_sync(deployment_names(b_flow)) == [b_flow]


def test_re_pointing_a_source_is_asked_for_and_keeps_its_settings(
    prefect_server: Any, tmp_path: Path
) -> None:
    from prefect_github import GitHubCredentials, GitHubRepository

    pool = unique("pool")
    first = make_repository(tmp_path / "one" / "repo", unique("f"), pool)
    second = make_repository(tmp_path / "two" / "repo", unique("g"), pool)
    name, credentials = unique("src"), unique("creds")

    async def save() -> None:
        await GitHubCredentials(token="t0ken-value").asave(credentials)
        creds = await GitHubCredentials.aload(credentials)
        await GitHubRepository(
            repository_url=str(first), reference="main", credentials=creds
        ).asave(name)

    run_sync(save())
    code, _, _ = apply(prefect_server, str(first), "--source", name)
    assert code == 0
    block = run_sync(read_block(name))
    assert (block.reference, block.credentials.token.get_secret_value()) == ("main", "t0ken-value")
    code, _, err = apply(prefect_server, str(second), "--source", name)
    assert code == 2 and "--update-source" in err
    code, _, err = apply(prefect_server, str(second), "--source", name, "--update-source")
    assert code == 0 and f"re-pointed the source block {name!r}" in err
    block = run_sync(read_block(name))
    assert block.repository_url == str(second)
    assert (block.reference, block.credentials.token.get_secret_value()) == ("main", "t0ken-value")


def test_a_dry_run_writes_no_block_and_no_lock(prefect_server: Any, tmp_path: Path) -> None:
    from prefect import get_client
    from prefect.exceptions import ObjectNotFound

    folder = unique("dry")
    repo = make_repository(tmp_path / folder, unique("d"), unique("pool"))
    code, report, _ = apply(prefect_server, str(repo), "--dry-run")
    assert code == 0
    assert {i["status"] for i in report["items"]} == {"planned"}
    assert [i["action"] for i in report["items"]] == ["create"]
    with pytest.raises(ValueError):
        run_sync(read_block(folder))

    async def lock_exists() -> bool:
        async with get_client() as client:
            try:
                await client.read_global_concurrency_limit_by_name(f"deploy-manager-lock-{folder}")
            except ObjectNotFound:
                return False
        return True

    assert run_sync(lock_exists()) is False


def test_a_branch_that_does_not_exist_is_one_line_exit_2_no_retry_nothing_left(
    prefect_server: Any, tmp_path: Path
) -> None:
    import tempfile

    from prefect import get_client
    from prefect.client.schemas.filters import (
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterId,
    )
    from prefect.client.schemas.sorting import FlowRunSort

    folder = unique("nobranch")
    repo = make_repository(tmp_path / folder, unique("n"), unique("pool"))
    leftovers = set(Path(tempfile.gettempdir()).glob(f"deploy-manager-{folder}-*"))
    code, report, err = apply(prefect_server, str(repo), "--ref", "no-such-branch")
    assert (code, report) == (2, None)
    assert "Traceback" not in err
    lines = [x for x in err.splitlines() if x.startswith("deploy-manager: cannot clone")]
    assert len(lines) == 1, err
    (line,) = lines
    assert f"cannot clone {repo} at no-such-branch" in line
    assert "push 'no-such-branch' first, or pass an existing branch or tag (--ref)" in line
    assert set(Path(tempfile.gettempdir()).glob(f"deploy-manager-{folder}-*")) == leftovers

    async def fetch_attempts() -> list[str]:
        async with get_client() as client:
            (run,) = await client.read_flow_runs(
                flow_filter=FlowFilter(name=FlowFilterName(any_=["deploy-manager"])),
                sort=FlowRunSort.START_TIME_DESC,
                limit=1,
            )  # only deploy-manager's: the server's scheduler adds runs of other flows
            assert run.parameters["source"] == folder
            tasks = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run.id]))
            )
            (fetch,) = [t for t in tasks if t.name == "fetch-source"]
            return [s.name for s in await client.read_task_run_states(fetch.id)]

    assert "Retrying" not in run_sync(fetch_attempts())


def test_plan_and_apply_agree_on_a_checkout_without_an_origin(
    prefect_server: Any, tmp_path: Path
) -> None:
    """One function computes the specs for both: after apply, plan has nothing to change."""
    repo = make_repository(tmp_path / unique("local"), unique("l"), unique("pool"))
    assert not git(repo, "remote")  # no origin
    code, report, _ = apply(prefect_server, str(repo))
    assert code == 0 and created(report) == 1
    planned = subprocess.run(
        [sys.executable, "-m", "control_plane.cli", "plan", str(repo), "--json"],
        capture_output=True, text=True, cwd=REPO_ROOT, check=False, timeout=300,
        env=prefect_server.environment(),
    )  # fmt: skip
    assert planned.returncode == 0, planned.stderr
    plan = json.loads(planned.stdout)
    assert [(c["action"], c.get("diffs")) for c in plan["changes"]] == [("unchanged", None)]
