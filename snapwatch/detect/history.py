"""Evidence from history: per token and pixel, what Snap answered, and what accepted requests looked like.

``History`` is fed every exchange in log order. It keeps, per (token fingerprint, pixel), the first and
last time seen and the 2xx and 401/403 counts, plus a bounded run-length record of the attributes
(token, pixel, API version, path, placement) of accepted requests, so that at the start of a streak one
can compare the first failing request with the last one Snap accepted before it. Pure: no I/O, no clock.
"""

from __future__ import annotations

import copy
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from snapwatch.codec import dt, iso, request_from, request_json
from snapwatch.detect.rows import Mark, RowChanges, changes_since
from snapwatch.model import Api, Exchange, Placement, Request

# 2: accepted runs as numbered rows ([seq, …] and "run_serial"); 1 (still read): runs without numbers
SNAPSHOT_VERSION = 2
RUN_ROWS = ("runs",)  # where a snapshot holds the accepted runs' rows
DEFAULT_MAX_RUNS = 512


@dataclass(frozen=True, slots=True)
class Usage:
    """What Snap answered to one token for one pixel (``pixel`` None: the request did not name one)."""

    token_fp: str | None
    pixel: str | None
    first_seen: datetime
    last_seen: datetime
    accepted: int
    rejected: int
    first_accepted: datetime | None
    last_accepted: datetime | None


@dataclass(frozen=True, slots=True)
class TokenAnswers:
    """What Snap answered to one token, over every pixel (and, merged, over every log)."""

    token_fp: str
    first_seen: datetime
    last_seen: datetime
    accepted: int
    rejected: int

    def merged(self, other: TokenAnswers) -> TokenAnswers:
        """Both counted together (the same token seen in another log or source)."""
        return TokenAnswers(self.token_fp, min(self.first_seen, other.first_seen),
                            max(self.last_seen, other.last_seen), self.accepted + other.accepted,
                            self.rejected + other.rejected)


@dataclass(frozen=True, slots=True)
class Attrs:
    """The attributes of a request that decide whether Snap accepts it."""

    token_fp: str | None
    pixel: str | None
    api: Api
    path: str
    placement: Placement

    @classmethod
    def of(cls, req: Request) -> Attrs:
        return cls(req.token_fp, req.pixel, req.api, req.path, req.placement)


@dataclass(frozen=True, slots=True)
class AcceptedRun:
    """Consecutive accepted requests that all had the same attributes."""

    attrs: Attrs
    first_at: datetime
    last_at: datetime
    count: int


class _Counts:
    __slots__ = ("accepted", "first_accepted", "first_seen", "last_accepted", "last_seen", "rejected")

    def __init__(self, at: datetime) -> None:
        self.first_seen = at
        self.last_seen = at
        self.accepted = 0
        self.rejected = 0
        self.first_accepted: datetime | None = None
        self.last_accepted: datetime | None = None


class _Run:
    __slots__ = ("count", "first_at", "last_at", "req", "seq")

    def __init__(self, req: Request, at: datetime, seq: int) -> None:
        self.req = req
        self.first_at = at
        self.last_at = at
        self.count = 1
        self.seq = seq  # runs are numbered in the order they start (saved as rows: ``detect.rows``)


