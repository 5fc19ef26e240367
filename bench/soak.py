#!/usr/bin/env python3
"""Soak: `snapwatch run` follows a fast, rotating log through SIGKILLs; every response must be counted once.

    python bench/soak.py [--rate 2000] [--duration 60] [--kills 3] [--max-bytes 6000000] [--quiet 10] [--keep]
    python bench/soak.py --copytruncate [--kills 10] ...

With ``--copytruncate`` the writer logs through a plain ``FileHandler`` and, every second, does what
logrotate's ``copytruncate`` does (the backups shifted, the live file copied to ``.1``, then truncated in
place), between two records, so that no line is lost by the rotation itself; the daemon is SIGKILLed
``--kills`` times. The check: counted equals written, or the difference is what the reported log gaps
account for (both are printed).

    python bench/soak.py --rate 500 --seconds 20 --kills 0 --max-bytes 5000000   # the CPU comparison

A writer process logs CAPI calls with mixed statuses (200, 401, 429, 500, 400) through a real
``RotatingFileHandler`` at ``--rate`` responses per second for ``--duration`` seconds. The daemon
(``python -m snapwatch run``, a subprocess) is SIGKILLed ``--kills`` times at seeded random moments
and restarted at once. When the writer stops, the bench polls ``status --json`` until the counters
reach what was written (or stop moving), then leaves the file quiet for ``--quiet`` seconds, then
sends SIGTERM. Printed: written vs counted per status (any difference, or a non-zero exit of the
daemon, makes the bench exit 1), the daemon's peak RSS (VmHWM, the highest over its instances) and
CPU seconds (utime + stime from /proc/PID/stat, summed over instances, each read just before the
instance is killed), the catch-up time, the CPU used while the file was quiet, and the latency.

Cost per response: the daemon's CPU while following (from READY=1 to caught up, restarts included)
divided by the responses written, beside ``snapwatch scan --json`` over the same files (a subprocess,
the CPU its run takes beyond the same command's over an empty file, i.e. beyond its start-up, median
of three) divided by the responses it counted; the ratio of the two is printed. Use ``--kills 0`` for
a comparison that does not include restarts.

Latency is measured without touching the daemon: a third process runs ``snapwatch.tail.watch.Follower``
(the daemon's follower, with the daemon's flush and recheck settings) on the same file, and for each
response line it yields computes "now - written at". The writer puts ``time.time_ns()`` into the
event name just before it logs the call, so the figure is write → complete line out of the
follower, including the inotify wake-up, under the same CPU contention as the daemon.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import logging.handlers
import multiprocessing as mp
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from snapwatch.config import SourceConfig  # noqa: E402
from snapwatch.synthetic import Call, backend_logger, demo_token, log_call  # noqa: E402
from snapwatch.tail.events import Chunk  # noqa: E402
from snapwatch.tail.watch import Follower  # noqa: E402

STATUSES = (200, 401, 429, 500, 400)
# --mix: "stress" answers 40 % of the calls with an error (incidents open and resolve several times a second:
# every one is diagnosed, alerted and saved at once); "shop" 2 % (an incident every few seconds).
MIXES = {"stress": (6, 1, 1, 1, 1), "shop": (98, 0.5, 0.5, 0.5, 0.5)}
TICKS = os.sysconf("SC_CLK_TCK")
STAMP = re.compile(rb"INCOMING RESPONSE - T(\d+) Event")


# -- the writer process ---------------------------------------------------------------------------

def copytruncate(log_path: str, backups: int) -> None:
    """logrotate's copytruncate: .N-1 → .N … .1 → .2, the live file copied to .1, then truncated in place."""
    for i in range(backups - 1, 0, -1):
        if os.path.exists(f"{log_path}.{i}"):
            os.replace(f"{log_path}.{i}", f"{log_path}.{i + 1}")
    shutil.copyfile(log_path, f"{log_path}.1")
    os.truncate(log_path, 0)


