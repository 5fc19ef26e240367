"""The daemon's alerting parts: built from the config, alerts handed from the policy to the outbox, re-posts seeded."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from snapwatch.alert.messages import render
from snapwatch.alert.notify import Notifier, Target
from snapwatch.alert.policy import AlertPolicy
from snapwatch.config.models import AlertsConfig
from snapwatch.model import Alert, TokenKind
from snapwatch.run.telemetry import Reposter
from snapwatch.store.outbox import Outbox
from snapwatch.store.silences import Silences
from snapwatch.store.state import Store

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from snapwatch.alert.alertmanager import AlertmanagerTarget


def build_alerting(store: Store, alerts: AlertsConfig, host: str, targets: list[Target],
                   manager: AlertmanagerTarget | None) -> tuple[AlertPolicy, Outbox, Reposter | None, Notifier]:
    """The policy and outbox on the state file, the Alertmanager re-poster (when configured), the notifier."""
    outbox = Outbox(store.conn, retention=alerts.retention)
    reposter = Reposter(manager, alerts.timeout.total_seconds()) if manager is not None else None
    notifier = Notifier(outbox, targets, timeout=alerts.timeout.total_seconds(), max_age=alerts.max_age)
    return AlertPolicy(store.conn, alerts, host), outbox, reposter, notifier


def hand_out(store: Store, policy: AlertPolicy, notifier: Notifier, reposter: Reposter | None, now: datetime,
             token_of: Callable[[], tuple[str | None, TokenKind | None]],
             attachment: Callable[[Alert], str | None] = lambda _alert: None,
             refresh: Callable[[], None] = lambda: None) -> int:
    """Move every alert the policy owes into the outbox, in one transaction with the policy's own rows
    (each with the ``attachment`` made for it, if any: an HTML report). When something is owed,
    ``refresh`` brings the evidence up to date first, and ``token_of`` names the token then. An alert about an
    incident an active silence covers is handed out (so it is not owed again) but not sent; returns how many.
    """
    due_at = policy.next_due(now)
    if due_at is None or due_at > now:
        return 0  # nothing owed yet: no write transaction on an idle tick
    refresh()
    silences, muted = Silences(store.conn).active(now), 0
    token = token_of()
    conn = store.conn
    conn.execute("BEGIN IMMEDIATE")  # the policy and the outbox commit together (lifecycle.py)
    try:
        for alert in policy.due(now, *token):
            inc = alert.incident
            if inc is not None and any(s.covers(inc.rule.value, inc.source, now) for s in silences):
                muted += 1
                log.info("alert %s (%s %s on %s) silenced", alert.id, alert.kind.value, inc.rule.value, inc.source)
                continue
            message = notifier.enqueue(alert, now, attachment(alert))
            if reposter is not None:
                reposter.handed_out(alert, message, now)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return muted


def seed_reposter(reposter: Reposter | None, policy: AlertPolicy, now: datetime,
                  token: tuple[str | None, TokenKind | None]) -> None:
    """After a restart, Alertmanager still needs the open incidents repeated: start from what was said."""
    if reposter is None:
        return
    for alert in policy.announced_open(now, *token):
        reposter.handed_out(alert, render(alert), now - reposter.schedule.interval)
