"""Alert rendering: one Alert in, one Message out (title, markdown, plain text, HTML, labels). Pure."""

from __future__ import annotations

import html
from dataclasses import dataclass

from snapwatch.codec import SUBJECT_MAX, TITLE_MAX, Message, duration, iso
from snapwatch.diagnose.text import Section, diagnosis_sections, sections_text
from snapwatch.model import Alert, AlertKind, Diagnosis, Incident, Rule, Severity
from snapwatch.redact import redact

ALERTNAME = "SnapCapiIncident"

_KIND_WORD = {
    AlertKind.OPENED: "FIRING",
    AlertKind.REMINDER: "STILL FIRING",
    AlertKind.UPDATE: "UPDATED",
    AlertKind.RESOLVED: "RESOLVED",
    AlertKind.HELD_BACK: "HELD BACK",
    AlertKind.TEST: "TEST",
    AlertKind.NOTICE: "PROBLEM",
}


@dataclass(frozen=True, slots=True)
class _Doc:
    """The content of a message as (heading, lines, numbered) sections, before any markup."""

    intro: str
    sections: tuple[Section, ...]


def _by_status(incident: Incident) -> str:
    return ", ".join(f"{status}: {count}" for status, count in incident.by_status) or "none"


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _title(alert: Alert) -> str:
    word = _KIND_WORD[alert.kind]
    inc, diag = alert.incident, alert.diagnosis
    if alert.kind is AlertKind.TEST:
        core = f"Test alert from snapwatch on {alert.host}"
    elif alert.kind is AlertKind.HELD_BACK:
        core = f"{alert.held_back} alert(s) held back on {alert.host} (max_per_hour reached)"
    elif inc is None:
        core = f"{alert.host}: {_verdict_phrase(diag)}"
    elif alert.kind is AlertKind.RESOLVED:
        lasted = duration((inc.resolved_at or alert.created_at) - inc.opened_at)
        core = f"{inc.rule.value} on {alert.host} after {lasted} ({inc.responses} failed responses)"
    elif alert.flaps:
        core = f"{inc.rule.value} on {alert.host} {_flapping(alert.flaps)}: {_verdict_phrase(diag)}"
    else:
        core = f"{inc.rule.value} on {alert.host} ({inc.responses} failed): {_verdict_phrase(diag)}"
    title = _one_line(f"[snapwatch] {word} {core}")
    return title if len(title) <= TITLE_MAX else title[: TITLE_MAX - 1] + "…"


def _flapping(flaps: int) -> str:
    return f"flapping ({flaps} short incidents of this rule in the last hour)"


def _verdict_phrase(diag: Diagnosis | None) -> str:
    cause = diag.cause if diag is not None else None
    if diag is not None and cause is None and diag.findings:  # the strongest note says what is known
        note = diag.findings[0]
        return f"cause unknown; {note.code.value}: {note.title}"
    if diag is None or cause is None:
        return "cause unknown"
    return f"{cause.title} ({diag.verdict})"


def _subject(alert: Alert) -> str:
    """A subject a phone's lock screen shows whole: state, rule, host, verdict; the details are below."""
    inc = alert.incident
    if inc is None:
        return _fit(_title(alert).removeprefix("[snapwatch] "))
    verdict = alert.diagnosis.verdict if alert.diagnosis is not None else "unknown"
    host = alert.host
    core = f"{_KIND_WORD[alert.kind]} {inc.rule.value} on {host}: {verdict}"
    if len(core) > SUBJECT_MAX:  # a long host name gives way, so the verdict stays readable
        host = host[: max(8, len(host) - (len(core) - SUBJECT_MAX) - 1)] + "…"
        core = f"{_KIND_WORD[alert.kind]} {inc.rule.value} on {host}: {verdict}"
    return core if len(core) > SUBJECT_MAX - 12 else f"[snapwatch] {core}"


def _fit(text: str) -> str:
    return text if len(text) <= SUBJECT_MAX else text[: SUBJECT_MAX - 1] + "…"


def notify_type(alert: Alert) -> str:
    """apprise's notification type: ``failure`` for a critical incident (or an unexplained auth-failures one:
    conversions are being refused), ``warning`` for a warning one, ``success`` for resolved, ``info`` for tests."""
    if alert.kind is AlertKind.TEST:
        return "info"
    if alert.kind is AlertKind.RESOLVED:
        return "success"
    inc, diag = alert.incident, alert.diagnosis
    cause = diag.cause if diag is not None else None
    if inc is None:
        return "warning"
    if cause is None:
        return "failure" if inc.rule is Rule.AUTH_FAILURES else "warning"
    return "failure" if cause.severity is Severity.CRITICAL else "warning"


