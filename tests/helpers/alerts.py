"""A sample alert with every part filled in, and an outbox on a real SQLite file to queue alerts in."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

from snapwatch.ingest import tokens
from snapwatch.model import (
    Alert,
    AlertKind,
    Confidence,
    Diagnosis,
    Finding,
    FindingCode,
    Incident,
    Rule,
    Severity,
    TokenKind,
)
from snapwatch.store.outbox import Outbox
from tests.helpers.exchanges import exchange
from tests.helpers.tokens import make_canvas_token

T0 = datetime(2025, 12, 3, 23, 35, 17, tzinfo=UTC)
TOKEN = make_canvas_token()
FP = tokens.fingerprint(TOKEN)


def make_incident(resolved: datetime | None = None, responses: int = 37) -> Incident:
    first = exchange(T0, 401, '{"status":"UNAUTHORIZED"}', pixel="pix-42", fp=FP, source="/var/log/app/capi.log",
                     event="purchase")
    return Incident(
        id="inc-1",
        rule=Rule.AUTH_FAILURES,
        source="/var/log/app/capi.log",
        opened_at=T0,
        resolved_at=resolved,
        responses=responses,
        by_status=(("401", responses - 7), ("403", 7)),
        last_at=T0 + timedelta(minutes=5),
        first_failure=first,
    )


def make_diagnosis() -> Diagnosis:
    drift = Finding(
        FindingCode.TOKEN_DRIFT,
        Severity.CRITICAL,
        Confidence.HIGH,
        "The backend still sends an old token",
        evidence=(f"requests carry token {FP}; SNAP_ACCESS_TOKEN in /srv/app/.env is 9be1d2c3a4f5",),
        remediation=(
            "Restart the backend so it loads the new token: sudo systemctl restart ruxo-backend.service",
            "Watch the log for 200 responses: snapwatch status",
        ),
    )
    changed = Finding(
        FindingCode.TOKEN_CHANGED,
        Severity.WARNING,
        Confidence.MEDIUM,
        "The token in requests changed <just> before & the streak",
        evidence=("token changed at 23:35:10",),
        remediation=("Watch the log for 200 responses: snapwatch status", "Compare the deploy log"),
    )
    minor = Finding(FindingCode.V2_DEPRECATED, Severity.INFO, Confidence.LOW, "v2 is deprecated")
    extra = Finding(FindingCode.LOG_GAP, Severity.INFO, Confidence.LOW, "lines were lost")
    return Diagnosis(findings=(drift, changed, minor, extra), ruled_out=("auth-placement: v3 requests carry it",))


def make_alert(kind: AlertKind = AlertKind.OPENED, **kw: object) -> Alert:
    fields: dict[str, object] = {
        "id": "a1b2c3d4e5f6",
        "kind": kind,
        "created_at": T0 + timedelta(minutes=6),
        "host": "web-1",
        "incident": make_incident(),
        "diagnosis": make_diagnosis(),
        "token_fp": FP,
        "token_kind": TokenKind.CANVAS_S2S,
    }
    fields.update(kw)
    return Alert(**fields)  # type: ignore[arg-type]


def open_outbox(path: Path, seed: int = 1) -> tuple[sqlite3.Connection, Outbox]:
    conn = sqlite3.connect(path)
    return conn, Outbox(conn, rng=random.Random(seed))
