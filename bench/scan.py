#!/usr/bin/env python3
"""Times the parser against a bare Python line loop over the same generated log, in one process.

    python bench/scan.py [--mb 100] [--rounds 5] [--keep]

(a) ``for line in f: if b"Status Code: 401" in line: n += 1``; (b) LineSplitter + Assembler over
blocks of ``snapwatch.run.scan.READ_BLOCK`` bytes (the scan path's reads); (c)
``snapwatch.cli.app.main(["scan", "--json", path])`` with stdout captured, when the CLI exists; (f) the
record search alone, the least any reading of the backend format with the assembler's block regex does:
the same blocks through the LineSplitter, then per record the marker search and the anchored block match,
nothing built from them. Each is run ``--rounds`` times, interleaved, and the best time counts.
Then, as whole processes (start-up included), ``--rounds`` pairs of (d) the bare loop as
``python -c`` and (e) ``python -m snapwatch scan --json FILE``, each pair run back to back; the
median of the pairs' ratios (e)/(d) is the whole-process ratio, printed with each one's peak RSS; one
unmeasured run of each comes first. The children run from cached bytecode, as an installed package does
(``PYTHONDONTWRITEBYTECODE`` is dropped from their environment). Last, the scan's peak RSS over a log a
tenth the size, beside the full one's: flat in file size.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from genlog import write_log

from snapwatch.config import SourceConfig
from snapwatch.ingest.lines import LineSplitter
from snapwatch.ingest.records import _BLOCK, _MARK_SEARCH, Assembler
from snapwatch.run.scan import READ_BLOCK as CHUNK


def bare_loop(path: str) -> int:
    n = 0
    with open(path, "rb") as f:
        for line in f:
            if b"Status Code: 401" in line:
                n += 1
    return n


def parse(path: str) -> int:
    source = SourceConfig(path=path, timezone="UTC")
    splitter = LineSplitter(source.max_line_bytes)
    assembler = Assembler(source, path)
    failed = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            for exchange in assembler.feed(splitter.push(chunk)):
                failed += exchange.status == 401
    for exchange in assembler.feed(splitter.flush()) + assembler.flush():
        failed += exchange.status == 401
    return failed


def record_search(path: str) -> int:
    """Records found by the marker search and the block match alone (nothing read out of them)."""
    splitter = LineSplitter(SourceConfig(path=path).max_line_bytes)
    match, search = _BLOCK.match, _MARK_SEARCH
    records = 0
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            buf = splitter.push(chunk)
            pos = 0
            while (found := search(buf, pos)) is not None:
                start = found.start()
                m = match(buf, buf.rfind(b"\n", 0, start) + 1)
                pos = buf.find(b"\n", start) + 1 if m is None else m.end()
                records += m is not None
    return records


def cli_scan(path: str) -> int | None:
    try:
        cli = importlib.import_module("snapwatch.cli.app")
    except ImportError:
        return None
    main = getattr(cli, "main", None)
    if main is None:
        return None
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        main(["scan", "--json", path])
    try:
        report = json.loads(out.getvalue())
        return int(report["responses"]["by_status"].get("401", 0))
    except (ValueError, KeyError, TypeError):
        return -1


BARE_SCRIPT = """import sys
n = 0
with open(sys.argv[1], "rb") as f:
    for line in f:
        if b"Status Code: 401" in line:
            n += 1
