"""`snapwatch run` as a real process: SIGKILL at random moments while a writer rotates, SIGTERM stops cleanly.

The contract: over any run of the daemon, including restarts, rotations and crashes, each response
written to a followed file is counted exactly once in the persistent counters of ``status --json``.
"""

from __future__ import annotations

import logging
import logging.handlers
import os
import random
import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from snapwatch.config import SourceConfig
from snapwatch.store.state import Store
from snapwatch.synthetic import Call, backend_logger, demo_token, log_call
from snapwatch.tail import follow, rotation, watch
from tests.helpers.daemon import write_config
from tests.helpers.process import READY, DaemonProcess, status_json

STATUSES = (200, 401, 429, 500, 400)
WEIGHTS = (6, 1, 1, 1, 1)
EVENTS = ("PAGE_VIEW", "ADD_CART", "PURCHASE")


def _config(tmp_path: Path, log_path: Path) -> Path:
    return write_config(tmp_path / "config.yaml", [log_path], tmp_path / "state",
                        "alerts:\n  urls: []\n  group_wait: 1s\n", timezone="UTC")


def counted(config: Path) -> Counter[str]:
    """Responses per status code, summed over every file of the source as ``status --json`` shows them."""
    total: Counter[str] = Counter()
    sources = status_json(config)["sources"]
    assert isinstance(sources, list)
    for source in sources:
        total.update(source["responses"])
    return total


def settle(config: Path, expected: Counter[str], timeout: float = 120.0) -> Counter[str]:
    """Poll ``status --json`` until the counters reach ``expected`` and stay put, or stop moving for long
    (bounded). The bounds are generous: on a loaded machine a restarted daemon may take a while to catch
    up, and what is asserted is the count, not how fast it came."""
    deadline = time.monotonic() + timeout
    last, same_since = counted(config), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.25)
        now = counted(config)
        if now != last:
            last, same_since = now, time.monotonic()
        elif time.monotonic() - same_since >= (0.75 if now == expected else 15.0):
            break
    return last


class Writer(threading.Thread):
    """The backend: calls with mixed statuses through a real RotatingFileHandler, rotating often."""

    def __init__(self, log_path: Path, seed: int, *, per_second: float, max_bytes: int) -> None:
        super().__init__(daemon=True)
        self.handler = logging.handlers.RotatingFileHandler(log_path, maxBytes=max_bytes, backupCount=50,
                                                            encoding="utf-8")
        self.logger = backend_logger(self.handler, f"snapwatch.test.backend.{seed}")
        self.rng = random.Random(seed)
        self.pause = 1.0 / per_second
        self.token = demo_token(seed="crash-test")
        self.written: Counter[str] = Counter()
        self.stop_requested = threading.Event()

    def write(self, n: int, status: int | None = None) -> None:
        for _ in range(n):
            code = status or self.rng.choices(STATUSES, WEIGHTS)[0]
            burst = 6 if self.rng.random() < 0.02 else 1  # runs that open (and resolve) incidents
            for _ in range(burst):
                log_call(self.logger, Call(self.rng.choice(EVENTS), code, self.token), datetime.now(UTC))
                self.written[str(code)] += 1

    def run(self) -> None:
        while not self.stop_requested.wait(self.pause):
            self.write(1)

    def wait_for(self, calls: int, timeout: float = 120.0) -> None:
        """Block until at least ``calls`` calls are written (the writer runs on)."""
        deadline = time.monotonic() + timeout
        while sum(self.written.values()) < calls:
            assert time.monotonic() < deadline, f"the writer wrote {sum(self.written.values())} of {calls} calls"
            time.sleep(0.01)

    def finish(self) -> None:
        self.stop_requested.set()
        self.join(10)
        self.handler.close()


def _story(instances: list[DaemonProcess]) -> str:
    """What every instance said about the files (resumed where, rotations, truncations, gaps, errors): a count
    that is off is explained by the restart that re-read or skipped bytes, so each one is shown."""
    told = []
    for n, instance in enumerate(instances):
        lines = [line for line in instance.lines if "incident" not in line and "alert" not in line]
        told.append(f"--- instance {n}:\n" + "".join(lines[-12:]))
    return "\n".join(told)


