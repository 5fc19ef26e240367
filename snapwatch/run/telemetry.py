"""The daemon's outward reporting besides alerts: Prometheus metrics, and re-posting open alerts to Alertmanager."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from snapwatch.codec import Message
from snapwatch.config.models import Config
from snapwatch.model import Alert, AlertKind, Checkpoint, Exchange, Gap, Incident, Rule
from snapwatch.run.sdnotify import SystemdNotifier
from snapwatch.store.outbox import Outbox

# Metrics and Alertmanager load prometheus_client and httpx: only when configured, to keep a plain
# daemon small.
if TYPE_CHECKING:
    from snapwatch.alert.alertmanager import AlertmanagerTarget
    from snapwatch.run.metrics import Metrics, MetricsServer

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FileView:
    """What the metrics need of one followed file."""

    path: str
    checkpoint: Checkpoint | None
    streaks: Mapping[Rule, int]
    open_incidents: list[Incident]


class Telemetry:
    """Metrics when ``metrics.listen`` is set (otherwise every call is a cheap no-op)."""

    def __init__(self, config: Config) -> None:
        self.metrics: Metrics | None = None
        self.server: MetricsServer | None = None
        self._seen_outcomes: dict[tuple[str, str], int] = {}
        if config.metrics.listen:
            from snapwatch.run.metrics import Metrics, start_server  # noqa: PLC0415

            self.metrics = Metrics()
            self.server = start_server(self.metrics, config.metrics.listen)

    def exchanges(self, exchanges: Iterable[Exchange]) -> None:
        if self.metrics is not None:
            for ex in exchanges:
                self.metrics.observe(ex)

    def gap(self, gap: Gap) -> None:
        if self.metrics is not None:
            self.metrics.log_gap(gap.path, gap.lost_bytes or 0)

    def state_error(self, reason: str) -> None:
        if self.metrics is not None:
            self.metrics.state_error(reason)

    def report(self, files: list[FileView], verdicts: Mapping[str, str], outbox: Outbox, sd: SystemdNotifier,
               active_silences: Callable[[], int]) -> None:
        """The systemd status line; with metrics, their gauges and counters too."""
        incidents = sum(len(f.open_incidents) for f in files)
        pending = outbox.counts().get("pending", 0)
        sd.status(f"following {len(files)} file(s); {incidents} open incident(s); {pending} alert(s) pending")
        if self.metrics is not None:
            self.refresh(files, verdicts, outbox.target_counts())
            self.metrics.set_silences(active_silences())

    def refresh(self, files: Iterable[FileView], verdicts: Mapping[str, str],
                target_counts: Mapping[str, Mapping[str, int]]) -> None:
        """Gauges that describe the present: lag, streaks, open incidents, the outbox; delivery counters."""
        metrics = self.metrics
        if metrics is None:
            return
        open_pairs: list[tuple[str, str]] = []
        for f in files:
            if f.checkpoint is not None:
                try:
                    size = os.stat(f.path).st_size
                except OSError:
                    size = f.checkpoint.offset
                same_file = f.checkpoint.inode == 0 or size >= f.checkpoint.offset
                metrics.set_lag(f.path, size - f.checkpoint.offset if same_file else size)
            for rule, length in f.streaks.items():
                metrics.set_streak(f.path, rule.value, length)
            open_pairs.extend((i.rule.value, verdicts.get(i.id, "unknown")) for i in f.open_incidents)
        metrics.set_open_incidents(open_pairs)
        metrics.set_outbox(target_counts)
        # The outbox keeps totals; the counters grow by what changed since the last look.
        for target, counts in target_counts.items():
            for state, outcome in (("delivered", "delivered"), ("failed", "expired")):
                now, before = counts.get(state, 0), self._seen_outcomes.get((target, state), 0)
                if now > before:
                    metrics.count_alert(target, outcome, now - before)
                self._seen_outcomes[(target, state)] = now

    def close(self) -> None:
        if self.server is not None:
            self.server.close()


class Reposter:
    """Alertmanager forgets an alert that is not repeated: re-post each open incident's latest message."""

    def __init__(self, target: AlertmanagerTarget, timeout: float) -> None:
        self.target, self.timeout = target, timeout
        from snapwatch.alert.alertmanager import ResendSchedule  # noqa: PLC0415

        self.schedule = ResendSchedule()
        self.open_messages: dict[str, Message] = {}
        self.last_posted: dict[str, datetime] = {}
        self.ended: dict[str, Message] = {}  # resolutions handed out while a re-post may be in flight
        self._task: asyncio.Task[None] | None = None

    def handed_out(self, alert: Alert, message: Message, now: datetime) -> None:
        """Track what the outbox just took: the latest message of an open incident, or its end."""
        if alert.incident is None:
            return
        incident_id = alert.incident.id
        if alert.kind is AlertKind.RESOLVED:
            self.open_messages.pop(incident_id, None)  # from now on only the resolve may reach Alertmanager
            self.last_posted.pop(incident_id, None)
            self.ended[incident_id] = message
        elif alert.kind in (AlertKind.OPENED, AlertKind.UPDATE, AlertKind.REMINDER):
            self.open_messages[incident_id] = message
            self.last_posted[incident_id] = now

    def keep_only(self, open_ids: Collection[str]) -> None:
        """Forget incidents no longer open that ended without a RESOLVED alert (``send_resolved: false``)."""
        for incident_id in set(self.open_messages).difference(open_ids):
            del self.open_messages[incident_id]
            self.last_posted.pop(incident_id, None)

    def tick(self, now: datetime) -> None:
        """Re-post what is due, in a worker thread; a lost re-post is replaced by the next one."""
        if self._task is not None and not self._task.done():
            return
        self.ended.clear()  # no re-post in flight: nothing left to end again
        due = self.schedule.due(self.open_messages, self.last_posted, now)
        if not due:
            return
        for incident_id, _ in due:
            self.last_posted[incident_id] = now  # whether or not it lands: a failing cluster waits an interval
        self._task = asyncio.get_running_loop().create_task(self._post(due))

    async def _post(self, due: list[tuple[str, Message]]) -> None:
        # Alertmanager keeps the latest post: a re-post landing after the resolution would revive the alert.
        for incident_id, message in due:
            if incident_id not in self.open_messages:
                continue  # resolved since it was due
            try:
                await asyncio.to_thread(self.target.send, message, self.timeout)
                if incident_id in self.ended:  # resolved while this re-post was in flight: end it again
                    await asyncio.to_thread(self.target.send, self.ended[incident_id], self.timeout)
            except Exception as exc:  # a failed re-post is retried at the next interval
                log.warning("alertmanager re-post failed: %s", exc)
