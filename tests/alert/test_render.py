"""Rendering alerts: content per alert kind, title limits, markup escaping, labels, and the JSON round trip."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from snapwatch.alert.messages import TITLE_MAX, render
from snapwatch.codec import Message
from snapwatch.model import Alert, AlertKind, Confidence, Diagnosis, Finding, FindingCode, Severity
from tests.helpers.alerts import FP, T0, TOKEN, make_alert, make_incident
from tests.helpers.tokens import assert_no_secret


def test_opened_alert_says_what_happened_why_and_what_to_do() -> None:
    msg = render(make_alert())
    assert msg.title.startswith("[snapwatch] FIRING auth-failures on web-1 (37 failed)")
    assert "The backend still sends an old token (token-drift)" in msg.title
    text = msg.text
    for expected in (
        "Rule: auth-failures",
        "Host: web-1",
        "Source: /var/log/app/capi.log",
        "Since: 2025-12-03T23:35:17+00:00",
        "Open for: 6m",
        "Failed responses: 37 (401: 30, 403: 7)",
        "First failure: 2025-12-03T23:35:17+00:00: 401 on v3 /v3/pix-42/events, token placement query",
        "token-drift: The backend still sends an old token (critical, high confidence)",
        f"requests carry token {FP}",
        "auth-placement: v3 requests carry it",
        f"Token:\n  in the failing requests: fingerprint {FP} (canvas-s2s)",
        "An incident opened on web-1: rule auth-failures.",
        "v2-deprecated",
        "log-gap",
    ):
        assert expected in text, expected
    # Steps of the ranked findings, in order, each once, numbered.
    steps = re.findall(r"^\s+(\d+)\. (.*)$", text, re.M)
    assert [n for n, _ in steps] == ["1", "2", "3"]
    assert steps[0][1].startswith("Restart the backend")
    assert steps[2][1] == "Compare the deploy log"
    assert text.index("Verdict:") < text.index("Remediation") < text.index("Ruled out:")
    assert "1. Restart the backend" in msg.markdown and "**Verdict**" in msg.markdown


def test_alert_id_is_in_every_body_and_no_token_anywhere() -> None:
    msg = render(make_alert())
    for body in (msg.title, msg.markdown, msg.text, msg.html):
        assert_no_secret(body, TOKEN)
    for body in (msg.markdown, msg.text, msg.html):
        assert "a1b2c3d4e5f6" in body
    assert msg.alert_id == "a1b2c3d4e5f6" and msg.kind is AlertKind.OPENED


def test_html_escapes_dynamic_text_and_keeps_step_numbers_visible() -> None:
    msg = render(make_alert())
    assert "&lt;just&gt; before &amp; the streak" in msg.html
    assert "<just>" not in msg.html
    assert "<div>1. Restart the backend" in msg.html and "<div>3. Compare the deploy log</div>" in msg.html


def test_resolved_alert_says_how_long_and_how_many_failed() -> None:
    inc = make_incident(resolved=T0 + timedelta(minutes=12, seconds=5), responses=40)
    msg = render(make_alert(AlertKind.RESOLVED, incident=inc, created_at=T0 + timedelta(minutes=13)))
    assert msg.title == "[snapwatch] RESOLVED auth-failures on web-1 after 12m 5s (40 failed responses)"
    assert "resolved after 12m 5s; 40 responses failed" in msg.text
    assert "Resolved: 2025-12-03T23:47:22+00:00 (lasted 12m 5s)" in msg.text
    assert "Remediation" not in msg.text  # nothing to do any more; the verdict stays for the record
    assert "token-drift" in msg.text


def test_reminder_and_update_are_told_apart() -> None:
    assert render(make_alert(AlertKind.REMINDER)).title.startswith("[snapwatch] STILL FIRING auth-failures")
    update = render(make_alert(AlertKind.UPDATE))
    assert update.title.startswith("[snapwatch] UPDATED") and "diagnosis of the auth-failures" in update.text


def test_held_back_and_test_messages() -> None:
    held = render(make_alert(AlertKind.HELD_BACK, incident=None, diagnosis=None, token_fp=None, held_back=7))
    assert "7 alert(s) held back on web-1" in held.title
    assert "7 alert message(s) were held back" in held.text
    test = render(Alert(id="test-1", kind=AlertKind.TEST, created_at=T0, host="web-1"))
    assert test.title == "[snapwatch] TEST Test alert from snapwatch on web-1"
    assert "This is a test message" in test.text and "No incident caused it" in test.text
    assert "test-1" in test.text


def test_unknown_verdict_and_missing_token_are_said_plainly() -> None:
    nothing_seen = replace(make_incident(), first_failure=None)
    msg = render(make_alert(diagnosis=Diagnosis(), token_fp=None, token_kind=None, incident=nothing_seen))
    assert "cause unknown" in msg.title
    assert "unknown: no finding explains this incident" in msg.text
    assert "Token:\n  none seen in the failing requests" in msg.text
    assert msg.labels["verdict"] == "unknown" and "token_fingerprint" not in msg.labels


def test_labels_and_annotations_for_alertmanager() -> None:
    msg = render(make_alert())
    assert msg.labels == {
        "alertname": "SnapCapiIncident",
        "host": "web-1",
        "rule": "auth-failures",
        "verdict": "token-drift",
        "source": "/var/log/app/capi.log",
        "pixel": "pix-42",
        "severity": "critical",
        "token_fingerprint": FP,
    }
    assert msg.annotations["summary"] == msg.title
    assert msg.annotations["evidence"].startswith("requests carry token")
    assert msg.annotations["remediation"].splitlines()[0].startswith("1. Restart the backend")
    assert msg.annotations["alert_id"] == "a1b2c3d4e5f6"


def test_long_titles_are_cut_to_the_limit_on_one_line() -> None:
    diag = Diagnosis(findings=(Finding(FindingCode.TOKEN_DRIFT, Severity.CRITICAL, Confidence.HIGH, "x\n" * 400),))
    msg = render(make_alert(diagnosis=diag, host="h" * 300))
    assert len(msg.title) == TITLE_MAX and msg.title.endswith("…") and "\n" not in msg.title


@given(host=st.text(min_size=1, max_size=400), title=st.text(max_size=400))
def test_title_is_always_one_bounded_line(host: str, title: str) -> None:
    diag = Diagnosis(findings=(Finding(FindingCode.TOKEN_DRIFT, Severity.CRITICAL, Confidence.HIGH, title),))
    msg = render(make_alert(diagnosis=diag, host=host))
    assert len(msg.title) <= TITLE_MAX
    assert len(msg.title.splitlines()) <= 1


def test_message_json_round_trip_and_bad_documents() -> None:
    msg = render(make_alert())
    assert Message.from_json(msg.to_json()) == msg
    for bad in ("", "[]", '{"alert_id": "x"}', msg.to_json().replace('"opened"', '"nonsense"')):
        with pytest.raises(ValueError, match="not a stored message"):
            Message.from_json(bad)


def test_message_carries_the_incident_times_and_reads_older_documents() -> None:
    ended = T0 + timedelta(minutes=12)
    opened = render(make_alert())
    assert (opened.starts_at, opened.ends_at) == (T0, None)
    resolved = render(make_alert(AlertKind.RESOLVED, incident=make_incident(resolved=ended)))
    assert (resolved.starts_at, resolved.ends_at) == (T0, ended)
    assert Message.from_json(resolved.to_json()) == resolved
    test = render(Alert(id="test-1", kind=AlertKind.TEST, created_at=T0, host="web-1"))
    assert (test.starts_at, test.ends_at) == (None, None)
    # Written before the times were kept: reads back without them rather than failing.
    doc = json.loads(resolved.to_json())
    del doc["starts_at"], doc["ends_at"]
    older = Message.from_json(json.dumps(doc))
    assert (older.starts_at, older.ends_at) == (None, None) and older.title == resolved.title
    for bad in ("yesterday", 5):
        with pytest.raises(ValueError, match="not a stored message"):
            Message.from_json(json.dumps({**doc, "starts_at": bad}))


def test_an_announced_blip_says_the_backend_is_flapping() -> None:
    blip = make_incident(resolved=T0 + timedelta(seconds=6), responses=5)
    msg = render(make_alert(incident=blip, flaps=4))
    assert msg.title.startswith(
        "[snapwatch] FIRING auth-failures on web-1 flapping (4 short incidents of this rule in the last hour): "
    )
    assert "The backend is flapping (4 short incidents of this rule in the last hour)" in msg.text
    assert "Flapping: 4 short incidents of this rule and source in the last hour" in msg.text
    assert "flapping (4 short incidents" in msg.markdown and "flapping (4 short incidents" in msg.html
    assert msg.annotations["flapping"] == "4 short incidents of this rule and source in the last hour"
    plain = render(make_alert(incident=blip))
    assert "flapping" not in plain.text.lower() and "flapping" not in plain.annotations


def test_nested_evidence_is_a_nested_markdown_item() -> None:
    md = render(make_alert()).markdown
    assert "-   evidence" not in md
    assert "\n  - evidence: " in md


def _with_verdict(severity: Severity) -> Diagnosis:
    return Diagnosis((Finding(FindingCode.TOKEN_REVOKED, severity, Confidence.HIGH, "revoked", ("e",), ("s",)),))


@pytest.mark.parametrize(("kind", "diagnosis", "expected"), [
    (AlertKind.OPENED, _with_verdict(Severity.CRITICAL), "failure"),
    (AlertKind.OPENED, _with_verdict(Severity.WARNING), "warning"),
    (AlertKind.UPDATE, _with_verdict(Severity.CRITICAL), "failure"),
    (AlertKind.REMINDER, _with_verdict(Severity.WARNING), "warning"),
    (AlertKind.OPENED, Diagnosis(), "failure"),  # an unexplained auth-failures streak: conversions are refused
    (AlertKind.RESOLVED, _with_verdict(Severity.CRITICAL), "success"),
])
def test_the_notification_type_says_what_a_message_is(kind: AlertKind, diagnosis: Diagnosis, expected: str) -> None:
    assert render(make_alert(kind, diagnosis=diagnosis)).notify_type == expected


def test_test_and_held_back_notification_types() -> None:
    assert render(Alert(id="t", kind=AlertKind.TEST, created_at=T0, host="web-1")).notify_type == "info"
    held = make_alert(AlertKind.HELD_BACK, incident=None, diagnosis=None, held_back=3)
    assert render(held).notify_type == "warning"
    stored = render(make_alert())
    assert Message.from_json(stored.to_json()) == stored  # the type and the subject survive the outbox


@pytest.mark.parametrize("host", ["web-1", "a-very-long-host-name.in.a.very-deep.subdomain.example.internal"])
def test_email_subject_fits_a_lock_screen(host: str) -> None:
    for kind in (AlertKind.OPENED, AlertKind.RESOLVED, AlertKind.REMINDER):
        subject = render(make_alert(kind, host=host)).subject
        assert len(subject) < 80, subject
        assert subject.split()[0 if len(host) > 20 else 1] in ("FIRING", "RESOLVED", "STILL"), subject
        assert "auth-failures" in subject and host[:20] in subject and subject.endswith(": token-drift")
    short = render(make_alert(host="web-1")).subject
    assert short == "[snapwatch] FIRING auth-failures on web-1: token-drift"
