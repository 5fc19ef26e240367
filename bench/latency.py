"""Alert latency: from the write that completes a 401 streak to the alert arriving at a local webhook.

A synthetic backend appends calls to a followed file; the real daemon (in this process, wall clock,
``group_wait: 0``) follows it and delivers through apprise ``json://`` to an HTTP server on loopback.
Each run is a fresh incident: four 401s, then the fifth (the write that completes the streak, timed),
then three 200s to resolve it (its RESOLVED alert is awaited before the next run). Prints p50/p99 of
the whole latency and of its two parts: write → alert in the outbox (follower wake-up, parsing,
detection, hand-out) and outbox → arrival (the notifier's worker thread and apprise's HTTP send).

    python bench/latency.py [--runs 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from snapwatch.config import AlertsConfig, Config, ErrorRateRule, RulesConfig, SourceConfig, StreakRule
from snapwatch.run.daemon import Daemon
from snapwatch.synthetic import Call, backend_logger, demo_token, log_call

TARGET_P50, TARGET_P99 = 0.050, 0.150  # design.md: write → webhook with group_wait 0


class Receiver:
    """A webhook on loopback that notes the wall-clock arrival time and title of every POST."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str]] = []
        self.cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                at = time.time()
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                with receiver.cond:
                    receiver.arrivals.append((at, body["title"]))
                    receiver.cond.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, n: int, timeout: float = 10.0) -> list[tuple[float, str]]:
        with self.cond:
            if not self.cond.wait_for(lambda: len(self.arrivals) >= n, timeout):
                raise SystemExit(f"latency: alert {n} did not arrive within {timeout:g} s")
            return list(self.arrivals)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(runs: int, folder: Path) -> tuple[list[float], list[float], list[float]]:
    receiver = Receiver()
    log_path = folder / "capi.log"
    log_path.touch()
    config = Config(
        sources=[SourceConfig(path=str(log_path), start_at="end", timezone="UTC")],
        rules=RulesConfig(auth_failures=StreakRule(streak=5, recovery=3), error_rate=ErrorRateRule(enabled=False)),
        alerts=AlertsConfig(urls=[f"json://127.0.0.1:{receiver.port}/hook"], group_wait=timedelta(0),
                            repeat_every=timedelta(days=1), max_per_hour=1000),
        state_dir=folder / "state",
    )
    daemon = Daemon(config, None, environ={}, host="bench")
    running = asyncio.create_task(daemon.run())
    handler = logging.FileHandler(log_path, encoding="utf-8")
    logger = backend_logger(handler, "snapwatch.bench.backend")
    token = demo_token(seed="bench")
    total, to_outbox, to_arrival = [], [], []

    def write(status: int) -> float:
        log_call(logger, Call("PURCHASE", status, token), datetime.now(UTC))
        handler.flush()
        return time.time()

    async def settle() -> None:
        await asyncio.sleep(0.3)  # let the follower's debounce pass, so the timed write wakes it on its own

    try:
        while daemon.sd is None or not daemon.sources:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.3)
        for run in range(runs):
            for _ in range(4):
                write(401)
            await settle()
            written = write(401)  # completes the streak
            arrivals = await asyncio.to_thread(receiver.wait_for, 2 * run + 1)
            arrived, title = arrivals[-1]
            assert "FIRING" in title, title
            created = daemon.store.conn.execute(
                "SELECT created_at FROM outbox ORDER BY seq DESC LIMIT 1").fetchone()[0]
            queued = datetime.fromisoformat(created).timestamp()
            total.append(arrived - written)
            to_outbox.append(queued - written)
            to_arrival.append(arrived - queued)
            for _ in range(3):
                write(200)
            await asyncio.to_thread(receiver.wait_for, 2 * run + 2)
            # The log stamps whole seconds and an incident's id derives from its opening second: start
            # the next incident in a later second, or it would share the id of the one just resolved.
            await asyncio.sleep(1.05 - time.time() % 1)
    finally:
        handler.close()
        daemon.stop_requested.set()
        await running
        receiver.server.shutdown()
        receiver.server.server_close()
    return total, to_outbox, to_arrival


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("-v", action="store_true", help="show the daemon's log")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if "-v" in sys.argv else logging.ERROR)
    with tempfile.TemporaryDirectory(prefix="snapwatch-latency-") as tmp:
        total, to_outbox, to_arrival = asyncio.run(measure(args.runs, Path(tmp)))
    ms = 1000.0
    for name, values in (("write → outbox", to_outbox), ("outbox → webhook", to_arrival), ("total", total)):
        print(f"{name:>17}: p50 {percentile(values, 0.5) * ms:6.1f} ms   p99 {percentile(values, 0.99) * ms:6.1f} ms"
              f"   max {max(values) * ms:6.1f} ms   mean {statistics.fmean(values) * ms:6.1f} ms")
    p50, p99 = percentile(total, 0.5), percentile(total, 0.99)
    ok = p50 <= TARGET_P50 and p99 <= TARGET_P99
    print(f"{len(total)} runs; target p50 ≤ {TARGET_P50 * ms:.0f} ms, p99 ≤ {TARGET_P99 * ms:.0f} ms: "
          f"{'met' if ok else 'NOT met'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
