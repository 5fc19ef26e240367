"""Time the test decides: a clock it moves, and a second-by-second run of log times."""

from __future__ import annotations

from datetime import datetime, timedelta


class Clock:
    """The daemon's clock, moved by the test (alert due times, retry backoff and the probe's rate limit run on it)."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


def seconds(start: datetime, n: int, first: int = 0) -> list[datetime]:
    """``n`` times one second apart, the first ``first`` seconds after ``start``."""
    return [start + timedelta(seconds=first + i) for i in range(n)]
