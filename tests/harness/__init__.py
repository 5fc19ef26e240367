"""A real-client harness: our own backend (httpx async, N processes, one log) against a fake Snap server.

snapwatch is driven only through its command line (``python -m snapwatch scan --json``, ``run``,
``status --json``) and files; nothing here imports it. The fake server's tally of what it answered is
the truth the tests compare against, and ``check_harness`` verifies that tally against the log itself
(``Status Code:`` lines counted by status) and against each backend process's own count, so a
mismatch in a test is snapwatch's, not the harness's.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.harness.fake_snap import NO_TOKEN, FakeSnap, Tally, fingerprint

__all__ = [
    "BACKEND",
    "PIXEL",
    "Daemon",
    "FakeSnap",
    "Tally",
    "WorkerResult",
    "canvas_token",
    "check_harness",
    "compare",
    "daemon_counts",
    "daemon_requests",
    "daemon_tokens",
    "fake_snap",
    "findings",
    "fingerprint",
    "grep_status_counts",
    "log_files",
    "report",
    "run_backends",
    "scan_json",
    "scan_tokens",
    "snapwatch",
    "write_env",
]

ROOT = Path(__file__).resolve().parents[2]
BACKEND = Path(__file__).with_name("backend.py")
PIXEL = "5bf81ee1-15b1-4dc1-b636-d7dae49b950e"
_RUN_IDS = itertools.count(1)
# A response's status line as the backend writes it (one logging call, so one whole line in the file).
_STATUS_LINE = re.compile(
    rb"^[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8}(?:,[0-9]+)? - (?:\[[0-9]+\] - )?[A-Z]+ - Status Code: ([0-9]+)$",
    re.MULTILINE,
)


def _b64(obj: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).rstrip(b"=").decode()


def canvas_token(seed: str, nbf: int = 1764800000) -> str:
    """A fake token shaped like a Business Manager CAPI token (a Canvas S2S JWT); the signature is made up."""
    header = {"alg": "HS256", "kid": "CanvasS2SHMACProd", "typ": "JWT"}
    claims = {"aud": "canvas-canvasapi", "iss": "canvas-s2stoken", "nbf": nbf,
              "sub": "6f1c2a3b-4d5e-4f60-8a7b-9c0d1e2f3a4b~PRODUCTION~0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"}
    head = f"{_b64(header)}.{_b64(claims)}"
    signature = base64.urlsafe_b64encode(hashlib.sha256((seed + head).encode()).digest()).rstrip(b"=").decode()
    return f"{head}.{signature}"


def write_env(path: Path, token: str, pixel: str = PIXEL) -> None:
    """The backend's ``.env``; written whole through a temporary file, as an editor or a deploy does."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"SNAP_PIXEL_ID={pixel}\nSNAP_ACCESS_TOKEN={token}\n", encoding="utf-8")
    tmp.replace(path)


@contextmanager
def fake_snap(*, client_timeout: float, delay: float | None = None,
              error_every: dict[int, int] | None = None) -> Iterator[FakeSnap]:
    with FakeSnap(client_timeout=client_timeout, delay=delay, error_every=error_every) as snap:
        yield snap


# ---- the backend ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerResult:
    """One backend process: its exit code, its own count of what it logged (``--summary``), its stderr."""

    returncode: int
    summary: dict[str, Any]
    stderr: str
    error_log: str


