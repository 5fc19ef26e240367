"""snapwatch on real logs (#11): our own backend (httpx async client, N processes, one log file) against a
fake Snap server; scan --json and the daemon's status --json must equal the server's tally exactly.

Every test runs the daemon while the backend writes, then compares, by status and by token fingerprint,
``snapwatch scan --json`` over the log (rotated backups too), the daemon's ``status --json`` counters,
and the fake server's own tally of what it answered before the client's deadline. ``check_harness``
first proves that tally against the log itself, so any mismatch reported is snapwatch's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.harness import (
    Daemon,
    FakeSnap,
    Tally,
    WorkerResult,
    canvas_token,
    check_harness,
    compare,
    fake_snap,
    findings,
    fingerprint,
    log_files,
    report,
    run_backends,
    scan_json,
    write_env,
)

STREAK = 5  # rules.auth_failures.streak, the default the daemon runs with here


class Setup:
    """One test's files: the backend's log and ``.env`` in ``tmp_path``."""

    def __init__(self, tmp_path: Path, token: str) -> None:
        self.dir = tmp_path
        self.log = tmp_path / "snap_conversions_api.log"
        self.env = tmp_path / ".env"
        write_env(self.env, token)
        self.log.touch()

    def run(self, snap: FakeSnap, workers: int, events: int, **kw: Any) -> list[WorkerResult]:
        return run_backends(workers, log=self.log, snap=snap, env_file=self.env, workdir=self.dir, events=events,
                            **kw)

    def finish(self, snap: FakeSnap, daemon: Daemon,
               workers: list[WorkerResult]) -> tuple[Tally, dict[str, Any], dict[str, Any]]:
        """The tally (proved against the log), the daemon's caught-up status, and scan --json."""
        tally = snap.tally()
        files = log_files(self.log)
        check_harness(tally, files, workers)
        status = daemon.caught_up()
        return tally, status, scan_json(files, self.env)


@pytest.mark.timeout(90)
def test_healthy_one_worker_with_rotation(tmp_path: Path) -> None:
    token = canvas_token("healthy")
    s = Setup(tmp_path, token)
    with fake_snap(client_timeout=5.0) as snap, Daemon(tmp_path, s.log, s.env) as daemon:
        snap.accept(token)
        # ~1.8 KB a call: 200 calls fill about 22 files of 16 KB; backupCount keeps every backup.
        workers = s.run(snap, 1, 200, concurrency=10, max_bytes=16_000, backup_count=1000)
        tally, status, scan = s.finish(snap, daemon, workers)
    assert len(log_files(s.log)) > 3, "the log did not rotate: this test would not test rotation"
    assert tally.late_total() == 0
    problems = compare(tally, scan, status)
    assert not problems, report(problems, scan)
    assert scan["incidents"] == []


@pytest.mark.timeout(90)
def test_mixed_answers_429_500_400(tmp_path: Path) -> None:
    token = canvas_token("mixed")
    s = Setup(tmp_path, token)
    shares = {400: 23, 429: 17, 500: 13}  # every n-th accepted request gets this status instead of 200
    with fake_snap(client_timeout=5.0, error_every=shares) as snap, Daemon(tmp_path, s.log, s.env) as daemon:
        snap.accept(token)
        workers = s.run(snap, 1, 200, concurrency=10)
        tally, status, scan = s.finish(snap, daemon, workers)
        served = Tally.from_json(httpx.get(f"{snap.base_url}/_tally", timeout=10).json())
    assert served.expected() == tally.expected()  # what the server serves is what it keeps
    assert set(tally.expected_by_status()) == {"200", *map(str, shares)}
    problems = compare(tally, scan, status)
    assert not problems, report(problems, scan)