def writer(log_path: str, rate: float, duration: float, max_bytes: int, backups: int, seed: int,
           out: Connection, copy_truncate: bool = False, weights: tuple[float, ...] = MIXES["stress"]) -> None:
    handler: logging.FileHandler
    if copy_truncate:
        handler = logging.FileHandler(log_path, encoding="utf-8")  # appends: after a truncate, at the new end
    else:
        handler = logging.handlers.RotatingFileHandler(log_path, maxBytes=max_bytes, backupCount=backups,
                                                       encoding="utf-8")
    logger = backend_logger(handler, "soak.backend")
    rng = random.Random(seed)
    token = demo_token(seed="soak")
    written: Counter[str] = Counter()
    rotations = 0
    if isinstance(handler, logging.handlers.RotatingFileHandler):
        rollover = handler.doRollover

        def counting_rollover() -> None:
            nonlocal rotations
            rotations += 1
            rollover()

        handler.doRollover = counting_rollover  # type: ignore[method-assign]
    n = 0
    started = time.monotonic()
    next_copy = 1.0
    while (elapsed := time.monotonic() - started) < duration:
        for _ in range(min(int(elapsed * rate) - n, max(1, int(rate / 50)))):  # a batch, then the clock again
            status = rng.choices(STATUSES, weights)[0]
            log_call(logger, Call(f"T{time.time_ns()}", status, token), datetime.now(UTC))
            written[str(status)] += 1
            n += 1
        if copy_truncate and elapsed >= next_copy:
            handler.flush()
            copytruncate(log_path, backups)
            rotations += 1
            next_copy += 1.0
        time.sleep(0.002)  # pacing: the next batch is due in a few milliseconds
    handler.close()
    out.send((dict(written), time.monotonic() - started, rotations))
    out.close()


# -- the latency probe process --------------------------------------------------------------------

def latency_probe(log_path: str, stop: MpEvent, out: Connection) -> None:
    source = SourceConfig(path=log_path, start_at="end", timezone="UTC")
    follower = Follower(source)
    samples: list[int] = []

    async def follow() -> None:
        async for event in follower.events(flush_after=0.5, recheck=5.0):
            if isinstance(event, Chunk) and event.data:
                now = time.time_ns()
                samples.extend(now - int(m.group(1)) for m in STAMP.finditer(event.data))
            if stop.is_set():
                return

    async def main() -> None:
        task = asyncio.create_task(follow())
        while not stop.is_set():
            await asyncio.sleep(0.1)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    out.send(samples)
    out.close()


# -- the daemon -----------------------------------------------------------------------------------

@dataclass
class Instance:
    proc: subprocess.Popen[bytes]
    log: Path
    cpu: float = 0.0
    hwm_kb: int = 0
    cpu_at_ready: float = 0.0


@dataclass
class Daemon:
    config: Path
    folder: Path
    instances: list[Instance] = field(default_factory=list)

    @property
    def current(self) -> Instance:
        return self.instances[-1]

    def start(self) -> None:
        log = self.folder / f"daemon-{len(self.instances)}.log"
        with log.open("wb") as err:
            proc = subprocess.Popen([sys.executable, "-m", "snapwatch", "run", "-c", str(self.config)], cwd=ROOT,
                                    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        self.instances.append(Instance(proc, log))

    def wait_ready(self, timeout: float = 60.0) -> float:
        started = time.monotonic()
        while b"; ready" not in self.current.log.read_bytes():
            if self.current.proc.poll() is not None or time.monotonic() - started > timeout:
                sys.exit(f"soak: the daemon did not become ready:\n{self.current.log.read_text()[-2000:]}")
            time.sleep(0.05)
        self.sample()
        self.current.cpu_at_ready = self.current.cpu
        return time.monotonic() - started

    def sample(self) -> None:
        """Read the current instance's CPU seconds and peak RSS from /proc (kept when it is gone)."""
        inst = self.current
        try:
            stat = Path(f"/proc/{inst.proc.pid}/stat").read_text()
            status = Path(f"/proc/{inst.proc.pid}/status").read_text()
        except OSError:
            return
        fields = stat.rpartition(")")[2].split()
        inst.cpu = (int(fields[11]) + int(fields[12])) / TICKS
        m = re.search(r"^VmHWM:\s+(\d+) kB", status, re.M)
        if m:
            inst.hwm_kb = int(m.group(1))

    def kill(self) -> None:
        self.sample()
        self.current.proc.send_signal(signal.SIGKILL)
        self.current.proc.wait(30)

    def terminate(self) -> int:
        self.sample()
        self.current.proc.send_signal(signal.SIGTERM)
        return self.current.proc.wait(60)


def status(config: Path) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-m", "snapwatch", "status", "--json", "-c", str(config)], cwd=ROOT,
                          capture_output=True, check=True, timeout=60)
    data: dict[str, object] = json.loads(done.stdout)
    return data


def counted(config: Path) -> tuple[Counter[str], int]:
    total: Counter[str] = Counter()
    requests = 0
    sources = status(config)["sources"]
    assert isinstance(sources, list)
    for source in sources:
        total.update(source["responses"])
        requests += source["requests"]
    return total, requests