class History:
    """Per-token, per-pixel answers and the recent shape of accepted requests. Cheap per exchange.

    ``observe`` on a 2xx is a dict lookup, a few attribute compares and integer updates. Exchanges
    whose request was not seen are counted in ``unpaired`` (they cannot be attributed to a token).
    """

    def __init__(self, max_runs: int = DEFAULT_MAX_RUNS) -> None:
        self._counts: dict[tuple[str | None, str | None], _Counts] = {}
        self._runs: deque[_Run] = deque(maxlen=max_runs)
        self._run_serial = 0  # the number the next run gets
        self._last_request: Request | None = None
        self.last_status: int | None = None  # the status of the last paired exchange
        self.unpaired = 0

    # -- feeding ---------------------------------------------------------------------------------------

    def observe(self, ex: Exchange) -> None:
        """Take one exchange (in log order)."""
        req = ex.request
        if req is None:
            self.unpaired += 1
            return
        at = ex.response.at
        self._last_request = req
        status = self.last_status = ex.response.status
        key = (req.token_fp, req.pixel)
        c = self._counts.get(key)
        if c is None:
            c = self._counts[key] = _Counts(at)
        c.last_seen = at
        if status is None:
            return
        if 200 <= status < 300:
            c.accepted += 1
            if c.first_accepted is None:
                c.first_accepted = at
            c.last_accepted = at
            runs = self._runs
            if runs:
                run = runs[-1]
                prev = run.req
                if (
                    prev.token_fp == req.token_fp
                    and prev.path == req.path
                    and prev.placement is req.placement
                    and prev.pixel == req.pixel
                    and prev.api is req.api
                ):
                    run.last_at = at
                    run.count += 1
                    return
            runs.append(_Run(req, at, self._run_serial))
            self._run_serial += 1
        elif status in (401, 403):
            c.rejected += 1

    def observe_all(self, exchanges: Iterable[Exchange]) -> None:
        for ex in exchanges:
            self.observe(ex)

    # -- questions -------------------------------------------------------------------------------------

    def usage(self, token_fp: str | None, pixel: str | None) -> Usage | None:
        """The answers to this token for this pixel, or None when never seen together."""
        c = self._counts.get((token_fp, pixel))
        return None if c is None else _usage(token_fp, pixel, c)

    def usages(self) -> Iterator[Usage]:
        """Every (token, pixel) pair seen, in first-seen order."""
        for (fp, pixel), c in self._counts.items():
            yield _usage(fp, pixel, c)

    def per_token(self) -> dict[str, TokenAnswers]:
        """Snap's answers per token fingerprint, over every pixel, in first-seen order (no token: left out)."""
        out: dict[str, TokenAnswers] = {}
        for u in self.usages():
            if u.token_fp is not None:
                found = TokenAnswers(u.token_fp, u.first_seen, u.last_seen, u.accepted, u.rejected)
                out[u.token_fp] = out[u.token_fp].merged(found) if u.token_fp in out else found
        return out

    def accepted_before(self, token_fp: str | None, pixel: str | None, at: datetime) -> Usage | None:
        """The usage of this token for this pixel if it got a 2xx strictly before ``at``, else None."""
        u = self.usage(token_fp, pixel)
        if u is None or u.first_accepted is None or u.first_accepted >= at:
            return None
        return u

    def pixels_accepting(self, token_fp: str | None, until: datetime) -> list[Usage]:
        """Every pixel (None included) for which this token got a 2xx at or before ``until``.

        At, too: logs stamp whole seconds, so a 2xx stamped with the very time of the first failure of a
        streak was logged before it, in the same second (a 2xx ends a streak: none comes after its start)."""
        return [
            u
            for u in self.usages()
            if u.token_fp == token_fp and u.first_accepted is not None and u.first_accepted <= until
        ]

    def last_accepted(self, until: datetime | None = None) -> AcceptedRun | None:
        """The latest run of accepted requests that began at or before ``until`` (or the latest overall).

        Its attributes are those of the last request Snap accepted up to ``until``; a run that goes on
        past ``until`` still counts, since its attributes held on both sides. At, too: see
        ``pixels_accepting``.
        """
        for run in reversed(self._runs):
            if until is None or run.first_at <= until:
                return _accepted_run(run)
        return None

    def accepted_runs(self) -> list[AcceptedRun]:
        """The recorded runs of accepted requests, oldest first (bounded: the oldest fall off)."""
        return [_accepted_run(r) for r in self._runs]

    @property
    def last_request(self) -> Request | None:
        """The last request seen: which token the backend sends now."""
        return self._last_request

    def tokens_since(self, since: datetime) -> list[str]:
        """Fingerprints of tokens seen in requests at or after ``since``, most recent first."""
        latest: dict[str, datetime] = {}
        for (fp, _), c in self._counts.items():
            if fp is not None and c.last_seen >= since and (fp not in latest or c.last_seen > latest[fp]):
                latest[fp] = c.last_seen
        return sorted(latest, key=lambda fp: latest[fp], reverse=True)

    def copy(self) -> History:
        """An independent copy: later ``observe`` calls on either leave the other as it was."""
        other = History(self._runs.maxlen or DEFAULT_MAX_RUNS)
        other._counts = {key: copy.copy(c) for key, c in self._counts.items()}
        other._runs.extend(copy.copy(r) for r in self._runs)
        other._run_serial = self._run_serial
        other._last_request = self._last_request  # frozen
        other.last_status, other.unpaired = self.last_status, self.unpaired
        return other

    # -- persistence -----------------------------------------------------------------------------------

    def snapshot(self, *, rows: bool = True) -> dict[str, Any]:
        """A JSON-able copy (fingerprints only, never a token) for the state store.

        Without ``rows`` the accepted runs are left out (``RUN_ROWS`` is an empty list): the state file saves
        them apart, by their changes (``run_changes``), and puts them back in before ``restore``."""
        return {
            "version": SNAPSHOT_VERSION,
            "unpaired": self.unpaired,
            "usage": [
                [fp, px, iso(c.first_seen), iso(c.last_seen), c.accepted, c.rejected,
                 iso(c.first_accepted), iso(c.last_accepted)]
                for (fp, px), c in self._counts.items()
            ],
            "runs": [_run_row(r) for r in self._runs] if rows else [],
            "run_serial": self._run_serial,
            "last_request": None if self._last_request is None else request_json(self._last_request),
            "last_status": self.last_status,
        }

    def run_changes(self, mark: Mark) -> RowChanges:
        """The accepted runs' rows changed since ``mark`` (see ``detect.rows``)."""
        return changes_since(self._runs, mark, self._run_serial, _run_version, _run_row)

    @classmethod
    def restore(cls, data: Mapping[str, Any], max_runs: int = DEFAULT_MAX_RUNS) -> History:
        """Rebuild from ``snapshot()`` (a snapshot without rows has no runs). Raises ValueError on a snapshot
        it cannot read."""
        version = data.get("version")
        if version not in (1, SNAPSHOT_VERSION):
            raise ValueError(f"history snapshot version {version!r} is not {SNAPSHOT_VERSION}")
        h = cls(max_runs)
        try:
            h.unpaired = int(data.get("unpaired", 0))
            for fp, px, first, last, acc, rej, facc, lacc in data["usage"]:
                c = _Counts(dt(first))
                c.last_seen = dt(last)
                c.accepted, c.rejected = int(acc), int(rej)
                c.first_accepted = dt(facc)
                c.last_accepted = dt(lacc)
                h._counts[(fp, px)] = c
            rows = data.get("runs", [])
            if version == 1:  # runs without numbers: numbered in order
                rows = [[seq, *row] for seq, row in enumerate(rows)]
            for seq, fp, px, api, path, placement, first, last, count in rows:
                start = dt(first)
                req = Request(start, "", Api(api), path, px, Placement(placement), fp, None)
                run = _Run(req, start, int(seq))
                run.last_at = dt(last)
                run.count = int(count)
                h._runs.append(run)
            h._run_serial = max(int(data.get("run_serial", 0)), h._runs[-1].seq + 1 if h._runs else 0)
            last_req = data.get("last_request")
            if last_req is not None:
                h._last_request = request_from(last_req)
            status = data.get("last_status")
            h.last_status = None if status is None else int(status)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"history snapshot is damaged: {exc}") from exc
        return h

    def merge(self, other: History) -> None:
        """Fold ``other`` (a later or parallel stretch of the same log) into this history.

        Counts add up, first/last times widen, accepted runs interleave by time (bounded as usual), and
        the last request is whichever of the two came later.
        """
        for key, oc in other._counts.items():
            c = self._counts.get(key)
            if c is None:
                c = self._counts[key] = _Counts(oc.first_seen)
            c.first_seen = min(c.first_seen, oc.first_seen)
            c.last_seen = max(c.last_seen, oc.last_seen)
            c.accepted += oc.accepted
            c.rejected += oc.rejected
            c.first_accepted = _min_opt(c.first_accepted, oc.first_accepted)
            c.last_accepted = _max_opt(c.last_accepted, oc.last_accepted)
        runs = sorted([*self._runs, *map(copy.copy, other._runs)], key=lambda r: r.first_at)
        self._runs.clear()
        self._runs.extend(runs)
        for seq, run in enumerate(self._runs):  # numbered again, in their new order
            run.seq = seq
        self._run_serial = len(self._runs)
        self.unpaired += other.unpaired
        mine, theirs = self._last_request, other._last_request
        if theirs is not None and (mine is None or theirs.at >= mine.at):
            self._last_request = theirs
            self.last_status = other.last_status


def _run_row(r: _Run) -> list[Any]:
    """A run as a saved row: [seq, token fingerprint, pixel, api, path, placement, first, last, count]."""
    return [r.seq, r.req.token_fp, r.req.pixel, r.req.api.value, r.req.path, r.req.placement.value,
            iso(r.first_at), iso(r.last_at), r.count]


def _run_version(r: _Run) -> int:
    """What tells a saved run from a grown one: every accepted request counted into it raises its count."""
    return r.count


def _usage(fp: str | None, pixel: str | None, c: _Counts) -> Usage:
    return Usage(
        fp, pixel, c.first_seen, c.last_seen, c.accepted, c.rejected, c.first_accepted, c.last_accepted
    )


def _accepted_run(run: _Run) -> AcceptedRun:
    return AcceptedRun(Attrs.of(run.req), run.first_at, run.last_at, run.count)


def _min_opt(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _max_opt(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)

