"""JSON forms of model objects: each reads back equal, and the stored incident form stays what databases hold."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from snapwatch.codec import (
    BODY_MAX,
    diagnosis_from,
    exchange_from,
    exchange_json,
    incident_from,
    incident_json,
    request_from,
    request_json,
)
from snapwatch.model import (
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
)
from tests.helpers.exchanges import request

T0 = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
FP = "sha256:0123456789ab"
REQ = request(T0, "px-1", FP)
EX = Exchange(Response(T0 + timedelta(seconds=1), "PURCHASE", 401, '{"status":"UNAUTHORIZED"}'), REQ, "/var/log/a.log")


def incident(first: Exchange | None, resolved: datetime | None = None) -> Incident:
    return Incident(id="inc-1", rule=Rule.AUTH_FAILURES, source="/var/log/a.log", opened_at=T0, resolved_at=resolved,
                    responses=3, by_status=(("401", 2), ("none", 1)), last_at=T0 + timedelta(minutes=2),
                    first_failure=first)


@pytest.mark.parametrize("req", [REQ, Request(T0, "e", Api.V2, "", None, Placement.UNKNOWN, None, None)])
def test_request_reads_back_equal_through_json_text(req: Request) -> None:
    assert request_from(json.loads(json.dumps(request_json(req)))) == req


@pytest.mark.parametrize("ex", [EX, Exchange(Response(T0, "e", None, ""), None, "")])
def test_exchange_reads_back_equal_through_json_text(ex: Exchange) -> None:
    assert exchange_from(json.loads(json.dumps(exchange_json(ex)))) == ex


@pytest.mark.parametrize("inc", [incident(EX), incident(None, T0 + timedelta(hours=1)),
                                 incident(Exchange(EX.response, None, "s"))])
def test_incident_reads_back_equal_through_json_text(inc: Incident) -> None:
    assert incident_from(json.loads(json.dumps(incident_json(inc)))) == inc


def test_stored_incident_form_is_pinned_and_cuts_long_bodies() -> None:
    long = Exchange(Response(T0, "e", 401, "x" * (BODY_MAX + 50)), REQ, "s")
    doc = incident_json(incident(long))
    assert doc["first"] == {
        "source": "s", "at": T0.isoformat(), "event": "e", "status": 401, "body": "x" * BODY_MAX,
        "request": [T0.isoformat(), "PURCHASE", "v3", "/v3/px-1/events", "px-1", "query", FP, "canvas-s2s"],
    }
    assert {k: v for k, v in doc.items() if k != "first"} == {
        "id": "inc-1", "rule": "auth-failures", "source": "/var/log/a.log", "opened_at": T0.isoformat(),
        "resolved_at": None, "responses": 3, "by_status": [["401", 2], ["none", 1]],
        "last_at": (T0 + timedelta(minutes=2)).isoformat(),
    }


def test_diagnosis_reads_back_equal_and_a_foreign_document_is_refused() -> None:
    d = Diagnosis(findings=(Finding(FindingCode.TOKEN_DRIFT, Severity.CRITICAL, Confidence.HIGH, "drift",
                                    ("a", "b"), ("fix it",)),), ruled_out=("expiry",))
    assert diagnosis_from(json.loads(json.dumps(d.to_json()))) == d
    with pytest.raises(ValueError, match="not-a-code"):
        diagnosis_from({"findings": [{**d.findings[0].to_json(), "code": "not-a-code"}], "ruled_out": []})