def child_cpu(argv: list[str]) -> tuple[float, bytes]:
    """CPU seconds (user + system) of one subprocess run to its end, and its stdout."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(argv, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.DEVNULL)
        _pid, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            sys.exit(f"soak: {' '.join(argv)} exited {proc.returncode}")
        out.seek(0)
        return usage.ru_utime + usage.ru_stime, out.read()


def scan_cost(config: Path, files: list[Path], empty: Path, rounds: int = 5) -> tuple[float, float, int]:
    """CPU of ``scan --json`` over ``files`` and over an empty file (its start-up), each the median of
    ``rounds`` runs after one unmeasured run of each; and the responses seen."""
    base = [sys.executable, "-m", "snapwatch", "scan", "-c", str(config), "--json"]
    child_cpu([*base, str(empty)])  # warm: bytecode cached, files in the page cache
    child_cpu(base + [str(f) for f in files])
    full: list[float] = []
    idle: list[float] = []
    responses = 0
    for _ in range(rounds):
        cpu, out = child_cpu(base + [str(f) for f in files])
        full.append(cpu)
        responses = sum(json.loads(out)["responses"]["by_status"].values())
        idle.append(child_cpu([*base, str(empty)])[0])
    return statistics.median(full), statistics.median(idle), responses


def percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))] / 1e6


def main() -> int:
    # The child processes run as an installed snapwatch does, from cached bytecode: pip compiles a package
    # as it installs it; an editable install's modules are compiled once, by the first (unmeasured) run.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=2000.0, help="responses per second (default 2000)")
    parser.add_argument("--duration", "--seconds", type=float, default=60.0, help="seconds of writing (default 60)")
    parser.add_argument("--kills", type=int, default=3, help="SIGKILL + restart cycles (default 3)")
    parser.add_argument("--max-bytes", type=int, default=6_000_000,
                        help="RotatingFileHandler maxBytes (default 6 MB: a rotation every ~3 s at 2000/s)")
    parser.add_argument("--backups", type=int, default=50, help="RotatingFileHandler backupCount (default 50)")
    parser.add_argument("--quiet", type=float, default=10.0, help="seconds of quiet file at the end (default 10)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mix", choices=sorted(MIXES), default="stress",
                        help="the share of errors in Snap's answers (default stress: 40 %%; shop: 2 %%)")
    parser.add_argument("--copytruncate", action="store_true",
                        help="rotate by copy and truncate every second instead of RotatingFileHandler")
    parser.add_argument("--keep", action="store_true", help="keep the working folder (logs, state) and say where")
    args = parser.parse_args()

    folder = Path(tempfile.mkdtemp(prefix="snapwatch-soak-"))
    log_path = folder / "logs" / "snap_conversions_api.log"
    log_path.parent.mkdir()
    log_path.touch()
    config = folder / "config.yaml"
    config.write_text(f"sources:\n  - path: {log_path}\n    start_at: beginning\n    timezone: UTC\n"
                      f"alerts:\n  group_wait: 1s\nstate_dir: {folder / 'state'}\n", encoding="utf-8")
    rng = random.Random(args.seed)
    ctx = mp.get_context("fork")
    daemon = Daemon(config, folder)
    try:
        daemon.start()
        daemon.wait_ready()
        stop_probe = ctx.Event()
        probe_recv, probe_send = ctx.Pipe(duplex=False)
        probe = ctx.Process(target=latency_probe, args=(str(log_path), stop_probe, probe_send))
        probe.start()
        time.sleep(0.5)  # the probe's first poll positions it at the (empty) end before writing starts
        writer_recv, writer_send = ctx.Pipe(duplex=False)
        write_proc = ctx.Process(target=writer, args=(str(log_path), args.rate, args.duration, args.max_bytes,
                                                      args.backups, args.seed, writer_send, args.copytruncate,
                                                      MIXES[args.mix]))
        started = time.monotonic()
        write_proc.start()
        kill_at = sorted(rng.uniform(0.1, 0.9) * args.duration for _ in range(args.kills))
        while write_proc.is_alive():
            if kill_at and time.monotonic() - started >= kill_at[0]:
                kill_at.pop(0)
                daemon.kill()
                print(f"soak: t={time.monotonic() - started:5.1f}s SIGKILL, restart", flush=True)
                daemon.start()
            daemon.sample()
            write_proc.join(0.1)
        written_dict, wrote_for, rotations = writer_recv.recv()
        written = Counter(written_dict)
        stopped_writing = time.monotonic()

        last, requests = counted(config)
        same_since = time.monotonic()
        while time.monotonic() - stopped_writing < 120:
            daemon.sample()
            if last == written:
                break
            time.sleep(0.2)
            now, requests = counted(config)
            if now != last:
                last, same_since = now, time.monotonic()
            elif time.monotonic() - same_since > 10:
                break
        caught_up = time.monotonic() - stopped_writing
        daemon.sample()
        following_cpu = sum(i.cpu for i in daemon.instances) - daemon.instances[0].cpu_at_ready

        stop_probe.set()
        samples = sorted(probe_recv.recv())
        probe.join(30)

        daemon.sample()
        cpu_before = daemon.current.cpu
        time.sleep(args.quiet)  # measuring what the daemon does while nothing is written
        daemon.sample()
        quiet_cpu = daemon.current.cpu - cpu_before
        code = daemon.terminate()
        final, requests = counted(config)
        gaps = status(config).get("log_gaps") or []
        assert isinstance(gaps, list)
        empty = folder / "empty.log"
        empty.touch()
        scan_cpu, scan_startup, scanned = scan_cost(config, sorted(log_path.parent.iterdir()), empty)
    finally:
        for inst in daemon.instances:
            if inst.proc.poll() is None:
                inst.proc.kill()
                inst.proc.wait()

    total_written = sum(written.values())
    how = "copytruncate" if args.copytruncate else "RotatingFileHandler"
    print(f"soak: wrote {total_written} responses in {wrote_for:.1f}s ({total_written / wrote_for:.0f}/s), "
          f"{len(daemon.instances) - 1} SIGKILLs, {rotations} rotations by {how} "
          f"(every {wrote_for / max(rotations, 1):.1f}s)")
    print(f"{'status':>8} {'written':>9} {'counted':>9} {'diff':>6}")
    failed = code != 0
    missing = 0
    for code_ in sorted(set(written) | set(final)):
        diff = final[code_] - written[code_]
        failed |= diff > 0  # counted twice: never explained by a gap
        missing += max(0, -diff)
        print(f"{code_:>8} {written[code_]:>9} {final[code_]:>9} {diff:>+6}")
    lost_bytes = sum(g["lost_bytes"] or 0 for g in gaps)
    unknown = sum(1 for g in gaps if g["lost_bytes"] is None)
    print(f"log gaps reported: {len(gaps)} ({lost_bytes} bytes lost in those that know it, {unknown} of unknown size)"
          f"; responses missing: {missing}")
    for g in gaps:
        print(f"  gap: {g['path']}: {g['lost_bytes']} bytes ({g['reason']})")
    # A response written is counted, or the log says why not: missing responses need a reported gap, and a
    # gap of known size must be able to hold them (a call logs well over 300 bytes).
    failed |= missing > 0 and not gaps
    failed |= missing > 0 and not unknown and missing * 300 > lost_bytes
    print(f"{'requests':>8} {total_written:>9} {requests:>9} {requests - total_written:>+6}")
    print(f"daemon: exit {code} on SIGTERM; caught up {caught_up:.1f}s after the writer stopped")
    print(f"daemon: peak RSS {max(i.hwm_kb for i in daemon.instances) / 1024:.1f} MiB (VmHWM, highest instance); "
          f"CPU {sum(i.cpu for i in daemon.instances):.2f}s over {len(daemon.instances)} instance(s)")
    print(f"daemon: CPU while the file was quiet: {quiet_cpu:.2f}s in {args.quiet:.0f}s "
          f"({100 * quiet_cpu / args.quiet:.1f}%)")
    print(f"follower latency write → line out: p50 {percentile(samples, 0.5):.1f} ms, "
          f"p99 {percentile(samples, 0.99):.1f} ms, max {percentile(samples, 1.0):.1f} ms "
          f"({len(samples)} responses)")
    per_daemon = following_cpu / max(total_written, 1) * 1e6
    scan_work = max(scan_cpu - scan_startup, 0.0)
    per_scan = scan_work / max(scanned, 1) * 1e6
    print(f"daemon: CPU while following {following_cpu:.2f}s = {per_daemon:.1f} µs/response")
    print(f"scan --json: CPU {scan_cpu:.2f}s, start-up {scan_startup:.2f}s, beyond start-up {scan_work:.2f}s "
          f"= {per_scan:.1f} µs/response ({scanned} responses)")
    print(f"cost per response, daemon / scan: {per_daemon / per_scan if per_scan else float('inf'):.2f}×")
    if args.keep:
        print(f"soak: kept {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    print("soak: PASS" if not failed else "soak: FAIL (counted differs from written without a gap to say so, "
                                           "or a bad exit)")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
