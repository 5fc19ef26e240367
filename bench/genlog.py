#!/usr/bin/env python3
"""Writes a synthetic backend CAPI log (the built-in ``backend`` format) for benchmarks and demos.

    python bench/genlog.py OUT [--events N | --mb M] [--fail-every K] [--streaks N --streak-len L]

Each event is a v3 request block and its response block, framed by ``"=" * 100`` lines, with
pretty-printed JSON whose continuation lines carry no timestamp prefix. Every K-th event fails
with a 401 (``--fail-every``), or failures come in runs of L at the start of every N events
(``--streaks``). Prints the counts it wrote as one JSON object on stdout.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time

from snapwatch.synthetic import OK_BODY, SEPARATOR, UNAUTHORIZED_BODY, demo_token

EVENT_NAMES = ("PAGE_VIEW", "VIEW_CONTENT", "ADD_CART", "START_CHECKOUT", "PURCHASE", "SIGN_UP")
ACCEPTED, REJECTED = OK_BODY, UNAUTHORIZED_BODY


def _failing(i: int, fail_every: int, streaks: int, streak_len: int) -> bool:
    if fail_every and i % fail_every == 0:
        return True
    return bool(streaks) and i % streaks < streak_len


def write_log(
    path: str,
    events: int,
    *,
    max_bytes: int = 0,
    fail_every: int = 0,
    streaks: int = 0,
    streak_len: int = 10,
    start: float = 1764800000.0,
    rate: float = 5.0,
    seed: int = 1,
    pixel: str = "5bf81ee1-15b1-4dc1-b636-d7dae49b950e",
) -> dict[str, int]:
    """Write the log; stop after ``events`` events or once ``max_bytes`` (when > 0) are written."""
    rnd = random.Random(seed)
    token = demo_token(seed=f"{rnd.getrandbits(64):016x}")
    url = f"https://tr.snapchat.com/v3/{pixel}/events?access_token={token}"
    counts = {"events": 0, "status_401": 0, "status_200": 0, "bytes": 0}
    clock = start
    with open(path, "w", encoding="utf-8") as out:
        i = 0
        while i < events or (max_bytes and out.tell() < max_bytes):
            if max_bytes and out.tell() >= max_bytes:
                break
            clock += rnd.expovariate(rate)
            head = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(clock)) + " - INFO - "
            name = rnd.choice(EVENT_NAMES)
            payload = {
                "data": [
                    {
                        "event_name": name,
                        "action_source": "WEB",
                        "event_time": int(clock * 1000),
                        "event_id": f"{rnd.getrandbits(64):016x}",
                        "event_source_url": "https://shop.example.com/p/123",
                        "user_data": {
                            "em": [hashlib.sha256(str(i).encode()).hexdigest()],
                            "client_user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
                            "client_ip_address": "203.0.113.7",
                        },
                        "custom_data": {"value": 19.99, "currency": "USD"},
                    }
                ]
            }
            out.write(
                f"{head}{SEPARATOR}\n{head}[OUT] OUTGOING REQUEST - {name} Event (v3)\n{head}URL: {url}\n"
                f"{head}Method: POST\n{head}Payload:\n{head}{json.dumps(payload, indent=2)}\n{head}{SEPARATOR}\n"
            )
            failed = _failing(i, fail_every, streaks, streak_len)
            status, body = (401, REJECTED) if failed else (200, ACCEPTED)
            out.write(
                f"{head}{SEPARATOR}\n{head}[IN] INCOMING RESPONSE - {name} Event\n{head}Status Code: {status}\n"
                f"{head}Body: {json.dumps(body, indent=2)}\n{head}{SEPARATOR}\n{head}\n"
            )
            counts[f"status_{status}"] += 1
            counts["events"] += 1
            i += 1
        counts["bytes"] = out.tell()
    return counts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--mb", type=float, default=0.0, help="write events until the file holds this many MiB")
    parser.add_argument("--fail-every", type=int, default=0)
    parser.add_argument("--streaks", type=int, default=0, help="every N events, a run of --streak-len 401s")
    parser.add_argument("--streak-len", type=int, default=10)
    parser.add_argument("--start", type=float, default=1764800000.0)
    parser.add_argument("--rate", type=float, default=5.0, help="events per second of log time")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--pixel", default="5bf81ee1-15b1-4dc1-b636-d7dae49b950e")
    args = parser.parse_args(argv)
    max_bytes = int(args.mb * (1 << 20))
    counts = write_log(
        args.out,
        0 if max_bytes else args.events,
        max_bytes=max_bytes,
        fail_every=args.fail_every,
        streaks=args.streaks,
        streak_len=args.streak_len,
        start=args.start,
        rate=args.rate,
        seed=args.seed,
        pixel=args.pixel,
    )
    json.dump(counts, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
