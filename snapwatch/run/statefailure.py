"""When the state cannot be saved: one clear log line, one best-effort alert, the metric, and when to try again."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from snapwatch.alert.messages import notice
from snapwatch.alert.notify import Target
from snapwatch.codec import duration
from snapwatch.run.telemetry import Telemetry
from snapwatch.store.schema import StateUnavailable, unavailable

log = logging.getLogger(__name__)

FIRST_RETRY = 1.0  # seconds; doubled per failed attempt up to LAST_RETRY
LAST_RETRY = 60.0
ALERT_EVERY = timedelta(hours=1)  # a failure that comes and goes is alerted once an hour, not per attempt

StateFailure = (StateUnavailable, sqlite3.OperationalError)  # what the daemon waits out instead of dying


def as_unavailable(exc: BaseException) -> StateUnavailable:
    """A state failure as StateUnavailable (SQLite's own errors translated)."""
    if isinstance(exc, StateUnavailable):
        return exc
    if isinstance(exc, sqlite3.OperationalError):
        return unavailable(exc)
    return StateUnavailable(str(exc))


class StateTrouble:
    """One episode of state failures at a time: from the first failed save to the next successful one.

    ``failed`` logs the first failure of an episode as one line (and a changed reason once more), counts
    every attempt in ``snapwatch_state_errors``, and sends a best-effort alert straight to the targets
    (the outbox lives in the state file that cannot be written), at most once per ``ALERT_EVERY``.
    ``delay`` says how long to wait before the next attempt (doubling, capped); ``saved`` ends the episode.
    """

    def __init__(self, host: str, telemetry: Telemetry, targets: Callable[[], Sequence[Target]],
                 timeout: float = 10.0) -> None:
        self.host, self.telemetry, self.targets, self.timeout = host, telemetry, targets, timeout
        self.since: datetime | None = None
        self.reason = ""
        self.attempts = 0
        self._alerted_at: datetime | None = None
        self._senders: list[threading.Thread] = []

    @property
    def active(self) -> bool:
        return self.since is not None

    def failed(self, exc: BaseException, now: datetime) -> float:
        """Record one failed attempt; returns the seconds to wait before the next one."""
        error = as_unavailable(exc)
        reason = str(error)
        self.telemetry.state_error(error.kind)
        self.attempts += 1
        wait = self.delay()
        if self.since is None:
            self.since = now
            log.error("snapwatch cannot save its state: %s; following is paused and nothing read since the last save "
                      "is acknowledged; trying again in %.0fs", reason, wait)
        elif reason != self.reason:
            log.error("snapwatch still cannot save its state, now: %s", reason)
        else:
            log.debug("state still cannot be saved (attempt %d): %s", self.attempts, reason)
        self.reason = reason
        if self._alerted_at is None or now - self._alerted_at >= ALERT_EVERY:
            self._alerted_at = now
            self._alert(reason, now)
        return wait

    def delay(self) -> float:
        return min(LAST_RETRY, FIRST_RETRY * 2 ** min(self.attempts - 1, 16)) if self.attempts else 0.0

    def saved(self, now: datetime) -> None:
        """A save succeeded: end the episode (saying so once)."""
        if self.since is None:
            return
        log.warning("snapwatch saves its state again (after %s, %d failed attempt(s)); following resumes from the "
                    "last saved position", duration(now - self.since), self.attempts)
        self.since, self.reason, self.attempts = None, "", 0

    def _alert(self, reason: str, now: datetime) -> None:
        alert_id = "state-" + hashlib.sha256(f"{self.host}|{now.isoformat()}".encode()).hexdigest()[:12]
        message = notice(alert_id, self.host, f"snapwatch cannot save its state: {reason}", (
            "Free space on (or make writable) the filesystem of snapwatch's state_dir, or stop whatever holds "
            "a lock on state.db.",
            "Until then snapwatch follows nothing new and acknowledges nothing: it retries on its own and "
            "resumes from its last saved position, so nothing is lost or counted twice.",
            "Check with: journalctl -u snapwatch, and snapwatch status.",
        ))
        targets = list(self.targets())

        def send() -> None:
            for target in targets:
                try:
                    target.send(message, self.timeout)
                except Exception as exc:  # best effort: the log line above already says it all
                    log.warning("could not tell %s that the state cannot be saved: %s", target.display, exc)

        self._senders = [t for t in self._senders if t.is_alive()]
        thread = threading.Thread(target=send, name="state-alert", daemon=True)
        self._senders.append(thread)
        thread.start()

    def join(self, timeout: float) -> None:
        """Give alerts still being sent up to ``timeout`` seconds (at shutdown)."""
        for thread in self._senders:
            thread.join(timeout)
