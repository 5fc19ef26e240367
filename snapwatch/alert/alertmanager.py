"""Alertmanager as an alert target: posting alerts to every cluster member, and when to re-post open ones.

How the daemon uses it:

1. ``AlertmanagerTarget(config.alerts.alertmanager)`` is one more notify ``Target``: opened, updated and
   resolved alerts reach it through the durable outbox like any other target. A resolved alert is posted
   with ``endsAt``, which ends it in Alertmanager.
2. Alertmanager forgets an alert that is not repeated within its ``resolve_timeout`` (5 min by default),
   so the daemon keeps ``open_messages: {incident id: Message}`` (the Message ``Notifier.enqueue``
   returned for the incident's latest opened/update alert; dropped when it resolves) and
   ``last_posted: {incident id: datetime}``. On a timer set to ``schedule.next_due(...)`` it sends
   each of ``schedule.due(open_messages, last_posted, now)`` directly with ``target.send`` in the notify
   worker pool, not through the outbox (a lost re-post is replaced by the next one), then records ``now``
   in ``last_posted`` whether or not it was accepted (a failing cluster is retried at the next interval).
3. The labels identify the alert, and ``verdict`` is one of them: when an update changes the labels, the
   daemon enqueues ``retire(old, new)`` for the Alertmanager target only, so the old label set ends
   rather than lingering until ``resolve_timeout``.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx

from snapwatch.alert.messages import ALERTNAME
from snapwatch.alert.urls import mask_url, scrub, url_secrets
from snapwatch.codec import Message
from snapwatch.errors import NotifyError
from snapwatch.model import AlertKind
from snapwatch.redact import redact

log = logging.getLogger(__name__)

# The labels that name a problem independently of the host reporting it: route on these with group_by.
GROUP_LABELS = ("alertname", "rule", "verdict", "pixel", "token_fingerprint")
ALERTS_PATH = "/api/v2/alerts"
ONE_OFF_TTL = timedelta(minutes=5)  # test and held-back notices fire once and end on their own
_INCIDENT_KINDS = frozenset({AlertKind.OPENED, AlertKind.REMINDER, AlertKind.UPDATE})
_BAD_NAME_CHAR = re.compile(r"[^a-zA-Z0-9_]")
_BODY_MAX = 200


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def _rfc3339(at: datetime) -> str:
    return _utc(at).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _label_name(name: str) -> str:
    # Alertmanager rejects names outside [a-zA-Z_][a-zA-Z0-9_]*; keep the label under a legal spelling.
    clean = _BAD_NAME_CHAR.sub("_", name)
    return clean if clean and not clean[0].isdigit() else f"_{clean}"


def postable(message: Message, now: datetime, generator_url: str | None = None) -> dict[str, object]:
    """The Alertmanager v2 ``postableAlert`` for ``message`` as of ``now``. Pure.

    Labels and annotations are the message's (empty values dropped: Alertmanager treats them as absent),
    each value passed through the token redactor once more. ``startsAt`` is the incident's opened_at
    (``message.starts_at``), so a late or repeated post still dates the alert from when it began. Open
    incidents get no ``endsAt`` (Alertmanager keeps them for ``resolve_timeout`` after each post); a
    resolved alert ends at the incident's resolved_at (``message.ends_at``; ``now`` when it has none, as
    for a retired label set), never before its ``startsAt``. Test and held-back notices carry no
    incident: ``startsAt`` is left to Alertmanager and they end ``ONE_OFF_TTL`` after ``now``.
    """
    labels = {_label_name(k): redact(v) for k, v in message.labels.items() if v}
    labels.setdefault("alertname", ALERTNAME)
    alert: dict[str, object] = {
        "labels": labels,
        "annotations": {_label_name(k): redact(v) for k, v in message.annotations.items() if v},
    }
    if message.starts_at is not None:
        alert["startsAt"] = _rfc3339(message.starts_at)
    if message.kind is AlertKind.RESOLVED:
        ends = _utc(message.ends_at or now)
        # Alertmanager rejects an alert that ends before it starts
        alert["endsAt"] = _rfc3339(ends if message.starts_at is None else max(ends, _utc(message.starts_at)))
    elif message.kind not in _INCIDENT_KINDS:
        alert["endsAt"] = _rfc3339(now + ONE_OFF_TTL)
    if generator_url:
        alert["generatorURL"] = generator_url
    return alert


def retire(old: Message, new: Message) -> Message | None:
    """A resolved copy of ``old`` when ``new`` carries other labels (so ``old``'s alert must end), else None."""
    if old.labels == new.labels:
        return None
    return replace(old, alert_id=f"{old.alert_id}.retired", kind=AlertKind.RESOLVED)


@dataclass(frozen=True, slots=True)
class ResendSchedule:
    """When to re-post the alerts of open incidents. Pure: open messages, last post times and ``now`` in."""

    interval: timedelta = timedelta(minutes=1)

    def due(
        self, open_messages: Mapping[str, Message], last_posted: Mapping[str, datetime], now: datetime
    ) -> list[tuple[str, Message]]:
        """``(incident id, message)`` for every open incident never posted or last posted ``interval`` ago."""
        out = []
        for incident_id in sorted(open_messages):
            message, last = open_messages[incident_id], last_posted.get(incident_id)
            if message.kind is AlertKind.RESOLVED:
                continue  # its resolution goes through the outbox; re-posting it as open would revive it
            if last is None or now - last >= self.interval:
                out.append((incident_id, message))
        return out

    def next_due(
        self, open_messages: Mapping[str, Message], last_posted: Mapping[str, datetime], now: datetime
    ) -> datetime | None:
        """When ``due`` next returns something (``now`` if it already does); None with nothing open."""
        times = [
            max(now, last + self.interval) if (last := last_posted.get(iid)) is not None else now
            for iid, message in open_messages.items()
            if message.kind is not AlertKind.RESOLVED
        ]
        return min(times, default=None)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class AlertmanagerTarget:
    """Posts each message to ``/api/v2/alerts`` on every URL of an Alertmanager cluster.

    Delivered when at least one member accepts (members share silences and notification state by
    gossip, and each routes what it receives); NotifyError, with every URL masked, when none does.
    ``key`` is stable for the same set of URLs in any order.
    """

    def __init__(
        self,
        base_urls: Sequence[str],
        *,
        generator_url: str | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        urls = [u.strip().rstrip("/") for u in base_urls if u.strip()]
        if not urls:
            raise NotifyError("alerts.alertmanager: no URL given")
        for url in urls:
            try:
                parts = urlsplit(url)
                ok = parts.scheme in ("http", "https") and bool(parts.hostname)
                parts.port  # noqa: B018  (raises ValueError on a bad port)
            except ValueError:
                ok = False
            if not ok:
                raise NotifyError(f"alerts.alertmanager: {mask_url(url)} is not an http(s)://HOST[:PORT] URL")
        self._urls = tuple(dict.fromkeys(urls))
        self._shown = {u: mask_url(u) for u in self._urls}
        self._secrets = tuple(sorted({s for u in self._urls for s in url_secrets(u)}, key=len, reverse=True))
        self._generator_url, self._clock = generator_url, clock
        self.key = "alertmanager:" + hashlib.sha256("\n".join(sorted(self._urls)).encode()).hexdigest()[:16]
        self.display = "alertmanager " + ", ".join(self._shown.values())

    def send(self, message: Message, timeout: float) -> None:
        """Post ``message`` to every member at once, each request bounded by ``timeout`` seconds."""
        body = [postable(message, self._clock(), self._generator_url)]
        if len(self._urls) == 1:
            errors = [self._post(self._urls[0], body, timeout)]
        else:
            with ThreadPoolExecutor(max_workers=len(self._urls), thread_name_prefix="alertmanager") as pool:
                errors = list(pool.map(lambda url: self._post(url, body, timeout), self._urls))
        failed = [(self._shown[u], e) for u, e in zip(self._urls, errors, strict=True) if e is not None]
        if len(failed) == len(self._urls):
            raise NotifyError("; ".join(f"{shown}: {reason}" for shown, reason in failed))
        for shown, reason in failed:
            log.warning("alert %s not accepted by %s (%s); another member took it", message.alert_id, shown, reason)

    def _post(self, url: str, body: list[dict[str, object]], timeout: float) -> str | None:
        """None when ``url`` accepted ``body``, else a one-line reason free of secrets."""
        try:
            with httpx.Client(timeout=timeout) as client:
                reply = client.post(url + ALERTS_PATH, json=body)
        except httpx.TimeoutException:
            return f"no answer within {timeout:g} s"
        except httpx.HTTPError as exc:
            return scrub(f"{type(exc).__name__}: {exc}", self._secrets)
        if reply.is_success:
            return None
        detail = scrub(reply.text[:_BODY_MAX], self._secrets)
        return f"HTTP {reply.status_code}" + (f": {detail}" if detail else "")
