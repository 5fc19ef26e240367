#!/usr/bin/env python3
"""Outbox memory: `snapwatch run` with 10,000 alerts pending for a target that never answers; prints its RSS.

    python bench/outbox.py [--pending 10000] [--seconds 30] [--timeout 2s] [--root DIR]

The state file is filled with ``--pending`` rendered alerts (full diagnoses, as an incident storm would
leave them) owed to one apprise target: a local socket that accepts connections and never answers (a
black hole: every send waits for ``alerts.timeout``). The daemon (``python -m snapwatch run``, a
subprocess) then runs for ``--seconds`` with that queue, delivery rounds failing one after another. Printed:
its RSS at the start and at the end, the peak (VmHWM), and its CPU use; the same for an empty outbox as
the baseline. Target: under 100 MB with 10,000 pending. ``--root`` runs another checkout's snapwatch (to
measure before a change); the state is filled through that checkout's own outbox.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def _status(pid: int) -> dict[str, int]:
    text = Path(f"/proc/{pid}/status").read_text()
    return {k: int(v) for k, v in re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", text, re.M)}


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def fill_state(root: Path, state: Path, url: str, pending: int) -> None:
    """``pending`` alerts owed to ``url``, written through the checkout's own store and outbox."""
    sys.path.insert(0, str(root))
    render = importlib.import_module("snapwatch.alert.messages").render
    target = importlib.import_module("snapwatch.alert.notify").AppriseTarget(url)
    store = importlib.import_module("snapwatch.store.state").Store.open(state)
    outbox = importlib.import_module("snapwatch.store.outbox").Outbox(store.conn)
    alert = importlib.import_module("tests.helpers.alerts").make_alert()
    message = render(alert)
    now = datetime.now(UTC)
    store.conn.execute("BEGIN IMMEDIATE")
    for i in range(pending):
        outbox.enqueue(dataclasses.replace(message, alert_id=f"bench-{i}"), [(target.key, target.display)], now)
    store.conn.execute("COMMIT")
    store.close()
    print(f"outbox: {pending} alerts of {len(message.to_json())} bytes each owed to {target.display}")


def measure(root: Path, folder: Path, pending: int, seconds: float, timeout: str) -> tuple[int, int, int, float]:
    """Run the daemon on a queue of ``pending``; returns RSS at start and end, peak RSS (kB), CPU seconds."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(1024)  # accepts (the kernel does) and never reads nor answers
    url = f"json://127.0.0.1:{hole.getsockname()[1]}/hook"
    run = folder / f"run-{pending}"
    (run / "logs").mkdir(parents=True)
    log = run / "logs" / "capi.log"
    log.touch()
    if pending:
        fill_state(root, run / "state", url, pending)
    config = run / "config.yaml"
    config.write_text(f"sources:\n  - path: {log}\nstate_dir: {run / 'state'}\n"
                      f"alerts:\n  urls: ['{url}']\n  timeout: {timeout}\n", encoding="utf-8")
    with (run / "daemon.log").open("wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "snapwatch", "run", "-c", str(config)], cwd=root,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
    try:
        while b"; ready" not in (run / "daemon.log").read_bytes():
            if proc.poll() is not None:
                sys.exit(f"bench: the daemon exited:\n{(run / 'daemon.log').read_text()[-2000:]}")
            time.sleep(0.05)
        time.sleep(1.0)
        start = _status(proc.pid)["VmRSS"]
        cpu0, started = _cpu(proc.pid), time.monotonic()
        time.sleep(seconds)
        status = _status(proc.pid)
        cpu = _cpu(proc.pid) - cpu0
        elapsed = time.monotonic() - started
    finally:
        proc.terminate()
        proc.wait(60)
        hole.close()
    return start, status["VmRSS"], status["VmHWM"], cpu / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument("--seconds", type=float, default=30.0, help="how long the daemon runs with the queue")
    parser.add_argument("--timeout", default="2s", help="alerts.timeout: how long each send waits (default 2s)")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="the checkout whose snapwatch runs (default: this one)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="snapwatch-outbox-"))
    try:
        print(f"snapwatch from {args.root}")
        base = measure(args.root, folder, 0, args.seconds, args.timeout)
        full = measure(args.root, folder, args.pending, args.seconds, args.timeout)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    for name, (start, end, peak, cpu) in (("empty outbox", base), (f"{args.pending} pending", full)):
        print(f"{name:>14}: RSS {start / 1024:6.1f} MiB at start, {end / 1024:6.1f} MiB after {args.seconds:.0f}s, "
              f"peak {peak / 1024:6.1f} MiB; CPU {100 * cpu:5.1f}% of a core")
    ok = full[2] < 100 * 1024
    print("outbox: PASS (peak under 100 MiB)" if ok else "outbox: FAIL (peak 100 MiB or more)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