def run_backends(workers: int, *, log: Path, snap: FakeSnap, env_file: Path, workdir: Path, events: int,
                 concurrency: int = 10, rate: float = 0.0, api: str = "v3", timeout: float = 5.0,
                 max_bytes: int = 0, backup_count: int = 0, pid_format: bool = False,
                 deadline: float = 120.0) -> list[WorkerResult]:
    """Start ``workers`` backend processes at once against ``log`` (``uvicorn --workers N``), wait for all.

    Each reads ``env_file`` as it starts, so calling this again after ``write_env`` is a restart.
    """
    run = next(_RUN_IDS)
    procs: list[tuple[subprocess.Popen[bytes], Path, Path, Path]] = []
    try:
        for k in range(workers):
            summary = workdir / f"backend-{run}-{k}.json"
            errors = workdir / f"backend-{run}-{k}.errors.log"
            stderr = workdir / f"backend-{run}-{k}.stderr"
            argv = [sys.executable, str(BACKEND), "--log", str(log), "--snap-url", snap.base_url,
                    "--env-file", str(env_file), "--events", str(events), "--concurrency", str(concurrency),
                    "--rate", str(rate), "--api", api, "--timeout", str(timeout), "--max-bytes", str(max_bytes),
                    "--backup-count", str(backup_count), "--summary", str(summary), "--error-log", str(errors)]
            if pid_format:
                argv.append("--pid-format")
            with stderr.open("wb") as err:
                proc = subprocess.Popen(argv, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=err)
            procs.append((proc, summary, errors, stderr))
        until = time.monotonic() + deadline
        for proc, *_ in procs:
            proc.wait(max(0.1, until - time.monotonic()))
    finally:
        for proc, *_ in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    results = []
    for proc, summary, errors, stderr in procs:
        err_text = stderr.read_text(encoding="utf-8", errors="replace")
        assert proc.returncode == 0, f"backend worker exited {proc.returncode}:\n{err_text}"
        results.append(WorkerResult(proc.returncode, json.loads(summary.read_text(encoding="utf-8")), err_text,
                                    errors.read_text(encoding="utf-8") if errors.exists() else ""))
    return results


# ---- snapwatch through its command line ---------------------------------------------------------------


