"""What the detector counts: failures tallied per rule, error-rate buckets, incident ids, and their stored form."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from snapwatch.codec import dt, exchange_from, exchange_json, iso
from snapwatch.model import Exchange, Rule


def incident_id(rule: Rule, source: str, opened_at: datetime, serial: int) -> str:
    """The stable id of an incident: first 16 hex of SHA-256 over ``rule|source|opened_at iso|serial``.

    ``serial`` counts the incidents this source's detector has opened: logs stamp whole seconds, so two
    incidents of one rule may open in the same second, and each must keep an id of its own. The serial
    is part of the snapshot, so a detector restored after a crash gives a replayed incident the same id.
    """
    return hashlib.sha256(f"{rule.value}|{source}|{opened_at.isoformat()}|{serial}".encode()).hexdigest()[:16]


def status_key(status: int | None) -> str:
    """How a status is named in ``by_status``: its digits, or ``"none"`` when the record had none."""
    return "none" if status is None else str(status)


@dataclass(slots=True)
class Tally:
    """Failures counted together: a streak still below its threshold, or an open incident."""

    opened_at: datetime
    first: Exchange | None
    last_at: datetime
    count: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    id: str = ""  # set when the tally becomes an incident
    reported: int = 0  # ``count`` as of the last transition handed out for it

    def add(self, at: datetime, key: str) -> None:
        self.count += 1
        self.by_status[key] = self.by_status.get(key, 0) + 1
        self.last_at = at


@dataclass(slots=True)
class Bucket:
    """The error-rate window's responses that share one timestamp (logs stamp to the second)."""

    at: datetime
    seq: int  # buckets are numbered in the order they start (saved as rows: ``detect.rows``)
    total: int = 0
    fails: dict[str, int] | None = None  # None while every response here was 2xx
    first: Exchange | None = None  # the bucket's first failure (evidence when the rule opens)


def tally_json(t: Tally) -> dict[str, Any]:
    return {
        "opened_at": iso(t.opened_at),
        "first": None if t.first is None else exchange_json(t.first),
        "last_at": iso(t.last_at),
        "count": t.count,
        "by_status": dict(t.by_status),
    }


def tally_from(d: dict[str, Any]) -> Tally:
    first = d["first"]
    return Tally(
        dt(d["opened_at"]),
        None if first is None else exchange_from(first),
        dt(d["last_at"]),
        int(d["count"]),
        {str(k): int(n) for k, n in d["by_status"].items()},
    )


def bucket_row(b: Bucket) -> list[Any]:
    """A bucket as a saved row: [seq, time, responses, failures by status or null, first failure or null]."""
    return [b.seq, iso(b.at), b.total, None if b.fails is None else dict(b.fails),
            None if b.first is None else exchange_json(b.first)]


def bucket_version(b: Bucket) -> int:
    """What tells a saved bucket from a grown one: every response counted into it raises its total."""
    return b.total


def window_rows_v1(window: dict[str, Any]) -> list[list[Any]]:
    """A version 1 window ({"base", "buckets": [[microseconds after base, …]]}) as version 2 rows."""
    buckets = window["buckets"]
    if not buckets:
        return []
    base = dt(window["base"])
    return [[seq, iso(base + timedelta(microseconds=int(us))), total, fails, first]
            for seq, (us, total, fails, first) in enumerate(buckets)]
