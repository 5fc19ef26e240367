"""``snapwatch diagnose``: the likely causes ranked now, from the token, the state or recent log, and the probe."""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from snapwatch.config import Config, SourceConfig
from snapwatch.detect.detector import Detector
from snapwatch.detect.history import History
from snapwatch.detect.pipeline import SourcePipeline
from snapwatch.diagnose.text import diagnosis_sections, sections_text
from snapwatch.errors import SourceError
from snapwatch.ingest.lines import LineSplitter
from snapwatch.model import Diagnosis, Incident, Rule
from snapwatch.run.evidence import diagnose_incident, gap_text, load_context
from snapwatch.run.probe import Prober
from snapwatch.store.state import Store

RECENT_BYTES = 16 << 20  # without state, this much of each log's end is "the recent log"


def _from_state(state_dir: Path, source: SourceConfig, path: str, config: Config) -> SourcePipeline | None:
    if not (state_dir / "state.db").exists():
        return None
    with Store.open(state_dir) as store:
        saved = store.source_memory(path)
    if not saved:
        return None
    detector = Detector.restore(config.rules, path, saved["detector"]) if "detector" in saved else None
    history = History.restore(saved["history"]) if "history" in saved else None
    return SourcePipeline(source, config.rules, label=path, detector=detector, history=history)


def _from_log(source: SourceConfig, path: str, config: Config) -> SourcePipeline:
    pipeline = SourcePipeline(source, config.rules, label=path)
    splitter = LineSplitter(source.max_line_bytes)
    try:
        size = os.path.getsize(path)
    except OSError:
        return pipeline
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, size - RECENT_BYTES))
            if handle.tell():
                handle.readline()  # start at a line boundary
            while block := handle.read(1 << 20):
                pipeline.feed(splitter.push(block))
    except OSError as exc:  # a directory, or no permission: one line, as scan says it
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    pipeline.feed(splitter.flush())
    pipeline.flush()
    return pipeline


def _pipelines(config: Config) -> list[SourcePipeline]:
    found: list[SourcePipeline] = []
    for source in config.sources:
        paths = sorted(glob.glob(source.path)) if glob.has_magic(source.path) else [source.path]
        for path in paths:
            found.append(_from_state(config.state_dir, source, path, config) or _from_log(source, path, config))
    return found


def _recorded_gaps(state_dir: Path) -> tuple[str, ...]:
    """The log gaps the daemon recorded, described for the diagnosis."""
    if not (state_dir / "state.db").exists():
        return ()
    with Store.open(state_dir) as store:
        return tuple(gap_text(g) for g in store.gaps())


def _worst_incident(pipelines: list[SourcePipeline]) -> tuple[SourcePipeline | None, Incident | None]:
    order = list(Rule)
    best: tuple[int, SourcePipeline, Incident] | None = None
    for pipeline in pipelines:
        for incident in pipeline.detector.open_incidents():
            rank = order.index(incident.rule)
            if best is None or rank < best[0]:
                best = (rank, pipeline, incident)
    if best is None:
        return (pipelines[0] if pipelines else None), None
    return best[1], best[2]


def diagnose_now(config: Config, environ: Mapping[str, str], now: datetime, *, probe: bool) -> Diagnosis:
    """Rank the causes of the worst open incident, or of the present state when none is open."""
    ctx = replace(load_context(config.token, environ), log_gaps=_recorded_gaps(config.state_dir))
    pipelines = _pipelines(config)
    for each in pipelines:
        each.tick(now)  # time has passed since the last record: the silence rule may apply now
    pipeline, incident = _worst_incident(pipelines)
    if pipeline is None:
        pipeline = SourcePipeline(SourceConfig(path="(no log)"), config.rules)
    if (probe or config.probe.enabled) and ctx.configured is not None:
        last = pipeline.history.last_request
        pixel = ctx.configured.pixel or (last.pixel if last is not None else None)
        prober = Prober(config.probe.base_url, config.probe.timeout.total_seconds(), config.probe.min_interval)
        # A live request happens at the wall clock's time, whatever --now judges: Snap refuses test events
        # whose event_time is far from its own clock.
        result = prober.probe(ctx.configured.raw.reveal(), pixel or "", datetime.now(UTC))
        ctx = replace(ctx, probe=result) if result is not None else ctx
    return diagnose_incident(pipeline.view(), incident, ctx, now)


def render_findings(diagnosis: Diagnosis) -> str:
    """The ranked findings for a person, as every output says a diagnosis (``diagnose.text``), all of them."""
    if not diagnosis.findings:
        return "Nothing to report: no finding applies.\n"
    return "\n".join(sections_text(diagnosis_sections(diagnosis, top=len(diagnosis.findings)))) + "\n"
