"""The deploy-manager flow's shell: what it changes in the process around a run."""

from __future__ import annotations

import asyncio
import gc

import pytest

from flows.deploy_manager import collecting_only_what_the_run_makes, deploy_manager


def test_a_run_sets_older_objects_aside_from_collections_and_hands_them_back() -> None:
    seen: list[int] = []

    @collecting_only_what_the_run_makes
    async def run(fail: bool) -> None:
        seen.append(gc.get_freeze_count())
        if fail:
            raise RuntimeError("the run failed")

    asyncio.run(run(False))
    with pytest.raises(RuntimeError, match="the run failed"):
        asyncio.run(run(True))
    assert seen[0] > 0 and seen[1] > 0
    assert gc.get_freeze_count() == 0


def test_the_flow_keeps_its_parameters_and_their_descriptions_for_the_ui() -> None:
    schema = deploy_manager.parameters.model_dump()
    assert schema["required"] == ["source"]
    assert list(schema["properties"])[:3] == ["source", "ref", "environment"]
    assert schema["properties"]["dry_run"]["description"] == "Plan and report only; change nothing."
