"""The client side of talking to a busy Prefect server: quick re-sends, the write limit.

A real HTTP server on loopback answers 503 the way Prefect's server does when SQLite
refuses a write; no Prefect server is needed to make it refuse on cue.
"""

from __future__ import annotations

import asyncio
import http.server
import threading
from collections.abc import Iterator

import httpx
import pytest

from control_plane.prefect_api import RetryRefused, WriteLimit
from control_plane.prefect_objects import remember_timezone_list


class RefusingHandler(http.server.BaseHTTPRequestHandler):
    """Answers 503 to the first `refuse` requests, then 201 with the request body."""

    refuse = 0
    bodies: list[bytes] = []

    def do_POST(self) -> None:  # http.server names handlers this way
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).bodies.append(body)
        if type(self).refuse > 0:
            type(self).refuse -= 1
            payload, status = b'{"exception_message": "Service Unavailable"}', 503
        else:
            payload, status = body, 201
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:  # http.server names handlers this way
        # Prefect's client asks for a CSRF token first; 404 is a server without CSRF
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    RefusingHandler.bodies = []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RefusingHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


async def _post(url: str) -> httpx.Response:
    transport = RetryRefused(httpx.AsyncHTTPTransport())
    async with httpx.AsyncClient(transport=transport) as client:
        return await client.post(f"{url}/deployments/", json={"name": "d"})


def test_a_refused_request_is_sent_again_with_the_same_body(server: str) -> None:
    RefusingHandler.refuse = 3
    before = RetryRefused.refusals

    response = asyncio.run(_post(server))

    assert response.status_code == 201
    assert response.json() == {"name": "d"}
    assert RefusingHandler.bodies == [b'{"name":"d"}'] * 4
    assert RetryRefused.refusals - before == 3
    # How soon: bench/retries.py (0.05 + 0.1 + 0.2 s here, with jitter; Prefect's client
    # would sleep 2 + 4 + 8 s).


def test_the_last_refusal_reaches_the_caller(server: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("control_plane.prefect_api.REFUSED_RETRY_DELAYS", (0.01, 0.01))
    RefusingHandler.refuse = 10
    response = asyncio.run(_post(server))
    assert response.status_code == 503
    assert len(RefusingHandler.bodies) == 3  # sent, and again after each delay


def test_write_limit_runs_up_to_its_limit_then_one_at_a_time_after_a_refusal() -> None:
    async def scenario() -> tuple[int, int]:
        limit = WriteLimit(4)
        running = peak_before = peak_after = 0
        refused = asyncio.Event()

        async def write(index: int) -> None:
            nonlocal running, peak_before, peak_after
            async with limit:
                running += 1
                if refused.is_set():
                    peak_after = max(peak_after, running)
                else:
                    peak_before = max(peak_before, running)
                await asyncio.sleep(0.01)
                if index == 3 and not refused.is_set():
                    RetryRefused.refusals += 1  # what the transport counts on a 503
                    refused.set()
                running -= 1

        await asyncio.gather(*(write(i) for i in range(20)))
        return peak_before, peak_after

    peak_before, peak_after = asyncio.run(scenario())
    assert peak_before == 4
    assert peak_after == 1


def test_schedule_validation_reads_the_timezone_list_once_and_still_rejects_unknown_zones() -> None:
    from prefect._internal.schemas import validators
    from prefect.client.schemas.schedules import CronSchedule
    from prefect.types import _datetime

    prefects_own = _datetime.get_timezones
    remember_timezone_list()
    remember_timezone_list()  # idempotent: cached once

    used = validators.get_timezones
    if hasattr(prefects_own, "cache_info"):
        # Prefect caches the list itself (3.9.1): nothing is patched.
        assert used is prefects_own
    else:
        assert used.__wrapped__ is prefects_own  # type: ignore[attr-defined]
    CronSchedule(cron="0 3 * * *", timezone="UTC")
    before = used.cache_info()  # type: ignore[attr-defined]
    assert CronSchedule(cron="0 3 * * *", timezone="Europe/Berlin").timezone == "Europe/Berlin"
    with pytest.raises(ValueError, match="Invalid timezone"):
        CronSchedule(cron="0 3 * * *", timezone="Mars/Olympus_Mons")
    after = used.cache_info()  # type: ignore[attr-defined]
    assert after.misses == before.misses  # the zone database was not read again
    assert after.hits >= before.hits + 2


def test_api_client_resends_through_the_public_seam_and_leaves_prefects_client_alone(
    server: str,
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from control_plane.prefect_api import api_client

    RefusingHandler.refuse = 2

    async def post_through_both() -> tuple[int, bool]:
        async with api_client() as ours, get_client() as prefects:
            assert ours is not prefects
            response = await ours.request("POST", "/deployments/", json={"name": "d"})
            return response.status_code, isinstance(prefects._client._transport, RetryRefused)

    with temporary_settings(updates={PREFECT_API_URL: server}):
        status, prefects_resends = asyncio.run(post_through_both())
    assert status == 201 and RefusingHandler.bodies == [b'{"name":"d"}'] * 3
    assert prefects_resends is False


def test_inside_one_api_client_every_api_client_is_that_one_on_its_loop(server: str) -> None:
    """A reconcile opens one client for its tasks: one TLS context, one CSRF check, warm
    connections. Outside it, or on another event loop, each `api_client()` is its own."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from control_plane.prefect_api import api_client, one_api_client

    async def on_another_loop() -> object:
        async with api_client() as client:
            return client

    async def clients() -> tuple[bool, bool, bool, bool, bool]:
        async with api_client() as a, api_client() as b:
            apart = a is not b
        async with one_api_client() as shared:
            async with api_client() as c, api_client() as d:
                response = await d.request("POST", "/deployments/", json={"name": "d"})
            shared_inside = c is d is shared and response.status_code == 201
            open_after_inner_exits = not shared._closed
            other = await asyncio.to_thread(lambda: asyncio.run(on_another_loop()))
        return apart, shared_inside, open_after_inner_exits, other is not shared, shared._closed

    RefusingHandler.refuse = 0
    with temporary_settings(updates={PREFECT_API_URL: server}):
        assert asyncio.run(clients()) == (True, True, True, True, True)
