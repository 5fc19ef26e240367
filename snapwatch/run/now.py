"""``snapwatch diagnose``: what holds now: the open incidents or since when all is healthy, and the ranked causes."""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from snapwatch.alert.inhibit import explains
from snapwatch.codec import duration, iso
from snapwatch.config.models import Config, SourceConfig
from snapwatch.detect.detector import Detector
from snapwatch.detect.history import History
from snapwatch.detect.pipeline import SourcePipeline
from snapwatch.diagnose.text import diagnosis_sections, sections_text
from snapwatch.errors import SourceError
from snapwatch.ingest.lines import LineSplitter
from snapwatch.model import Diagnosis, Incident, Rule, TransitionKind
from snapwatch.run.evidence import diagnose_incident, gap_text, load_context
from snapwatch.run.probe import Prober
from snapwatch.store.state import Store

RECENT_BYTES = 16 << 20  # without state, this much of each log's end is "the recent log"


@dataclass(frozen=True, slots=True)
class Now:
    """What ``diagnose`` reports: the open incidents (with what each is folded into, if anything), the ranked
    diagnosis of the worst one (or of the present), and, with none open, since when all is healthy."""

    now: datetime
    incidents: tuple[tuple[Incident, Incident | None], ...]
    diagnosis: Diagnosis
    healthy_since: datetime | None = None
    last_ok: datetime | None = None
    last_status: int | None = None

    def to_json(self) -> dict[str, object]:
        incidents = [{"id": i.id, "rule": i.rule.value, "source": i.source, "opened_at": iso(i.opened_at),
                      "last_at": iso(i.last_at), "responses": i.responses, "by_status": dict(i.by_status),
                      "inhibited_by": by.id if by is not None else None} for i, by in self.incidents]
        return {"now": self.now.isoformat(), "incidents": incidents, "healthy_since": iso(self.healthy_since),
                "last_2xx": iso(self.last_ok), **self.diagnosis.to_json()}


@dataclass(slots=True)
class _Followed:
    pipeline: SourcePipeline
    resolved_at: datetime | None = None  # the last incident that ended, as far as this log or state tells


def _from_state(store: Store | None, source: SourceConfig, path: str, config: Config) -> _Followed | None:
    saved = store.source_memory(path) if store is not None else None
    if not saved:
        return None
    detector = Detector.restore(config.rules, path, saved["detector"]) if "detector" in saved else None
    history = History.restore(saved["history"]) if "history" in saved else None
    ended = [r.resolved_at for r in store.incidents() if r.source == path and r.resolved_at] if store else []
    return _Followed(SourcePipeline(source, config.rules, label=path, detector=detector, history=history),
                     max(ended, default=None))


def _from_log(source: SourceConfig, path: str, config: Config) -> _Followed:
    followed = _Followed(SourcePipeline(source, config.rules, label=path))
    pipeline = followed.pipeline
    splitter = LineSplitter(source.max_line_bytes)
    try:
        size = os.path.getsize(path)
    except OSError:
        return followed

    def feed(data: bytes, *, end: bool = False) -> None:
        batch = pipeline.flush() if end else pipeline.feed(data)
        for t in batch.transitions:
            if t.kind is TransitionKind.RESOLVED:
                followed.resolved_at = t.incident.resolved_at

    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, size - RECENT_BYTES))
            if handle.tell():
                handle.readline()  # start at a line boundary
            while block := handle.read(1 << 20):
                feed(splitter.push(block))
    except OSError as exc:  # a directory, or no permission: one line, as scan says it
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    feed(splitter.flush())
    feed(b"", end=True)
    return followed


def _followed(config: Config, store: Store | None) -> list[_Followed]:
    found: list[_Followed] = []
    for source in config.sources:
        paths = sorted(glob.glob(source.path)) if glob.has_magic(source.path) else [source.path]
        for path in paths:
            found.append(_from_state(store, source, path, config) or _from_log(source, path, config))
    return found


def _open_incidents(followed: list[_Followed], config: Config) -> list[tuple[Incident, Incident | None, _Followed]]:
    """Every open incident, most important rule first, with the open incident that explains it (if any)."""
    everything = [(i, f) for f in followed for i in f.pipeline.detector.open_incidents()]
    rules = config.alerts.inhibit_rules
    out = []
    for incident, f in everything:
        by = next((o for o, _ in everything if o is not incident
                   and explains(rules, o.rule, o.source, incident.rule, incident.source)), None)
        out.append((incident, by, f))
    order = list(Rule)
    return sorted(out, key=lambda x: (x[1] is not None, order.index(x[0].rule), x[0].opened_at))


