"""A token given in a URL or kept in a credentials block leaks nowhere.

The remote is a private git host on loopback (`git http-backend` over HTTPS with basic
auth), so a URL with credentials really clones and a missing token really fails. The
token is looked for in everything a run leaves: the CLI's output, every text column of
the server's database (logs, states, flow-run parameters, artifacts, deployments, events;
the server encrypts block data), the server's log, every file under the
Prefect home (result storage) and git's credential store.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from tests.integration.conftest import git, run_sync, unique
from tests.integration.git_http import GitHttpServer
from tests.integration.test_sources import make_repository

pytestmark = pytest.mark.integration


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[GitHttpServer]:
    token = f"ghp_{uuid.uuid4().hex}"
    (tmp_path / "repos").mkdir()
    server = GitHttpServer(tmp_path / "repos", token, tmp_path)
    monkeypatch.setenv("GIT_SSL_CAINFO", str(server.cert))  # git trusts the host, nothing else
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # git's credential store, if any
    (tmp_path / "home").mkdir()
    yield server
    server.stop()


def push_repository(host: GitHttpServer, name: str, flow: str, pool: str) -> None:
    """A bare repository `name.git` on the host with one flow and its pool."""
    work = make_repository(host.root.parent / f"work-{name}", flow, pool)
    subprocess.run(
        ["git", "clone", "--quiet", "--bare", str(work), str(host.root / f"{name}.git")],
        check=True,
    )


def cli(server: Any, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "control_plane.cli", *args],
        capture_output=True, text=True, cwd=REPO_ROOT, check=False, timeout=300,
        env=server.environment(),
    )  # fmt: skip


def database_hits(home: Path, token: str) -> list[str]:
    """Every table.column of the server's database whose text holds the token."""
    hits = []
    with sqlite3.connect(f"file:{home / 'prefect.db'}?mode=ro", uri=True) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for column in [r[1] for r in db.execute(f'PRAGMA table_info("{table}")')]:
                query = f'SELECT count(*) FROM "{table}" WHERE CAST("{column}" AS TEXT) LIKE ?'
                if db.execute(query, (f"%{token}%",)).fetchone()[0]:
                    hits.append(f"{table}.{column}")
    return hits


def files_holding(root: Path, token: str, skip: tuple[str, ...] = ()) -> list[str]:
    found = []
    for path in root.rglob("*"):
        skipped = path.name.startswith(skip) if skip else False
        if path.is_file() and not skipped and token.encode() in path.read_bytes():
            found.append(str(path))
    return found


async def credentials_of(source: str) -> tuple[str, str | None, str]:
    from prefect_github import GitHubCredentials, GitHubRepository

    block = await GitHubRepository.aload(source)
    stored = await GitHubCredentials.aload(f"{source}-credentials")
    token = stored.token.get_secret_value()
    return block.repository_url, block.credentials._block_document_name, token


async def pull_steps_of(flow: str) -> list[Any]:
    from prefect import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName

    async with get_client() as client:
        (deployment,) = await client.read_deployments(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow]))
        )
    return list(deployment.pull_steps or [])


def test_a_token_in_a_url_goes_into_a_credentials_block_and_leaks_nowhere(
    prefect_server: Any, host: GitHttpServer
) -> None:
    token, name = host.token, unique("private")
    flow, pool = unique("secret-flow"), unique("pool")
    push_repository(host, name, flow, pool)
    clean = host.url(f"{name}.git")
    with_token = clean.replace("https://", f"https://x-access-token:{token}@")
    wrong = unique("missing")

    def checkouts() -> set[Path]:  # this test's: other processes may be cloning meanwhile
        temp = Path(tempfile.gettempdir())
        return {*temp.glob(f"deploy-manager-{name}-*"), *temp.glob(f"deploy-manager-{wrong}-*")}

    leftovers = checkouts()

    outputs = []
    first = cli(prefect_server, "apply", with_token, "--source", name, "--json")
    outputs.append(first)
    assert first.returncode == 0, first.stderr
    assert [(i["action"], i["status"]) for i in json.loads(first.stdout)["items"]] == [
        ("create", "done")
    ]
    assert f"(token in the block {name}-credentials)" in first.stderr
    assert run_sync(credentials_of(name)) == (clean, f"{name}-credentials", token)
    (pull,) = run_sync(pull_steps_of(flow))
    clone = pull["prefect.deployments.steps.git_clone"]
    assert clone["repository"] == clean
    reference = "{{ prefect.blocks.github-credentials." + name + "-credentials }}"
    assert clone["credentials"] == reference

    # The same URL again: the block already holds this token, so nothing is re-saved.
    again = cli(prefect_server, "apply", with_token, "--source", name, "--json")
    outputs.append(again)
    assert again.returncode == 0, again.stderr
    assert {i["action"] for i in json.loads(again.stdout)["items"]} == {"unchanged"}
    assert "token" not in again.stderr

    # Failures with the token in play: a branch that does not exist, a repository that
    # does not exist (the host answers 404 to a request that carried the token).
    missing_ref = cli(prefect_server, "apply", "--source", name, "--ref", "nope", "--json")
    outputs.append(missing_ref)
    assert missing_ref.returncode == 2 and "cannot clone" in missing_ref.stderr
    missing_repo = cli(prefect_server, "apply", with_token.replace(name, wrong), "--json")
    outputs.append(missing_repo)
    assert missing_repo.returncode == 2, missing_repo.stderr
    assert f"cannot clone {host.url(wrong + '.git')}" in missing_repo.stderr
    # Another token for a source that holds one: refused, not silently swapped.
    other = cli(prefect_server, "apply", clean.replace("https://", "https://ghp_other@"),
                "--source", name, "--json")  # fmt: skip
    outputs.append(other)
    assert other.returncode == 2 and "add --update-source" in other.stderr

    for result in outputs:
        assert token not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr
    home = prefect_server.home
    # The server encrypts block data, so even the credentials block does not show; the
    # search itself finds what is there (the flow's name, the repository's in pull steps).
    assert "flow.name" in database_hits(home, flow)
    assert "deployment.pull_steps" in database_hits(home, name)
    assert database_hits(home, token) == []
    assert files_holding(home, token, skip=("prefect.db",)) == []  # server log, results
    assert files_holding(Path.home(), token) == []  # no credential helper stored it
    assert checkouts() == leftovers


