"""The daemon: one asyncio loop that follows, detects, diagnoses and alerts; signals, reload, sd_notify.

This is the shell around the pure pipeline and the only place with global state. Per followed file
it keeps a SourcePipeline (restored from the state store), and for every chunk the follower hands
over it commits, in one transaction, the checkpoint with the counters, detector and history that the
chunk's lines produced. While the record assembler still holds part of a response (its JSON body not
yet closed) the commit waits, so a crash never counts a response twice nor loses one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from snapwatch.alert.messages import render
from snapwatch.alert.notify import Notifier, Target
from snapwatch.alert.policy import AlertPolicy
from snapwatch.alert.targets import targets_for
from snapwatch.config import Config, SourceConfig, load_config
from snapwatch.detect.detector import Detector
from snapwatch.detect.pipeline import Batch, SourcePipeline, SourceView
from snapwatch.errors import SnapwatchError
from snapwatch.model import Checkpoint, Diagnosis, Gap, Incident, Transition, TransitionKind
from snapwatch.run.followed import FollowedFile, Owed, Source
from snapwatch.run.investigate import Investigator
from snapwatch.run.sdnotify import SystemdNotifier, monotonic_usec
from snapwatch.run.telemetry import FileView, Reposter, Telemetry
from snapwatch.store.outbox import Outbox
from snapwatch.store.state import IncidentRow, Store
from snapwatch.tail.follow import Chunk, Notice
from snapwatch.tail.watch import Quiet

if TYPE_CHECKING:
    from snapwatch.alert.alertmanager import AlertmanagerTarget

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
TICK = 1.0  # seconds between timer checks (silence rule, due alerts, retries) when nothing happens


def wall_clock() -> datetime:
    return datetime.now(UTC)


class Daemon:
    """Runs until stopped. ``run()`` returns the exit code (0 on a clean stop)."""

    def __init__(self, config: Config, config_path: Path | None = None, *, clock: Clock = wall_clock,
                 environ: Mapping[str, str] | None = None, host: str | None = None,
                 flush_after: float = 0.5, recheck: float = 5.0, console: TextIO | None = None) -> None:
        self.config = config
        self.config_path = config_path
        self.clock = clock
        self.environ = os.environ if environ is None else environ
        self.host = host or socket.gethostname()
        self.flush_after, self.recheck = flush_after, recheck
        self.console = console  # where alerts go when no target is configured (default: stderr)
        self.store = Store.open(config.state_dir)
        self.sd = SystemdNotifier(self.environ)
        self.sources: dict[str, Source] = {}
        self.events: asyncio.Queue[tuple[Source, Chunk | Gap | Notice | Quiet]] = asyncio.Queue(maxsize=256)
        self.stop_requested = asyncio.Event()
        self.reload_requested = False
        self.telemetry = Telemetry(config)
        self._apply_alerting(config, *self._targets(config))
        self.investigator = Investigator(config, self.environ, clock, self.policy,
                                         on_new_evidence=self._rediagnose_all)
        self._delivery: asyncio.Task[object] | None = None

    # -- setup and reload -------------------------------------------------------------------------

    def _targets(self, config: Config) -> tuple[list[Target], AlertmanagerTarget | None]:
        """The alert targets ``config`` names; raises NotifyError for a URL that cannot be used."""
        return targets_for(config.alerts, self.console)

    def _apply_alerting(self, config: Config, targets: list[Target], manager: AlertmanagerTarget | None) -> None:
        alerts = config.alerts
        self.policy = AlertPolicy(self.store.conn, alerts, self.host)
        self.outbox = Outbox(self.store.conn)
        self.reposter: Reposter | None = None
        if manager is not None:
            self.reposter = Reposter(manager, alerts.timeout.total_seconds())
        self.notifier = Notifier(self.outbox, targets, timeout=alerts.timeout.total_seconds(), max_age=alerts.max_age)

    def _add_source(self, config: SourceConfig) -> None:
        self.sources[config.path] = Source(config, self.store.checkpoints())

    def _drop_source(self, path: str) -> None:
        source = self.sources.pop(path)
        if source.task is not None:
            source.task.cancel()
        source.follower.close()

    def _pipeline(self, source: Source, path: str) -> FollowedFile:
        found = source.files.get(path)
        if found is None:
            found = source.files[path] = FollowedFile.restored(source.config, path, self.config.rules,
                                                               self.store.source_memory(path))
        return found

    def reload(self) -> None:
        """Load the config again; keep running on the old one when the new one is invalid."""
        self.sd.reloading(monotonic_usec())
        try:
            if self.config_path is None:
                raise SnapwatchError("no config file to reload (started without -c)")
            new = load_config(self.config_path, self.environ)
            # Before anything changes: a target URL that cannot be used refuses the reload like a bad key.
            targets, manager = self._targets(new)
        except SnapwatchError as exc:
            reason = str(exc).splitlines()[0]
            log.error("reload refused, still running on the previous config: %s", reason)
            self.sd.ready()
            return
        old_paths, new_paths = set(self.sources), {s.path for s in new.sources}
        for path in old_paths - new_paths:
            self._drop_source(path)
            log.info("stopped following %s", path)
        if new.rules != self.config.rules:
            for source in self.sources.values():
                for path, f in source.files.items():
                    f.pipeline.detector = Detector.restore(new.rules, path, f.pipeline.detector.snapshot())
        changed = {s.path for s in new.sources if s.path in self.sources and s != self.sources[s.path].config}
        self.config = new
        for path in changed:  # the format or zone changed: follow it anew from its checkpoint
            self._drop_source(path)
        for source_config in new.sources:
            if source_config.path not in self.sources:
                self._add_source(source_config)
                self._start(self.sources[source_config.path])
                log.info("following %s", source_config.path)
        old_notifier = self.notifier
        if self._delivery is not None and not self._delivery.done():
            # its round still sends on its worker threads: close it once that round is over
            self._delivery.add_done_callback(lambda _round: old_notifier.close())
        else:
            old_notifier.close()
        self._apply_alerting(new, targets, manager)
        self.investigator.configure(new, self.policy)
        self._seed_reposter()  # a new Alertmanager target still owes the open incidents their re-posts
        log.info("configuration reloaded from %s", self.config_path)
        self.sd.ready()

    # -- the loop ---------------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for signum, handler in ((signal.SIGTERM, self.stop_requested.set), (signal.SIGINT, self.stop_requested.set),
                                (signal.SIGHUP, self._request_reload)):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, handler)
        self.investigator.remember_verdicts({i.id: i.verdict for i in self.store.incidents(open_only=True)
                                             if i.verdict})
        self._seed_reposter()
        for source_config in self.config.sources:
            self._add_source(source_config)
        self._catch_up()
        self.sd.ready()
        log.info("following %d source(s); ready", len(self.sources))
        for source in self.sources.values():
            self._start(source)
        watchdog = self.sd.watchdog_interval()
        next_watchdog = loop.time()
        try:
            while not self.stop_requested.is_set():
                timeout = TICK if watchdog is None else min(TICK, max(0.0, next_watchdog - loop.time()))
                await self._next_events(timeout)
                if watchdog is not None and loop.time() >= next_watchdog:
                    self.sd.watchdog()  # from the loop itself: a hung loop is restarted, not kept alive
                    next_watchdog = loop.time() + watchdog
                if self.reload_requested:
                    self.reload_requested = False
                    self.reload()
                self._on_timer()
        finally:
            await self._shutdown()
        return 0

    def _request_reload(self) -> None:
        self.reload_requested = True  # acted on by the loop within TICK

    def _start(self, source: Source) -> None:
        source.task = asyncio.get_running_loop().create_task(self._pump(source))

    async def _pump(self, source: Source) -> None:
        try:
            async for event in source.follower.events(flush_after=self.flush_after, recheck=self.recheck):
                await self.events.put((source, event))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("following %s failed; retrying", source.config.path)
            await asyncio.sleep(self.recheck)
            if self.sources.get(source.config.path) is source:
                self._start(source)

    def _catch_up(self) -> None:
        """Read every source's backlog before READY=1, so 'ready' means 'caught up'."""
        for source in self.sources.values():
            while True:
                for event in source.follower.poll():
                    self._handle(source, event)
                if not source.follower.behind:
                    break
                self.sd.extend_timeout(60)

    async def _next_events(self, timeout: float) -> None:
        try:
            source, event = await asyncio.wait_for(self.events.get(), timeout)
        except TimeoutError:
            return
        self._handle(source, event)
        while not self.events.empty():  # drain what queued meanwhile before the timers run
            source, event = self.events.get_nowait()
            self._handle(source, event)

    # -- events -----------------------------------------------------------------------------------

    def _handle(self, source: Source, event: Chunk | Gap | Notice | Quiet) -> None:
        if isinstance(event, Chunk):
            f = self._pipeline(source, event.path)
            batch = f.pipeline.feed(event.data) if event.data else Batch()
            self._after_batch(f, batch, event.checkpoint)
        elif isinstance(event, Quiet):
            for f in source.files.values():
                if f.pipeline.assembler.held_bytes:
                    self._after_batch(f, f.pipeline.flush(end_of_input=False), f.checkpoint)
        elif isinstance(event, Gap):
            lost = "an unknown number of" if event.lost_bytes is None else str(event.lost_bytes)
            log.warning("log gap in %s: %s bytes lost before they could be read (%s)", event.path, lost,
                        event.reason)
            self.store.commit_batch(None, path=event.path, gaps=[event])
            self.telemetry.gap(event)
            self.investigator.gap(event)
        else:
            log.info("%s: %s %s", event.path, event.kind.value, event.detail)

    def _after_batch(self, f: FollowedFile, batch: Batch, checkpoint: Checkpoint | None) -> None:
        now = self.clock()
        self.telemetry.exchanges(batch.exchanges)
        diagnoses: dict[str, Diagnosis] = {}  # incident id → its diagnosis as it opened, for later transitions
        for transition in batch.transitions:
            self._on_transition(f.pipeline, transition, diagnoses, batch.opened, now)
        if len(f.pipeline.assembler.tokens) > f.tokens_known:  # the backend sends a token not seen before
            f.tokens_known = len(f.pipeline.assembler.tokens)
            self.investigator.rediagnose(f.pipeline, exclude=batch.opened.keys())  # those were just diagnosed
        f.owed.add(batch)
        if checkpoint is not None:
            f.checkpoint = checkpoint
        if f.pipeline.assembler.held_bytes:
            return  # part of a response is still held: commit once it completes (or the quiet flush)
        owed, f.owed = f.owed, Owed()
        self.store.commit_batch(f.checkpoint, path=f.pipeline.label, status_counts=owed.counts,
                                requests=owed.requests, last_record_at=owed.last_record_at,
                                source_memory=f.memory(), incident_changes=self._incident_rows(owed.incidents))

    def _incident_rows(self, latest: Mapping[str, Incident]) -> list[IncidentRow]:
        return [IncidentRow(i.id, i.rule.value, i.source, "open" if i.open else "resolved", i.opened_at,
                            i.resolved_at, self.investigator.verdicts.get(i.id),
                            json.dumps({"responses": i.responses, "by_status": dict(i.by_status)}))
                for i in latest.values()]

    def _on_transition(self, pipeline: SourcePipeline, t: Transition, diagnoses: dict[str, Diagnosis],
                       opened: Mapping[str, SourceView], now: datetime) -> None:
        incident = t.incident
        if t.kind is TransitionKind.OPENED:  # from the view as it opened; a clock-opened one (silence) has none
            diagnoses[incident.id] = self.investigator.diagnose_opened(pipeline, incident, opened.get(incident.id))
        diagnosis = diagnoses.get(incident.id)
        if t.kind is not TransitionKind.UPDATED:
            verdict = self.investigator.verdicts.get(incident.id, "unknown")
            log.warning("incident %s: %s on %s since %s (%d failed: %s) verdict %s", t.kind.value,
                        incident.rule.value, incident.source, incident.opened_at.isoformat(), incident.responses,
                        ", ".join(f"{s}×{n}" for s, n in incident.by_status), verdict)
        self.policy.on_transition(t, diagnosis, now)

    # -- timers -----------------------------------------------------------------------------------

    def _on_timer(self) -> None:
        now = self.clock()
        if self.investigator.refresh_token():  # a new token in the .env while incidents may be open
            self._rediagnose_all()
        for source in self.sources.values():
            for f in source.files.values():
                transitions = f.pipeline.tick(now)
                if transitions:
                    self._after_batch(f, Batch(transitions=transitions), None)
        self._hand_out_alerts(now)
        if self._delivery is None or self._delivery.done():
            self._delivery = asyncio.get_running_loop().create_task(self.notifier.deliver_due(now))
        if self.reposter is not None:
            self.reposter.keep_only({i.id for s in self.sources.values() for f in s.files.values()
                                     for i in f.pipeline.detector.open_incidents()})
            self.reposter.tick(now)
        self._report_status()

    def _rediagnose_all(self) -> None:
        for source in self.sources.values():
            for f in source.files.values():
                self.investigator.rediagnose(f.pipeline)

    def _hand_out_alerts(self, now: datetime) -> None:
        due_at = self.policy.next_due(now)
        if due_at is None or due_at > now:
            return  # nothing owed yet: no write transaction on an idle tick
        token_fp, token_kind = self.investigator.token_identity()
        conn = self.store.conn
        conn.execute("BEGIN IMMEDIATE")  # the policy and the outbox commit together (lifecycle.py)
        try:
            for alert in self.policy.due(now, token_fp, token_kind):
                message = self.notifier.enqueue(alert, now)
                if self.reposter is not None:
                    self.reposter.handed_out(alert, message, now)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _seed_reposter(self) -> None:
        """After a restart, Alertmanager still needs the open incidents repeated: start from what was said."""
        if self.reposter is None:
            return
        now = self.clock()
        token_fp, token_kind = self.investigator.token_identity()
        for alert in self.policy.announced_open(now, token_fp, token_kind):
            self.reposter.handed_out(alert, render(alert), now - self.reposter.schedule.interval)

    def _report_status(self) -> None:
        for source in self.sources.values():
            for path, f in source.files.items():
                for line in f.news(path):
                    log.warning("%s", line)
            if source.cuts.long_lines > source.cuts_said:
                log.warning("%s: %d more line(s) over max_line_bytes (%d) cut (%d in all since start)",
                            source.config.path, source.cuts.long_lines - source.cuts_said,
                            source.config.max_line_bytes, source.cuts.long_lines)
                source.cuts_said = source.cuts.long_lines
        views = [FileView(path, f.checkpoint, f.pipeline.detector.streak_lengths(),
                          f.pipeline.detector.open_incidents())
                 for s in self.sources.values() for path, f in s.files.items()]
        incidents = sum(len(v.open_incidents) for v in views)
        pending = self.outbox.counts().get("pending", 0)
        self.sd.status(f"following {len(views)} file(s); {incidents} open incident(s); {pending} alert(s) pending")
        if self.telemetry.metrics is not None:
            self.telemetry.refresh(views, self.investigator.verdicts, self.outbox.target_counts())

    async def _shutdown(self) -> None:
        """Stop reading, keep what was processed (committed per batch), give the outbox one bounded try."""
        self.sd.stopping()
        for source in self.sources.values():
            if source.task is not None:
                source.task.cancel()
        await asyncio.gather(*(s.task for s in self.sources.values() if s.task), return_exceptions=True)
        now = self.clock()
        self._hand_out_alerts(now)
        if self._delivery is not None and not self._delivery.done():
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._delivery, 5.0)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.notifier.deliver_due(now), 5.0)
        self.investigator.close()
        for source in self.sources.values():
            source.follower.close()
        self.notifier.close()
        self.telemetry.close()
        self.store.close()
        self.sd.close()
        log.info("stopped")


def run(config: Config, config_path: Path | None) -> int:
    """Run the daemon until SIGTERM/SIGINT."""
    async def main() -> int:
        return await Daemon(config, config_path).run()

    return asyncio.run(main())

