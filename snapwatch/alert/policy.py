"""The incident alert lifecycle: which alert is owed when, deduplicated in the state store across restarts.

``AlertPolicy`` turns detector transitions and diagnoses into alerts (OPENED, REMINDER, UPDATE,
RESOLVED, HELD_BACK) and decides when each is owed; it never sends. Everything that decides a future
alert lives in three tables on the given SQLite connection (``alert_state``, ``alert_sent``,
``alert_meta``), so a new policy on the same database neither repeats an alert already handed out nor
forgets one still owed. Time is a parameter: no clock is read here.

Transactions are ``state.joined_transaction``s: every method commits at once, unless the connection is
already in a transaction, which it joins (the caller commits). So the daemon can hand out alerts and
write them to the outbox atomically::

    conn.execute("BEGIN IMMEDIATE")
    for alert in policy.due(now, fp, kind):
        outbox.enqueue(render(alert), targets, now)
    conn.commit()

A crash before that commit rolls both back: the next ``due`` returns the same alerts with the same ids.

The hourly cap (``max_per_hour``, over a sliding hour of hand-out times, HELD_BACK summaries included):

- RESOLVED alerts (only for incidents something was said about) are never dropped: without capacity
  they wait for it, so an operator who heard "opened" always hears "resolved".
- OPENED, UPDATE and REMINDER alerts leave one slot per announced, not yet resolved incident free for
  its RESOLVED; when there is no room they are held back: not sent, ever, only counted.
- Once capacity returns (under the same rule), ONE HELD_BACK alert says how many were held back.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sqlite3
from datetime import datetime
from typing import Any

from snapwatch.alert.budget import HourlyBudget
from snapwatch.alert.inhibit import Inhibition
from snapwatch.alert.material import announced, material, material_key
from snapwatch.codec import at_micros, diagnosis_from, incident_from, incident_json, micros, micros_at, stored_json
from snapwatch.config.models import AlertsConfig
from snapwatch.model import (
    Alert,
    AlertKind,
    Diagnosis,
    Incident,
    Rule,
    TokenKind,
    Transition,
    TransitionKind,
)
from snapwatch.store.schema import joined_transaction, migrate

log = logging.getLogger(__name__)

_HOUR = 3_600_000_000  # microseconds
_KEEP_CLOSED = 7 * 24 * _HOUR  # finished incidents are remembered this long, so a replayed transition is a no-op
_RANK = {rule: i for i, rule in enumerate(Rule)}  # "most important rule" leads a group: the contract's order
# A blip (an incident over before its OPENED alert was due) is swallowed, unless it is this many within an
# hour for one rule and source: a backend flapping faster than group_wait is a fault, not noise, and must
# not go unreported. From then on its blips are announced, bounded by max_per_hour like everything else.
FLAP_BLIPS = 3

def alert_id(host: str, incident_id: str, kind: AlertKind, seq: int) -> str:
    """The stable id of an alert: 32 hex of SHA-256 over ``host|incident id|kind|sequence number``."""
    return hashlib.sha256(f"{host}\x1f{incident_id}\x1f{kind.value}\x1f{seq}".encode()).hexdigest()[:32]


class _Batch:
    """One ``due`` call's hand-outs and its view of the hourly cap."""

    def __init__(self, policy: AlertPolicy, now: datetime, token_fp: str | None, token_kind: TokenKind | None) -> None:
        self.policy, self.now, self.n = policy, now, micros_at(now)
        self.token_fp, self.token_kind = token_fp, token_kind
        self.cap = policy._cfg.max_per_hour
        self.used = policy._budget.used()
        self.reserved = policy._budget.reserved()
        self.held = 0
        self.out: list[Alert] = []

    def fits(self) -> bool:
        """Room for one more alert besides the RESOLVED alerts owed to announced incidents."""
        return self.used + self.reserved + 1 <= self.cap

    def room(self) -> bool:
        """``fits``, and when it does not, count one alert held back."""
        if self.fits():
            return True
        self.held += 1
        return False

    def make(self, kind: AlertKind, row: sqlite3.Row | None, seq: int, **extra: Any) -> None:
        host = self.policy._host
        ident = "held-back" if row is None else row["incident_id"]
        alert = Alert(id=alert_id(host, ident, kind, seq), kind=kind, created_at=self.now, host=host,
                      incident=None if row is None else _incident(row),
                      diagnosis=None if row is None else _diagnosis(row["diagnosis"]),
                      token_fp=self.token_fp, token_kind=self.token_kind,
                      folded=() if row is None else self.policy._inhibition.folded_into(ident),
                      announced=None if row is None else announced(row["sent_key"]), **extra)
        self.policy._conn.execute("INSERT INTO alert_sent VALUES (?, ?)", (self.n, alert.id))
        self.used += 1
        self.out.append(alert)


