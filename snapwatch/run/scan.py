"""Offline scan: whole log files, rotated and gzip backups too, in time order, through the daemon's pipeline."""

from __future__ import annotations

import itertools
import os
import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import BinaryIO, TextIO

from snapwatch.alert.inhibit import explains
from snapwatch.codec import duration, iso
from snapwatch.config.models import Config, InhibitRule, SourceConfig, TokenConfig, format_duration
from snapwatch.detect.pipeline import Batch, Recovery, SourcePipeline, SourceView
from snapwatch.detect.timeline import TokenSwitch
from snapwatch.diagnose.text import diagnosis_sections, sections_text
from snapwatch.diagnose.traffic import LogCounts, log_findings
from snapwatch.errors import SourceError
from snapwatch.ingest.lines import LineSplitter
from snapwatch.model import Diagnosis, EnvState, Finding, Incident, ParseStats, TransitionKind
from snapwatch.run.evidence import diagnose_incident, load_context, security_findings
from snapwatch.tail.gzipped import GzipDamage, GzipStream
from snapwatch.tail.rotation import open_regular, regular

CHUNK = 1 << 20
# read_chunks' block size. Smaller than one would guess on purpose: every block is passed over
# several times (the splitter's copy, the cleaning checks, the marker search, the block regex) and a
# block that stays in the CPU cache between passes made the whole scan 10-15% faster than 1 MiB
# blocks (4 MiB ones were slower still); below 64 KiB the per-block calls start to show.
READ_BLOCK = 256 << 10
_ROTATED = re.compile(r"^(?P<base>.+?)(?:[.-](?P<n>\d{1,8}))?(?P<gz>\.gz)?$")

# Diagnoses an incident once it is final (resolved, or still open at the end of the input): from the source as
# it was when the incident opened, the incident as it stands then, and how it recovered (None: still open).
Diagnoser = Callable[[SourceView, Incident, Recovery | None], Diagnosis]


@dataclass(frozen=True, slots=True)
class LogFile:
    path: Path
    base: str  # the live file's name this one was rotated from
    age_rank: tuple[int, int]  # sorts oldest first: dateext backups by date, then .N (high N first), then live
    size: int


def _describe(path: Path) -> LogFile:
    match = _ROTATED.match(path.name)
    assert match is not None  # the pattern matches every name
    number = int(match.group("n")) if match.group("n") else None
    if number is None:
        rank = (2, 0)
    elif number > 10_000_000:  # a dateext suffix (name-20251203) is a date: newer dates are newer files
        rank = (0, number)
    else:
        rank = (1, -number)
    try:
        st = path.stat()
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    kind = regular(st)
    if kind is not None:  # a FIFO would hang the scan, a device never end
        raise SourceError(f"{path}: {kind}, not a regular file: scan reads only regular files")
    return LogFile(path, str(path.parent / match.group("base")), rank, st.st_size)


def order_files(paths: Iterable[str | Path]) -> list[LogFile]:
    """Files grouped by the log they belong to, each group oldest first (``.5`` … ``.1``, then the live file)."""
    files = [_describe(Path(p)) for p in dict.fromkeys(str(p) for p in paths)]
    return sorted(files, key=lambda f: (f.base, f.age_rank))


def read_chunks(path: Path, progress: Callable[[int], None] | None = None) -> Iterator[bytes]:
    """The file's bytes in large blocks (gzip decompressed); ``progress`` gets the bytes read.

    A damaged gzip file yields everything before the damage, then raises GzipDamage.
    """
    try:
        raw = os.fdopen(open_regular(str(path)), "rb")
    except OSError as exc:
        raise SourceError(f"{path}: cannot read: {exc.strerror or exc}") from None
    with raw:
        gz = raw.read(2) == b"\x1f\x8b"  # gzip magic: logrotate's compress, whatever the name says
        raw.seek(0)
        stream: GzipStream | BinaryIO = GzipStream(raw, str(path)) if gz else raw
        while block := stream.read(READ_BLOCK):
            if progress is not None:
                progress(len(block))
            yield block


@dataclass(slots=True)
class ScannedIncident:
    """An incident as scan reports it: its last snapshot, its final diagnosis, and the id of the incident it
    is folded into when an inhibit rule says that one explains it."""

    incident: Incident
    diagnosis: Diagnosis | None = None
    inhibited_by: str | None = None