def diagnose_now(config: Config, environ: Mapping[str, str], now: datetime, *, probe: bool) -> Now:
    """What holds at ``now``: the open incidents, and the causes of the worst one (judged against the token source
    as the daemon saw it over time), or of the present state when none is open."""
    state = config.state_dir / "state.db"
    store = Store.open(config.state_dir) if state.exists() else None
    try:
        gaps = tuple(gap_text(g) for g in store.gaps()) if store is not None else ()
        history = tuple(store.env_history()) if store is not None else ()
        followed = _followed(config, store)
    finally:
        if store is not None:
            store.close()
    ctx = replace(load_context(config.token, environ), log_gaps=gaps, env_history=history)
    for each in followed:
        each.pipeline.tick(now)  # time has passed since the last record: the silence rule may apply now
    incidents = _open_incidents(followed, config)
    worst = incidents[0] if incidents else None
    pipeline = worst[2].pipeline if worst is not None else followed[0].pipeline if followed else \
        SourcePipeline(SourceConfig(path="(no log)"), config.rules)
    if (probe or config.probe.enabled) and ctx.configured is not None:
        last = pipeline.history.last_request
        pixel = ctx.configured.pixel or (last.pixel if last is not None else None)
        prober = Prober(config.probe.base_url, config.probe.timeout.total_seconds(), config.probe.min_interval)
        # A live request happens at the wall clock's time, whatever --now judges: Snap refuses test events
        # whose event_time is far from its own clock.
        result = prober.probe(ctx.configured.raw.reveal(), pixel or "", datetime.now(UTC))
        ctx = replace(ctx, probe=result) if result is not None else ctx
    diagnosis = diagnose_incident(pipeline.view(), worst[0] if worst is not None else None, ctx, now,
                                  latest=pipeline.history.last_request)
    if incidents:
        return Now(now, tuple((i, by) for i, by, _ in incidents), diagnosis)
    ok = [u.last_accepted for f in followed for u in f.pipeline.history.usages() if u.last_accepted is not None]
    first = [u.first_seen for f in followed for u in f.pipeline.history.usages()]
    ended = [f.resolved_at for f in followed if f.resolved_at is not None]
    since = max(ended, default=None) or min(first, default=None)
    return Now(now, (), diagnosis, since, max(ok, default=None), pipeline.history.last_status)


def render_now(report: Now) -> str:
    """For a person: the open incidents (rule, since when, exact counts) or the healthy state, then the findings."""
    lines: list[str] = []
    if report.incidents:
        lines.append(f"Open incidents: {len(report.incidents)}")
        for incident, by in report.incidents:
            counts = ", ".join(f"{s}: {n}" for s, n in incident.by_status) or "none"
            lines.append(f"  {incident.rule.value} on {incident.source} since {iso(incident.opened_at, 'seconds')} "
                         f"(open {duration(report.now - incident.opened_at)}): {incident.responses} failed "
                         f"({counts}); last record {iso(incident.last_at, 'seconds')}")
            if by is not None:
                lines.append(f"    folded into the {by.rule.value} incident, which explains it")
        lines.append("")
    else:
        ok = f"last 2xx at {iso(report.last_ok, 'seconds')}" if report.last_ok else "no 2xx in the recent log"
        if report.last_status is not None and not 200 <= report.last_status < 300:
            lines.append(f"No incident open, but the last answer was {report.last_status} ({ok}).")
        elif report.healthy_since is not None:
            lines.append(f"Healthy since {iso(report.healthy_since, 'seconds')} ({ok}): no incident open.")
        else:
            lines.append("No incident open, and no request in the recent log.")
        if report.diagnosis.findings:
            lines.append("Standing problems (warnings: nothing is failing because of them right now):")
        lines.append("")
    if report.diagnosis.findings or report.incidents:
        top = len(report.diagnosis.findings)
        lines += sections_text(diagnosis_sections(report.diagnosis, top=top))
    else:
        lines.append("Nothing to report: no finding applies.")
    return "\n".join(lines) + "\n"
