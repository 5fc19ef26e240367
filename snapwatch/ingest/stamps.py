"""Record times: the timestamp at the start of a record line, read in the source's time zone, cached."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from snapwatch.errors import ConfigError
from snapwatch.model import ParseStats

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CACHE_MAX = 4096
_SECONDS = tuple(timedelta(seconds=n) for n in range(60))


def zone_of(name: str) -> tzinfo | None:
    """The zone a source's ``timezone`` names; None stands for the machine's local zone (resolved per
    timestamp, so DST is honoured). Raises ConfigError for an unknown name."""
    if name == "local":
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"sources: timezone: unknown time zone {name!r}") from exc


class Stamps:
    """Reads ``YYYY-mm-dd HH:MM:SS`` stamps in one zone. ``cache`` maps a line prefix to its time (the
    hot loop looks there first); a stamp that does not parse is counted and reuses the last good one."""

    __slots__ = ("cache", "last_at", "local_zones", "minutes", "stats", "zone")

    def __init__(self, zone: tzinfo | None, stats: ParseStats) -> None:
        self.zone, self.stats = zone, stats
        self.cache: dict[bytes, datetime] = {}
        self.minutes: dict[bytes, datetime] = {}  # "YYYY-mm-dd HH:MM" → the minute's start
        self.last_at = EPOCH
        # The machine's zone, one object per offset: ``astimezone()`` makes a new tzinfo for every time, and
        # times with different tzinfo objects compare and hash through their offsets, three to four times
        # slower (the timeline's per-minute counts are keyed by them).
        self.local_zones: dict[tuple[timedelta | None, str | None], tzinfo] = {}

    def time(self, stamp: bytes) -> datetime:
        """The time of a record line from its prefix (its first 19 bytes are the timestamp)."""
        at = self.cache.get(stamp)
        if at is None:
            at = self._parse(stamp)
            if at is None:
                self.stats.bad_timestamps += 1
                return self.last_at
            if len(self.cache) >= _CACHE_MAX:
                self.cache.clear()
            self.cache[stamp] = at
        self.last_at = at
        return at

    def _parse(self, s: bytes) -> datetime | None:
        # A minute is read once (its fields, its zone: the machine's zone costs a localtime() call), then each
        # second is an addition: offsets change only at a minute's start, so a minute's seconds share its own.
        key = s[:16]
        minute = self.minutes.get(key)
        if minute is None:
            minute = self._minute(s)
            if minute is None:
                return None
            if len(self.minutes) >= _CACHE_MAX:
                self.minutes.clear()
            self.minutes[key] = minute
        try:
            return minute + _SECONDS[int(s[17:19])]
        except (ValueError, IndexError):  # not digits, or 60 and over
            return None

    def _minute(self, s: bytes) -> datetime | None:
        # The zone goes straight into the constructor: datetime.replace costs as much as building anew.
        try:
            at = datetime(int(s[0:4]), int(s[5:7]), int(s[8:10]), int(s[11:13]), int(s[14:16]), 0, 0, self.zone)
        except ValueError:
            return None
        if self.zone is not None:
            return at
        at = at.astimezone()
        zone = self.local_zones.setdefault((at.utcoffset(), at.tzname()), at.tzinfo)  # type: ignore[arg-type]
        return at if zone is at.tzinfo else at.replace(tzinfo=zone)