def snapwatch(*args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``python -m snapwatch ARGS`` (the installed package, whatever its modules are called inside)."""
    return subprocess.run([sys.executable, "-m", "snapwatch", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False, stdin=subprocess.DEVNULL)


def log_files(log: Path) -> list[Path]:
    """The live log and its RotatingFileHandler backups (``.1`` … ``.N``)."""
    backups = [p for p in log.parent.glob(log.name + ".*") if p.suffix[1:].isdigit()]
    return [*sorted(backups, key=lambda p: -int(p.suffix[1:])), *([log] if log.exists() else [])]


def scan_json(files: Iterable[Path], env_file: Path | None = None) -> dict[str, Any]:
    """``snapwatch scan --json`` over ``files``."""
    args = ["scan", "--json", "--no-progress"]
    if env_file is not None:
        args += ["--env-file", str(env_file)]
    done = snapwatch(*args, *(str(f) for f in files))
    assert done.returncode == 0, f"snapwatch scan exited {done.returncode}:\n{done.stderr}"
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def scan_tokens(scan: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """scan --json's tokens: fingerprint → (accepted, rejected)."""
    return {t["fingerprint"]: (t["accepted"], t["rejected"]) for t in scan["tokens"]}


def findings(data: object) -> list[dict[str, Any]]:
    """Every finding (a dict with a ``code``) anywhere in a JSON document: security, incidents' diagnoses, …"""
    out: list[dict[str, Any]] = []
    if isinstance(data, dict):
        if isinstance(data.get("code"), str):
            out.append(data)
        for value in data.values():
            out.extend(findings(value))
    elif isinstance(data, list):
        for value in data:
            out.extend(findings(value))
    return out


class Daemon:
    """``snapwatch run -c CONFIG`` as a process, following ``log`` from its beginning; state in ``workdir``.

    Alerts go to the console (its stderr, kept in a file). Use as a context manager; it is stopped with
    SIGTERM and must exit 0.
    """

    def __init__(self, workdir: Path, log: Path, env_file: Path | None = None) -> None:
        self.log = log
        self.config = workdir / "snapwatch.yaml"
        lines = ["sources:", f"  - path: {log}", "    start_at: beginning",
                 "alerts:", "  urls: []", "  group_wait: 1s", f"state_dir: {workdir / 'snapwatch-state'}"]
        if env_file is not None:
            lines += ["token:", f"  env_file: {env_file}"]
        self.config.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self.stderr_path = workdir / "snapwatch-daemon.stderr"
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None

    def __enter__(self) -> Daemon:
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "snapwatch", "run", "-c", str(self.config)],
                                         cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err)
        try:
            self.wait_for_output("; ready", 30.0)  # the backlog is read: "ready" means caught up
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        code = self.stop()
        if exc_type is None:
            assert code == 0, f"snapwatch run exited {code}:\n{self.output()}"

    def stop(self) -> int:
        if self.proc is None:
            return self.returncode or 0
        proc, self.proc = self.proc, None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        self.returncode = proc.returncode
        return proc.returncode

    def output(self) -> str:
        return self.stderr_path.read_text(encoding="utf-8", errors="replace")

    def wait_for_output(self, text: str, timeout: float) -> None:
        until = time.monotonic() + timeout
        while text not in self.output():
            assert self.proc is not None and self.proc.poll() is None, f"snapwatch run exited:\n{self.output()}"
            assert time.monotonic() < until, f"snapwatch run did not log {text!r} in {timeout}s:\n{self.output()}"
            time.sleep(0.1)

    def status(self) -> dict[str, Any]:
        done = snapwatch("status", "--json", "-c", str(self.config))
        assert done.returncode == 0, f"snapwatch status exited {done.returncode}:\n{done.stderr}"
        data: dict[str, Any] = json.loads(done.stdout)
        return data

    def caught_up(self, timeout: float = 30.0, settle: float = 2.0) -> dict[str, Any]:
        """``status --json`` once the daemon has read the live log to its end (its checkpoint is at the
        live file's inode and size) and its counters stopped moving; or once nothing moved for
        ``settle`` seconds (a response it holds open keeps the checkpoint short of the end); or at
        the deadline. Whatever it counted by then is what the test compares."""
        until = time.monotonic() + timeout
        last: tuple[object, ...] | None = None
        still_since = time.monotonic()
        while True:
            status = self.status()
            counts = (tuple(sorted(daemon_counts(status).items())), daemon_requests(status))
            try:
                st = os.stat(self.log)
                at_end = any(s["inode"] == st.st_ino and s["offset"] == st.st_size for s in status["sources"])
            except FileNotFoundError:
                at_end = False
            now = time.monotonic()
            if counts != last:
                last, still_since = counts, now
            elif at_end or now - still_since >= settle or now >= until:
                return status
            time.sleep(0.3)


def daemon_counts(status: dict[str, Any]) -> Counter[str]:
    """status --json: responses by status, summed over the sources."""
    out: Counter[str] = Counter()
    for source in status["sources"]:
        out.update({str(k): int(v) for k, v in source["responses"].items()})
    return out


