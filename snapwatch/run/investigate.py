"""The daemon's running diagnosis: the evidence it keeps current (token, its history, probe, gaps) and each verdict."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Coroutine, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from snapwatch.alert.policy import AlertPolicy
from snapwatch.config.models import Config
from snapwatch.detect.pipeline import Recovery, SourcePipeline, SourceView
from snapwatch.model import Diagnosis, EnvState, Gap, Incident, Rule, TokenKind, Transition, TransitionKind
from snapwatch.run.configured import service_restart_pending
from snapwatch.run.evidence import Context, diagnose_incident, gap_text, load_context

if TYPE_CHECKING:
    from snapwatch.run.probe import Prober
    from snapwatch.store.state import Store

log = logging.getLogger(__name__)


class Investigator:
    """Keeps the evidence beyond the log current and diagnoses incidents at their own time.

    An incident is diagnosed the moment it opens, from the source as it was then (that view is kept while
    it is open); again with new evidence (the configured token changed, the backend sends a token not seen
    before, Snap's validate endpoint answered, systemd said whether the backend restarted) and before any
    alert about it goes out, so counts and time ranges are current (``policy.on_diagnosis`` decides whether
    that owes an update); and once more when it resolves: that judgement, with how it recovered, is final.
    Every change of the token source is recorded with its time (fingerprints only), so an incident is judged
    against the source as it was while it was open, across restarts too.
    """

    def __init__(self, config: Config, environ: Mapping[str, str], clock: Callable[[], datetime],
                 policy: AlertPolicy, on_new_evidence: Callable[[], None] = lambda: None,
                 store: Store | None = None) -> None:
        """``on_new_evidence`` is called when evidence found in the background (systemd's answer about
        the backend's restart) changed: the caller then has its open incidents diagnosed again."""
        self.environ, self.clock, self.store = environ, clock, store
        self.on_new_evidence = on_new_evidence
        self.verdicts: dict[str, str] = {}  # incident id → latest verdict, for log lines and the store
        self.views: dict[str, SourceView] = {}  # open incident id → the source as it was when it opened
        self.context = Context(config.token, env_history=tuple(store.env_history()) if store is not None else ())
        self._background: set[asyncio.Task[None]] = set()
        self._drifts: set[tuple[str | None, str, datetime | None]] = set()  # (source holds, requests carry, since)
        self.configure(config, policy)

    def configure(self, config: Config, policy: AlertPolicy) -> None:
        """Take a (re)loaded config. Recorded gaps stay evidence; a probe answer only about the same token."""
        self.config, self.policy = config, policy
        probe = config.probe
        self.prober: Prober | None = None
        if probe.enabled:
            from snapwatch.run.probe import Prober  # noqa: PLC0415  (httpx only where a probe is configured)

            self.prober = Prober(probe.base_url, probe.timeout.total_seconds(), probe.min_interval)
        fresh, before = load_context(config.token, self.environ), self.context
        self.context = replace(fresh, probe=before.probe if self._same_token(fresh, before) else None,
                               log_gaps=before.log_gaps, env_history=before.env_history)
        self._record_env()

    @staticmethod
    def _same_token(a: Context, b: Context) -> bool:
        return a.configured is not None and b.configured is not None and \
            a.configured.fingerprint == b.configured.fingerprint

    def _record_env(self) -> None:
        """Remember what the token source holds now, from its file's modification time (or now)."""
        configured = self.context.configured
        fp = configured.fingerprint if configured is not None else None
        source = configured.source if configured is not None else f"{self.config.token.key} (no token found)"
        at = configured.mtime if configured is not None and configured.mtime is not None else self.clock()
        history = self.context.env_history
        if history and (history[-1].fingerprint, history[-1].source) == (fp, source):
            return
        state = EnvState(at, fp, source)
        if self.store is not None:
            self.store.record_env(state)
        self.context = replace(self.context, env_history=(*history, state)[-64:])

    def remember_verdicts(self, verdicts: Mapping[str, str]) -> None:
        """Verdicts of incidents still open from before a restart."""
        self.verdicts.update(verdicts)

    def token_identity(self) -> tuple[str | None, TokenKind | None]:
        """The configured token's fingerprint and kind (never the token)."""
        configured = self.context.configured
        if configured is None:
            return None, None
        report = configured.report()
        return report.fingerprint, report.kind

    def gap(self, gap: Gap) -> None:
        self.context = replace(self.context, log_gaps=(*self.context.log_gaps, gap_text(gap)))

    def judge(self, pipeline: SourcePipeline, t: Transition, view: SourceView | None = None,
              recovery: Recovery | None = None) -> Diagnosis | None:
        """The diagnosis a transition carries: as the incident opened (from ``view``, the source at that
        moment, the pipeline's ``Batch.opened``; or the source now when the clock opened it: silence), or,
        when it resolved, the final one (with ``recovery``). None for an update of its counts."""
        incident = t.incident
        if t.kind is TransitionKind.OPENED:
            return self.diagnose_opened(pipeline, incident, view)
        if t.kind is not TransitionKind.RESOLVED:
            return None
        opened = self.views.pop(incident.id, None) or pipeline.view()
        diagnosis = diagnose_incident(opened, incident, self.context, incident.resolved_at or self.clock(),
                                      recovery=recovery)
        self.verdicts[incident.id] = diagnosis.verdict
        return diagnosis

    def diagnose_opened(self, pipeline: SourcePipeline, incident: Incident,
                        view: SourceView | None = None) -> Diagnosis:
        """Diagnose an incident as it opened (see ``judge``)."""
        self.refresh_token()
        now = self.clock()
        probe = self.context.probe
        if probe is not None and now - probe.at > self.config.probe.min_interval:
            self.context = replace(self.context, probe=None)  # an old answer is not evidence about now
        opened = self.views[incident.id] = view or pipeline.view(copy=True)
        diagnosis = diagnose_incident(opened, incident, self.context, now,
                                      latest=pipeline.history.last_request)
        self.verdicts[incident.id] = diagnosis.verdict
        self._maybe_probe(pipeline, incident)
        return diagnosis

    def refresh_token(self) -> bool:
        """Read the configured token again when its file changed: a new .env is itself evidence (drift).

        Returns whether the configured token itself changed (by fingerprint).
        """
        ctx, cfg = self.context, self.config.token
        path = cfg.env_file or cfg.file
        if path is None:
            return False
        try:
            mtime: datetime | None = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        except OSError:
            mtime = None
        known = ctx.configured.mtime if ctx.configured is not None else None
        if mtime == known:
            return False
        # systemctl may take a moment: ask it on a worker thread, never on the loop (the watchdog pings there).
        fresh = load_context(cfg, self.environ, check_service=False)
        same = self._same_token(fresh, ctx)
        # Snap's answer about the previous token says nothing about a new one.
        self.context = replace(fresh, probe=ctx.probe if same else None, log_gaps=ctx.log_gaps,
                               env_history=ctx.env_history)
        self._record_env()
        if cfg.service and fresh.configured is not None and fresh.configured.mtime is not None:
            self._spawn(self._check_restart(cfg.service, fresh.configured.mtime))
        return not same and (fresh.configured is not None or ctx.configured is not None)

    async def _check_restart(self, unit: str, env_mtime: datetime) -> None:
        pending = await asyncio.to_thread(service_restart_pending, unit, env_mtime)
        configured = self.context.configured
        if configured is None or configured.mtime != env_mtime:
            return  # the .env changed again meanwhile: a newer check is on its way
        if pending != self.context.restart_pending:
            self.context = replace(self.context, restart_pending=pending)
            self.on_new_evidence()

    def _spawn(self, work: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def rediagnose(self, pipeline: SourcePipeline, incident_id: str | None = None, exclude: Collection[str] = (),
                   *, rules: tuple[Rule, ...] = (Rule.AUTH_FAILURES,), counts: bool = False) -> None:
        """New evidence: diagnose the open incidents of ``rules`` again (all, or ``incident_id``, less ``exclude``),
        each from the source as it opened, with its counts and the requests logged as they are now."""
        now = self.clock()
        for current in pipeline.detector.open_incidents():
            if current.rule in rules and incident_id in (None, current.id) and current.id not in exclude:
                opened = self.views.get(current.id) or pipeline.view()
                diagnosis = diagnose_incident(opened, current, self.context, now,
                                              latest=pipeline.history.last_request)
                self.verdicts[current.id] = diagnosis.verdict
                if counts:  # the stored incident too: an alert's counts are exact when it goes out
                    self.policy.on_transition(Transition(TransitionKind.UPDATED, current), diagnosis, now)
                else:
                    self.policy.on_diagnosis(current.id, diagnosis, now)

    def notice(self, pipeline: SourcePipeline, new_token: bool, exclude: Collection[str] = ()) -> None:
        """Requests were read: diagnose the open auth incidents again when the backend sends a token not seen
        before, or when a request logged after the token source changed still carries another token (drift:
        once per source state and token)."""
        latest = pipeline.history.last_request
        if new_token or (latest is not None and self.context.env_history
                         and latest.token_fp not in (None, self.context.env_history[-1].fingerprint)):
            self.refresh_token()  # a backend restarted with a new .env: read it before judging the requests
        history = self.context.env_history
        drift: tuple[str | None, str, datetime | None] | None = None
        if latest is not None and latest.token_fp is not None and history:
            state = history[-1]
            if state.fingerprint not in (None, latest.token_fp) and (state.at is None or latest.at > state.at):
                drift = (state.fingerprint, latest.token_fp, state.at)
        if new_token or (drift is not None and drift not in self._drifts):
            if drift is not None:
                self._drifts.add(drift)
            self.rediagnose(pipeline, exclude=exclude)

    def refresh(self, pipelines: list[SourcePipeline]) -> None:
        """Before alerts go out: every open incident's counts, and its diagnosis with them, as they stand now."""
        self.refresh_token()
        for pipeline in pipelines:
            self.rediagnose(pipeline, rules=tuple(Rule), counts=True)

    def _maybe_probe(self, pipeline: SourcePipeline, incident: Incident) -> None:
        configured = self.context.configured
        if self.prober is None or incident.rule is not Rule.AUTH_FAILURES or configured is None:
            return
        first = incident.first_failure
        pixel = configured.pixel or (first.request.pixel if first is not None and first.request else None)
        if not pixel:
            return
        self._spawn(self._probe(pipeline, incident, pixel))

    async def _probe(self, pipeline: SourcePipeline, incident: Incident, pixel: str) -> None:
        configured, prober = self.context.configured, self.prober
        if configured is None or prober is None:
            return
        result = await prober.aprobe(configured.raw.reveal(), pixel, self.clock())
        if result is None:
            return  # rate-limited or one already in flight
        log.info("probe: Snap's validate endpoint says %s (%s)", result.outcome.value, result.detail)
        self.context = replace(self.context, probe=result)
        self.rediagnose(pipeline, incident.id)

    def close(self) -> None:
        for task in self._background:
            task.cancel()
