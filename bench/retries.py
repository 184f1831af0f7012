"""How soon a write the server refused (503) goes through again, with `RetryRefused`.

A loopback HTTP server answers 503 to the first k POSTs, as Prefect's server does when
SQLite refuses a write, then 201. For k = 1, 3, 5 this script sends one request through
`control_plane.prefect_api.RetryRefused` `--repeat` times and prints the wall time until
the 201 (median and max), next to the most the configured delays allow (their sum with
1.5x jitter) and what Prefect's own client would sleep before the same answer (2, 4, 8...
s: `PrefectHttpxAsyncClient`'s exponential back-off). Nothing is asserted.

Run: `.venv/bin/python bench/retries.py [--refusals 1 3 5] [--repeat 5]`
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from control_plane.prefect_api import REFUSED_RETRY_DELAYS, RetryRefused


class RefusingHandler(http.server.BaseHTTPRequestHandler):
    refuse = 0

    def do_POST(self) -> None:  # http.server names handlers this way
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
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

    def log_message(self, *args: object) -> None:
        pass


async def post_once(url: str) -> tuple[int, float]:
    transport = RetryRefused(httpx.AsyncHTTPTransport())
    async with httpx.AsyncClient(transport=transport) as client:
        started = time.perf_counter()
        response = await client.post(f"{url}/deployments/", json={"name": "d"})
        return response.status_code, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--refusals", type=int, nargs="+", default=[1, 3, 5])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RefusingHandler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    print(f"RetryRefused delays: {', '.join(f'{d:g}' for d in REFUSED_RETRY_DELAYS)} s (x0.5-1.5)")
    print("refusals | median s | max s | bound s | Prefect's client s | statuses")
    print("---------+----------+-------+---------+--------------------+---------")
    try:
        for count in args.refusals:
            times: list[float] = []
            statuses: set[int] = set()
            for _ in range(args.repeat):
                RefusingHandler.refuse = count
                status, elapsed = asyncio.run(post_once(url))
                statuses.add(status)
                times.append(elapsed)
            bound = 1.5 * sum(REFUSED_RETRY_DELAYS[:count])
            prefect = sum(2**i for i in range(1, count + 1))
            print(
                f"{count:8} | {statistics.median(times):8.3f} | {max(times):5.2f} | "
                f"{bound:7.2f} | {prefect:18} | {sorted(statuses)}"
            )
    finally:
        httpd.shutdown()
        httpd.server_close()


if __name__ == "__main__":
    main()
