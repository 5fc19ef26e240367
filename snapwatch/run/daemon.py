"""The daemon: one asyncio loop that follows, detects, diagnoses and alerts; signals, reload, sd_notify.

The shell around the pure pipeline: per followed file a SourcePipeline restored from the store, and per
chunk one transaction with the checkpoint and what its lines produced (held while part of a response is
open), so a crash never counts a response twice nor loses one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sqlite3
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from snapwatch.alert.notify import Notifier, Target
from snapwatch.alert.targets import targets_for
from snapwatch.config.loading import load_config_places
from snapwatch.config.models import Config, SourceConfig
from snapwatch.detect.detector import Detector
from snapwatch.detect.pipeline import Batch, SourcePipeline
from snapwatch.errors import SnapwatchError
from snapwatch.model import Checkpoint, Diagnosis, Gap, Transition, TransitionKind
from snapwatch.run.followed import FollowedFile, Source, say_transition
from snapwatch.run.handout import build_alerting, hand_out, seed_reposter
from snapwatch.run.investigate import Investigator
from snapwatch.run.preflight import require_preflight
from snapwatch.run.report import attachment_for
from snapwatch.run.sdnotify import SystemdNotifier, monotonic_usec
from snapwatch.run.statefailure import StateFailure, StateTrouble, as_unavailable
from snapwatch.run.telemetry import Telemetry
from snapwatch.store.history import HistoryPruner
from snapwatch.store.silences import Silences
from snapwatch.store.state import Store
from snapwatch.tail.events import Chunk, Notice, NoticeKind
from snapwatch.tail.watch import Quiet

if TYPE_CHECKING:
    from snapwatch.alert.alertmanager import AlertmanagerTarget

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
TICK = 1.0  # seconds between timer checks (silence rule, due alerts, retries) when nothing happens
TIMER_EVERY = 0.25  # while events flow, the timers run at most this often (and at once after a transition)


def wall_clock() -> datetime:
    return datetime.now(UTC)


class Daemon:
    """Runs until stopped. ``run()`` returns the exit code (0 on a clean stop)."""

    def __init__(self, config: Config, config_path: Path | None = None, *, clock: Clock = wall_clock,
                 environ: Mapping[str, str] | None = None, host: str | None = None,
                 flush_after: float = 0.5, recheck: float = 5.0, console: TextIO | None = None,
                 store: Store | None = None, telemetry: Telemetry | None = None) -> None:
        self.config, self.config_path, self.clock = config, config_path, clock
        self.environ = os.environ if environ is None else environ
        self.host = host or socket.gethostname()
        self.flush_after, self.recheck = flush_after, recheck
        self.console = console  # where alerts go when no target is configured (default: stderr)
        self.store = store if store is not None else Store.open(config.state_dir)
        self.sd = SystemdNotifier(self.environ)
        self.sources: dict[str, Source] = {}
        self.events: asyncio.Queue[tuple[Source, Chunk | Gap | Notice | Quiet]] = asyncio.Queue(maxsize=256)
        self.stop_requested = asyncio.Event()
        self.reload_requested = False
        self.telemetry = telemetry if telemetry is not None else Telemetry(config)
        self._apply_alerting(config, *targets_for(config.alerts, self.console))
        self.trouble = StateTrouble(self.host, self.telemetry, lambda: self.notifier.targets,
                                    config.alerts.timeout.total_seconds())
        self.suspended_until: float | None = None  # loop time of the next try while the state cannot be saved
        self._late_failure: BaseException | None = None  # a state failure met by a background delivery round
        self.investigator = Investigator(config, self.environ, clock, self.policy,
                                         on_new_evidence=self._rediagnose_all, store=self.store)
        self._delivery: asyncio.Task[object] | None = None
        self._history = HistoryPruner(self.store.conn)
        # the loop time the timers last ran, and whether a transition since owes them a run at once
        self._timers_at, self._timers_owed = 0.0, True

    # -- setup and reload -------------------------------------------------------------------------

    def _apply_alerting(self, config: Config, targets: list[Target], manager: AlertmanagerTarget | None) -> None:
        self.policy, self.outbox, self.reposter, self.notifier = build_alerting(self.store, config.alerts, self.host,
                                                                                targets, manager)

    def _add_source(self, config: SourceConfig) -> None:
        self.sources[config.path] = Source(config, self.store.checkpoints())

    def _drop_source(self, path: str) -> None:
        self.sources.pop(path).stop()

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
            new, places = load_config_places(self.config_path, self.environ)
            require_preflight(new, places)  # what `run` would refuse at a start, a reload refuses too
            # Before anything changes: a target URL that cannot be used refuses the reload like a bad key.
            targets, manager = targets_for(new.alerts, self.console)  # NotifyError for an unusable URL
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
            if source_config.path not in self.sources and self.suspended_until is None:  # else: at the resume
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
        # a new Alertmanager target still owes the open incidents their re-posts
        seed_reposter(self.reposter, self.policy, self.clock(), self.investigator.token_identity())
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
        seed_reposter(self.reposter, self.policy, self.clock(), self.investigator.token_identity())
        for source_config in self.config.sources:
            self._add_source(source_config)
        try:
            await self._catch_up()
        except StateFailure as exc:
            self._state_failed(exc)
        self.sd.ready()
        log.info("following %d source(s); ready", len(self.sources))
        for source in self.sources.values():
            self._start(source)
        watchdog = self.sd.watchdog_interval()
        next_watchdog = loop.time()
        try:
            while not self.stop_requested.is_set():
                timeout = TICK if watchdog is None else min(TICK, max(0.0, next_watchdog - loop.time()))
                try:
                    await self._step(timeout)
                except StateFailure as exc:
                    self._state_failed(exc)
                if watchdog is not None and loop.time() >= next_watchdog:
                    self.sd.watchdog()  # from the loop itself: a hung loop is restarted, not kept alive
                    next_watchdog = loop.time() + watchdog
        finally:
            await self._shutdown()
        return 0

    async def _step(self, timeout: float) -> None:
        """One turn of the loop: events (or, while the state cannot be saved, waiting), reload, timers."""
        if self.suspended_until is None:
            await self._next_events(timeout)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_requested.wait(), timeout)
        if self.reload_requested:
            self.reload_requested = False
            self.reload()
        if self._late_failure is not None:
            failure, self._late_failure = self._late_failure, None
            raise failure
        if self.suspended_until is not None:
            if asyncio.get_running_loop().time() >= self.suspended_until and not self.stop_requested.is_set():
                self._resume()
            return
        now = asyncio.get_running_loop().time()
        if self._timers_owed or now - self._timers_at >= TIMER_EVERY:
            self._timers_owed, self._timers_at = False, now
            self._on_timer()

    def _state_failed(self, exc: BaseException) -> None:
        """Stop following and wait: what was read since the last save is dropped, to be read again later."""
        conn = self.store.conn
        if conn.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        wait = self.trouble.failed(exc, self.clock())
        for source in self.sources.values():
            source.stop()
        self.sources = {}
        while not self.events.empty():
            self.events.get_nowait()
        self.suspended_until = asyncio.get_running_loop().time() + wait
        self.sd.status(f"cannot save the state; following paused: {self.trouble.reason}")

    def _resume(self) -> None:
        """Try a save; when it works, follow again from the saved positions (as after a restart)."""
        self.store.check_writable()
        self.suspended_until = None
        self.trouble.saved(self.clock())
        for source_config in self.config.sources:
            self._add_source(source_config)
            self._start(self.sources[source_config.path])

    def _request_reload(self) -> None:
        self.reload_requested = True  # acted on by the loop within TICK

    def _start(self, source: Source) -> None:
        source.task = asyncio.get_running_loop().create_task(source.pump(self.events, self.flush_after, self.recheck))

    async def _catch_up(self) -> None:
        """Read every source's backlog before READY=1, so 'ready' means 'caught up'; SIGTERM still stops it."""
        for source in self.sources.values():
            while not self.stop_requested.is_set():
                for event in source.follower.poll():
                    self._handle(source, event)
                if not source.follower.behind:
                    break
                self.sd.extend_timeout(60)
                await asyncio.sleep(0)  # lets the loop run the signal handlers between budgets
        for f in self._files():  # "ready" means caught up and saved
            self._commit(f)

    async def _next_events(self, timeout: float) -> None:
        try:
            async with asyncio.timeout(timeout):  # unlike wait_for, no task per wait
                source, event = await self.events.get()
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
            loud = event.kind in (NoticeKind.ERROR, NoticeKind.REFUSED)
            log.log(logging.WARNING if loud else logging.INFO, "%s: %s", event.path, event.detail)

    def _after_batch(self, f: FollowedFile, batch: Batch, checkpoint: Checkpoint | None) -> None:
        now = self.clock()
        diagnoses: dict[str, Diagnosis] = {}  # incident id → its diagnosis as it opened, for later transitions
        for transition in batch.transitions:
            self._on_transition(f.pipeline, transition, diagnoses, batch, now)
        new_token = len(f.pipeline.assembler.tokens) > f.tokens_known  # the backend sends a token not seen before
        f.tokens_known = len(f.pipeline.assembler.tokens)
        if batch.exchanges:  # those that just opened were just diagnosed
            self.investigator.notice(f.pipeline, new_token, exclude=batch.opened.keys())
        f.owe(batch, checkpoint)
        if any(t.kind is not TransitionKind.UPDATED for t in batch.transitions):
            self._commit(f)  # an incident opened or resolved: saved at once; other batches with the timers

    def _commit(self, f: FollowedFile) -> None:
        """Save in one transaction what ``f`` owes since the last save, unless a response is still partly held."""
        if f.dirty and not f.pipeline.assembler.held_bytes:
            owed = f.commit(self.store, self.investigator.verdicts)
            self.telemetry.exchanges(owed.exchanges)  # once saved: what is read again after a failed save counts once

    def _files(self) -> list[FollowedFile]:
        """Every file followed, of every source."""
        return [f for source in self.sources.values() for f in source.files.values()]

    def _on_transition(self, pipeline: SourcePipeline, t: Transition, diagnoses: dict[str, Diagnosis],
                       batch: Batch, now: datetime) -> None:
        incident = t.incident
        self._timers_owed = True
        # As it opened (from the view then; a clock-opened one, silence, has none), and finally as it resolved.
        judged = self.investigator.judge(pipeline, t, batch.opened.get(incident.id), batch.recovered.get(incident.id))
        if judged is not None:
            diagnoses[incident.id] = judged
        diagnosis = diagnoses.get(incident.id)
        if t.kind is not TransitionKind.UPDATED:
            say_transition(t, self.investigator.verdicts.get(incident.id, "unknown"))
        self.policy.on_transition(t, diagnosis, now)

    def _on_timer(self) -> None:
        """Token refresh, silence, what is owed saved, alerts handed out and delivered, status and metrics."""
        now = self.clock()
        if self.investigator.refresh_token():  # a new token in the .env while incidents may be open
            self._rediagnose_all()
        for f in self._files():
            transitions = f.pipeline.tick(now)
            if transitions:
                self._after_batch(f, Batch(transitions=transitions), None)
            self._commit(f)
        self._hand_out_alerts(now)
        if self._delivery is None or self._delivery.done():
            self._delivery = asyncio.get_running_loop().create_task(self._deliver(self.notifier, now))
        if self.reposter is not None:
            self.reposter.keep_only({i.id for f in self._files() for i in f.pipeline.detector.open_incidents()})
            self.reposter.tick(now)
        self._report_status()
        self._history.prune_if_due(now, self.config.history.retention)

    async def _deliver(self, notifier: Notifier, now: datetime) -> None:
        try:
            await notifier.deliver_due(now)
        except StateFailure as exc:  # the loop handles it like any other failed save
            self._late_failure = exc

    def _rediagnose_all(self) -> None:
        for f in self._files():
            self.investigator.rediagnose(f.pipeline)

    def _hand_out_alerts(self, now: datetime) -> None:
        pipelines = [f.pipeline for f in self._files()]
        hand_out(self.store, self.policy, self.notifier, self.reposter, now, self.investigator.token_identity,
                 lambda alert: attachment_for(self.store, self.config, alert, now, self.host),
                 lambda: self.investigator.refresh(pipelines))  # what goes out says what holds now

    def _report_status(self) -> None:
        for source in self.sources.values():
            source.say_problems()
        self.telemetry.report([view for source in self.sources.values() for view in source.views()],
                              self.investigator.verdicts, self.outbox, self.sd,
                              lambda: len(Silences(self.store.conn).active(self.clock())))

    async def _shutdown(self) -> None:
        """Stop reading, save what was processed, give the outbox one bounded try."""
        self.sd.stopping()
        for source in self.sources.values():
            source.stop()
        await asyncio.gather(*(s.task for s in self.sources.values() if s.task), return_exceptions=True)
        if self.suspended_until is None:
            try:
                for f in self._files():
                    self._commit(f)
            except StateFailure as exc:  # read again from the last save at the next start
                log.error("stopping without saving the last batches: %s", as_unavailable(exc))
        now = self.clock()
        if self._delivery is not None and not self._delivery.done():
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._delivery, 5.0)
        if self.suspended_until is None:
            try:
                self._hand_out_alerts(now)
                await asyncio.wait_for(self.notifier.deliver_due(now), 5.0)
            except TimeoutError:
                pass
            except StateFailure as exc:
                log.error("stopping without the last delivery round: %s", as_unavailable(exc))
        self.trouble.join(2.0)
        self.investigator.close()
        self.notifier.close()
        self.telemetry.close()
        self.store.close()
        self.sd.close()
        log.info("stopped")