def _happened(alert: Alert, inc: Incident) -> tuple[str, ...]:
    lines = [
        f"Rule: {inc.rule.value}",
        f"Host: {alert.host}",
        f"Source: {inc.source or 'unknown'}",
        f"Since: {iso(inc.opened_at, 'seconds')}",
    ]
    if alert.flaps:
        lines.append(f"Flapping: {alert.flaps} short incidents of this rule and source in the last hour")
    if inc.resolved_at is not None:
        lasted = duration(inc.resolved_at - inc.opened_at)
        lines.append(f"Resolved: {iso(inc.resolved_at, 'seconds')} (lasted {lasted})")
    else:
        lines.append(f"Open for: {duration(alert.created_at - inc.opened_at)}")
    lines.append(f"Failed responses: {inc.responses} ({_by_status(inc)})")
    for other in alert.folded:
        state = "open" if other.open else f"resolved {iso(other.resolved_at, 'seconds')}"
        lines.append(f"Folded in (explained by this incident): {other.rule.value} since "
                     f"{iso(other.opened_at, 'seconds')}, {state}: {other.responses} failed ({_by_status(other)})")
    lines.append(f"Last record: {iso(inc.last_at, 'seconds')}")
    first = inc.first_failure
    if first is not None:
        where = ""
        if first.request is not None:
            req = first.request
            where = f" on {req.api.value} {req.path or '(no URL logged)'}, token placement {req.placement.value}"
        status = first.status if first.status is not None else "no status"
        lines.append(f"First failure: {iso(first.at, 'seconds')}: {status}{where}")
    return tuple(lines)


def _token_lines(alert: Alert) -> tuple[str, ...]:
    """The tokens by fingerprint and kind: the failing requests' and the configured one; once resolved, the
    one that failed and the one that works."""
    inc, diag = alert.incident, alert.diagnosis
    req = inc.first_failure.request if inc is not None and inc.first_failure is not None else None

    def named(fp: str | None) -> str:
        kind = alert.token_kind if fp == alert.token_fp else req.token_kind if req is not None and \
            fp == req.token_fp else None
        return f"fingerprint {fp} ({kind.value if kind is not None else 'unknown kind'})"

    failing = req.token_fp if req is not None else None
    if alert.kind is AlertKind.RESOLVED:
        working = diag.working_token if diag is not None else None
        lines = [f"failed: {named(failing)}" if failing else "failed: not shown in the requests"]
        lines.append(f"works: {named(working)}" if working else "works: not shown in the requests")
        return tuple(lines)
    lines = [f"in the failing requests: {named(failing)}"] if failing else []
    if alert.token_fp is not None and alert.token_fp != failing:
        lines.append(f"configured: {named(alert.token_fp)}")
    return tuple(lines) or ("none seen in the failing requests",)


def _doc(alert: Alert) -> _Doc:
    inc, diag = alert.incident, alert.diagnosis
    sections: list[Section] = []
    if alert.kind is AlertKind.TEST:
        intro = (
            f"This is a test message from snapwatch on {alert.host}, sent {iso(alert.created_at, 'seconds')}. "
            "If you can read it, this notification target works. No incident caused it."
        )
    elif alert.kind is AlertKind.HELD_BACK:
        intro = (
            f"{alert.held_back} alert message(s) were held back on {alert.host} because the hourly "
            "limit (alerts.max_per_hour) was reached. Check `snapwatch status` for the open incidents."
        )
    elif inc is None:
        intro = f"snapwatch on {alert.host} reports a finding ({alert.kind.value})."
    else:
        intro = {
            AlertKind.OPENED: f"An incident opened on {alert.host}: rule {inc.rule.value}.",
            AlertKind.REMINDER: f"The {inc.rule.value} incident on {alert.host} is still open.",
            AlertKind.UPDATE: f"The diagnosis of the {inc.rule.value} incident on {alert.host} changed.",
            AlertKind.RESOLVED: (
                f"The {inc.rule.value} incident on {alert.host} resolved after "
                f"{duration((inc.resolved_at or alert.created_at) - inc.opened_at)}; "
                f"{inc.responses} responses failed."
            ),
        }.get(alert.kind, f"The {inc.rule.value} incident on {alert.host}.")
        if alert.flaps:
            intro += (
                f" The backend is {_flapping(alert.flaps)}, each over before an alert was due;"
                " one short incident alone would not be reported."
            )
    if inc is not None:
        sections.append(("What happened", _happened(alert, inc), False))
    if diag is not None:
        sections.extend(diagnosis_sections(diag, full=alert.kind is not AlertKind.RESOLVED))
    if alert.kind is not AlertKind.TEST and (inc is not None or alert.token_fp is not None):
        sections.append(("Token", _token_lines(alert), False))
    if alert.kind is AlertKind.RESOLVED and inc is not None:
        sections.append(("Report", (f"snapwatch report --incident {inc.id} -o outage.html",), False))
    sections.append(("Alert", (f"id {alert.id} ({alert.kind.value}, {iso(alert.created_at, 'seconds')})",), False))
    return _Doc(intro=intro, sections=tuple(sections))


