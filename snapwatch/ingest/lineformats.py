"""The one-line log formats, JSON lines and custom regex: one line → one record (time, status, URL, event, reason)."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, tzinfo

from snapwatch.config.models import SourceConfig
from snapwatch.errors import ConfigError
from snapwatch.model import ParseStats

LineRecord = tuple[datetime, int, str, str, str]  # at, status, url ("" when none), event, reason
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class LineReader:
    """Reads one record per line in ``config.format`` ("jsonl" or "regex"); counts what it cannot read.

    ``zone`` stands for naive timestamps' zone (None: the machine's local zone). A line that is not a
    record counts in ``stats`` (``malformed_records``, or ``extra["unmatched_lines"]`` for a regex);
    a time that does not parse counts in ``stats.bad_timestamps`` and reuses the last good one.
    Raises ConfigError when the regex format's pattern is missing, invalid or lacks ``ts``/``status``.
    """

    def __init__(self, config: SourceConfig, zone: tzinfo | None, stats: ParseStats) -> None:
        self._zone = zone
        self._stats = stats
        self._fields = config.fields
        self._pattern = _compile_pattern(config.pattern) if config.format == "regex" else None
        self._last_at = _EPOCH

    def read(self, line: str) -> LineRecord | None:
        """The record of one stripped, non-empty line, or None (counted) when it holds none."""
        if self._pattern is not None:
            m = self._pattern.search(line)
            if m is None:
                self._stats.extra["unmatched_lines"] = self._stats.extra.get("unmatched_lines", 0) + 1
                return None
            values: dict[str, object] = {k: v for k, v in m.groupdict().items() if v is not None}
            names = ("ts", "status", "url", "event", "reason")
        else:
            try:
                obj = json.loads(line)
            except (ValueError, RecursionError):  # nested too deep to read: a malformed record like any other
                obj = None
            if not isinstance(obj, dict):
                self._stats.malformed_records += 1
                return None
            values = obj
            f = self._fields
            names = (f.ts, f.status, f.url, f.event, f.reason)
        status = _int(values.get(names[1]))
        if status is None:
            self._stats.malformed_records += 1
            return None
        at = self._any_time(values.get(names[0]))
        url, event, reason = (values.get(n) for n in names[2:])
        return (
            at,
            status,
            url if isinstance(url, str) else "",
            "" if event is None else str(event),
            "" if reason is None else reason if isinstance(reason, str) else json.dumps(reason),
        )

    def _any_time(self, value: object) -> datetime:
        at: datetime | None = None
        epoch = value if isinstance(value, int | float) and not isinstance(value, bool) else None
        if isinstance(value, str):
            text = value.strip()
            try:
                epoch = float(text)
            except ValueError:
                try:
                    at = datetime.fromisoformat(text.replace(",", "."))
                except ValueError:
                    at = None
                else:
                    if at.tzinfo is None:
                        at = at.astimezone() if self._zone is None else at.replace(tzinfo=self._zone)
        if epoch is not None:
            try:
                at = datetime.fromtimestamp(epoch, self._zone or UTC)
            except (ValueError, OverflowError, OSError):
                at = None
            else:
                at = at.astimezone() if self._zone is None else at
        if at is None:
            self._stats.bad_timestamps += 1
            return self._last_at
        self._last_at = at
        return at


def _int(value: object) -> int | None:
    """A status code: three digits at most (a longer one is no status, and would overflow int-string limits)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= 999 else None
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit() and text.isascii() and len(text) <= 3:
            return int(text)
    return None


def _compile_pattern(pattern: str | None) -> re.Pattern[str]:
    if not pattern:
        raise ConfigError("sources: pattern: the regex format needs a pattern")
    try:
        compiled = re.compile(pattern)
    except re.error as exc:
        raise ConfigError(f"sources: pattern: not a valid regular expression: {exc}") from exc
    missing = {"ts", "status"} - set(compiled.groupindex)
    if missing:
        raise ConfigError(f"sources: pattern: needs the named groups {', '.join(sorted(missing))}")
    return compiled