@pytest.mark.timeout(90)
def test_401_streak_then_new_token_and_restart(tmp_path: Path) -> None:
    old, new = canvas_token("before-revoke"), canvas_token("after-revoke")
    s = Setup(tmp_path, old)
    accepted_first, first_run, second_run = 20, 50, 30
    with fake_snap(client_timeout=5.0) as snap, Daemon(tmp_path, s.log, s.env) as daemon:
        # Snap stops accepting the token mid-run (it was regenerated in Business Manager). One request at
        # a time, so the log holds the 200s, then one unbroken run of 401s.
        snap.accept(old, revoke_after=accepted_first)
        workers = s.run(snap, 1, first_run, concurrency=1)
        # The new token goes into .env; the backend is restarted and reads it; Snap accepts it.
        snap.accept(new)
        write_env(s.env, new)
        workers += s.run(snap, 1, second_run, concurrency=5)
        tally, status, scan = s.finish(snap, daemon, workers)
    rejected = tally.expected()[(401, fingerprint(old))]
    assert rejected == first_run - accepted_first >= STREAK  # the server did revoke it: a streak to detect
    problems = compare(tally, scan, status)
    auth = [i for i in scan["incidents"] if i["rule"] == "auth-failures"]
    if len(auth) != 1:
        problems.append(f"scan: {len(auth)} auth-failures incidents, expected 1")
    elif auth[0]["by_status"] != {"401": rejected} or auth[0]["resolved_at"] is None:
        problems.append(f"scan: the incident counted {auth[0]['by_status']} (resolved {auth[0]['resolved_at']}),"
                        f" expected {{'401': {rejected}}}, resolved")
    out = daemon.output()
    for said in ("incident opened: auth-failures", "incident resolved: auth-failures"):
        if said not in out:
            problems.append(f"daemon never logged {said!r}")
    assert not problems, report(problems, scan)


@pytest.mark.timeout(90)
def test_token_swap_in_env_with_restart(tmp_path: Path) -> None:
    first, second = canvas_token("first"), canvas_token("second")
    s = Setup(tmp_path, first)
    with fake_snap(client_timeout=5.0) as snap, Daemon(tmp_path, s.log, s.env) as daemon:
        snap.accept(first)
        snap.accept(second)
        workers = s.run(snap, 1, 60, concurrency=5)
        write_env(s.env, second)
        workers += s.run(snap, 1, 60, concurrency=5)
        tally, status, scan = s.finish(snap, daemon, workers)
    assert set(tally.expected_by_token()) == {fingerprint(first), fingerprint(second)}
    problems = compare(tally, scan, status)
    assert not problems, report(problems, scan)
    assert scan["incidents"] == []


@pytest.mark.timeout(90)
def test_client_timeouts_leave_requests_unanswered(tmp_path: Path) -> None:
    slow, fresh = canvas_token("slow-days"), canvas_token("after-restart")
    s = Setup(tmp_path, slow)
    client_timeout, every, first_run = 2.0, 10, 80
    with fake_snap(client_timeout=client_timeout) as snap, Daemon(tmp_path, s.log, s.env) as daemon:
        # Every 10th request of the first token is held well past the client's timeout: the backend logs
        # the timeout elsewhere, so those requests have no response in this log.
        snap.accept(slow, delay_every=every)
        workers = s.run(snap, 1, first_run, concurrency=6, timeout=client_timeout)
        # Then a restart with another token: its responses must not be credited to the first one's
        # unanswered requests.
        snap.accept(fresh)
        write_env(s.env, fresh)
        workers += s.run(snap, 1, 40, concurrency=6, timeout=client_timeout)
        tally, status, scan = s.finish(snap, daemon, workers)
    late = tally.late_total()
    assert late == first_run // every, "the server should have held exactly every 10th request past the deadline"
    problems = compare(tally, scan, status)
    # CONTRACT (#11, not in snapwatch yet): scan --json counts the requests that never got a response under
    # requests.unanswered, and reports a finding with code requests-unanswered carrying that count.
    unanswered = scan["requests"].get("unanswered")
    if unanswered != late:
        problems.append(f"CONTRACT: scan requests.unanswered is {unanswered!r}, the server answered {late} late")
    said = [f for f in findings(scan) if f["code"] == "requests-unanswered"]
    if [f.get("count") for f in said] != [late]:
        problems.append(f"CONTRACT: requests-unanswered findings with counts {[f.get('count') for f in said]},"
                        f" expected one with count {late}")
    assert not problems, report(problems, scan)