@pytest.mark.timeout(300)
def test_sigkill_at_random_moments_never_loses_or_recounts_a_response(tmp_path: Path) -> None:
    rng = random.Random(20251203)
    log_path = tmp_path / "logs" / "snap_conversions_api.log"
    log_path.parent.mkdir()
    log_path.touch()
    config = _config(tmp_path, log_path)
    first = DaemonProcess(config)
    first.wait_for(READY, 30)  # the empty file's start position is checkpointed before anything is written
    writer = Writer(log_path, seed=7, per_second=350, max_bytes=48_000)
    writer.start()
    daemon = first
    instances = [first]
    kills = 0
    try:
        for _ in range(24):
            # A random moment measured in calls written, not in seconds, so a slow (busy) machine sees the
            # same amount of writing and rotating between kills: catching up, reading, committing, idle.
            writer.wait_for(sum(writer.written.values()) + rng.randint(10, 400))
            daemon.kill()
            kills += 1
            daemon = DaemonProcess(config)
            instances.append(daemon)
        writer.finish()
        rotated = sorted(p.name for p in log_path.parent.iterdir() if p.name != log_path.name)
        assert len(rotated) >= 20, f"the writer should rotate often: {rotated}"
        final = settle(config, writer.written)
        code, _ = daemon.terminate()
    finally:
        writer.finish()
        if daemon.proc.poll() is None:
            daemon.kill()
    assert kills >= 20
    assert code == 0, daemon.output()
    assert final == writer.written, f"written {dict(writer.written)}, counted {dict(final)}\n{_story(instances)}"
    assert counted(config) == writer.written  # the clean stop changed nothing
    sources = status_json(config)["sources"]
    assert isinstance(sources, list)
    assert sum(s["requests"] for s in sources) == sum(writer.written.values())  # each call logs one request
    with Store.open(tmp_path / "state") as store:
        assert store.gaps() == []
    assert all(writer.written[str(s)] > 0 for s in STATUSES)


def test_sigterm_exits_zero_promptly_and_a_restart_does_not_recount(tmp_path: Path) -> None:
    log_path = tmp_path / "snap_conversions_api.log"
    log_path.touch()
    config = _config(tmp_path, log_path)
    writer = Writer(log_path, seed=3, per_second=1, max_bytes=8_000)
    daemon = DaemonProcess(config)
    try:
        daemon.wait_for(READY, 30)
        writer.write(40)
        before = settle(config, writer.written)
        code, took = daemon.terminate()
        assert code == 0, daemon.output()
        assert took < 5.0, f"SIGTERM took {took:.1f}s"
        assert "stopped" in daemon.lines[-1]
        assert before == writer.written
        sources = status_json(config)["sources"]
        assert isinstance(sources, list) and len(sources) == 1
        st = os.stat(log_path)
        assert (sources[0]["inode"], sources[0]["offset"]) == (st.st_ino, st.st_size)  # the final checkpoint

        daemon = DaemonProcess(config)
        daemon.wait_for(READY, 30)  # caught up (from the checkpoint) before it says ready
        assert counted(config) == writer.written
        writer.write(12, status=401)
        after = settle(config, writer.written)
        code, took = daemon.terminate()
    finally:
        writer.handler.close()
        if daemon.proc.poll() is None:
            daemon.kill()
    assert code == 0 and took < 5.0
    assert after == writer.written
    assert after["401"] >= 12


def test_a_rotation_while_the_follower_lists_the_backups_hides_no_file(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Found by the crash test at ~20 rotations/s: a file that turns into ``.1`` between two looks must be read."""
    path = tmp_path / "app.log"

    def rotate(first_line: bytes) -> None:
        for i in sorted((int(p.suffix[1:]) for p in tmp_path.glob("app.log.*")), reverse=True):
            (tmp_path / f"app.log.{i}").rename(tmp_path / f"app.log.{i + 1}")
        path.rename(tmp_path / "app.log.1")
        path.write_bytes(first_line)

    def lines(events: list[follow.Event]) -> bytes:
        return b"".join(e.data for e in events if isinstance(e, follow.Chunk))

    path.write_bytes(b"a1\n")
    follower = watch.Follower(SourceConfig(path=str(path), start_at="beginning", timezone="UTC"))
    got = lines(follower.poll())
    with path.open("ab") as f:
        f.write(b"a2\n")
    rotate(b"b1\n")
    listing = follow.rotated_backups
    rotated: list[bool] = []

    def rotate_while_listing(p: str) -> list[rotation.Backup]:
        found = listing(p)
        if not rotated:
            rotated.append(True)
            rotate(b"c1\n")  # the file just taken for the live one becomes .1 before it is opened
        return found

    monkeypatch.setattr(follow, "rotated_backups", rotate_while_listing)
    got += lines(follower.poll())
    monkeypatch.setattr(follow, "rotated_backups", listing)
    for _ in range(3):
        got += lines(follower.poll())
    follower.close()
    assert got == b"a1\na2\nb1\nc1\n"