print(n)
"""


# Runs a module (``-m NAME ARGS``) or a script (``-c TEXT ARGS``) and, at exit, writes the process's peak
# RSS (VmHWM, KiB) on stderr. Read from /proc inside the child: the rusage a parent gets counts the
# parent's own pages too when the child was forked from it before its exec.
RSS_WRAPPER = """import atexit, runpy, sys
def _peak():
    with open("/proc/self/status") as status:
        sys.stderr.write(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
atexit.register(_peak)
how, what = sys.argv[1:3]
sys.argv = [what, *sys.argv[3:]]
if how == "-m":
    runpy.run_module(what, run_name="__main__", alter_sys=True)
else:
    exec(compile(what, "<bare loop>", "exec"), {"__name__": "__main__"})
"""


def run_process(argv: list[str]) -> tuple[float, bytes, bytes]:
    """Wall seconds of one subprocess run to its end, its stdout and its stderr."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        proc.wait()
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(f"bench: {argv} exited {proc.returncode}")
        out.seek(0)
        err.seek(0)
        return elapsed, out.read(), err.read()


def peak_rss_of(how: str, what: str, *args: str) -> float:
    """Peak RSS (MiB) of ``python -m what args`` or ``python -c what args`` (``how``), read by the child itself."""
    _, _, err = run_process([sys.executable, "-c", RSS_WRAPPER, how, what, *args])
    return int(err.decode().strip().splitlines()[-1]) / 1024


def whole_process(path: str, rounds: int) -> None:
    bare = [sys.executable, "-c", BARE_SCRIPT, path]
    scan = [sys.executable, "-m", "snapwatch", "scan", "--json", path]
    ratios: list[float] = []
    bare_s: list[float] = []
    scan_s: list[float] = []
    found = {"bare": "", "scan": ""}
    run_process(bare)  # unmeasured: bytecode cached, the log in the page cache
    run_process(scan)
    for _ in range(rounds):
        b, out, _ = run_process(bare)
        found["bare"] = out.decode().strip()
        s, out, _ = run_process(scan)
        found["scan"] = str(json.loads(out)["responses"]["by_status"].get("401", 0))
        bare_s.append(b)
        scan_s.append(s)
        ratios.append(s / b)
    rss = {"bare": peak_rss_of("-c", BARE_SCRIPT, path), "scan": peak_rss_of("-m", "snapwatch", "scan", "--json", path)}
    print(f"(d) bare loop process   {statistics.median(bare_s):7.3f} s   peak RSS {rss['bare']:.0f} MiB   "
          f"401s={found['bare']}")
    print(f"(e) scan --json process {statistics.median(scan_s):7.3f} s   peak RSS {rss['scan']:.0f} MiB   "
          f"401s={found['scan']}")
    print(f"whole-process ratio (e)/(d), median of {rounds} pairs: {statistics.median(ratios):.2f} "
          f"(pairs: {', '.join(f'{r:.2f}' for r in ratios)})")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    # The child processes run as an installed snapwatch does, from cached bytecode: pip compiles a package
    # as it installs it; an editable install's modules are compiled once, by the first (unmeasured) run.
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=100.0)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the generated log and print its path")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="snapwatch-bench-") as tmp:
        path = str(Path(tmp) / "snap_conversions_api.log")
        counts = write_log(path, 0, max_bytes=int(args.mb * (1 << 20)), fail_every=7)
        print(f"log: {counts['bytes'] / (1 << 20):.1f} MiB, {counts['events']} events, {counts['status_401']} 401s")
        rss_before = peak_rss_mb()
        runs: dict[str, list[float]] = {"bare": [], "parse": [], "cli": [], "search": []}
        results: dict[str, int | None] = {}
        for _ in range(args.rounds):
            for name, fn in (("bare", bare_loop), ("parse", parse), ("cli", cli_scan), ("search", record_search)):
                start = time.perf_counter()
                results[name] = fn(path)
                if results[name] is not None:
                    runs[name].append(time.perf_counter() - start)
        base = min(runs["bare"])
        print(f"(a) bare loop           {base:7.3f} s   401s={results['bare']}")
        for label, name in (("(b) splitter+assembler", "parse"), ("(c) cli scan --json   ", "cli"),
                            ("(f) record search only", "search")):
            if runs[name]:
                best = min(runs[name])
                found = f"records={results[name]}" if name == "search" else f"401s={results[name]}"
                print(f"{label} {best:7.3f} s   ratio {best / base:5.2f}   {found}")
            else:
                print(f"{label}   (snapwatch.cli.app.main not available)")
        print(f"peak RSS {peak_rss_mb():.0f} MiB (before timing: {rss_before:.0f} MiB)")
        whole_process(path, args.rounds)
        # Peak RSS flat in file size: the same scan over a log a tenth the size.
        small = str(Path(tmp) / "small.log")
        write_log(small, 0, max_bytes=int(args.mb * (1 << 20) / 10), fail_every=7)
        small_rss = peak_rss_of("-m", "snapwatch", "scan", "--json", small)
        big_rss = peak_rss_of("-m", "snapwatch", "scan", "--json", path)
        print(f"scan --json peak RSS: {small_rss:.0f} MiB over {args.mb / 10:g} MiB, {big_rss:.0f} MiB over "
              f"{args.mb:g} MiB")
        if args.keep:
            kept = Path(tempfile.gettempdir()) / "snapwatch-bench.log"
            Path(path).replace(kept)
            print(f"log kept at {kept}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