@pytest.mark.timeout(120)
@pytest.mark.parametrize(("workers", "events"), [(4, 300), (8, 200)])
def test_workers_under_load(tmp_path: Path, workers: int, events: int) -> None:
    token = canvas_token(f"load-{workers}")
    s = Setup(tmp_path, token)
    with fake_snap(client_timeout=10.0) as snap, Daemon(tmp_path, s.log, s.env) as daemon:
        snap.accept(token)
        # N processes append to one file (no rotation: RotatingFileHandler cannot rotate safely across processes).
        results = s.run(snap, workers, events, concurrency=20, timeout=10.0)
        tally, status, scan = s.finish(snap, daemon, results)
    assert tally.late_total() == 0
    problems = compare(tally, scan, status)
    if "none" in scan["responses"]["by_status"]:
        problems.append(f"scan: {scan['responses']['by_status']['none']} responses without a status")
    # Several processes and no process id in the format: said once, with the fix, by scan and by the daemon.
    if [f["code"] for f in scan["hygiene"]] != ["log-interleaved"]:
        problems.append(f"scan hygiene {[f['code'] for f in scan['hygiene']]}, expected ['log-interleaved']")
    if daemon.output().count("their lines interleave") != 1:
        problems.append("the daemon did not say once that the processes' lines interleave")
    assert not problems, report(problems, scan)


@pytest.mark.timeout(90)
def test_v2_header_not_logged_is_not_a_missing_token(tmp_path: Path) -> None:
    old, new = canvas_token("v2-before"), canvas_token("v2-after")
    s = Setup(tmp_path, old)
    accepted_first, first_run = 20, 50
    # The daemon with the minimal config (no token section), as `scan FILE` without --env-file.
    with fake_snap(client_timeout=5.0) as snap, Daemon(tmp_path, s.log) as daemon:
        # v2 sends the token in an Authorization header the backend does not log. A 401 streak makes
        # snapwatch diagnose, so the findings below are actually produced.
        snap.accept(old, revoke_after=accepted_first)
        workers = s.run(snap, 1, first_run, concurrency=1, api="v2")
        snap.accept(new)
        write_env(s.env, new)
        workers += s.run(snap, 1, 30, concurrency=5, api="v2")
        tally = snap.tally()
        files = log_files(s.log)
        check_harness(tally, files, workers)
        status = daemon.caught_up()
    assert tally.expected()[(401, fingerprint(old))] == first_run - accepted_first >= STREAK
    plain, with_env = scan_json(files), scan_json(files, s.env)
    problems = compare(tally, plain, status, tokens_in_log=False)
    for how, scan in (("scan", plain), ("scan --env-file", with_env)):
        diagnosed = [i for i in scan["incidents"] if i["rule"] == "auth-failures" and "diagnosis" in i]
        if not diagnosed:
            problems.append(f"{how}: no diagnosed auth-failures incident (the check below would be empty)")
        wrong = sorted({f["code"] for f in findings(scan)} & {"token-missing", "token-bearer-prefix"})
        if wrong:
            problems.append(f"{how} reports {wrong} although the token was sent in a header the backend does not log")
    out = daemon.output()
    for code in ("token-missing", "token-bearer-prefix"):
        if code in out:
            problems.append(f"the daemon says {code}")
    assert not problems, report(problems, plain)


@pytest.mark.timeout(90)
def test_workers_with_the_pid_in_the_format(tmp_path: Path) -> None:
    token = canvas_token("pid-format")
    s = Setup(tmp_path, token)
    with fake_snap(client_timeout=10.0) as snap, Daemon(tmp_path, s.log, s.env) as daemon:
        snap.accept(token)
        # "%(asctime)s - [%(process)d] - %(levelname)s - %(message)s": what a backend adds to tell its
        # uvicorn workers apart in one file.
        results = s.run(snap, 4, 60, concurrency=10, timeout=10.0, pid_format=True)
        tally, status, scan = s.finish(snap, daemon, results)
    problems = compare(tally, scan, status)
    if scan["hygiene"] or "interleave" in daemon.output():
        problems.append("the processes are told apart by their id: nothing should be said about interleaving")
    assert not problems, report(problems, scan)