class AlertPolicy:
    """Decides which alerts are owed and when; the state lives in ``conn`` (see the module docstring)."""

    def __init__(self, conn: sqlite3.Connection, alerts: AlertsConfig, host: str) -> None:
        self._conn = conn
        self._cfg = alerts
        self._host = host
        self._wait = micros(alerts.group_wait)
        self._repeat = max(1, micros(alerts.repeat_every))
        migrate(conn)  # the tables are the store's (store.schema); a bare connection is brought up to date
        self._budget = HourlyBudget(conn, alerts)
        self._inhibition = Inhibition(conn, alerts.inhibit_rules)

    # -- recording -------------------------------------------------------------------------------

    def on_transition(self, t: Transition, diagnosis: Diagnosis | None, now: datetime) -> None:
        """Record one detector transition (idempotent: a replayed transition changes no decision).

        OPENED: an OPENED alert is owed at ``now + group_wait``; an incident of the same source opening
        before a pending group's due time joins that group (one alert). UPDATED: counts refreshed.
        RESOLVED: a RESOLVED alert is owed if ``send_resolved`` and something about the incident went out.

        An incident that resolves before its OPENED alert was due is swallowed: nothing is sent at all.
        ``group_wait`` exists to absorb exactly such blips (a few failures, then recovery); announcing
        one would cost two messages about something that needs no action and was over before anyone
        could look. But the FLAP_BLIPS-th blip of one rule and source within an hour is announced (its
        OPENED, then its RESOLVED): flapping faster than ``group_wait`` is a fault, and the hourly cap
        keeps it from becoming the flood.
        Such an OPENED alert carries ``flaps``: the blips of its rule and source that ended within the
        hour (swallowed or announced), itself included, so the message can say the backend is flapping.
        """
        inc = t.incident
        n = micros_at(now)
        with joined_transaction(self._conn):
            row = self._row(inc.id)
            if row is None:
                self._insert(inc, diagnosis, n, done=t.kind is TransitionKind.RESOLVED)
                return
            if row["state"] == "open" or t.kind is TransitionKind.RESOLVED:  # a replayed open keeps the end
                self._conn.execute("UPDATE alert_state SET incident = ? WHERE incident_id = ?",
                                   (stored_json(incident_json(inc)), inc.id))
            if diagnosis is not None:
                self._store_diagnosis(row, diagnosis)
            if t.kind is TransitionKind.RESOLVED and row["state"] == "open":
                self._resolve(row, n)
            self._conn.execute("DELETE FROM alert_state WHERE closed_us < ?", (n - _KEEP_CLOSED,))

    def on_diagnosis(self, incident_id: str, diagnosis: Diagnosis, now: datetime) -> None:
        """Record a new diagnosis; one UPDATE is owed when it differs materially from what went out.

        Material: a different verdict code or verdict severity, or a probe finding not in the last diagnosis
        handed out.
        Only while the incident is open and after something about it went out (before that, the OPENED
        alert will carry the newest diagnosis anyway). Unknown incidents are ignored.
        """
        del now  # the update is owed at once; kept for a uniform, time-explicit interface
        with joined_transaction(self._conn):
            row = self._row(incident_id)
            if row is None:
                log.debug("diagnosis for unknown incident %s ignored", incident_id)
                return
            self._store_diagnosis(row, diagnosis)

    def _insert(self, inc: Incident, diagnosis: Diagnosis | None, n: int, *, done: bool) -> None:
        grp, due = inc.id, n + self._wait
        if not done:
            joined = self._conn.execute(
                "SELECT grp, due_us FROM alert_state WHERE opened = 'pending' AND source = ? AND due_us > ?"
                " ORDER BY due_us LIMIT 1", (inc.source, n)).fetchone()
            if joined is not None:
                grp, due = joined
        # A resolve for an incident never seen open (state lost, or opened before watching): nothing to say,
        # but remember it so a replay of its transitions stays silent.
        self._conn.execute(
            "INSERT INTO alert_state (incident_id, rule, source, opened_us, state, grp, due_us, opened,"
            " resolved, closed_us, incident, diagnosis) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (inc.id, inc.rule.value, inc.source, micros_at(inc.opened_at), "resolved" if done else "open",
             grp, due, "swallowed" if done else "pending", "skipped" if done else "no", n if done else None,
             stored_json(incident_json(inc)),
             None if diagnosis is None else stored_json(diagnosis.to_json())))

    def _store_diagnosis(self, row: sqlite3.Row, diagnosis: Diagnosis) -> None:
        owed = (row["state"] == "open" and bool(row["announced"])
                and material(diagnosis, row["sent_key"]))
        self._conn.execute(
            "UPDATE alert_state SET diagnosis = ?, update_owed = update_owed OR ? WHERE incident_id = ?",
            (stored_json(diagnosis.to_json()), owed, row["incident_id"]))

    def _blips(self, row: sqlite3.Row, n: int) -> int:
        """The other blips of this rule on this source that ended within the last hour, swallowed or announced."""
        found = self._conn.execute(
            "SELECT count(*) FROM alert_state WHERE source = ? AND rule = ? AND incident_id != ?"
            " AND (opened = 'swallowed' OR flaps > 0) AND COALESCE(closed_us, ?) >= ?",
            (row["source"], row["rule"], row["incident_id"], n, n - _HOUR)).fetchone()
        return int(found[0])

    def _resolve(self, row: sqlite3.Row, n: int) -> None:
        blip = row["opened"] == "pending" and n < row["due_us"]
        earlier = self._blips(row, n) if blip else 0
        flaps = 0
        if blip and earlier < FLAP_BLIPS - 1:
            opened, resolved = "swallowed", "skipped"
        elif row["opened"] == "pending":
            # due but not yet handed out, or a blip of a flapping backend (announced with its count): the
            # OPENED alert still goes, then (if announced) the RESOLVED one
            opened, resolved = "pending", "owed"
            flaps = earlier + 1 if blip else 0
        else:
            opened = row["opened"]
            resolved = "owed" if row["announced"] and self._cfg.send_resolved else "skipped"
        if not self._cfg.send_resolved:
            resolved = "skipped"
        self._conn.execute(
            "UPDATE alert_state SET state = 'resolved', opened = ?, resolved = ?, update_owed = 0,"
            " closed_us = CASE WHEN ? = 'skipped' THEN ? END, flaps = ? WHERE incident_id = ?",
            (opened, resolved, resolved, n, flaps, row["incident_id"]))

    def _row(self, incident_id: str) -> sqlite3.Row | None:
        cur = self._conn.execute("SELECT * FROM alert_state WHERE incident_id = ?", (incident_id,))
        cur.row_factory = sqlite3.Row
        row: sqlite3.Row | None = cur.fetchone()
        return row

    def _rows(self, where: str, *args: object) -> list[sqlite3.Row]:
        cur = self._conn.execute(f"SELECT * FROM alert_state WHERE {where}", args)  # noqa: S608  (fixed clauses)
        cur.row_factory = sqlite3.Row
        return list(cur.fetchall())

    # -- handing out -----------------------------------------------------------------------------

    def due(self, now: datetime, token_fp: str | None = None, token_kind: TokenKind | None = None) -> list[Alert]:
        """The alerts to hand out now, in order, each marked handed out in the same transaction.

        Order: OPENED (groups by due time), RESOLVED, one HELD_BACK summary, UPDATE, REMINDER. Calling
        again at the same ``now`` returns nothing new. ``token_fp``/``token_kind`` describe the
        configured token and are copied into every alert.
        """
        with joined_transaction(self._conn):
            self._conn.execute("DELETE FROM alert_sent WHERE at_us <= ?", (micros_at(now) - _HOUR,))
            b = _Batch(self, now, token_fp, token_kind)
            self._inhibition.release(b.n)
            self._hand_opened(b)
            self._hand_resolved(b)
            self._hand_summary(b)
            self._hand_updates(b)
            self._hand_reminders(b)
            if b.held:
                log.info("alert cap of %d per hour reached: %d alert(s) held back", b.cap, b.held)
                self._budget.set_meta("held", self._budget.meta("held") + b.held)
        return b.out

    def _hand_opened(self, b: _Batch) -> None:
        groups: dict[str, list[sqlite3.Row]] = {}
        for row in self._rows("opened = 'pending' AND due_us <= ? ORDER BY due_us, opened_us", b.n):
            by = self._inhibition.explained_by(row["incident_id"], row["rule"], row["source"])
            if by is not None:  # one problem, one message: it is folded into the incident that explains it
                self._inhibition.inhibit(row["incident_id"], by)
                continue
            groups.setdefault(row["grp"], []).append(row)
        for members in groups.values():
            members.sort(key=lambda r: (_RANK[Rule(r["rule"])], r["opened_us"], r["incident_id"]))
            admitted = b.room()
            if admitted:
                flaps = max(r["flaps"] for r in members if r["rule"] == members[0]["rule"])
                b.make(AlertKind.OPENED, members[0], 0, related=tuple(_incident(r) for r in members[1:]),
                       flaps=flaps)
                b.reserved += len(members) if self._cfg.send_resolved else 0
            for r in members:
                self._conn.execute(
                    "UPDATE alert_state SET opened = ?, announced = ?, reminder_us = ?, sent_key = ?,"
                    " update_owed = 0 WHERE incident_id = ?",
                    ("sent" if admitted else "held", admitted, b.n + self._repeat, _key_of(r), r["incident_id"]))

    def _hand_resolved(self, b: _Batch) -> None:
        for row in self._rows("resolved = 'owed' AND announced = 1 ORDER BY opened_us, incident_id"):
            if b.used >= b.cap:
                break  # never dropped: waits for capacity (next_due says when)
            b.make(AlertKind.RESOLVED, row, 0)
            b.reserved -= 1
            self._conn.execute("UPDATE alert_state SET resolved = 'sent', closed_us = ? WHERE incident_id = ?",
                               (b.n, row["incident_id"]))
        # resolved while its OPENED alert was held back: the operator never heard of it
        self._conn.execute("UPDATE alert_state SET resolved = 'skipped', closed_us = ?"
                           " WHERE resolved = 'owed' AND announced = 0 AND opened != 'pending'", (b.n,))

    def _hand_summary(self, b: _Batch) -> None:
        pending = self._budget.meta("held")
        if pending and not b.held and b.fits():
            seq = self._budget.meta("held_seq")
            b.make(AlertKind.HELD_BACK, None, seq, held_back=pending)
            self._budget.set_meta("held", 0)
            self._budget.set_meta("held_seq", seq + 1)

    def _hand_updates(self, b: _Batch) -> None:
        for row in self._rows("state = 'open' AND announced = 1 AND update_owed = 1 ORDER BY opened_us"):
            diag = _diagnosis(row["diagnosis"])
            if diag is None or not material(diag, row["sent_key"]):
                self._conn.execute("UPDATE alert_state SET update_owed = 0 WHERE incident_id = ?",
                                   (row["incident_id"],))
                continue
            admitted = b.room()
            if admitted:
                b.make(AlertKind.UPDATE, row, row["update_seq"])
            self._conn.execute(
                "UPDATE alert_state SET update_owed = 0, update_seq = update_seq + 1, sent_key = ?,"
                " reminder_us = CASE WHEN ? THEN ? ELSE reminder_us END WHERE incident_id = ?",
                (_key_of(row), admitted, b.n + self._repeat, row["incident_id"]))

    def _hand_reminders(self, b: _Batch) -> None:
        for row in self._rows("state = 'open' AND opened IN ('sent', 'held') AND reminder_us <= ?"
                              " ORDER BY reminder_us, opened_us", b.n):
            admitted = b.room()
            if admitted:
                b.make(AlertKind.REMINDER, row, row["reminder_seq"])
                if not row["announced"] and self._cfg.send_resolved:
                    b.reserved += 1
            self._conn.execute(
                "UPDATE alert_state SET reminder_seq = reminder_seq + 1, reminder_us = ?,"
                " announced = announced OR ?, sent_key = CASE WHEN ? THEN ? ELSE sent_key END,"
                " update_owed = CASE WHEN ? THEN 0 ELSE update_owed END WHERE incident_id = ?",
                (b.n + self._repeat, admitted, admitted, _key_of(row), admitted, row["incident_id"]))

    def announced_open(self, now: datetime, token_fp: str | None = None,
                       token_kind: TokenKind | None = None) -> list[Alert]:
        """The open incidents something was said about, as they stand (kind REMINDER; nothing recorded).

        For a restarted daemon's Alertmanager re-posts: Alertmanager forgets alerts not repeated.
        """
        alerts = []
        for row in self._rows("state = 'open' AND announced = 1 ORDER BY opened_us, incident_id"):
            alerts.append(Alert(id=alert_id(self._host, row["incident_id"], AlertKind.REMINDER, -1),
                                kind=AlertKind.REMINDER, created_at=now, host=self._host, incident=_incident(row),
                                diagnosis=_diagnosis(row["diagnosis"]), token_fp=token_fp, token_kind=token_kind))
        return alerts

    def next_due(self, now: datetime) -> datetime | None:
        """When ``due`` should next be called; None when nothing is owed.

        A time before ``now`` means overdue (call ``due`` with that time, or with ``now``). Work waiting
        only for the hourly cap (a RESOLVED alert, the HELD_BACK summary) is due when enough earlier
        hand-outs leave the sliding hour, or at ``now`` when there is room already.
        """
        n = micros_at(now)
        times: list[int] = []
        one = self._conn.execute
        for (at,) in (
            one("SELECT MIN(due_us) FROM alert_state WHERE opened = 'pending'").fetchone(),
            one("SELECT MIN(reminder_us) FROM alert_state WHERE state = 'open' AND opened IN ('sent', 'held')")
            .fetchone(),
            one("SELECT CASE WHEN COUNT(*) THEN ? END FROM alert_state WHERE state = 'open' AND announced = 1"
                " AND update_owed = 1", (n,)).fetchone(),
        ):
            if at is not None:
                times.append(at)
        if self._inhibition.orphans():
            times.append(n)  # folded into an incident that ended while it goes on: announced on its own now
        budget = self._budget
        cap, reserved = self._cfg.max_per_hour, budget.reserved()
        if one("SELECT COUNT(*) FROM alert_state WHERE resolved = 'owed' AND announced = 1").fetchone()[0]:
            at = budget.capacity_at(n, cap - 1)
            if at is not None:
                times.append(at)
        if budget.meta("held"):
            at = budget.capacity_at(n, cap - reserved - 1)
            if at is not None:
                times.append(at)
        return None if not times else at_micros(min(times), now)

    def held_back(self) -> int:
        """How many alerts are held back and not yet reported in a HELD_BACK summary."""
        return self._budget.meta("held")


# -- time, keys and stored rows -----------------------------------------------------------------------


def _key_of(row: sqlite3.Row) -> str:
    return material_key(_diagnosis(row["diagnosis"]))


def _incident(row: sqlite3.Row) -> Incident:
    return incident_from(json.loads(row["incident"]))


def _diagnosis(text: str | None) -> Diagnosis | None:
    return None if text is None else diagnosis_from(json.loads(text))
