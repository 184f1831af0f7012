"""The command line: JSON shapes and exit statuses."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import EXAMPLES, REPO_ROOT


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "control_plane.cli", *args],
        capture_output=True, text=True, cwd=REPO_ROOT, check=False, timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home())},
    )  # fmt: skip


def test_discover_json_shape_and_exit_0() -> None:
    result = run("discover", str(EXAMPLES), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"flows", "deployments", "problems"}
    assert set(data["flows"][0]) == {"name", "entrypoint", "description", "parameters"}
    assert {"name", "flow_name", "entrypoint", "work_pool", "source_file"} <= set(
        data["deployments"][0]
    )


def test_problems_exit_1_and_good_files_still_listed(write_repo) -> None:
    repo = write_repo(
        {
            "good.py": "from prefect import flow\n@flow\ndef good(): pass\n",
            "bad.py": "from prefect import flow\n@flow\ndef bad(:\n",
            "prefect.yaml": (
                "deployments:\n  - name: x\n    entrypoint: good.py:good\n"
                "    schedules:\n      - cron: '61 * * * *'\n"
            ),
        }
    )
    result = run("discover", str(repo), "--json")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert [f["name"] for f in data["flows"]] == ["good"]
    codes = {(p["file"], p["code"]) for p in data["problems"]}
    assert ("bad.py", "syntax-error") in codes and ("prefect.yaml", "invalid-cron") in codes
    for problem in data["problems"]:
        assert problem["message"] and problem["remedy"]


def test_bad_usage_exits_2(tmp_path: Path) -> None:
    assert run("discover").returncode == 2
    assert run("discover", str(tmp_path / "missing")).returncode == 2
    assert run("plan", str(EXAMPLES), "--environment", "nope").returncode == 2


def test_plan_against_an_empty_server_creates_everything() -> None:
    result = run("plan", str(EXAMPLES), "--json", "--branch", "main")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["environment"] == "production"
    assert data["counts"]["create"] == 4
    assert {c["action"] for c in data["changes"]} == {"create"}


def _git_repository(path: Path) -> Path:
    subprocess.run(["git", "init", "--quiet", str(path)], check=True)
    return path


def test_apply_without_prefect_api_url_refuses_instead_of_a_temporary_server(
    tmp_path: Path,
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "control_plane.cli", "apply", str(_git_repository(tmp_path / "r"))],
        capture_output=True, text=True, cwd=REPO_ROOT, check=False, timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PREFECT_HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert "PREFECT_API_URL is not set" in result.stderr and "prefect server start" in result.stderr


def test_an_unreachable_api_is_one_line_exit_2(tmp_path: Path) -> None:
    dead = "http://127.0.0.1:9/api"
    for command in (["apply", str(_git_repository(tmp_path / "r"))], ["plan", str(EXAMPLES)]):
        result = subprocess.run(
            [sys.executable, "-m", "control_plane.cli", *command],
            capture_output=True, text=True, cwd=REPO_ROOT, check=False, timeout=60,
            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PREFECT_HOME": str(tmp_path),
                 "PREFECT_API_URL": dead},
        )  # fmt: skip
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr.count("\n") == 1, result.stderr
        assert f"cannot reach the Prefect API at {dead}" in result.stderr
        assert "is the server running?" in result.stderr
