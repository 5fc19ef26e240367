"""A small backend that sends conversions to Snap's CAPI and logs every call the way real backends do.

Run it as a script, one process per worker (``uvicorn --workers N`` is N such processes appending to
one log file)::

    python tests/harness/backend.py --log app.log --snap-url http://127.0.0.1:PORT --env-file .env \\
        --events 200 --concurrency 10 --rate 0 --api v3 --timeout 2

It reads ``SNAP_ACCESS_TOKEN`` (and ``SNAP_PIXEL_ID``) from ``--env-file`` once, at start, with
python-dotenv, like a backend does: a new token takes effect only in a new process (a restart).

The log is a ``RotatingFileHandler`` (``--max-bytes``, ``--backup-count``; 0 bytes: never rotates)
with the backend's formatter, ``%(asctime)s - %(levelname)s - %(message)s`` and datefmt
``%Y-%m-%d %H:%M:%S``. With ``--pid-format`` the process id goes between the time and the level,
in brackets: ``%(asctime)s - [%(process)d] - %(levelname)s - %(message)s``, which reads
``2025-12-03 23:35:17 - [12345] - INFO - [OUT] OUTGOING REQUEST - ...``.

Each event is one coroutine; ``--concurrency`` of them are in flight at once (``asyncio.gather`` over
an ``httpx.AsyncClient``). A coroutine logs its request block (separator, header, URL, method,
"Payload:", the pretty JSON payload as ONE logging call whose text holds newlines, separator), sends,
then logs the response block (separator, header, status, "Body: " with the pretty JSON body as one
call, separator, an empty message). Blocks of different events interleave; lines of one block never
do within one process (no await between its logging calls), but do across processes.

v3 puts the token in the URL's query (the logged URL holds it, as real backends log the URL they
built); v2 sends it in an ``Authorization: Bearer`` header that is not logged. The logged URL is the
URL as sent: snapwatch reads the pixel and the token from ``/v3/<pixel>/events?access_token=...``
whatever the host, so the loopback address of the fake Snap server is logged as it is.

When the HTTP client times out (or fails otherwise) the exception goes to ANOTHER logger
(``--error-log`` file, else stderr), so that request has no response in the CAPI log.

``--summary FILE`` writes, at exit, this process's own count of what it logged: responses per status,
timeouts and other errors, and the fingerprint of the token it used (first 12 hex digits of SHA-256).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import logging.handlers
import os
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
from dotenv import dotenv_values

SEPARATOR = "=" * 100
FORMAT = "%(asctime)s - %(levelname)s - %(message)s"
PID_FORMAT = "%(asctime)s - [%(process)d] - %(levelname)s - %(message)s"
DATEFMT = "%Y-%m-%d %H:%M:%S"
EVENTS = ("PAGE_VIEW", "VIEW_CONTENT", "ADD_CART", "PURCHASE")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--log", required=True, type=Path, help="the CAPI call log (appended to)")
    p.add_argument("--error-log", type=Path, help="where exceptions go (default: stderr)")
    p.add_argument("--snap-url", required=True, help="Snap's base URL, e.g. http://127.0.0.1:PORT")
    p.add_argument("--env-file", required=True, type=Path, help=".env with SNAP_ACCESS_TOKEN (and SNAP_PIXEL_ID)")
    p.add_argument("--events", type=int, default=100, help="conversions to send")
    p.add_argument("--concurrency", type=int, default=10, help="requests in flight at once")
    p.add_argument("--rate", type=float, default=0.0, help="events started per second (0: as fast as possible)")
    p.add_argument("--api", choices=("v3", "v2"), default="v3")
    p.add_argument("--timeout", type=float, default=5.0, help="the HTTP client's timeout, seconds")
    p.add_argument("--max-bytes", type=int, default=0, help="RotatingFileHandler maxBytes (0: never rotate)")
    p.add_argument("--backup-count", type=int, default=0, help="RotatingFileHandler backupCount")
    p.add_argument("--pid-format", action="store_true", help="put [%(process)d] after the time")
    p.add_argument("--event-names", default=",".join(EVENTS), help="comma-separated, used in turn")
    p.add_argument("--pixel", default="5bf81ee1-15b1-4dc1-b636-d7dae49b950e", help="when .env has no SNAP_PIXEL_ID")
    p.add_argument("--summary", type=Path, help="write this process's own count of what it logged here (JSON)")
    return p.parse_args(argv)


def token_fingerprint(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()[:12]


class Backend:
    """One worker: its token (read once), its loggers, and its own count of what it logged."""

    def __init__(self, args: argparse.Namespace) -> None:
        env = dotenv_values(args.env_file)
        token = env.get("SNAP_ACCESS_TOKEN")
        if not token:
            raise SystemExit(f"no SNAP_ACCESS_TOKEN in {args.env_file}")
        self.token: str = token
        self.pixel: str = env.get("SNAP_PIXEL_ID") or args.pixel
        self.args = args
        self.base = args.snap_url.rstrip("/")
        self.events: list[str] = [e for e in args.event_names.split(",") if e]
        self.logged: Counter[int] = Counter()
        self.timeouts = 0
        self.errors = 0
        self.log = logging.getLogger("app.snap_capi")
        self.log.setLevel(logging.INFO)
        self.log.propagate = False
        handler = logging.handlers.RotatingFileHandler(args.log, maxBytes=args.max_bytes,
                                                       backupCount=args.backup_count, encoding="utf-8")
        handler.setFormatter(logging.Formatter(PID_FORMAT if args.pid_format else FORMAT, DATEFMT))
        self.log.addHandler(handler)
        self.err = logging.getLogger("app.errors")
        self.err.setLevel(logging.INFO)
        self.err.propagate = False
        err_handler: logging.Handler = (logging.FileHandler(args.error_log, encoding="utf-8") if args.error_log
                                        else logging.StreamHandler(sys.stderr))
        err_handler.setFormatter(logging.Formatter(FORMAT, DATEFMT))
        self.err.addHandler(err_handler)

    def close(self) -> None:
        for logger in (self.log, self.err):
            for handler in list(logger.handlers):
                handler.close()
                logger.removeHandler(handler)

    def request(self, i: int, event: str) -> tuple[str, dict[str, str], dict[str, object]]:
        """The URL (sent and logged as it is), the headers, and the payload of event ``i``."""
        now = int(time.time())
        email = hashlib.sha256(f"buyer{os.getpid()}-{i}@example.com".encode()).hexdigest()
        if self.args.api == "v2":
            url = f"{self.base}/v2/conversion"
            payload: dict[str, object] = {
                "pixel_id": self.pixel,
                "timestamp": str(now * 1000),
                "event_type": event,
                "event_conversion_type": "WEB",
                "hashed_email": email,
                "page_url": "https://shop.example.com/p/123",
                "client_dedup_id": f"{os.getpid()}-{i}",
            }
            return url, {"Authorization": f"Bearer {self.token}"}, payload
        url = f"{self.base}/v3/{self.pixel}/events?access_token={self.token}"
        payload = {
            "data": [
                {
                    "event_name": event,
                    "action_source": "WEB",
                    "event_time": now,
                    "event_id": f"{os.getpid()}-{i}",
                    "event_source_url": "https://shop.example.com/p/123",
                    "user_data": {"em": [email]},
                }
            ]
        }
        return url, {}, payload

    async def send(self, client: httpx.AsyncClient, i: int, gate: asyncio.Semaphore, start: float) -> None:
        if self.args.rate > 0:
            await asyncio.sleep(max(0.0, start + i / self.args.rate - time.monotonic()))
        async with gate:
            event = self.events[i % len(self.events)]
            url, headers, payload = self.request(i, event)
            info = self.log.info
            # One logging call per line; the pretty payload is one call. No await in between.
            info(SEPARATOR)
            info(f"[OUT] OUTGOING REQUEST - {event} Event ({self.args.api})")
            info(f"URL: {url}")
            info("Method: POST")
            info("Payload:")
            info(json.dumps(payload, indent=2))
            info(SEPARATOR)
            try:
                response = await client.post(url, json=payload, headers=headers)
            except httpx.TimeoutException as exc:
                self.timeouts += 1
                self.err.error(f"Snap CAPI {event} request timed out: {type(exc).__name__}: {exc}")
                return
            except httpx.HTTPError as exc:
                self.errors += 1
                self.err.error(f"Snap CAPI {event} request failed: {type(exc).__name__}: {exc}")
                return
            try:
                body = json.dumps(response.json(), indent=2)
            except ValueError:
                body = response.text
            info(SEPARATOR)
            info(f"[IN] INCOMING RESPONSE - {event} Event")
            info(f"Status Code: {response.status_code}")
            info(f"Body: {body}")
            info(SEPARATOR)
            info("")
            self.logged[response.status_code] += 1

    async def run(self) -> None:
        gate = asyncio.Semaphore(max(1, self.args.concurrency))
        limits = httpx.Limits(max_connections=max(1, self.args.concurrency))
        async with httpx.AsyncClient(timeout=self.args.timeout, limits=limits) as client:
            start = time.monotonic()
            await asyncio.gather(*(self.send(client, i, gate, start) for i in range(self.args.events)))

    def summary(self) -> dict[str, object]:
        return {
            "pid": os.getpid(),
            "api": self.args.api,
            "token_fingerprint": token_fingerprint(self.token.strip()),
            "requests": self.args.events,
            "logged": {str(s): n for s, n in sorted(self.logged.items())},
            "timeouts": self.timeouts,
            "errors": self.errors,
            "finished_at": datetime.now(UTC).isoformat(),
        }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    backend = Backend(args)
    try:
        asyncio.run(backend.run())
    finally:
        backend.close()
        if args.summary is not None:
            args.summary.write_text(json.dumps(backend.summary(), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