@dataclass(slots=True)
class TokenSeen:
    """One token (by fingerprint) across the requests of a log."""

    fingerprint: str
    kind: str | None
    first_seen: datetime
    last_seen: datetime
    accepted: int = 0
    rejected: int = 0

    def to_json(self) -> dict[str, object]:
        return {"fingerprint": self.fingerprint, "kind": self.kind, "first_seen": iso(self.first_seen),
                "last_seen": iso(self.last_seen), "accepted": self.accepted, "rejected": self.rejected}


@dataclass(slots=True)
class ScanReport:
    """Everything ``scan`` found; ``to_json`` is the contract's ``scan --json``."""

    files: list[str] = field(default_factory=list)
    by_status: Counter[str] = field(default_factory=Counter)
    requests_by_api: Counter[str] = field(default_factory=Counter)
    incidents: list[ScannedIncident] = field(default_factory=list)
    tokens_seen: dict[str, TokenSeen] = field(default_factory=dict)  # by fingerprint, across every log
    security: list[Finding] = field(default_factory=list)
    stats: ParseStats = field(default_factory=ParseStats)
    # What a report draws: (log, minute, status) → responses, and (log, switch) in log order.
    minutes: dict[tuple[str, datetime, str], int] = field(default_factory=dict)
    switches: list[tuple[str, TokenSwitch]] = field(default_factory=list)
    log_gaps: list[GzipDamage] = field(default_factory=list)  # files read only up to their damage
    logs: list[LogCounts] = field(default_factory=list)  # how each log is written (unanswered, interleaved)

    @property
    def hygiene(self) -> list[Finding]:
        """Findings about the logs themselves: requests left unanswered, interleaved writers."""
        return log_findings(self.logs)

    def to_json(self) -> dict[str, object]:
        incidents = []
        for record in self.incidents:
            item: dict[str, object] = {
                "id": record.incident.id,
                "rule": record.incident.rule.value,
                "source": record.incident.source,
                "opened_at": iso(record.incident.opened_at),
                "resolved_at": iso(record.incident.resolved_at),
                "responses": record.incident.responses,
                "by_status": dict(record.incident.by_status),
            }
            if record.inhibited_by is not None:
                item["inhibited_by"] = record.inhibited_by
            if record.diagnosis is not None:
                item["diagnosis"] = record.diagnosis.to_json()
            incidents.append(item)
        return {
            "files": self.files,
            "responses": {"total": sum(self.by_status.values()), "by_status": dict(sorted(self.by_status.items()))},
            "requests": {"total": sum(self.requests_by_api.values()),
                         "by_api": dict(sorted(self.requests_by_api.items())),
                         "unanswered": self.stats.unanswered_requests},
            "tokens": [t.to_json() for t in sorted(self.tokens_seen.values(), key=lambda t: t.first_seen)],
            "incidents": incidents,
            "security": [f.to_json() for f in self.security],
            "hygiene": [f.to_json() for f in self.hygiene],
            "skipped": self.stats.to_json(),
            "log_gaps": [{"code": "log-gap", "path": d.name, "readable_bytes": d.at, "reason": d.reason}
                         for d in self.log_gaps],
        }




def scan_files(
    paths: Iterable[str | Path],
    config: Config,
    diagnoser: Diagnoser | None = None,
    progress: Callable[[int], None] | None = None,
) -> ScanReport:
    """Read every file once, oldest first per log, through one SourcePipeline per log; constant memory.

    Each incident is diagnosed once it is final: when it resolves, or at the end of the input while still
    open (so its evidence counts what it counted in all); only the open ones' opening views are kept.
    """
    files = order_files(paths)
    report = ScanReport(files=[str(f.path) for f in files])
    template = config.sources[0] if config.sources else SourceConfig(path="")
    records: dict[str, ScannedIncident] = {}
    for base, group in itertools.groupby(files, key=lambda f: f.base):
        source = replace(template, path=base)
        pipeline = SourcePipeline(source, config.rules, label=base, views_at_opening=diagnoser is not None)
        splitter = LineSplitter(source.max_line_bytes)
        views: dict[str, SourceView] = {}  # the open incidents' views as they opened
        for log_file in group:
            try:
                for block in read_chunks(log_file.path, progress):
                    _apply(pipeline.feed(splitter.push(block)), records, views, diagnoser)
            except GzipDamage as damage:  # what came before it is counted; the rest is a gap, said below
                report.log_gaps.append(damage)
            # A rotated file ends where the next begins: a line cut by rotation is finished here.
            _apply(pipeline.feed(splitter.flush()), records, views, diagnoser)
        _apply(pipeline.flush(), records, views, diagnoser)
        for incident_id, view in views.items():  # still open at the end of the input
            if diagnoser is not None:
                records[incident_id].diagnosis = diagnoser(view, records[incident_id].incident, None)
        _merge_source(report, pipeline, splitter, format_duration(source.pairing_timeout))
        minutes, switches = pipeline.timeline.take()
        report.minutes.update(((base, minute, status), n) for (minute, status), n in minutes.items())
        report.switches += [(base, s) for s in switches]
    report.incidents = sorted(records.values(), key=lambda r: r.incident.opened_at)
    _fold(report.incidents, config.alerts.inhibit_rules)
    return report


