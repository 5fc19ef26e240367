"""Stored and shown forms: times and durations; requests, exchanges, incidents, diagnoses, messages as JSON.

A request's path carries no query string and its token is kept as a fingerprint, so none of these
forms can hold a token. Every ``*_from`` reads back what its ``*_json`` wrote and raises KeyError,
TypeError or ValueError on anything else (callers turn that into a one-line answer).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, overload

from snapwatch.model import (
    AlertKind,
    Api,
    Confidence,
    Diagnosis,
    Exchange,
    Finding,
    FindingCode,
    Incident,
    Placement,
    Request,
    Response,
    Rule,
    Severity,
    TokenKind,
)
from snapwatch.redact import redact

BODY_MAX = 2000  # characters of a response body kept with a stored incident


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


# ---- time ---------------------------------------------------------------------------------------------
@overload
def iso(at: datetime, timespec: str = ...) -> str: ...
@overload
def iso(at: None, timespec: str = ...) -> None: ...
@overload
def iso(at: datetime | None, timespec: str = ...) -> str | None: ...
def iso(at: datetime | None, timespec: str = "auto") -> str | None:
    """``at.isoformat(timespec=timespec)`` (ISO 8601, with the offset when ``at`` has one); None stays None."""
    return None if at is None else at.isoformat(timespec=timespec)


@overload
def dt(value: str) -> datetime: ...
@overload
def dt(value: None) -> None: ...
@overload
def dt(value: str | None) -> datetime | None: ...
def dt(value: str | None) -> datetime | None:
    """Reads ``iso`` back; None stays None. Raises ValueError on anything else."""
    return None if value is None else datetime.fromisoformat(value)


_UNITS = (("d", "day", 86400), ("h", "hour", 3600), ("m", "minute", 60), ("s", "second", 1))


def duration(delta: timedelta, *, words: bool = False, parts: int = 3) -> str:
    """A duration for people, the one spelling every output uses: ``1h 2m 3s``, ``45s``, ``2d 3h``; with
    ``words``, ``1 day 2 hours``. At most ``parts`` units, largest first, whole seconds; the sign is
    dropped (callers say "ago" or "in")."""
    seconds = int(abs(delta).total_seconds())
    out: list[str] = []
    for short, word, size in _UNITS:
        count, seconds = divmod(seconds, size)
        if count:
            out.append(f"{count} {word}{'s' if count != 1 else ''}" if words else f"{count}{short}")
        if len(out) == parts:
            break
    return " ".join(out) or ("0 seconds" if words else "0s")


def stored_json(value: object) -> str:
    """``value`` as the JSON text the state file keeps: sorted keys, and passed through the one redactor
    (a token that reached evidence or a body is stored as its label, never as itself)."""
    return redact(json.dumps(value, sort_keys=True, ensure_ascii=False))


def micros(delta: timedelta) -> int:
    """A duration in whole microseconds (exact: a timedelta holds no finer part)."""
    return delta // _US


def micros_at(at: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is taken as UTC."""
    return ((at if at.tzinfo else at.replace(tzinfo=UTC)) - _EPOCH) // _US


def at_micros(value: int, like: datetime) -> datetime:
    """Reads ``micros_at`` back in ``like``'s zone (naive, as UTC, when ``like`` is naive)."""
    at = _EPOCH + timedelta(microseconds=value)
    return at.astimezone(like.tzinfo) if like.tzinfo else at.replace(tzinfo=None)


# ---- requests, exchanges, incidents, diagnoses --------------------------------------------------------


def request_json(req: Request) -> list[Any]:
    """``[at, event, api, path, pixel, placement, token_fp, token_kind]``."""
    kind = None if req.token_kind is None else req.token_kind.value
    return [req.at.isoformat(), req.event, req.api.value, req.path, req.pixel, req.placement.value, req.token_fp,
            kind]


def request_from(value: list[Any]) -> Request:
    at, event, api, path, pixel, placement, fp, kind = value
    return Request(datetime.fromisoformat(at), event, Api(api), path, pixel, Placement(placement), fp,
                   None if kind is None else TokenKind(kind))


def exchange_json(ex: Exchange) -> list[Any]:
    """``[at, event, status, body, source, request]``, the request as ``request_json`` or null."""
    resp, req = ex.response, ex.request
    return [resp.at.isoformat(), resp.event, resp.status, resp.body, ex.source,
            None if req is None else request_json(req)]


def exchange_from(value: list[Any]) -> Exchange:
    at, event, status, body, source, req = value
    response = Response(datetime.fromisoformat(at), str(event), None if status is None else int(status), str(body))
    return Exchange(response, None if req is None else request_from(req), str(source))


