"""A realistic sample report (two hours, one 401 streak fixed by a new token), for tests and the demo picture.

Pure and deterministic: the traffic's ups and downs come from sines, not from a random generator or
the clock, so the same ReportData comes back on every call.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from snapwatch.report.data import (
    EnvChange,
    ReportData,
    ReportDiagnosis,
    ReportFinding,
    ReportIncident,
    ReportToken,
    Restart,
    TokenChange,
    minute_buckets,
)

OLD_FP = "3f9a1c0b2e4d"
NEW_FP = "7c2e91ab04d3"
PIXEL = "d5f1a2c0-7e4b-4c1d-9a3e-2b6f8c0d1e47"
LOG = "/var/log/app/snap_conversions_api.log"
UNIT = "shop-backend.service"
INCIDENT_ID = "9b1e4c07a2d5f3e8"


def _statuses(minute: int) -> list[int]:
    """What Snap answered in one minute of the window: healthy, then a 401 streak, then healthy again."""
    n = 38 + round(9 * math.sin(minute / 9) + 4 * math.sin(minute / 3.7))
    if 47 <= minute < 81:
        return [401] * n  # 13:47 to 14:21: the token was revoked; every call is refused
    if minute == 81:
        return [401, 401] + [200] * (n - 2)  # the restarted backend sends the new token from 14:21:04
    out = [200] * n
    if minute % 13 == 5:
        out[-1] = 400  # the odd event Snap refuses as invalid
    if minute in (22, 23):
        out[-3:] = [429, 429, 429]  # a short burst over the rate limit
    if minute == 31:
        out[-2:] = [503, 502]
    return out


def sample_report() -> ReportData:
    """Two hours of one backend's calls on 4 Dec 2025 (Europe/Paris): healthy traffic, a 34-minute 401
    streak (verdict ``token-revoked``) that ends when the restarted backend sends a new token, with the
    ``.env`` change, the restart and the token change on the timeline."""
    tz = ZoneInfo("Europe/Paris")
    start = datetime(2025, 12, 4, 13, 0, tzinfo=tz)
    end = start + timedelta(hours=2)
    responses: list[tuple[datetime, int | None]] = []
    for minute in range(120):
        statuses = _statuses(minute)
        for i, status in enumerate(statuses):
            at = start + timedelta(minutes=minute, seconds=2 + i * 57 / len(statuses))
            responses.append((at, status))

    totals: dict[str, int] = {}
    for _, code in responses:
        key = str(code) if code is not None else "none"
        totals[key] = totals.get(key, 0) + 1
    switch = start + timedelta(minutes=81, seconds=4)
    streak = [at for at, s in responses if s == 401]
    opened, resolved = streak[0], switch
    old = [(at, s) for at, s in responses if at < switch]
    new = [(at, s) for at, s in responses if at >= switch]
    failed = sum(1 for _, s in responses if s is None or not 200 <= s < 300)
    last_ok = max(at for at, s in old if s == 200).astimezone(tz).strftime("%H:%M:%S")
    first_401 = opened.astimezone(tz).strftime("%H:%M:%S")

    diagnosis = ReportDiagnosis(
        findings=(
            ReportFinding(
                code="token-revoked",
                severity="critical",
                confidence="high",
                title="The token was revoked or regenerated in Business Manager",
                evidence=(
                    f"{OLD_FP} was accepted for pixel {PIXEL} {sum(1 for _, s in old if s == 200):,} times "
                    f"in this window, the last time at {last_ok}",
                    f"from {first_401} Snap answered 401 to every call ({len(streak):,} in a row)",
                    "the token, pixel, API version, endpoint and token placement did not change at 13:47",
                ),
                remediation=(
                    "Generate a new Conversions API token in Business Manager (Business Settings › "
                    "Conversions API Tokens)",
                    "Put it in /srv/app/.env as SNAP_CAPI_TOKEN, without quotes or a Bearer prefix",
                    f"Restart {UNIT} so that it reads the new .env",
                ),
            ),
            ReportFinding(
                code="token-previously-accepted",
                severity="info",
                confidence="high",
                title="This very token was accepted for this pixel before the streak",
                evidence=(f"{OLD_FP}: accepted until {last_ok}, refused from {first_401}",),
            ),
            ReportFinding(
                code="token-drift",
                severity="warning",
                confidence="medium",
                title="The .env holds another token than the one the backend sends",
                evidence=(
                    f"/srv/app/.env holds {NEW_FP} since 14:05:37; the backend sent {OLD_FP} until 14:21:04",
                    f"{UNIT} started before the .env changed: a restart was pending",
                ),
                remediation=(f"Restart {UNIT}",),
            ),
        ),
        ruled_out=(
            "wrong token type: the claims are those of a Canvas S2S token, and this token was accepted before",
            "auth-placement: the token stayed in the access_token query parameter of v3 calls",
            "server-errors: Snap answered, with 401",
        ),
    )
    incident = ReportIncident.of(
        id=INCIDENT_ID,
        rule="auth-failures",
        source=LOG,
        opened_at=opened,
        resolved_at=resolved,
        duration=resolved - opened,
        failed=len(streak),
        by_status={"401": len(streak)},
        diagnosis=diagnosis,
    )
    tokens = (
        ReportToken(
            OLD_FP,
            "canvas-s2s",
            old[0][0],
            old[-1][0],
            sum(1 for _, s in old if s == 200),
            sum(1 for _, s in old if s in (401, 403)),
        ),
        ReportToken(
            NEW_FP,
            "canvas-s2s",
            new[0][0],
            new[-1][0],
            sum(1 for _, s in new if s == 200),
            sum(1 for _, s in new if s in (401, 403)),
        ),
    )
    return ReportData(
        host="shop-api-1",
        sources=(LOG,),
        start=start,
        end=end,
        tz=tz,
        totals_by_status=totals,
        requests=len(responses),
        conversions_lost=failed,
        buckets=minute_buckets(responses),
        incidents=(incident,),
        markers=(
            EnvChange(start + timedelta(minutes=65, seconds=37), NEW_FP),
            Restart(start + timedelta(minutes=80, seconds=52), UNIT),
            TokenChange(switch, OLD_FP, NEW_FP),
        ),
        tokens=tokens,
    )
