#!/usr/bin/env python3
"""A stand-in for the backend inside the test machine: writes CAPI call blocks the way the backend logs them.

Standard library only (it runs on the machine's own python3, outside snapwatch's venv). The blocks are the
built-in ``backend`` format: ``asctime - INFO - message`` records, a request block (separator, ``[OUT]``
line, URL with the token in the query, payload as indented JSON) and a response block (separator, ``[IN]``
line, ``Status Code:``, indented JSON body), the same text snapwatch/synthetic.py produces.

    backend_writer.py LOG --calls 200x40,401x6,200x5 [--handler plain|file|rotating]
                      [--max-bytes N --backup-count K] [--pace SECONDS] [--pidfile PATH] [--lock PATH]

With ``--pidfile`` it writes its pid there and reopens the log on SIGHUP (between two calls), the way a
backend does when logrotate's ``postrotate`` signals it after ``create``. With ``--lock`` it holds an
exclusive flock on PATH while it writes a call, so ``flock PATH logrotate`` (copytruncate) never copies
and truncates in the middle of a call: logrotate's own window, in which lines are lost, stays shut.
    backend_writer.py --print-env     # the .env lines for the token and pixel it sends

Prints what it wrote as one JSON object: {"requests": N, "responses": {"200": A, "401": B}}.
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import hashlib
import json
import logging
import logging.handlers
import os
import random
import signal
import sys
import time
import uuid

SEPARATOR = "=" * 100
PIXEL = "5bf81ee1-15b1-4dc1-b636-d7dae49b950e"
EVENTS = ("PAGE_VIEW", "VIEW_CONTENT", "ADD_CART", "PURCHASE")
BODIES = {
    200: {"status": "VALID", "reason": "Events have been processed successfully."},
    401: {"status": "UNKNOWN", "text": "Invalid access token"},
}
FORMAT = "%(asctime)s - %(levelname)s - %(message)s"
DATEFMT = "%Y-%m-%d %H:%M:%S"


def _b64(obj: object) -> str:
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def token() -> str:
    """A made-up token shaped like a Business Manager CAPI token (Canvas S2S JWT)."""
    header = {"alg": "HS256", "kid": "CanvasS2SHMACProd", "typ": "JWT"}
    claims = {
        "aud": "canvas-canvasapi",
        "iss": "canvas-s2stoken",
        "nbf": 1764800000,
        "sub": "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b~PRODUCTION~0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9",
    }
    head = f"{_b64(header)}.{_b64(claims)}"
    signature = base64.urlsafe_b64encode(hashlib.sha256(("system-test" + head).encode()).digest()).rstrip(b"=")
    return f"{head}.{signature.decode()}"


def messages(n: int, status: int, tok: str) -> list[str]:
    """The log messages of one call (request then response), one string per logging call."""
    event = random.choice(EVENTS)
    now = int(time.time())
    # as a real backend's calls: a unique event_id and a price, so calls differ in bytes and in length
    payload = {"data": [{"event_name": event, "action_source": "WEB", "event_time": now, "event_id": uuid.uuid4().hex,
                         "event_source_url": f"https://shop.example.com/p/{random.randrange(1, 10 ** 6)}",
                         "user_data": {"em": [hashlib.sha256(str(n).encode()).hexdigest()]},
                         "custom_data": {"value": round(random.uniform(1, 500), 2), "currency": "EUR"}}]}
    return [
        SEPARATOR,
        f"[OUT] OUTGOING REQUEST - {event} Event (v3)",
        f"URL: https://tr.snapchat.com/v3/{PIXEL}/events?access_token={tok}",
        "Method: POST",
        "Payload:",
        json.dumps(payload, indent=2),
        SEPARATOR,
        SEPARATOR,
        f"[IN] INCOMING RESPONSE - {event} Event",
        f"Status Code: {status}",
        f"Body: {json.dumps(BODIES[status], indent=2)}",
        SEPARATOR,
        "",
    ]


def parse_calls(spec: str) -> list[int]:
    """``200x40,401x6`` -> forty 200s then six 401s."""
    out: list[int] = []
    for part in spec.split(","):
        status, _, count = part.partition("x")
        out.extend([int(status)] * int(count or 1))
    return out


def handler_for(args: argparse.Namespace) -> logging.Handler:
    if args.handler == "rotating":
        return logging.handlers.RotatingFileHandler(args.log, maxBytes=args.max_bytes,
                                                    backupCount=args.backup_count, encoding="utf-8")
    return logging.FileHandler(args.log, encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", nargs="?")
    parser.add_argument("--calls", default="200x10")
    parser.add_argument("--handler", choices=("plain", "file", "rotating"), default="file")
    parser.add_argument("--max-bytes", type=int, default=0)
    parser.add_argument("--backup-count", type=int, default=0)
    parser.add_argument("--pace", type=float, default=0.0, help="seconds between calls")
    parser.add_argument("--pidfile", help="write the pid here; reopen the log on SIGHUP")
    parser.add_argument("--lock", help="hold an exclusive flock on this file while writing each call")
    parser.add_argument("--print-env", action="store_true")
    args = parser.parse_args()
    tok = token()
    if args.print_env:
        print(f"SNAP_ACCESS_TOKEN={tok}\nSNAP_PIXEL_ID={PIXEL}")
        return 0
    os.umask(0o027)  # the backend's: its files are not for everyone
    calls = parse_calls(args.calls)
    counts: dict[str, int] = {}
    if args.handler == "plain":  # the same text without the logging machinery: fast, for a big backlog
        with open(args.log, "a", encoding="utf-8") as out:
            for n, status in enumerate(calls):
                head = time.strftime(DATEFMT) + " - INFO - "
                out.write("".join(f"{head}{m}\n" for m in messages(n, status, tok)))
                counts[str(status)] = counts.get(str(status), 0) + 1
    else:
        handler = handler_for(args)
        handler.setFormatter(logging.Formatter(FORMAT, DATEFMT))
        logger = logging.getLogger("backend")
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
        hup: list[int] = []
        lock = open(args.lock, "a") if args.lock else None  # noqa: SIM115 (held for the whole run)
        if args.pidfile:
            signal.signal(signal.SIGHUP, lambda signum, frame: hup.append(signum))
            with open(args.pidfile, "w") as f:
                f.write(f"{os.getpid()}\n")
        for n, status in enumerate(calls):
            if hup:  # logrotate renamed the log and created a new one: move to it
                hup.clear()
                handler.close()
                handler.stream = handler._open()
            if lock is not None:
                fcntl.flock(lock, fcntl.LOCK_EX)
            for m in messages(n, status, tok):
                logger.info(m)
            if lock is not None:
                handler.flush()
                fcntl.flock(lock, fcntl.LOCK_UN)
            counts[str(status)] = counts.get(str(status), 0) + 1
            if args.pace:
                time.sleep(args.pace)
        handler.close()
        if lock is not None:
            lock.close()
        if args.pidfile:
            os.unlink(args.pidfile)
    json.dump({"requests": len(calls), "responses": counts}, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