def _text(title: str, doc: _Doc) -> str:
    out = [title, "", doc.intro]
    for section in doc.sections:
        out += ["", *sections_text([section])]
    return "\n".join(out) + "\n"


def _markdown(doc: _Doc) -> str:
    out = [doc.intro]  # targets show the title on their own (subject, heading)
    for heading, lines, numbered in doc.sections:
        out += ["", f"**{heading}**"]
        out += [f"{i}. {line}" if numbered else _bullet(line) for i, line in enumerate(lines, 1)]
    return "\n".join(out) + "\n"


def _bullet(line: str) -> str:
    # An indented line (a finding's evidence under it) is a nested item, not "-   evidence: …".
    return f"  - {line.strip()}" if line.startswith("  ") else f"- {line}"


def _html(doc: _Doc) -> str:
    esc = html.escape
    out = [f"<p>{esc(doc.intro)}</p>"]  # the title is the email's subject
    for heading, lines, numbered in doc.sections:
        out.append(f"<p><b>{esc(heading)}</b></p>")
        # Numbers are written out (not <ol>) so the plain-text part an email client derives keeps them.
        if numbered:
            out += [f"<div>{i}. {esc(line)}</div>" for i, line in enumerate(lines, 1)]
        else:
            out.append("<ul>" + "".join(f"<li>{esc(line)}</li>" for line in lines) + "</ul>")
    return "\n".join(out) + "\n"


def _labels(alert: Alert) -> dict[str, str]:
    inc, diag = alert.incident, alert.diagnosis
    labels = {
        "alertname": ALERTNAME,
        "host": alert.host,
        "rule": inc.rule.value if inc is not None else alert.kind.value,
        "verdict": diag.verdict if diag is not None else "unknown",
    }
    if alert.kind is AlertKind.RESOLVED and alert.announced is not None:
        labels["verdict"] = alert.announced[0]  # the label set that fired is the one that ends
    if inc is not None:
        labels["source"] = inc.source
        req = inc.first_failure.request if inc.first_failure is not None else None
        if req is not None and req.pixel:
            labels["pixel"] = req.pixel
    if alert.kind is AlertKind.RESOLVED and alert.announced is not None and alert.announced[1] not in ("", "info"):
        labels["severity"] = alert.announced[1]
    elif diag is not None and diag.cause is not None:
        labels["severity"] = diag.cause.severity.value
    if alert.token_fp is not None:
        labels["token_fingerprint"] = alert.token_fp
    return labels


def _annotations(alert: Alert, title: str, doc: _Doc) -> dict[str, str]:
    notes = {"summary": title, "description": doc.intro, "alert_id": alert.id}
    if alert.flaps:
        notes["flapping"] = f"{alert.flaps} short incidents of this rule and source in the last hour"
    for heading, lines, numbered in doc.sections:
        body = "\n".join(f"{i}. {line}" if numbered else line for i, line in enumerate(lines, 1))
        if heading == "Evidence":
            notes["evidence"] = body
        elif heading.startswith("Remediation"):
            notes["remediation"] = body
    return notes


def render(alert: Alert) -> Message:
    """Render an alert for every target kind. Uses only what the Alert holds (fingerprints, never tokens)."""
    title = _title(alert)
    doc = _doc(alert)
    # Every text of the message passes the one redactor: a known token or a random-looking value that
    # reached an incident's evidence (a 400 body quoting the request, a swapped pixel) leaves as its label.
    return Message(
        alert_id=alert.id,
        kind=alert.kind,
        title=redact(title),
        markdown=redact(_markdown(doc)),
        text=redact(_text(title, doc)),
        html=redact(_html(doc)),
        labels={k: redact(v) for k, v in _labels(alert).items()},
        annotations={k: redact(v) for k, v in _annotations(alert, title, doc).items()},
        starts_at=alert.incident.opened_at if alert.incident is not None else None,
        ends_at=alert.incident.resolved_at if alert.incident is not None else None,
        notify_type=notify_type(alert),
        subject=_fit(_subject(alert)),
    )


def notice(alert_id: str, host: str, what: str, lines: tuple[str, ...]) -> Message:
    """A message about snapwatch itself (``what``: one line; ``lines``: what it means and what to do)."""
    title = _one_line(f"[snapwatch] {_KIND_WORD[AlertKind.NOTICE]} on {host}: {what}")
    title = title if len(title) <= TITLE_MAX else title[: TITLE_MAX - 1] + "…"
    doc = _Doc(f"On {host}, {what}.", (("What to do", lines, True),))
    return Message(alert_id=alert_id, kind=AlertKind.NOTICE, title=title, markdown=_markdown(doc),
                   text=_text(title, doc), html=_html(doc),
                   labels={"alertname": "SnapwatchProblem", "host": host, "severity": "critical"},
                   annotations={"summary": title, "description": "\n".join(lines)})
