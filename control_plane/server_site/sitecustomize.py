"""A fix for one released Prefect bug, loaded only by the Prefect server deploy-manager starts.

Prefect 3.9.1's server on Python < 3.13 cannot schedule a cron schedule: the scheduler
hands a datetime whose tzinfo is pendulum's `Timezone` to `whenever.ZonedDateTime`, which
takes a `zoneinfo.ZoneInfo` and nothing else ("tzinfo must be of type ZoneInfo (exactly),
got Timezone('UTC')"), so every scheduler pass fails and no cron deployment gets a run.
3.9.0 schedules, but reads deployments ~10x slower (its timezone list is not cached).

`control_plane.server.start_local_server` (`make run`, the tests, the benchmarks) puts
this directory on the server's PYTHONPATH, so Python imports this module at the start of
the server process and of the processes it starts. It changes nothing unless the bug is
there: it converts the datetime Prefect passes to the same instant with a `ZoneInfo` of the
same name, which is what Prefect's own code does on Python 3.13. A server started any
other way (a plain `prefect server start`, an official image) does not get it.
Test: tests/integration/test_reconcile.py::test_the_server_schedules_runs_of_a_registered_
cron_schedule.
"""

from __future__ import annotations

import sys


def _install() -> None:
    import datetime
    import zoneinfo

    try:
        from prefect.types import _datetime
    except Exception:  # not Prefect's server, or another Prefect: nothing to fix
        return
    original = getattr(_datetime, "_whenever_zdt_from_py", None)
    if original is None:
        return
    probe = _datetime.now("UTC")
    try:
        original(probe)
        return  # Prefect handles its own datetimes: nothing to fix
    except ValueError:
        pass

    def with_zoneinfo(dt: datetime.datetime) -> object:
        tz = dt.tzinfo
        name = getattr(tz, "name", None) or getattr(tz, "key", None)
        if tz is not None and type(tz) is not zoneinfo.ZoneInfo and isinstance(name, str):
            dt = dt.replace(tzinfo=zoneinfo.ZoneInfo(name))
        return original(dt)

    _datetime._whenever_zdt_from_py = with_zoneinfo


if sys.version_info < (3, 13):
    _install()
