"""Schedules in the server's form: stable slugs, anchors and UI pauses kept across reconciles."""

from __future__ import annotations

from typing import Any

from control_plane.prefect_objects import canonical_schedules


def entry(cron: str, **fields: Any) -> dict[str, Any]:
    values = {"active": True, "parameters": {}, "slug": None}
    values.update(fields)
    return {"schedule": {"cron": cron, "timezone": "UTC"}, **values}


def test_a_slug_follows_the_timing_not_the_parameters() -> None:
    (one,) = canonical_schedules([entry("0 3 * * *", parameters={"x": 1})])
    (two,) = canonical_schedules([entry("0 3 * * *", parameters={"x": 2})])
    (other,) = canonical_schedules([entry("0 4 * * *")])
    assert one["slug"] == two["slug"] != other["slug"]
    assert one["slug"].startswith("dm-")


def test_equal_timings_get_distinct_slugs_and_a_declared_slug_is_kept() -> None:
    schedules = canonical_schedules(
        [
            entry("0 3 * * *", parameters={"x": 1}),
            entry("0 3 * * *", parameters={"x": 2}),
            entry("0 5 * * *", slug="nightly"),
        ]
    )
    slugs = sorted(s["slug"] for s in schedules)
    assert len(set(slugs)) == 3 and "nightly" in slugs
    assert any(s.endswith("-2") for s in slugs)


def test_a_ui_pause_is_kept_and_a_declared_pause_is_enforced() -> None:
    (live,) = canonical_schedules([entry("0 3 * * *")])
    paused = {**live, "active": False}
    (kept,) = canonical_schedules([entry("0 3 * * *")], [paused])
    assert kept == paused  # no drift: nothing to write
    (enforced,) = canonical_schedules([entry("0 3 * * *", active=False)], [live])
    assert enforced["active"] is False


def test_an_interval_keeps_the_anchor_the_server_gave_it() -> None:
    interval = {"schedule": {"interval": 3600, "timezone": "UTC"}, "active": True,
                "parameters": {}, "slug": None}  # fmt: skip
    (new,) = canonical_schedules([interval])
    assert "anchor_date" not in new["schedule"]
    anchored = {**new, "schedule": {**new["schedule"], "anchor_date": "2026-01-01T00:00:00Z"}}
    (again,) = canonical_schedules([interval], [anchored])
    assert again == anchored


def test_a_cron_is_built_once_per_distinct_schedule_and_a_bad_one_refused_each_time() -> None:
    import pytest

    from control_plane.prefect_objects import schedule_creates

    (one,) = schedule_creates([entry("0 3 * * *", parameters={"x": 1})])
    (same,) = schedule_creates([entry("0 3 * * *", parameters={"x": 2})])
    paris = entry("0 3 * * *")
    paris["schedule"]["timezone"] = "Europe/Paris"
    (other,) = schedule_creates([paris])
    assert one.schedule is same.schedule is not other.schedule
    assert (one.parameters, same.parameters) == ({"x": 1}, {"x": 2})
    for _ in range(2):
        with pytest.raises(ValueError, match="Invalid cron"):
            schedule_creates([entry("61 * * * *")])
