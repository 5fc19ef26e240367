"""Inhibition: an open incident that explains another folds it in (Alertmanager's inhibit_rules, over rules).

``explains`` is the rule itself, pure (``scan`` uses it over a log's incidents). ``Inhibition`` applies it
to the alert lifecycle's rows (``alert_state``): an incident whose OPENED alert comes due while an
incident that explains it is open is marked ``inhibited`` and never announced on its own; the alerts of
the one that explains it carry it (``Alert.folded``), with its counts as they stand. Should it outlive
every incident that explains it, it is released: its OPENED alert is owed at once. An incident already
announced is never inhibited after the fact.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from snapwatch.codec import incident_from
from snapwatch.config.models import InhibitRule
from snapwatch.model import Incident, Rule


def explains(rules: Sequence[InhibitRule], rule: Rule, source: str, target_rule: Rule, target_source: str) -> bool:
    """Whether an open incident of ``rule`` on ``source`` explains one of ``target_rule`` on ``target_source``."""
    return any(rule in r.source_rules and target_rule in r.target_rules
               and ("source" not in r.equal or source == target_source) for r in rules)


class Inhibition:
    """The inhibit rules over the alert lifecycle's rows (the caller holds the transaction)."""

    def __init__(self, conn: sqlite3.Connection, rules: Sequence[InhibitRule]) -> None:
        self._conn, self._rules = conn, list(rules)

    def explained_by(self, incident_id: str, rule: str, source: str) -> str | None:
        """The id of an open incident that explains this one (the earliest opened), or None."""
        if not self._rules:
            return None
        rows = self._conn.execute(
            "SELECT incident_id, rule, source FROM alert_state WHERE state = 'open' AND incident_id != ?"
            " AND opened != 'inhibited' ORDER BY opened_us, incident_id", (incident_id,))
        for other, other_rule, other_source in rows:
            if explains(self._rules, Rule(other_rule), other_source, Rule(rule), source):
                return str(other)
        return None

    def inhibit(self, incident_id: str, by: str) -> None:
        self._conn.execute("UPDATE alert_state SET opened = 'inhibited', inhibited_by = ? WHERE incident_id = ?",
                           (by, incident_id))

    def orphans(self) -> list[tuple[str, str, str]]:
        """Open inhibited incidents whose explaining incident is no longer open: (id, rule, source)."""
        return [(str(i), str(r), str(s)) for i, r, s in self._conn.execute(
            "SELECT a.incident_id, a.rule, a.source FROM alert_state a LEFT JOIN alert_state b"
            " ON b.incident_id = a.inhibited_by WHERE a.opened = 'inhibited' AND a.state = 'open'"
            " AND (b.state IS NULL OR b.state != 'open')")]

    def release(self, n: int) -> None:
        """Owe the OPENED alert of every open incident whose explaining incident is no longer open (at ``n``).

        Called when alerts are handed out, not as transitions arrive: incidents that end together (one
        recovery ends the streak and the error rate) must both be recorded as ended first."""
        for incident_id, rule, source in self.orphans():
            other = self.explained_by(incident_id, rule, source)
            if other is not None:
                self.inhibit(incident_id, other)  # another open incident explains it now
            else:
                self._conn.execute("UPDATE alert_state SET opened = 'pending', inhibited_by = NULL, due_us = ?,"
                                   " grp = incident_id WHERE incident_id = ?", (n, incident_id))

    def folded_into(self, incident_id: str) -> tuple[Incident, ...]:
        """The incidents folded into this one, as they stand (the latest snapshot of each), oldest first."""
        rows = self._conn.execute("SELECT incident FROM alert_state WHERE inhibited_by = ? ORDER BY opened_us",
                                  (incident_id,))
        return tuple(incident_from(json.loads(text)) for (text,) in rows)
