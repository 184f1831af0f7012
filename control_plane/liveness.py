"""A reconcile that dies is marked Crashed, not left Running forever.

A flow run killed with `kill -9` (or whose machine is lost) cannot report its own end.
Prefect's answer is heartbeats and an automation that marks a run Crashed when they stop
(docs: "How to detect and respond to zombie flows"). Prefect's own heartbeat interval is a
process setting (`PREFECT_FLOWS_HEARTBEAT_FREQUENCY`, 180 s by default) that deploy-manager
does not control in every place it is started (the CLI, a worker, a user's own
deployment), and an automation's window must exceed the interval of every run it watches.
So deploy-manager beats its own event, `deploy-manager.heartbeat`, every
HEARTBEAT_SECONDS from a thread of the flow run (it beats even while the event loop is
busy), and keeps one automation, CRASH_AUTOMATION, that watches only that event: a run
that beat and then neither beat again nor ended within SILENCE_SECONDS is set Crashed.

The automation is created (or put back as it should be) by every run that writes; the
server's proactive-triggers service does the rest, so a dead run is marked even when no
other reconcile follows it.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID

HEARTBEAT_EVENT = "deploy-manager.heartbeat"
HEARTBEAT_SECONDS = 15
# The second beat comes soon: the first may reach the server before the automation that a
# run's first write just created is loaded (the server loads it after its commit), and a
# run killed before its second beat would then never be watched.
SECOND_BEAT_SECONDS = 3
SILENCE_SECONDS = 60  # four beats missed: never a live run, even on a busy machine
CRASH_AUTOMATION = "deploy-manager: mark unresponsive reconciles Crashed"
CRASH_MESSAGE = (
    f"deploy-manager stopped sending heartbeats for {SILENCE_SECONDS} s (its process was "
    f"killed or its machine lost); marked Crashed by the automation {CRASH_AUTOMATION!r}"
)
_ENDED = ("Completed", "Failed", "Cancelled", "Crashed")


def _emit(flow_run_id: UUID, name: str) -> None:
    from prefect.events import emit_event

    emit_event(
        event=HEARTBEAT_EVENT,
        resource={
            "prefect.resource.id": f"prefect.flow-run.{flow_run_id}",
            "prefect.resource.name": name,
        },
    )


@contextlib.contextmanager
def heartbeats(flow_run_id: UUID, name: str) -> Iterator[None]:
    """Beat every HEARTBEAT_SECONDS for the flow run while the block runs."""
    stop = threading.Event()
    context = contextvars.copy_context()  # the run's settings and events client

    def beat() -> None:
        wait = SECOND_BEAT_SECONDS
        while not stop.is_set():
            with contextlib.suppress(Exception):  # a missed beat is only a missed beat
                _emit(flow_run_id, name)
            stop.wait(wait)
            wait = HEARTBEAT_SECONDS

    thread = threading.Thread(
        target=context.run, args=(beat,), daemon=True, name="deploy-manager-heartbeat"
    )
    thread.start()
    try:
        yield
    finally:
        stop.set()


def crash_automation() -> Any:
    """The automation as it should be (Prefect's `AutomationCore`, what is sent)."""
    from prefect.client.schemas.objects import StateType
    from prefect.events.actions import ChangeFlowRunState
    from prefect.events.schemas.automations import AutomationCore, EventTrigger, Posture
    from prefect.events.schemas.events import ResourceSpecification

    return AutomationCore(
        name=CRASH_AUTOMATION,
        description="Created by deploy-manager: a reconcile whose heartbeats stop is "
        "marked Crashed (deploy-manager's own runs only).",
        trigger=EventTrigger(
            after={HEARTBEAT_EVENT},
            expect={HEARTBEAT_EVENT, *(f"prefect.flow-run.{state}" for state in _ENDED)},
            match=ResourceSpecification({"prefect.resource.id": ["prefect.flow-run.*"]}),
            for_each={"prefect.resource.id"},
            posture=Posture.Proactive,
            threshold=1,
            within=timedelta(seconds=SILENCE_SECONDS),
        ),
        actions=[
            ChangeFlowRunState(
                name="Crashed", state=StateType.CRASHED, message=CRASH_MESSAGE, force=False
            )
        ],
    )


def _same(saved: Any, wanted: Any) -> bool:
    fields = {"trigger", "actions", "enabled"}
    return bool(saved.model_dump(include=fields) == wanted.model_dump(include=fields))


async def ensure_crash_automation(client: Any) -> None:
    """CRASH_AUTOMATION exists once, enabled and as it should be (one read when it is).

    Two first runs may both create it (automation names are not unique): the one read
    back first is kept, the others are deleted.
    """
    wanted = crash_automation()
    saved, *extra = await client.read_automations_by_name(CRASH_AUTOMATION) or [None]
    for duplicate in extra:
        await client.delete_automation(duplicate.id)
    if saved is None:
        await client.create_automation(wanted)
    elif not _same(saved, wanted):
        await client.update_automation(saved.id, wanted)