def daemon_tokens(status: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """status --json: per token fingerprint (accepted, rejected), summed over the sources."""
    out: dict[str, tuple[int, int]] = {}
    for source in status["sources"]:
        for fp, counts in source.get("tokens", {}).items():
            accepted, rejected = out.get(fp, (0, 0))
            out[fp] = (accepted + int(counts["accepted"]), rejected + int(counts["rejected"]))
    return out


def daemon_requests(status: dict[str, Any]) -> int:
    return sum(int(s["requests"]) for s in status["sources"])


# ---- the truth and the comparison --------------------------------------------------------------------


def grep_status_counts(files: Iterable[Path]) -> Counter[str]:
    """An independent count of the responses in the log: its ``Status Code: NNN`` lines, by status. Each
    is one logging call, written whole, so the count is exact whatever the interleaving."""
    out: Counter[str] = Counter()
    for f in files:
        for m in _STATUS_LINE.finditer(f.read_bytes()):
            out[m.group(1).decode()] += 1
    return out


def check_harness(tally: Tally, files: Iterable[Path], workers: Iterable[WorkerResult]) -> None:
    """Fail (as the harness's fault) unless the server's tally is exactly what the log holds.

    Three independent counts must agree: the server's (sent minus late), the log's own ``Status Code:``
    lines, and the backend processes' (what each says it logged, per status and token; its timeouts
    against the server's late answers)."""
    files = list(files)
    expected = tally.expected_by_status()
    in_log = grep_status_counts(files)
    assert in_log == expected, (
        f"HARNESS: the log's Status Code lines {dict(in_log)} != the server's tally {dict(expected)}")
    logged: Counter[tuple[int, str]] = Counter()
    timeouts = errors = requests = 0
    for w in workers:
        fp = w.summary["token_fingerprint"]
        for status, n in w.summary["logged"].items():
            logged[(int(status), fp)] += n
        timeouts += w.summary["timeouts"]
        errors += w.summary["errors"]
        requests += w.summary["requests"]
    assert errors == 0, "HARNESS: a backend request failed other than by timing out"
    assert logged == tally.expected(), (
        f"HARNESS: the backends logged {dict(logged)} != the tally {dict(tally.expected())}")
    assert timeouts == tally.late_total(), (
        f"HARNESS: the backends timed out {timeouts} times, the server answered {tally.late_total()} late")
    received = sum(tally.received.values())
    assert requests == received, f"HARNESS: {requests} requests sent, {received} received"


def compare(tally: Tally, scan: dict[str, Any], status: dict[str, Any] | None, *,
            tokens_in_log: bool = True) -> list[str]:
    """What scan --json (and the daemon's status --json) got wrong against the tally; empty when exact.

    By status: scan's ``responses.by_status`` and the daemon's counters must equal the tally exactly (so a
    ``"none"`` key is a mismatch). Requests: both totals must equal what the server received. By token:
    scan's and the daemon's (accepted, rejected) per fingerprint must equal the tally's; with
    ``tokens_in_log=False`` (v2, the header is not logged) neither can know the token, and must name none the
    tally does not back with exactly those counts."""
    problems: list[str] = []
    expected = dict(sorted(tally.expected_by_status().items()))
    requests = sum(tally.received.values())
    by_status = dict(sorted(scan["responses"]["by_status"].items()))
    if by_status != expected:
        problems.append(f"scan by status {by_status} != tally {expected}")
    if scan["requests"]["total"] != requests:
        problems.append(f"scan requests {scan['requests']['total']} != tally {requests}")
    if status is not None:
        counted = dict(sorted(daemon_counts(status).items()))
        if counted != expected:
            problems.append(f"daemon by status {counted} != tally {expected}")
        if daemon_requests(status) != requests:
            problems.append(f"daemon requests {daemon_requests(status)} != tally {requests}")
    want = {fp: v for fp, v in tally.expected_by_token().items() if fp != NO_TOKEN}
    seen = {"scan": scan_tokens(scan)}
    if status is not None:
        seen["daemon"] = daemon_tokens(status)
    for who, got in seen.items():
        if tokens_in_log:
            for fp in sorted(set(want) | set(got)):
                if got.get(fp) != want.get(fp):
                    problems.append(f"token {fp} (accepted, rejected): {who} {got.get(fp)} != tally {want.get(fp)}")
        else:
            for fp, counts in sorted(got.items()):
                if want.get(fp) != counts:
                    problems.append(f"token {fp} (accepted, rejected): {who} {counts} != tally {want.get(fp)}")
    return problems


def report(problems: list[str], scan: dict[str, Any]) -> str:
    """An assertion message: the mismatches, then what scan could not take at face value."""
    skipped = {k: v for k, v in scan["skipped"].items() if v}
    return "\n".join(["snapwatch disagrees with the fake Snap server's tally:", *problems, f"scan skipped: {skipped}"])
