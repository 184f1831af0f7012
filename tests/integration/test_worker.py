"""A deployment registered by the reconcile runs on a real process worker, pinned to its commit."""

from __future__ import annotations

from pathlib import Path

import pytest

from control_plane.server import LocalServer
from tests.integration.conftest import GitRemote, run_sync, unique
from tests.integration.test_reconcile import apply, create_pool

pytestmark = pytest.mark.integration

FLOW = """
from pathlib import Path

from prefect import flow


@flow(name="{name}")
def write_marker(out: str) -> str:
    Path(out).write_text("{version}")
    return "{version}"
"""

PREFECT_YAML = """
deployments:
  - name: pinned
    entrypoint: jobs/marker.py:write_marker
    work_pool:
      name: {pool}
"""


def test_process_worker_runs_the_pinned_commit(
    prefect_server: LocalServer, source_block: str, remote: GitRemote, tmp_path: Path
) -> None:
    token = unique("w")
    pool, flow_name = f"pool-{token}", f"marker-{token}"
    run_sync(create_pool(pool))
    remote.commit(
        {
            "jobs/marker.py": FLOW.format(name=flow_name, version="v1"),
            "prefect.yaml": PREFECT_YAML.format(pool=pool),
        },
        "v1",
    )
    _, state = apply(source_block)
    assert state.is_completed(), state.message
    # a newer commit is pushed but not reconciled: the deployment must still run v1
    remote.commit({"jobs/marker.py": FLOW.format(name=flow_name, version="v2")}, "v2")

    worker = prefect_server.start_worker(pool, poll_seconds=1)
    out = tmp_path / "marker.txt"

    async def run() -> object:
        from prefect.deployments import run_deployment

        return await run_deployment(
            f"{flow_name}/pinned", parameters={"out": str(out)}, timeout=120, poll_interval=1
        )

    try:
        flow_run = run_sync(run())
    finally:
        worker.stop()
    assert flow_run.state.is_completed(), (flow_run.state, worker.log.read_text()[-3000:])
    assert out.read_text() == "v1"
