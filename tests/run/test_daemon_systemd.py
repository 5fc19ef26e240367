"""`snapwatch run` under a stand-in for systemd: the notify sequence, the watchdog, reload, stop, journal output.

The daemon runs as a real subprocess (tests/helpers/systemd.py, shared with test_daemon_reload.py): its
``NOTIFY_SOCKET`` is drained by a thread as messages arrive, and in the journal test its stderr is a stream
socket passed in ``JOURNAL_STREAM``, as journald does.
"""

from __future__ import annotations

import itertools
import json
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from snapwatch.synthetic import demo_token
from tests.helpers.daemon import write_config
from tests.helpers.systemd import START_TIMEOUT, BackendLog, Daemon, source_status, status_json
from tests.helpers.tokens import assert_no_secret

BACKLOG = 2000
WATCHDOG_USEC = 1_000_000  # → a WATCHDOG=1 every 0.5 s
JOURNAL_LINE = re.compile(r"<[0-7]>\S")
TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}:\d{2}")


@pytest.fixture
def journal_run(tmp_path: Path) -> Iterator[tuple[Daemon, BackendLog, Path, str]]:
    token = demo_token(seed="systemd-test")
    env_file = tmp_path / "app.env"
    env_file.write_text(f"SNAP_ACCESS_TOKEN={token}\n", encoding="utf-8")
    log = BackendLog(tmp_path / "capi.log")
    log.write(200, BACKLOG, token)
    state = tmp_path / "state"
    # No alert falls due during the test: with no alert URL it would go to the console target, whose
    # multi-line text is not log output and is not what this test checks.
    config = write_config(tmp_path / "config.yaml", [log.path], state,
                          f"token:\n  env_file: {json.dumps(str(env_file))}\nalerts:\n  group_wait: 1h\n")
    try:
        daemon = Daemon(tmp_path, config, watchdog_usec=WATCHDOG_USEC, journal=True)
        try:
            yield daemon, log, state, token
        finally:
            daemon.close()
    finally:
        log.close()


def test_notify_sequence_reload_and_stop(journal_run: tuple[Daemon, BackendLog, Path, str], tmp_path: Path) -> None:
    daemon, log, state, token = journal_run

    # READY=1 only once the backlog is counted: the state holds all of it the moment READY=1 arrives.
    ready = daemon.wait_for("READY=1", timeout=START_TIMEOUT)
    src = source_status(status_json(state, tmp_path), log.path)
    assert src["responses"] == {"200": BACKLOG}
    assert src["requests"] == BACKLOG
    assert src["offset"] == log.path.stat().st_size
    early = daemon.notify.texts()[:ready]
    assert all(m.startswith("EXTEND_TIMEOUT_USEC=") for m in early), early

    # STATUS= says what it does, and changes when an incident opens.
    quiet = daemon.wait_for(lambda m: m.startswith("STATUS="), ready)
    assert "0 open incident(s)" in daemon.notify.texts()[quiet]
    log.write(401, 6, token)
    opened = daemon.wait_for(lambda m: m.startswith("STATUS=") and "1 open incident(s)" in m, quiet + 1)
    assert "following 1 file(s)" in daemon.notify.texts()[opened]

    # WATCHDOG=1 from the loop every WATCHDOG_USEC/2, incident or not: look at six consecutive pings.
    first_ping = daemon.wait_for("WATCHDOG=1", ready)
    pings = [first_ping]
    while len(pings) < 6:
        pings.append(daemon.wait_for("WATCHDOG=1", pings[-1] + 1, timeout=3))
    times = [daemon.notify.messages[i][0] for i in pings]
    gaps = sorted(b - a for a, b in itertools.pairwise(times))
    half = WATCHDOG_USEC / 2e6
    assert gaps[0] > 0.6 * half, f"pings too close together: {gaps}"
    assert 0.7 * half < gaps[len(gaps) // 2] < 1.5 * half, f"median ping interval off: {gaps}"
    assert gaps[-1] < WATCHDOG_USEC / 1e6, f"a gap long enough for systemd to kill the unit: {gaps}"

    # SIGHUP: RELOADING=1 with this very moment in CLOCK_MONOTONIC, then READY=1, and no stop.
    before_usec = time.monotonic_ns() // 1000
    mark = len(daemon.notify.texts())
    daemon.signal(signal.SIGHUP)
    reloading = daemon.wait_for(lambda m: m.startswith("RELOADING=1"), mark)
    after_usec = time.monotonic_ns() // 1000
    fields = dict(line.split("=", 1) for line in daemon.notify.texts()[reloading].splitlines())
    assert before_usec <= int(fields["MONOTONIC_USEC"]) <= after_usec
    reloaded = daemon.wait_for("READY=1", reloading + 1)
    between = daemon.notify.texts()[reloading + 1 : reloaded]
    assert all(m == "WATCHDOG=1" or m.startswith("STATUS=") for m in between), between
    assert daemon.alive()

    # SIGTERM: STOPPING=1 (once) and exit 0, well inside the unit's stop timeout.
    mark = len(daemon.notify.texts())
    stop_sent = time.monotonic()
    daemon.signal(signal.SIGTERM)
    daemon.wait_for("STOPPING=1", mark)
    assert daemon.proc.wait(10) == 0
    assert time.monotonic() - stop_sent < 5.0
    assert daemon.notify.texts().count("STOPPING=1") == 1

    # Journal output: one priority prefix per line, no timestamps (journald adds its own), never the token.
    err = daemon.stderr()
    lines = err.splitlines()
    assert any(line.startswith("<4>") and "incident opened" in line for line in lines), err
    assert any(line.startswith("<6>") and "reloaded" in line for line in lines), err
    bad = [line for line in lines if not JOURNAL_LINE.match(line) or TIMESTAMP.match(line[3:])]
    assert not bad, f"lines not in the journal format: {bad}"
    assert_no_secret(err, token)
    assert_no_secret("\n".join(daemon.notify.texts()), token)