def _apply(batch: Batch, records: dict[str, ScannedIncident], views: dict[str, SourceView],
           diagnoser: Diagnoser | None) -> None:
    for transition in batch.transitions:
        incident = transition.incident
        record = records.get(incident.id)
        if record is None:
            record = records[incident.id] = ScannedIncident(incident)
            view = batch.opened.get(incident.id)
            if view is not None:
                views[incident.id] = view
        record.incident = incident
        if transition.kind is TransitionKind.RESOLVED:
            view = views.pop(incident.id, None)
            if diagnoser is not None and view is not None:
                record.diagnosis = diagnoser(view, incident, batch.recovered.get(incident.id))


def _fold(incidents: list[ScannedIncident], rules: list[InhibitRule]) -> None:
    """Mark each incident that an overlapping one explains (the alerts' inhibit rules, over the log's time)."""
    for target in incidents:
        t = target.incident
        for other in incidents:
            o = other.incident
            overlap = o.opened_at <= (t.resolved_at or o.opened_at) and (o.resolved_at or t.opened_at) >= t.opened_at
            if other is not target and overlap and explains(rules, o.rule, o.source, t.rule, t.source):
                target.inhibited_by = o.id
                break


def _merge_source(report: ScanReport, pipeline: SourcePipeline, splitter: LineSplitter, timeout: str) -> None:
    assembler = pipeline.assembler
    by_token = report.tokens_seen
    for fp, answers in pipeline.history.per_token().items():
        seen = by_token.get(fp)
        if seen is None:
            kind = assembler.tokens.get(fp)
            seen = by_token[fp] = TokenSeen(fp, kind.value if kind else None, answers.first_seen, answers.last_seen)
        seen.first_seen = min(seen.first_seen, answers.first_seen)
        seen.last_seen = max(seen.last_seen, answers.last_seen)
        seen.accepted += answers.accepted
        seen.rejected += answers.rejected
    if assembler.tokens_in_log:
        report.security.extend(security_findings(pipeline.view()))
    report.by_status.update(assembler.by_status)
    report.requests_by_api.update(assembler.requests_by_api)
    stats = assembler.stats
    for name in ParseStats.__dataclass_fields__:
        if name not in {"extra", "lines"}:
            setattr(report.stats, name, getattr(report.stats, name) + getattr(stats, name))
    for name, n in stats.extra.items():  # e.g. a regex source's unmatched_lines
        report.stats.extra[name] = report.stats.extra.get(name, 0) + n
    report.stats.long_lines += splitter.long_lines
    report.logs.append(LogCounts(pipeline.label, stats.unanswered_requests, assembler.interleaved, timeout))


def scan_with_diagnosis(paths: Iterable[str | Path], config: Config, token_config: TokenConfig,
                        environ: Mapping[str, str], *, progress: bool = False,
                        strict_token: bool = False) -> ScanReport:
    """``scan_files`` with each incident diagnosed when it opened, judged at log time (contract)."""
    paths = list(paths)  # read twice below (sizes for the bar, then the scan): a one-shot iterable must not run dry
    ctx = load_context(token_config, environ, check_service=False, strict=strict_token)
    configured = ctx.configured
    if configured is not None:
        # Today's file, whose past is unknown: it speaks for an incident still open at the end, or for one whose
        # failing requests carried the very token it holds (diagnose.case.Case.configured_at).
        ctx = replace(ctx, env_history=(EnvState(None, configured.fingerprint, configured.source),))

    def diagnoser(view: SourceView, incident: Incident, recovery: Recovery | None) -> Diagnosis:
        at = incident.resolved_at or incident.last_at  # token age is judged at the records' time, not the wall clock
        return diagnose_incident(view, incident, ctx, at, recovery=recovery)

    bar = ProgressBar(sum(f.size for f in order_files(paths))) if progress else None
    try:
        report = scan_files(paths, config, diagnoser, bar.advance if bar else None)
    finally:
        if bar is not None:
            bar.close()
    return report


