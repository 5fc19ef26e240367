#!/usr/bin/env python3
"""What one save of a source's memory costs as its error-rate window fills: by changes, against whole.

    python bench/saves.py [--buckets 10,100,300] [--commits 200]

For each window size, a source's detector and history are filled with one response per second (one
failure in four, so that every second keeps a bucket with its first failure) until the window holds that
many buckets. Then ``--commits`` times: one more response (in the same mix), and one commit into a real state file
in a temporary directory, (a) as the daemon saves it (``FollowedFile.commit``: the memory document when it
changed, and only the window's and runs' rows that are new or grew), and (b) as a baseline, the whole
memory written as one document (``Detector.snapshot()`` with every row, ``stored_json``, the same
``commit_batch``), as it was saved before the rows had a table of their own. Both are timed in process CPU
time, interleaved; printed: microseconds per commit and bytes written per commit, and the ratio (a)/(b).
(a) stays flat as the window grows; (b) grows with it.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from snapwatch.codec import stored_json
from snapwatch.config import RulesConfig, SourceConfig, validated
from snapwatch.detect.pipeline import SourcePipeline
from snapwatch.model import Api, Exchange, Placement, Request, Response, TokenKind
from snapwatch.run.followed import FollowedFile
from snapwatch.store.state import Store

T0 = datetime(2025, 12, 3, 23, 0, 0, tzinfo=UTC)
PATH = "/var/log/app.log"
BODY = '{"status": "FAILED", "reason": "internal error", "request_id": "0f3a9c"}'


def exchange(second: int, status: int) -> Exchange:
    at = T0 + timedelta(seconds=second)
    req = Request(at, "PURCHASE", Api.V3, "/v3/px1/events", "px1", Placement.QUERY, "3f9a1c0b7d2e",
                  TokenKind.CANVAS_S2S)
    return Exchange(Response(at, "PURCHASE", status, BODY if status >= 300 else ""), req, PATH)


def filled(buckets: int) -> FollowedFile:
    rules = validated(RulesConfig, {"error_rate": {"window": f"{buckets + 10}s", "threshold": 0.9,
                                                   "min_responses": 10}})
    f = FollowedFile(SourcePipeline(SourceConfig(path=PATH), rules, label=PATH))
    for second in range(buckets):
        f.pipeline.history.observe(ex := exchange(second, 500 if second % 4 == 0 else 200))
        f.pipeline.detector.observe(ex)
    return f


def run(buckets: int, commits: int) -> tuple[float, float, float, float]:
    """(µs, bytes) per commit by changes, then whole."""
    with tempfile.TemporaryDirectory() as tmp_a, tempfile.TemporaryDirectory() as tmp_b, \
            Store.open(tmp_a) as by_rows, Store.open(tmp_b) as whole:
        a, b = filled(buckets), filled(buckets)
        a.commit(by_rows, {})  # the first commit writes every row once; the timed ones follow
        time_a = time_b = 0.0
        bytes_a = bytes_b = 0
        traced: list[int] = []
        for store in (by_rows, whole):
            store.conn.set_trace_callback(lambda sql: traced.append(len(sql)))
        for i in range(commits):
            second = buckets + i
            for f in (a, b):
                f.pipeline.history.observe(ex := exchange(second, 500 if second % 4 == 0 else 200))
                f.pipeline.detector.observe(ex)
            traced.clear()
            t = time.process_time()
            a.commit(by_rows, {})
            time_a += time.process_time() - t
            bytes_a += sum(traced)
            traced.clear()
            t = time.process_time()
            memory = {**b.memory(), "detector": b.pipeline.detector.snapshot(),
                      "history": b.pipeline.history.snapshot()}
            whole.commit_batch(None, path=PATH, source_memory=stored_json(memory))
            time_b += time.process_time() - t
            bytes_b += sum(traced)
        return time_a / commits * 1e6, bytes_a / commits, time_b / commits * 1e6, bytes_b / commits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--buckets", default="10,100,300", help="window sizes, in buckets")
    parser.add_argument("--commits", type=int, default=200)
    args = parser.parse_args()
    print(f"{'buckets':>8} {'by changes µs':>14} {'bytes':>8} {'whole µs':>10} {'bytes':>8} {'ratio':>6}")
    for n in (int(x) for x in args.buckets.split(",")):
        us_a, bytes_a, us_b, bytes_b = run(n, args.commits)
        print(f"{n:>8} {us_a:>14.0f} {bytes_a:>8.0f} {us_b:>10.0f} {bytes_b:>8.0f} {us_a / us_b:>6.2f}")


if __name__ == "__main__":
    main()