def incident_json(inc: Incident) -> dict[str, Any]:
    """The incident with its first failure as a keyed object, the body cut at ``BODY_MAX`` characters.

    (The alert lifecycle's stored form since its schema 1; detector snapshots use ``exchange_json``.)
    """
    ex = inc.first_failure
    first: dict[str, Any] | None = None
    if ex is not None:
        resp, req = ex.response, ex.request
        first = {"source": ex.source, "at": iso(resp.at), "event": resp.event, "status": resp.status,
                 "body": resp.body[:BODY_MAX], "request": None if req is None else request_json(req)}
    return {"id": inc.id, "rule": inc.rule.value, "source": inc.source, "opened_at": iso(inc.opened_at),
            "resolved_at": iso(inc.resolved_at), "responses": inc.responses,
            "by_status": [list(p) for p in inc.by_status], "last_at": iso(inc.last_at), "first": first}


def incident_from(d: dict[str, Any]) -> Incident:
    first: Exchange | None = None
    if (f := d["first"]) is not None:
        req = None if f["request"] is None else request_from(f["request"])
        first = Exchange(Response(datetime.fromisoformat(f["at"]), f["event"], f["status"], f["body"]), req,
                         f["source"])
    return Incident(id=d["id"], rule=Rule(d["rule"]), source=d["source"],
                    opened_at=datetime.fromisoformat(d["opened_at"]), resolved_at=dt(d["resolved_at"]),
                    responses=d["responses"], by_status=tuple((s, c) for s, c in d["by_status"]),
                    last_at=datetime.fromisoformat(d["last_at"]), first_failure=first)


def diagnosis_from(d: dict[str, Any]) -> Diagnosis:
    """Reads ``Diagnosis.to_json()`` back (its ``verdict`` is derived, so it is not read)."""
    findings = tuple(
        Finding(code=FindingCode(f["code"]), severity=Severity(f["severity"]), confidence=Confidence(f["confidence"]),
                title=f["title"], evidence=tuple(f["evidence"]), remediation=tuple(f["remediation"]))
        for f in d["findings"])
    return Diagnosis(findings=findings, ruled_out=tuple(d["ruled_out"]), recovery=tuple(d.get("recovery", ())),
                     working_token=d.get("working_token"))


TITLE_MAX = 250
SUBJECT_MAX = 79  # an e-mail subject a phone's lock screen shows whole
NOTIFY_TYPES = ("info", "success", "warning", "failure")  # apprise's notification types


@dataclass(frozen=True, slots=True)
class Message:
    """A rendered alert, ready for any target. Holds fingerprints only, never a token or a target URL."""

    alert_id: str
    kind: AlertKind
    title: str  # one line, at most TITLE_MAX characters
    markdown: str  # chat targets (Slack, Mattermost, webhooks)
    text: str  # plain text (email, console)
    html: str  # simple HTML (email); every dynamic value escaped
    labels: dict[str, str] = field(default_factory=dict)  # for Alertmanager: identify the alert
    annotations: dict[str, str] = field(default_factory=dict)  # summary, evidence, remediation
    starts_at: datetime | None = None  # the incident's opened_at (None for test and held-back notices)
    ends_at: datetime | None = None  # the incident's resolved_at, when it is resolved
    attachment: str | None = None  # an HTML report, attached where a target takes files (e-mail)
    notify_type: str = "info"  # one of NOTIFY_TYPES: failure, warning, success, info
    subject: str = ""  # at most SUBJECT_MAX characters: state, rule, host, verdict (e-mail); "" = the title

    def to_json(self) -> str:
        """A JSON document that ``from_json`` reads back into an equal Message."""
        return stored_json(
            {
                "alert_id": self.alert_id,
                "kind": self.kind.value,
                "title": self.title,
                "markdown": self.markdown,
                "text": self.text,
                "html": self.html,
                "labels": self.labels,
                "annotations": self.annotations,
                "starts_at": iso(self.starts_at),
                "ends_at": iso(self.ends_at),
                "attachment": self.attachment,
                "notify_type": self.notify_type,
                "subject": self.subject,
            }
        )

    @classmethod
    def from_json(cls, doc: str) -> Message:
        """Parse ``to_json`` output; raises ValueError (one line) on anything else.

        Documents written before ``starts_at``/``ends_at`` existed read back with both None; before
        ``notify_type``/``subject``/``attachment``, with "info", "" and None (the title stands in for the subject).
        """
        try:
            data = json.loads(doc)
            strs = {k: data[k] for k in ("alert_id", "title", "markdown", "text", "html")}
            strs["notify_type"] = data.get("notify_type", "info")
            strs["subject"] = data.get("subject", "")
            labels, annotations = data["labels"], data["annotations"]
            kind = AlertKind(data["kind"])
            starts_at, ends_at = dt(data.get("starts_at")), dt(data.get("ends_at"))
            attachment = data.get("attachment")
            if attachment is not None and not isinstance(attachment, str):
                raise TypeError("attachment is not a string")
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"not a stored message: {exc}") from exc
        for name, value in (*strs.items(), *labels.items(), *annotations.items()):
            if not isinstance(value, str) or not isinstance(name, str):
                raise ValueError(f"not a stored message: {name} is not a string")
        if strs["notify_type"] not in NOTIFY_TYPES:
            raise ValueError(f"not a stored message: notify_type {strs['notify_type']!r}")
        return cls(kind=kind, labels=dict(labels), annotations=dict(annotations), starts_at=starts_at,
                   ends_at=ends_at, attachment=attachment, **strs)
