"""``snapwatch report``: the report's data from log files (read as ``scan`` reads them) or from the daemon's history."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta, tzinfo

from snapwatch.codec import incident_from
from snapwatch.config.models import Config
from snapwatch.detect.history import History, TokenAnswers
from snapwatch.detect.timeline import TokenSwitch
from snapwatch.errors import SnapwatchError
from snapwatch.model import Alert, AlertKind, Diagnosis, Gap, Incident
from snapwatch.redact import redact
from snapwatch.report import (
    Bucket,
    EnvChange,
    LogGap,
    Marker,
    ReportData,
    ReportDiagnosis,
    ReportFinding,
    ReportIncident,
    ReportToken,
    Restart,
    TokenChange,
    status_class,
)
from snapwatch.report.page import render_report
from snapwatch.run.configured import unit_started
from snapwatch.run.scan import ScanReport
from snapwatch.store.history import HistoryReader
from snapwatch.store.state import Store

log = logging.getLogger(__name__)

MARGIN = timedelta(minutes=30)  # shown around a single incident (``--incident``)


class NothingToReport(SnapwatchError):
    """No traffic and no incident in the range asked for (exit 1)."""


def _failed(status: str) -> bool:
    return status.isdigit() and not 200 <= int(status) < 300


def _buckets(minutes: Iterable[tuple[datetime, str, int]]) -> tuple[Bucket, ...]:
    by_minute: dict[datetime, dict[str, int]] = {}
    for minute, status, n in minutes:
        counts = by_minute.setdefault(minute, {})
        cls = status_class(int(status) if status.isdigit() else None)
        counts[cls] = counts.get(cls, 0) + n
    return tuple(Bucket(start, counts) for start, counts in sorted(by_minute.items()))


def _diagnosis(d: Diagnosis | None) -> ReportDiagnosis:
    if d is None:
        return ReportDiagnosis()
    findings = tuple(ReportFinding(f.code.value, f.severity.value, f.confidence.value, f.title, f.evidence,
                                   f.remediation) for f in d.findings)
    return ReportDiagnosis(findings, d.ruled_out)


def _incident(inc: Incident, diagnosis: Diagnosis | None, end: datetime) -> ReportIncident:
    return ReportIncident.of(id=inc.id, rule=inc.rule.value, source=inc.source, opened_at=inc.opened_at,
                             resolved_at=inc.resolved_at, duration=(inc.resolved_at or end) - inc.opened_at,
                             failed=inc.responses, by_status=dict(inc.by_status), diagnosis=_diagnosis(diagnosis))


def _switches(switches: Iterable[TokenSwitch]) -> list[Marker]:
    return [TokenChange(s.at, s.before, s.after) for s in switches]


def _gaps(gaps: Iterable[Gap], start: datetime, end: datetime) -> list[Marker]:
    out: list[Marker] = []
    for g in gaps:
        at = g.until or g.since
        if at is not None and start <= at <= end:
            lost = "an unknown number of bytes" if g.lost_bytes is None else f"{g.lost_bytes} bytes"
            out.append(LogGap(at, g.path, f"{lost} lost ({g.reason})"))
    return out


def _span(times: Iterable[datetime], fallback: datetime) -> tuple[datetime, datetime]:
    ordered = sorted(times)
    if not ordered:
        return fallback, fallback
    return ordered[0], ordered[-1] + timedelta(minutes=1)


def from_scan(scan: ScanReport, *, host: str, tz: tzinfo, now: datetime) -> ReportData:
    """What ``scan`` read, as a report: its totals, incidents and tokens exactly, minute by minute."""
    per_minute: dict[tuple[datetime, str], int] = {}
    for (_, minute, status), n in scan.minutes.items():
        per_minute[(minute, status)] = per_minute.get((minute, status), 0) + n
    times = [inc.incident.opened_at for inc in scan.incidents] + [m for m, _ in per_minute]
    start, end = _span(times, now)
    incidents = tuple(_incident(r.incident, r.diagnosis, end) for r in scan.incidents)
    tokens = tuple(ReportToken(t.fingerprint, t.kind or "unknown", t.first_seen, t.last_seen, t.accepted, t.rejected)
                   for t in sorted(scan.tokens_seen.values(), key=lambda t: t.first_seen))
    return ReportData(
        host=host, sources=tuple(dict.fromkeys(base for base, _, _ in scan.minutes)) or tuple(scan.files),
        start=start, end=end, tz=tz, totals_by_status=dict(scan.by_status),
        requests=sum(scan.requests_by_api.values()),
        conversions_lost=sum(n for status, n in scan.by_status.items() if _failed(status)),
        buckets=_buckets((m, s, n) for (m, s), n in per_minute.items()), incidents=incidents,
        markers=tuple(_switches(s for _, s in scan.switches)), tokens=tokens, generated_at=now)


def from_state(store: Store, *, host: str, tz: tzinfo, now: datetime, since: timedelta | None = None,
               incident_id: str | None = None, unit: str | None = None) -> ReportData:
    """The daemon's history as a report: the last ``since``, or one incident with half an hour around it;
    with ``unit``, the backend's latest restart as systemd tells it.

    Raises NothingToReport when the range holds no traffic and no incident, or the incident is unknown.
    """
    history = HistoryReader(store.conn)
    rows = store.incidents()
    if incident_id is not None:
        row = next((r for r in rows if r.id == incident_id), None)
        if row is None:
            raise NothingToReport(f"no incident {incident_id} in {store.path}; `snapwatch status --history` lists them")
        start, end = row.opened_at - MARGIN, min(now, (row.resolved_at or now) + MARGIN)
        rows = [row]
    else:
        start, end = now - (since or timedelta(hours=24)), now
        rows = [r for r in rows if r.opened_at <= end and (r.resolved_at is None or r.resolved_at >= start)]
    minutes = history.minutes(start, end)
    if incident_id is None and (minutes or rows):  # begin where the history does, not with an empty stretch
        first = min([m.minute for m in minutes] + [r.opened_at for r in rows])
        start = max(start, first - timedelta(minutes=1))
    if not minutes and not rows:
        raise NothingToReport(f"no traffic and no incident in {store.path} between {start.isoformat()} "
                              f"and {end.isoformat()}")
    totals: dict[str, int] = {}
    for m in minutes:
        totals[m.status] = totals.get(m.status, 0) + m.count
    incidents = tuple(_incident(inc, history.diagnosis(r.id), end)
                      for r in rows if (inc := _stored_incident(r.json)) is not None)
    markers = (_switches(s for _, s in history.switches(start, end)) + _gaps(store.gaps(), start, end)
               + [EnvChange(e.at, e.fingerprint) for e in store.env_history()
                  if e.at is not None and start <= e.at <= end])
    restarted = unit_started(unit) if unit else None  # systemd tells only the latest (re)start
    if restarted is not None and start <= restarted <= end:
        markers.append(Restart(restarted, unit or ""))
    return ReportData(
        host=host, sources=tuple(sorted({m.path for m in minutes} | {r.source for r in rows})), start=start,
        end=end, tz=tz, totals_by_status=totals, requests=sum(totals.values()),
        conversions_lost=sum(n for status, n in totals.items() if _failed(status)),
        buckets=_buckets((m.minute, m.status, m.count) for m in minutes), incidents=incidents,
        markers=tuple(markers), tokens=_tokens(store), generated_at=now)


def _stored_incident(doc: str) -> Incident | None:
    try:
        data = json.loads(doc)
        return incident_from(data) if data else None
    except (KeyError, TypeError, ValueError):
        return None


def _tokens(store: Store) -> tuple[ReportToken, ...]:
    """Each token the daemon's sources remember (their history: accepted and rejected, first and last seen)."""
    answers: dict[str, TokenAnswers] = {}
    kind_of: dict[str, str] = {}
    for (path,) in store.conn.execute("SELECT path FROM source_memory ORDER BY path"):
        saved: Mapping[str, object] = store.source_memory(path) or {}
        data, kinds = saved.get("history"), saved.get("token_kinds")
        if not isinstance(data, dict):
            continue
        try:
            found = History.restore(data).per_token()
        except ValueError:
            continue
        if isinstance(kinds, dict):
            kind_of.update({str(fp): str(kind) for fp, kind in kinds.items() if fp not in kind_of})
        for fp, a in found.items():
            answers[fp] = answers[fp].merged(a) if fp in answers else a
    return tuple(ReportToken(a.token_fp, kind_of.get(a.token_fp, "unknown"), a.first_seen, a.last_seen, a.accepted,
                             a.rejected) for a in sorted(answers.values(), key=lambda a: a.first_seen))


def attachment_for(store: Store, config: Config, alert: Alert, now: datetime, host: str) -> str | None:
    """The incident's report for a RESOLVED alert when ``alerts.attach_report`` asks for it, else None."""
    if not config.alerts.attach_report or alert.kind is not AlertKind.RESOLVED or alert.incident is None:
        return None
    try:
        data = from_state(store, host=host, tz=UTC, now=now, incident_id=alert.incident.id)
    except SnapwatchError as exc:
        log.warning("no report attached to the RESOLVED alert of %s: %s", alert.incident.id, exc)
        return None
    return page_of(data)


def page_of(data: ReportData) -> str:
    """The report page as it leaves snapwatch: rendered, then through the one redactor like every output."""
    return redact(render_report(data))