def test_a_checkout_keeps_no_token_and_images_never_see_its_git(
    prefect_server: Any, host: GitHttpServer
) -> None:
    from docker.utils.build import exclude_paths

    from control_plane.sources import choose_source, fetch_checkout

    name = unique("ctx")
    push_repository(host, name, unique("f"), unique("pool"))
    url = host.url(f"{name}.git").replace("https://", f"https://{host.token}@")
    run_sync(choose_source(url, name))
    # Fetch by full sha: a second request to the host, with the token, after the clone.
    sha = git(host.root / f"{name}.git", "rev-parse", "HEAD")
    checkout = run_sync(fetch_checkout(name, sha))
    try:
        assert checkout.commit == sha
        assert files_holding(checkout.path, host.token) == []
        assert git(checkout.path, "remote", "get-url", "origin") == host.url(f"{name}.git")
        assert git(checkout.path, "status", "--porcelain") == ""
        context = set(exclude_paths(str(checkout.path), (checkout.path / ".dockerignore")
                                    .read_text().splitlines()))  # fmt: skip
        assert "flows.py" in context
        assert not [p for p in context if p == ".git" or p.startswith(".git/")]
    finally:
        import shutil

        shutil.rmtree(checkout.path, ignore_errors=True)


def test_the_pinned_clone_refers_to_the_credentials_block_as_prefect_does(
    prefect_server: Any, host: GitHttpServer
) -> None:
    """Our pinned step is `GitRepository(..., credentials=<the saved block>).to_pull_step()`
    (the oracle) without its `branch: None`; the token itself is in neither."""
    from prefect.runner.storage import GitRepository
    from prefect_github import GitHubCredentials

    from control_plane.reconcile import GIT_CLONE_STEP, pinned_pull_steps
    from control_plane.sources import choose_source, fetch_checkout

    name = unique("pin")
    push_repository(host, name, unique("f"), unique("pool"))
    url = host.url(f"{name}.git").replace("https://", f"https://{host.token}@")
    run_sync(choose_source(url, name))
    checkout = run_sync(fetch_checkout(name))
    try:
        assert checkout.credentials_block == f"{name}-credentials"
        block = run_sync(GitHubCredentials.aload(checkout.credentials_block))
        prefects = GitRepository(
            url=host.url(f"{name}.git"), commit_sha=checkout.commit, credentials=block
        ).to_pull_step()
        (ours,) = pinned_pull_steps(checkout) or ()
        assert prefects == {GIT_CLONE_STEP: {**ours[GIT_CLONE_STEP], "branch": None}}
        assert ours[GIT_CLONE_STEP]["credentials"] == (
            "{{ prefect.blocks.github-credentials." + f"{name}-credentials" + " }}"
        )
        assert host.token not in json.dumps(prefects)
    finally:
        import shutil

        shutil.rmtree(checkout.path, ignore_errors=True)


def test_a_flow_parameter_or_block_with_a_token_in_its_url_is_refused(
    prefect_server: Any, host: GitHttpServer
) -> None:
    from prefect_github import GitHubRepository

    from control_plane.errors import ConfigError
    from control_plane.sources import fetch_checkout

    name = unique("inurl")
    push_repository(host, name, unique("f"), unique("pool"))
    url = host.url(f"{name}.git").replace("https://", f"https://{host.token}@")
    run_sync(GitHubRepository(repository_url=url).asave(name))
    for parameter in (None, url):
        with pytest.raises(ConfigError) as raised:
            run_sync(fetch_checkout(name, None, parameter))
        message = str(raised.value)
        assert host.token not in message and host.url(f"{name}.git") in message
        assert "GitHubCredentials block" in message and "--update-source" in message
    # The remedy the message gives works: the token moves out of the URL into a block.
    fixed = cli(prefect_server, "apply", url, "--source", name, "--update-source", "--json")
    assert fixed.returncode == 0, fixed.stderr
    assert run_sync(credentials_of(name)) == (
        host.url(f"{name}.git"),
        f"{name}-credentials",
        host.token,
    )
    assert host.token not in fixed.stdout + fixed.stderr