class ProgressBar:
    """A one-line progress bar on stderr, redrawn at most once per percent."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self.total, self.done, self.shown = max(total, 1), 0, -1
        self.stream = stream or sys.stderr
        self.enabled = total >= 8 * CHUNK  # small inputs finish before a bar would help

    def advance(self, n: int) -> None:
        self.done += n
        percent = min(100, self.done * 100 // self.total)
        if self.enabled and percent != self.shown:
            self.shown = percent
            filled = percent // 4
            self.stream.write(f"\rscanning [{'#' * filled}{'.' * (25 - filled)}] {percent:3d}%")
            self.stream.flush()

    def close(self) -> None:
        if self.enabled and self.shown >= 0:
            self.stream.write("\r" + " " * 40 + "\r")
            self.stream.flush()


def render_text(report: ScanReport) -> str:
    """The human summary: counts, incidents with times, durations and verdicts, tokens, security notes."""
    data = report.to_json()
    responses, requests = report.by_status, report.requests_by_api
    lines = [f"Read {len(report.files)} file(s): {', '.join(report.files)}",
             f"Responses: {sum(responses.values())} ("
             + (", ".join(f"{code}: {n}" for code, n in sorted(responses.items())) or "none") + ")",
             f"Requests: {sum(requests.values())} ("
             + (", ".join(f"{api}: {n}" for api, n in sorted(requests.items())) or "none") + ")"]
    lines.append(f"Incidents: {len(report.incidents) or 'none'}")
    by_id = {r.incident.id: r.incident for r in report.incidents}
    for record in report.incidents:
        inc = record.incident
        end = inc.resolved_at
        span = f"resolved {end.isoformat()} after {duration(end - inc.opened_at)}" if end else "still open at the end"
        statuses = ", ".join(f"{s}×{n}" for s, n in inc.by_status)
        lines.append(f"  - {inc.rule.value} from {inc.opened_at.isoformat()}, {span}; "
                     f"{inc.responses} failed ({statuses})")
        if record.inhibited_by is not None:
            into = by_id[record.inhibited_by]
            lines.append(f"    folded into the {into.rule.value} incident from {into.opened_at.isoformat()}, "
                         "which explains it")
        elif record.diagnosis is not None:
            lines.extend(sections_text(diagnosis_sections(record.diagnosis), indent="    "))
    tokens = data["tokens"]
    assert isinstance(tokens, list)
    lines.append(f"Tokens seen in requests: {len(tokens) or 'none'}")
    lines.extend(f"  - {t['fingerprint']} ({t['kind']}): {t['accepted']} accepted, {t['rejected']} rejected, "
                 f"{t['first_seen']} … {t['last_seen']}" for t in tokens)
    # One line per kind of problem, naming every log it was found in.
    by_title: dict[str, tuple[list[str], list[str]]] = {}
    for finding in report.security:
        evidence, steps = by_title.setdefault(finding.title, ([], []))
        evidence.extend(finding.evidence)
        steps.extend(s for s in finding.remediation if s not in steps)
    lines.extend(f"Security: {title}" + "".join(f"\n  - {line}" for line in evidence)
                 + "".join(f"\n  {i}. {step}" for i, step in enumerate(steps, 1))
                 for title, (evidence, steps) in by_title.items())
    lines.extend(f"Log gap: {d}; the rest of it is lost" for d in report.log_gaps)
    lines.extend(f"Log: {finding.title}" + "".join(f"\n  - {line}" for line in finding.evidence)
                 for finding in report.hygiene)
    skipped = {k: v for k, v in report.stats.to_json().items() if v}
    if skipped:
        lines.append("Not taken at face value: " + ", ".join(f"{k} {v}" for k, v in skipped.items()))
    return "\n".join(lines) + "\n"
