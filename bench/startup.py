#!/usr/bin/env python3
"""Start-up of the commands people type: each as a whole process, against a bare interpreter.

    python bench/startup.py [--runs 10]

Times, as whole processes, ``python -c pass`` (the baseline), ``snapwatch --help``, ``snapwatch token``
with no token anywhere, ``snapwatch token --stdin`` given a real (Canvas S2S) token, and ``snapwatch
scan --json`` over a one-event log. Each command runs ``--runs`` times, interleaved with the others,
after one unmeasured run of each; the median wall time is printed with its ratio to the baseline.
The children run from cached bytecode, as an installed package does (``PYTHONDONTWRITEBYTECODE`` is
dropped from their environment). The target (design.md, issue "Fast where it counts"): ``--help`` and
``token`` under 150 ms.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from snapwatch.synthetic import Call, backend_logger, demo_token, log_call

ROOT = Path(__file__).resolve().parent.parent
TARGET = 0.150  # seconds, for --help and token


def timed(argv: list[str], stdin: bytes, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, input=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT, env=env,
                   check=False)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "SNAP_ACCESS_TOKEN")}
    token = demo_token().encode()
    py, sw = [sys.executable], [sys.executable, "-m", "snapwatch"]
    with tempfile.TemporaryDirectory(prefix="snapwatch-startup-") as tmp:
        log = Path(tmp) / "one.log"
        handler = logging.FileHandler(log)
        log_call(backend_logger(handler), Call("PURCHASE", 200, token.decode()), datetime.now(UTC))
        handler.close()
        commands: list[tuple[str, list[str], bytes, bool]] = [
            ("python -c pass (baseline)", [*py, "-c", "pass"], b"", False),
            ("snapwatch --help", [*sw, "--help"], b"", True),
            ("snapwatch token (none found)", [*sw, "token"], b"", True),
            ("snapwatch token --stdin (a JWT)", [*sw, "token", "--stdin"], token, True),
            ("snapwatch scan --json (1 event)", [*sw, "scan", "--json", str(log)], b"", False),
        ]
        times: dict[str, list[float]] = {name: [] for name, *_ in commands}
        for _ in range(args.runs + 1):  # the first round is not measured (bytecode, page cache)
            for name, argv, stdin, _target in commands:
                times[name].append(timed(argv, stdin, env))
    base = statistics.median(times[commands[0][0]][1:])
    missed = 0
    for name, _argv, _stdin, has_target in commands:
        median = statistics.median(times[name][1:])
        verdict = ""
        if has_target:
            verdict = f"   target < {TARGET * 1000:.0f} ms: {'met' if median < TARGET else 'NOT met'}"
            missed += median >= TARGET
        print(f"{name:>34}: median {median * 1000:6.1f} ms   ×{median / base:5.2f} the baseline{verdict}")
    print(f"median of {args.runs} runs each")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
