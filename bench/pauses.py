#!/usr/bin/env python3
"""What a pause between batches costs: the same records fed to one pipeline back to back, and with a
sleep between batches as the daemon's follower does while a file is busy.

    python bench/pauses.py [--mb 5] [--batch 60000] [--pause 0.08] [--rounds 3]

A log of ``--mb`` MiB (bench/genlog.py, one 401 in seven) is cut into batches of ``--batch`` bytes
(whole lines) and fed to a fresh ``SourcePipeline`` three ways, interleaved ``--rounds`` times: (a) back
to back, (b) sleeping ``--pause`` seconds between batches, (c) spinning (a busy wait) for ``--pause``
between them. Only the feeds are timed (process CPU time), so each prints the pipeline's own CPU per
response, and (b) and (c) their ratio to (a), the best round of each. The daemon reads a busy file every
80 ms (``tail.watch.BUSY_EVERY``): (b) is the part of its cost per response that follows from reading
in batches at all, whatever the rest of the daemon does.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from genlog import write_log

from snapwatch.config import RulesConfig, SourceConfig
from snapwatch.detect.pipeline import SourcePipeline


def batches(data: bytes, size: int) -> list[bytes]:
    """``data`` cut into pieces of about ``size`` bytes, each ending at a line's end."""
    out, start = [], 0
    while start < len(data):
        end = data.find(b"\n", start + size)
        end = len(data) if end < 0 else end + 1
        out.append(data[start:end])
        start = end
    return out


def feed(pieces: list[bytes], pause: float, spin: bool) -> tuple[int, float]:
    """Responses and the process CPU seconds their feeds took."""
    pipeline = SourcePipeline(SourceConfig(path="bench.log", timezone="UTC"), RulesConfig(), label="bench.log")
    responses, cpu = 0, 0.0
    for piece in pieces:
        start = time.process_time()
        responses += len(pipeline.feed(piece).exchanges)
        cpu += time.process_time() - start
        if pause and spin:
            until = time.perf_counter() + pause
            while time.perf_counter() < until:
                pass
        elif pause:
            time.sleep(pause)
    return responses, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=5.0)
    parser.add_argument("--batch", type=int, default=60_000, help="bytes per batch (default 60000: ~80 ms at 500/s)")
    parser.add_argument("--pause", type=float, default=0.08, help="seconds between batches (default 0.08)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="snapwatch-pauses-") as tmp:
        path = Path(tmp) / "bench.log"
        write_log(str(path), 0, max_bytes=int(args.mb * (1 << 20)), fail_every=7)
        pieces = batches(path.read_bytes(), args.batch)
    ways = {"(a) back to back": (0.0, False), f"(b) sleeping {args.pause * 1000:.0f} ms": (args.pause, False),
            f"(c) spinning {args.pause * 1000:.0f} ms": (args.pause, True)}
    best: dict[str, float] = {}
    responses = 0
    for _ in range(args.rounds):
        for name, (pause, spin) in ways.items():
            responses, cpu = feed(pieces, pause, spin)
            best[name] = min(best.get(name, cpu), cpu)
    base = best["(a) back to back"]
    print(f"{len(pieces)} batches of ~{args.batch} bytes, {responses} responses; best of {args.rounds} rounds")
    for name, cpu in best.items():
        print(f"{name:>22}: {cpu / responses * 1e6:6.1f} µs/response   ×{cpu / base:4.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
