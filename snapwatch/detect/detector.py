"""The incident detector: exchanges in, incident transitions out; a pure state machine timed by the records."""

from __future__ import annotations

from collections import deque
from datetime import datetime, timedelta
from typing import Any

from snapwatch.codec import dt, exchange_from, exchange_json, iso
from snapwatch.config.models import RulesConfig
from snapwatch.detect.rows import Mark, RowChanges, changes_since
from snapwatch.detect.tally import (
    Bucket,
    Tally,
    bucket_row,
    bucket_version,
    incident_id,
    status_key,
    tally_from,
    tally_json,
    window_rows_v1,
)
from snapwatch.errors import SnapwatchError
from snapwatch.model import (
    Exchange,
    Incident,
    Rule,
    Transition,
    TransitionKind,
)

# 2: the error-rate window as numbered rows ({"serial", "rows"}); 1 (still read): {"base", "buckets"}
SNAPSHOT_VERSION = 2
WINDOW_ROWS = ("error_window", "rows")  # where a snapshot holds the window's rows



class Detector:
    """Applies the contract's six incident rules to one source's exchanges, in log order.

    Streak rules (auth-failures: 401/403, rate-limited: 429, server-errors: 5xx) count consecutive
    matching responses. A 2xx resets every streak in progress; a non-2xx that does not match a rule
    neither extends nor breaks that rule's streak (a 401 outage peppered with 500s is still one 401
    streak). A response without a status is a non-2xx that matches no streak rule.

    invalid-events opens when ``count`` responses with status 400 fall within ``window``; error-rate
    when a failure brings the share of non-2xx responses (including ones without a status) within
    ``window`` to ``threshold`` or more, with at least ``min_responses`` responses in it (it is only
    judged on a failure, so the 2xx path stays cheap). "Within window" means at or after
    ``t - window`` for the record at time ``t``. While such an incident is open its window is not
    kept, and it starts empty again once the incident resolves: every incident needs fresh failures.

    Every rule but silence resolves after its ``recovery`` consecutive 2xx responses counted from
    the last non-2xx; any non-2xx breaks the run. silence opens at ``last_seen + after`` once more
    than ``after`` passes without an exchange (seen by ``tick`` or by the late exchange itself) and
    resolves at the next exchange. One incident per rule is open at a time; ``opened_at`` is the
    first failure of its streak (window rules: the first failure in the window). A failure counted
    into an open incident emits UPDATED when its time is later than the incident's ``last_at`` (at
    most one per record timestamp, so floods stay cheap; none with ``emit_updates=False``), and
    ``updates()`` hands out one more for each incident counted into since its last transition, so a
    caller that asks after each batch reports counts exact at that moment; the counts are always
    current in ``open_incidents()`` and RESOLVED. Disabled rules never open; an
    incident restored from a snapshot still counts and resolves.

    Timestamps must be timezone-aware. A record older than its predecessor is counted normally,
    but window expiry and silence measure from the newest time seen.
    """

    def __init__(
        self,
        rules: RulesConfig,
        source: str,
        *,
        since: datetime | None = None,
        emit_updates: bool = True,
    ) -> None:
        """``since``: when watching began, so silence can fire before the first exchange arrives."""
        self.rules = rules
        self.source = source
        self._emit_updates = emit_updates
        self._streaks = {
            Rule.AUTH_FAILURES: rules.auth_failures.streak if rules.auth_failures.enabled else 0,
            Rule.RATE_LIMITED: rules.rate_limited.streak if rules.rate_limited.enabled else 0,
            Rule.SERVER_ERRORS: rules.server_errors.streak if rules.server_errors.enabled else 0,
        }
        self._recovery = {
            Rule.AUTH_FAILURES: rules.auth_failures.recovery,
            Rule.RATE_LIMITED: rules.rate_limited.recovery,
            Rule.SERVER_ERRORS: rules.server_errors.recovery,
            Rule.INVALID_EVENTS: rules.invalid_events.recovery,
            Rule.ERROR_RATE: rules.error_rate.recovery,
        }
        self._silence_after: timedelta | None = rules.silence.after if rules.silence.enabled else None
        self._inv_on = rules.invalid_events.enabled
        self._inv_count = rules.invalid_events.count
        self._inv_window = rules.invalid_events.window
        self._er_on = rules.error_rate.enabled
        self._er_window = rules.error_rate.window
        self._er_min = rules.error_rate.min_responses
        self._er_threshold = rules.error_rate.threshold

        self._last_at = since
        self._serial = 0  # incidents opened so far (part of each incident's id)
        self._ok_run = 0  # consecutive 2xx since the last non-2xx; only kept while an incident is open
        self.recovering_since: datetime | None = None  # the first of those 2xx: when a recovery began
        self._pending: dict[Rule, Tally] = {}  # streaks in progress, below their threshold
        self._open: dict[Rule, Tally] = {}  # in the order they opened
        self._invalid: deque[Exchange] = deque()
        self._buckets: deque[Bucket] = deque()
        self._tail: Bucket | None = None
        self._bucket_serial = 0  # the number the next bucket gets
        self._er_total = 0
        self._er_failed = 0
        self._er_by_status: dict[str, int] = {}

    # -- feeding -----------------------------------------------------------------------------

    def observe(self, ex: Exchange) -> list[Transition]:
        """Count one exchange; the transitions it causes, silence first, then in rule order."""
        resp = ex.response
        at = resp.at
        s = resp.status
        out: list[Transition] = []
        last = self._last_at
        if last is None or at > last:
            after = self._silence_after
            if after is not None and last is not None and at - last > after and Rule.SILENCE not in self._open:
                self._open_incident(Rule.SILENCE, Tally(last + after, None, last + after), out)
            self._last_at = at
        if self._open and Rule.SILENCE in self._open:
            self._resolve(Rule.SILENCE, at, out)

        if s is not None and 200 <= s < 300:
            if self._pending:
                self._pending.clear()
            if self._open:
                self._ok_run += 1
                run = self._ok_run
                if run == 1:
                    self.recovering_since = at
                recovery = self._recovery
                for rule in [r for r in self._open if r in recovery and recovery[r] <= run]:
                    self._resolve(rule, at, out)
            if self._er_on and Rule.ERROR_RATE not in self._open:
                tail = self._tail
                if tail is not None and at <= tail.at:
                    tail.total += 1
                else:
                    self._new_bucket(at).total += 1
                self._er_total += 1
            return out

        self._ok_run = 0
        self.recovering_since = None
        key = status_key(s)
        if s is not None:
            if s in (401, 403):
                self._streak(Rule.AUTH_FAILURES, at, ex, key, out)
            elif s == 429:
                self._streak(Rule.RATE_LIMITED, at, ex, key, out)
            elif 500 <= s < 600:
                self._streak(Rule.SERVER_ERRORS, at, ex, key, out)
            elif s == 400:
                self._invalid_event(at, ex, key, out)
        if self._er_on or Rule.ERROR_RATE in self._open:
            self._error_rate_failure(at, ex, key, out)
        return out

    def tick(self, now: datetime) -> list[Transition]:
        """Time passed without records: opens silence once ``now`` is more than ``after`` past the last one.

        Windows need no expiry here: they are judged only against an observed record's own time.
        """
        after = self._silence_after
        last = self._last_at
        if after is None or last is None or Rule.SILENCE in self._open or now - last <= after:
            return []
        out: list[Transition] = []
        self._open_incident(Rule.SILENCE, Tally(last + after, None, last + after), out)
        return out

    def updates(self) -> list[Transition]:
        """UPDATED for each open incident whose counts changed since its last transition (none with
        ``emit_updates=False``)."""
        if not self._emit_updates:
            return []
        return [self._transition(TransitionKind.UPDATED, rule, t) for rule, t in self._open.items()
                if t.count != t.reported]

    def open_incidents(self) -> list[Incident]:
        """The incidents open now, in the order they opened."""
        return [self._incident(rule, t) for rule, t in self._open.items()]

    def streak_lengths(self) -> dict[Rule, int]:
        """The current failure run of each streak rule: below its threshold, or counted into its open incident."""
        lengths = {}
        for rule in self._streaks:
            tally = self._open.get(rule) or self._pending.get(rule)
            lengths[rule] = tally.count if tally is not None else 0
        return lengths

    # -- rules -------------------------------------------------------------------------------

    def _streak(self, rule: Rule, at: datetime, ex: Exchange, key: str, out: list[Transition]) -> None:
        if rule in self._open:
            self._update(rule, at, key, out)
            return
        need = self._streaks[rule]
        if not need:
            return
        pending = self._pending.get(rule)
        if pending is None:
            pending = self._pending[rule] = Tally(at, ex, at)
        pending.add(at, key)
        if pending.count >= need:
            del self._pending[rule]
            self._open_incident(rule, pending, out)

    def _invalid_event(self, at: datetime, ex: Exchange, key: str, out: list[Transition]) -> None:
        if Rule.INVALID_EVENTS in self._open:
            self._update(Rule.INVALID_EVENTS, at, key, out)
            return
        if not self._inv_on:
            return
        window = self._invalid
        newest = self._last_at if self._last_at is not None else at
        cutoff = newest - self._inv_window
        while window and window[0].response.at < cutoff:
            window.popleft()
        window.append(ex)
        if len(window) >= self._inv_count:
            first = window[0]
            tally = Tally(first.response.at, first, at, len(window), {key: len(window)})
            window.clear()
            self._open_incident(Rule.INVALID_EVENTS, tally, out)

    def _error_rate_failure(self, at: datetime, ex: Exchange, key: str, out: list[Transition]) -> None:
        if Rule.ERROR_RATE in self._open:
            self._update(Rule.ERROR_RATE, at, key, out)
            return
        tail = self._tail
        bucket = tail if tail is not None and at <= tail.at else self._new_bucket(at)
        bucket.total += 1
        if bucket.fails is None:
            bucket.fails = {}
            bucket.first = ex
        bucket.fails[key] = bucket.fails.get(key, 0) + 1
        self._er_by_status[key] = self._er_by_status.get(key, 0) + 1
        self._er_total += 1
        self._er_failed += 1
        if self._er_total >= self._er_min and self._er_failed / self._er_total >= self._er_threshold:
            first = next(b.first for b in self._buckets if b.first is not None)
            tally = Tally(first.response.at, first, at, self._er_failed, self._er_by_status)
            self._clear_error_window()
            self._open_incident(Rule.ERROR_RATE, tally, out)

    def _new_bucket(self, at: datetime) -> Bucket:
        """Start the bucket for a newer timestamp, dropping buckets that fell out of the window first."""
        cutoff = at - self._er_window
        buckets = self._buckets
        while buckets and buckets[0].at < cutoff:
            old = buckets.popleft()
            self._er_total -= old.total
            if old.fails is not None:
                for k, n in old.fails.items():
                    self._er_failed -= n
                    left = self._er_by_status[k] - n
                    if left:
                        self._er_by_status[k] = left
                    else:
                        del self._er_by_status[k]
        bucket = Bucket(at, self._bucket_serial)
        self._bucket_serial += 1
        buckets.append(bucket)
        self._tail = bucket
        return bucket

    def _clear_error_window(self) -> None:
        self._buckets.clear()
        self._tail = None
        self._er_total = self._er_failed = 0
        self._er_by_status = {}

    # -- transitions -------------------------------------------------------------------------

    def _open_incident(self, rule: Rule, tally: Tally, out: list[Transition]) -> None:
        self._serial += 1
        tally.id = incident_id(rule, self.source, tally.opened_at, self._serial)
        self._open[rule] = tally
        out.append(self._transition(TransitionKind.OPENED, rule, tally))

    def _update(self, rule: Rule, at: datetime, key: str, out: list[Transition]) -> None:
        tally = self._open[rule]
        # at most one UPDATED per record timestamp: a flood of failures stamped to the same second
        # would otherwise cost one Incident per response; open_incidents() always has the counts
        fresh = at > tally.last_at
        tally.add(at, key)
        if fresh and self._emit_updates:
            out.append(self._transition(TransitionKind.UPDATED, rule, tally))

    def _resolve(self, rule: Rule, at: datetime, out: list[Transition]) -> None:
        tally = self._open.pop(rule)
        tally.last_at = at
        out.append(self._transition(TransitionKind.RESOLVED, rule, tally, at))

    def _transition(self, kind: TransitionKind, rule: Rule, t: Tally, resolved_at: datetime | None = None,
                    ) -> Transition:
        t.reported = t.count
        return Transition(kind, self._incident(rule, t, resolved_at))

    def _incident(self, rule: Rule, t: Tally, resolved_at: datetime | None = None) -> Incident:
        return Incident(
            id=t.id,
            rule=rule,
            source=self.source,
            opened_at=t.opened_at,
            resolved_at=resolved_at,
            responses=t.count,
            by_status=tuple(sorted(t.by_status.items())),
            last_at=t.last_at,
            first_failure=t.first,
        )

    # -- persistence -------------------------------------------------------------------------

    def snapshot(self, *, rows: bool = True) -> dict[str, Any]:
        """The whole state as JSON-ready primitives (ISO timestamps); holds fingerprints, never tokens.

        Without ``rows`` the error-rate window's rows are left out (``WINDOW_ROWS`` is an empty list): the
        state file saves them apart, by their changes (``window_changes``), and puts them back in before
        ``restore``.
        """
        window = {"serial": self._bucket_serial, "rows": [bucket_row(b) for b in self._buckets] if rows else []}
        return {
            "version": SNAPSHOT_VERSION,
            "source": self.source,
            "last_at": iso(self._last_at),
            "ok_run": self._ok_run,
            "recovering_since": iso(self.recovering_since),
            "serial": self._serial,
            "open_ids": {r.value: t.id for r, t in self._open.items()},
            "pending": {r.value: tally_json(t) for r, t in self._pending.items()},
            "open": {r.value: tally_json(t) for r, t in self._open.items()},
            "invalid": [exchange_json(e) for e in self._invalid],
            "error_window": window,
        }

    def window_changes(self, mark: Mark) -> RowChanges:
        """The error-rate window's rows changed since ``mark`` (see ``detect.rows``)."""
        return changes_since(self._buckets, mark, self._bucket_serial, bucket_version, bucket_row)

    @classmethod
    def restore(cls, rules: RulesConfig, source: str, data: dict[str, Any], *, emit_updates: bool = True) -> Detector:
        """A detector continuing from ``snapshot()``'s output; raises SnapwatchError when it is unreadable."""
        det = cls(rules, source, emit_updates=emit_updates)
        try:
            version = data.get("version")
            if version not in (1, SNAPSHOT_VERSION):
                raise ValueError(f"unknown version {version!r}")
            det._last_at = dt(data["last_at"])
            det._ok_run = int(data["ok_run"])
            det.recovering_since = dt(data.get("recovering_since"))
            # a streak of a rule disabled since the snapshot is dropped; open incidents all stay
            det._pending = {Rule(r): tally_from(t) for r, t in data["pending"].items() if det._streaks.get(Rule(r))}
            det._open = {Rule(r): tally_from(t) for r, t in data["open"].items()}
            det._serial = int(data["serial"])
            for rule, tally in det._open.items():
                tally.id = str(data["open_ids"][rule.value])
            if det._inv_on:
                det._invalid = deque(exchange_from(e) for e in data["invalid"])
            window = data["error_window"]
            rows = list(window.get("rows", [])) if version == SNAPSHOT_VERSION else window_rows_v1(window)
            det._bucket_serial = max(int(window.get("serial", 0)), int(rows[-1][0]) + 1 if rows else 0)
            if det._er_on:
                det._restore_window(rows)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise SnapwatchError(f"detector state for {source} is unreadable: {exc!r}") from exc
        return det

    def _restore_window(self, rows: list[list[Any]]) -> None:
        for seq, at, total, fails, first in rows:
            bucket = Bucket(dt(at), int(seq), int(total))
            if fails is not None:
                bucket.fails = {str(k): int(n) for k, n in fails.items()}
                bucket.first = exchange_from(first)
                for k, n in bucket.fails.items():
                    self._er_by_status[k] = self._er_by_status.get(k, 0) + n
                    self._er_failed += n
            self._er_total += bucket.total
            self._buckets.append(bucket)
        self._tail = self._buckets[-1] if self._buckets else None

