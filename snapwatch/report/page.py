"""The report page: ReportData in, one self-contained HTML document out (inline CSS and SVG, no script).

Pure: no clock, no I/O. Nothing on the page refers to anything outside it (no URL, font, image or
stylesheet), so the file reads the same offline, attached to a ticket or printed. Every value that
comes from the caller is HTML-escaped, fingerprints included.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from snapwatch.report.data import (
    CLASSES,
    EnvChange,
    LogGap,
    Marker,
    ReportData,
    ReportIncident,
    Restart,
    TokenChange,
    status_class,
)
from snapwatch.report.fmt import anchor, duration, esc, number, plural, span, stamp, zone_name
from snapwatch.report.svg import CLASS_CSS, timeline_svg

# Paul Tol's "bright" scheme: distinguishable with every common colour-vision deficiency and on white.
# Markers use dark tones (and a glyph and a dash pattern each) so they never read as a status class.
CSS: Final = """
:root{--ink:#1f2328;--muted:#59636e;--line:#d1d9e0;--soft:#f6f8fa;--bg:#fff;
--c-2xx:#4477aa;--c-auth:#ee6677;--c-429:#ccbb44;--c-5xx:#aa3377;--c-4xx:#66ccee;--c-other:#bbbbbb;
--band:rgba(238,102,119,.13);--band-edge:#c4455a;--alarm:#a3263a;
--m-token:#117733;--m-env:#332288;--m-restart:#222222;--m-gap:#777777}
*{box-sizing:border-box}
html{-webkit-text-size-adjust:100%;text-size-adjust:100%}
body{margin:0;background:var(--bg);color:var(--ink);line-height:1.45;
font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,"Liberation Sans",sans-serif}
main{max-width:1120px;margin:0 auto;padding:24px 20px 40px}
h1{font-size:1.5rem;margin:0 0 4px}h2{font-size:1.2rem;margin:32px 0 10px;padding-bottom:4px;
border-bottom:1px solid var(--line)}h3{font-size:1.05rem;margin:0 0 4px}h4{font-size:.9rem;margin:12px 0 4px}
code,.fp{font-family:ui-monospace,"SFMono-Regular",Menlo,Consolas,"Liberation Mono",monospace;font-size:.9em}
a{color:#0b57a4}.muted{color:var(--muted)}
.range{margin:0;color:var(--muted)}.sources{margin:6px 0 0;padding:0;list-style:none;color:var(--muted)}
.sources li{overflow-wrap:anywhere}
.kpis{display:flex;flex-wrap:wrap;gap:10px;margin:16px 0 10px;padding:0;list-style:none}
.kpis li{border:1px solid var(--line);border-radius:8px;padding:8px 14px;min-width:9rem}
.kpis b{display:block;font-size:1.45rem;font-variant-numeric:tabular-nums}
.kpis span{color:var(--muted);font-size:.85rem}
.kpis li.lost{border-color:var(--band-edge);background:var(--band)}.kpis li.lost b{color:var(--alarm)}
.statuses,.legend{display:flex;flex-wrap:wrap;gap:6px 14px;margin:0;padding:0;list-style:none;font-size:.9rem}
.statuses li{font-variant-numeric:tabular-nums}
.sw{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:5px;vertical-align:-1px;
outline:1px solid rgba(0,0,0,.25)}
.sw.c-2xx{background:var(--c-2xx)}.sw.c-auth{background:var(--c-auth)}.sw.c-429{background:var(--c-429)}
.sw.c-5xx{background:var(--c-5xx)}.sw.c-4xx{background:var(--c-4xx)}.sw.c-other{background:var(--c-other)}
.sw.band{background:var(--band);outline-color:var(--band-edge)}
.ln{display:inline-block;width:1.2em;margin-right:5px;vertical-align:3px;border-top:2px solid}
.ln.token-change{border-color:var(--m-token)}.ln.env-change{border-color:var(--m-env);border-top-style:dashed}
.ln.restart{border-color:var(--m-restart);border-top-style:dotted}.ln.log-gap{border-color:var(--m-gap);
border-top-style:dashed}
.legend{margin:0 0 8px}.chart{margin:0;overflow-x:auto}.chart svg{display:block;width:100%;height:auto}
svg.timeline text{font-size:12px;fill:var(--ink)}
svg.timeline .ylabel,svg.timeline .xlabel,svg.timeline .ytitle{fill:var(--muted)}
svg.timeline .grid{stroke:var(--line);stroke-width:1}svg.timeline .axis,svg.timeline .tick{stroke:var(--muted)}
.c-2xx{fill:var(--c-2xx)}.c-auth{fill:var(--c-auth)}.c-429{fill:var(--c-429)}.c-5xx{fill:var(--c-5xx)}
.c-4xx{fill:var(--c-4xx)}.c-other{fill:var(--c-other)}
svg.timeline rect.incident{fill:var(--band);stroke:var(--band-edge);stroke-width:1;stroke-dasharray:3 2}
svg.timeline rect.incident.open{fill:rgba(238,102,119,.22)}
svg.timeline .incident-label{font-weight:700;fill:var(--alarm)}
svg.timeline .incident-label,svg.timeline .marker text{paint-order:stroke;stroke:var(--bg);stroke-width:4px;
stroke-linejoin:round}
svg.timeline .marker line{stroke-width:1.5}svg.timeline .empty{fill:var(--muted);font-size:15px}
.marker.token-change line,.marker.token-change path{stroke:var(--m-token);fill:var(--m-token)}
.marker.env-change line{stroke:var(--m-env);stroke-dasharray:6 3}.marker.env-change path{fill:var(--m-env)}
.marker.restart line{stroke:var(--m-restart);stroke-dasharray:2 2}.marker.restart path{fill:var(--m-restart)}
.marker.log-gap line{stroke:var(--m-gap);stroke-dasharray:4 4}.marker.log-gap path{stroke:var(--m-gap);
stroke-width:2;fill:none}
.events{margin:10px 0 0;padding:0;list-style:none;font-size:.9rem}.events li{padding:2px 0}
.events time{font-variant-numeric:tabular-nums;color:var(--muted);margin-right:6px}
table{width:100%;border-collapse:collapse;font-size:.9rem}
th,td{text-align:left;vertical-align:top;padding:7px 8px;border-bottom:1px solid var(--line)}
th{background:var(--soft);font-weight:600;white-space:nowrap}td.n,th.n{text-align:right;
font-variant-numeric:tabular-nums}
.phone-only{display:none}.hint{margin:4px 0 0;color:var(--muted);font-size:.8rem}
td.when,td.rule{white-space:nowrap;font-variant-numeric:tabular-nums}
.badge{display:inline-block;border:1px solid var(--line);border-radius:10px;padding:0 7px;font-size:.8rem;
white-space:nowrap}.badge.critical{border-color:var(--band-edge);color:var(--alarm);font-weight:600}
.badge.open{background:var(--band);border-color:var(--band-edge);color:var(--alarm);font-weight:600}
.diag{border:1px solid var(--line);border-radius:8px;padding:14px 16px;margin:0 0 16px}
.diag .meta{margin:0 0 8px;color:var(--muted);font-size:.9rem}
.findings{margin:0;padding-left:1.3rem}.finding{margin:0 0 12px}.finding p{margin:2px 0}
.finding ul,.finding ol,.ruled ul{margin:2px 0;padding-left:1.2rem}.empty-state{color:var(--muted)}
footer{margin-top:36px;color:var(--muted);font-size:.85rem}
@media (max-width:700px){
main{padding:16px 12px 32px}h1{font-size:1.25rem}.kpis li{flex:1 1 40%;min-width:0}
.chart svg{min-width:760px}
table.rows thead{display:none}
table.rows,table.rows tbody,table.rows tr,table.rows td{display:block;width:auto}
table.rows tr{border:1px solid var(--line);border-radius:8px;margin:0 0 10px;padding:6px 10px}
table.rows td{border:0;padding:3px 0;display:grid;grid-template-columns:7.5rem 1fr;gap:8px;text-align:left;
white-space:normal}
table.rows td::before{content:attr(data-label);color:var(--muted);font-weight:600}
.phone-only{display:block}
}
@media print{
@page{margin:12mm}body{font-size:10pt}main{max-width:none;padding:0}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}
.chart{overflow:visible}.chart svg{min-width:0}a{color:inherit;text-decoration:none}.back{display:none}
h2,h3{break-after:avoid}tr,.finding,.kpis li{break-inside:avoid}.diag{break-inside:avoid-page}
}
"""

_LEGEND_MARKERS: Final = (
    ("token-change", "token change"),
    ("env-change", ".env change"),
    ("restart", "backend restart"),
    ("log-gap", "log gap"),
)


def _status_key(status: str) -> tuple[int, str]:
    return (int(status), "") if status.isdigit() else (10_000, status)


def _class_of(status: str) -> str:
    return CLASS_CSS[status_class(int(status) if status.isdigit() else None)]


def _statuses(counts: Mapping[str, int]) -> str:
    """'200 × 4,812' chips, numeric statuses in order and 'none' last, each with its class's colour."""
    items = [
        f'<li data-status="{esc(s)}"><span class="sw {_class_of(s)}"></span><b>{esc(s)}</b> × {number(n)}</li>'
        for s, n in sorted(counts.items(), key=lambda kv: _status_key(kv[0]))
    ]
    return f'<ul class="statuses">{"".join(items)}</ul>' if items else ""


def _header(data: ReportData) -> str:
    tz = data.tz
    open_now = sum(1 for i in data.incidents if i.resolved_at is None)
    incidents = ("incident" if len(data.incidents) == 1 else "incidents") + (f", {open_now} open" if open_now else "")
    sources = "".join(f"<li><code>{esc(s)}</code></li>" for s in data.sources) or "<li>no sources</li>"
    kpis = (
        ("requests", number(data.requests), "requests", ""),
        ("responses", number(data.responses), "responses", ""),
        (
            "lost",
            number(data.conversions_lost),
            "conversions lost (failed responses)",
            ' class="lost"' if data.conversions_lost else "",
        ),
        ("incidents", number(len(data.incidents)), incidents, ""),
    )
    cells = "".join(
        f'<li{extra} data-kpi="{key}"><b>{value}</b><span>{esc(label)}</span></li>' for key, value, label, extra in kpis
    )
    return (
        f"<header><h1>Snap CAPI report: {esc(data.host)}</h1>"
        f'<p class="range"><time datetime="{esc(data.start.isoformat())}">{esc(span(data.start, data.end, tz))}</time>'
        f" · times in {esc(zone_name(tz, data.start))}</p>"
        f'<ul class="sources">{sources}</ul>'
        f'<ul class="kpis">{cells}</ul>{_statuses(data.totals_by_status)}</header>'
    )


def _legend() -> str:
    classes = "".join(f'<li><span class="sw {CLASS_CSS[c]}"></span>{esc(c)}</li>' for c in CLASSES)
    markers = "".join(f'<li><span class="ln {k}"></span>{esc(t)}</li>' for k, t in _LEGEND_MARKERS)
    return f'<ul class="legend">{classes}<li><span class="sw band"></span>incident</li>{markers}</ul>'


def _marker_line(m: Marker, data: ReportData) -> str:
    tz = data.tz
    if isinstance(m, TokenChange):
        kind = "token-change"
        before = f'<code class="fp">{esc(m.before)}</code>' if m.before else "no token"
        text = f'the backend switched tokens: {before} → <code class="fp">{esc(m.after)}</code>'
    elif isinstance(m, EnvChange):
        kind = "env-change"
        held = f'<code class="fp">{esc(m.fingerprint)}</code>' if m.fingerprint else "no token"
        text = f"the <code>.env</code> changed; it now holds {held}"
    elif isinstance(m, Restart):
        kind, text = "restart", f"<code>{esc(m.unit)}</code> restarted"
    else:
        assert isinstance(m, LogGap)
        kind, text = "log-gap", f"log gap in <code>{esc(m.file)}</code>: {esc(m.description)}"
    return (
        f'<li data-kind="{kind}"><span class="ln {kind}"></span>'
        f'<time datetime="{esc(m.at.isoformat())}">{esc(stamp(m.at, tz))}</time>{text}</li>'
    )


def _timeline(data: ReportData) -> str:
    events = "".join(_marker_line(m, data) for m in sorted(data.markers, key=lambda m: m.at))
    return (
        '<section id="timeline"><h2>Timeline</h2>'
        f'{_legend()}<figure class="chart">{timeline_svg(data)}</figure>'
        '<p class="hint phone-only">The timeline scrolls sideways.</p>'
        + (f'<ul class="events">{events}</ul>' if events else "")
        + "</section>"
    )


def _section(key: str, heading: str, body: str) -> str:
    return f'<section id="{key}"><h2>{heading}</h2>{body}</section>'


def _head(*names: str) -> str:
    """Table headings; a leading '#' marks a numeric (right-aligned) column."""
    return "".join(f'<th class="n">{n[1:]}</th>' if n.startswith("#") else f"<th>{n}</th>" for n in names)


def _td(label: str, body: str, cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    # One element inside, so that the phone layout's two-column grid sees one value per cell.
    return f'<td data-label="{esc(label)}"{klass}><div>{body}</div></td>'


def _confidence(inc: ReportIncident) -> str:
    return f'<span class="badge {esc(inc.confidence)}">{esc(inc.confidence)}</span>' if inc.confidence else "–"


def _incidents(data: ReportData) -> str:
    if not data.incidents:
        return _section("incidents", "Incidents", '<p class="empty-state">No incidents in this window.</p>')
    tz = data.tz
    head = _head("Rule", "Opened", "Resolved", "Duration", "#Failed", "Verdict", "Confidence", "First step")
    rows = []
    for inc in data.incidents:
        resolved = stamp(inc.resolved_at, tz) if inc.resolved_at else None
        rows.append(
            f'<tr data-incident="{esc(inc.id)}">'
            + _td("Rule", f"<code>{esc(inc.rule)}</code>", "rule")
            + _td("Opened", esc(stamp(inc.opened_at, tz)), "when")
            + _td("Resolved", esc(resolved) if resolved else '<span class="badge open">open</span>', "when")
            + _td("Duration", esc(duration(inc.duration)))
            + _td("Failed", number(inc.failed), "n")
            + _td(
                "Verdict",
                f'<a href="#{anchor(inc.id)}"><code>{esc(inc.verdict)}</code></a><br>{esc(inc.verdict_title)}',
            )
            + _td("Confidence", _confidence(inc))
            + _td("First step", esc(inc.first_step) or "–")
            + "</tr>"
        )
    return (
        '<section id="incidents"><h2>Incidents</h2>'
        f'<table class="rows incidents"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></section>'
    )


def _lines(items: tuple[str, ...], tag: str = "ul") -> str:
    return f"<{tag}>{''.join(f'<li>{esc(i)}</li>' for i in items)}</{tag}>" if items else ""


def _diagnosis(inc: ReportIncident, data: ReportData) -> str:
    tz = data.tz
    until = f"resolved {esc(stamp(inc.resolved_at, tz))}" if inc.resolved_at else '<span class="badge open">open</span>'
    statuses = ", ".join(
        f"{esc(s)} × {number(n)}" for s, n in sorted(inc.by_status.items(), key=lambda kv: _status_key(kv[0]))
    )
    findings = []
    for f in inc.diagnosis.findings:
        evidence = f"<h4>Evidence</h4>{_lines(f.evidence)}" if f.evidence else ""
        steps = f"<h4>What to do</h4>{_lines(f.remediation, 'ol')}" if f.remediation else ""
        findings.append(
            f'<li class="finding" data-code="{esc(f.code)}"><p><code>{esc(f.code)}</code> '
            f'<span class="badge {esc(f.severity)}">{esc(f.severity)}</span> '
            f'<span class="badge">{esc(f.confidence)} confidence</span></p>'
            f"<p><strong>{esc(f.title)}</strong></p>{evidence}{steps}</li>"
        )
    body = (
        f'<ol class="findings">{"".join(findings)}</ol>'
        if findings
        else '<p class="empty-state">No finding: the log holds no evidence that points to a cause.</p>'
    )
    ruled_out = inc.diagnosis.ruled_out
    ruled = f'<div class="ruled"><h4>Ruled out</h4>{_lines(ruled_out)}</div>' if ruled_out else ""
    return (
        f'<section class="diag" id="{anchor(inc.id)}" data-incident="{esc(inc.id)}">'
        f"<h3><code>{esc(inc.verdict)}</code> {esc(inc.verdict_title)}</h3>"
        f'<p class="meta"><code>{esc(inc.rule)}</code> on <code>{esc(inc.source)}</code> · opened '
        f"{esc(stamp(inc.opened_at, tz))}, {until} ({esc(duration(inc.duration))}) · "
        f"{plural(inc.failed, 'failed response')}{': ' + statuses if statuses else ''}</p>"
        f'{body}{ruled}<p class="back"><a href="#incidents">Back to the incidents</a></p></section>'
    )


def _tokens(data: ReportData) -> str:
    if not data.tokens:
        return _section("tokens", "Tokens", '<p class="empty-state">No token was seen in request URLs.</p>')
    tz = data.tz
    head = _head("Fingerprint", "Kind", "First seen", "Last seen", "#Accepted", "#Rejected")
    rows = "".join(
        f'<tr data-fingerprint="{esc(t.fingerprint)}">'
        + _td("Fingerprint", f'<code class="fp">{esc(t.fingerprint)}</code>')
        + _td("Kind", esc(t.kind))
        + _td("First seen", esc(stamp(t.first_seen, tz)), "when")
        + _td("Last seen", esc(stamp(t.last_seen, tz)), "when")
        + _td("Accepted", number(t.accepted), "n")
        + _td("Rejected", number(t.rejected), "n")
        + "</tr>"
        for t in data.tokens
    )
    return (
        '<section id="tokens"><h2>Tokens</h2>'
        f'<table class="rows tokens"><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table></section>'
    )


def render_report(data: ReportData) -> str:
    """The whole report as one HTML document: header, timeline, incidents, tokens, then each incident's
    diagnosis. Self-contained and pure; every caller-provided string is escaped."""
    diagnoses = "".join(_diagnosis(i, data) for i in data.incidents)
    generated = f" on {esc(stamp(data.generated_at, data.tz))}" if data.generated_at else ""
    title = f"Snap CAPI report: {data.host}, {span(data.start, data.end, data.tz)}"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="color-scheme" content="light">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body><main>"
        + _header(data)
        + _timeline(data)
        + _incidents(data)
        + _tokens(data)
        + (f'<section id="diagnoses"><h2>Diagnoses</h2>{diagnoses}</section>' if diagnoses else "")
        + f"<footer>Made by snapwatch{generated}. Tokens appear as fingerprints only, never in full.</footer>"
        + "</main></body></html>\n"
    )
