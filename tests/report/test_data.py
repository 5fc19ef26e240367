"""ReportData's helpers: status classes, per-minute buckets, verdict fields taken from a diagnosis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from snapwatch.report import (
    CLASSES,
    Bucket,
    ReportData,
    ReportDiagnosis,
    ReportFinding,
    ReportIncident,
    Restart,
    minute_buckets,
    status_class,
)

T0 = datetime(2025, 12, 4, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (200, "2xx"), (204, "2xx"), (299, "2xx"),
        (401, "401/403"), (403, "401/403"),
        (429, "429"),
        (500, "5xx"), (503, "5xx"), (599, "5xx"),
        (400, "other-4xx"), (404, "other-4xx"), (499, "other-4xx"),
        (None, "other"), (100, "other"), (302, "other"), (600, "other"), (0, "other"),
    ],
)
def test_status_class(status: int | None, cls: str) -> None:
    assert status_class(status) == cls
    assert cls in CLASSES


def test_minute_buckets_count_every_response_in_its_minute() -> None:
    pairs: list[tuple[datetime, int | None]] = [
        (T0 + timedelta(seconds=59, microseconds=999_999), 200),
        (T0, 200),
        (T0 + timedelta(seconds=30), 401),
        (T0 + timedelta(minutes=1), None),
        (T0 + timedelta(minutes=5, seconds=1), 503),
        (T0 + timedelta(minutes=5, seconds=2), 400),
    ]
    buckets = minute_buckets(pairs)
    assert [b.start for b in buckets] == [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=5)]
    assert [dict(b.counts) for b in buckets] == [
        {"2xx": 2, "401/403": 1},
        {"other": 1},
        {"5xx": 1, "other-4xx": 1},
    ]
    assert sum(b.total for b in buckets) == len(pairs)
    assert buckets[0].count("429") == 0


def test_minute_buckets_keep_each_times_zone_and_sort_across_zones() -> None:
    plus2 = timezone(timedelta(hours=2))
    buckets = minute_buckets([(T0.astimezone(plus2) + timedelta(minutes=1), 200), (T0, 200)])
    assert [b.start for b in buckets] == [T0, T0 + timedelta(minutes=1)]


def test_naive_times_and_unknown_classes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        minute_buckets([(datetime(2025, 1, 1), 200)])  # naive on purpose
    with pytest.raises(ValueError, match="unknown status classes"):
        Bucket(T0, {"3xx": 1})
    with pytest.raises(ValueError, match="negative"):
        Bucket(T0, {"2xx": -1})
    with pytest.raises(ValueError, match="before its start"):
        ReportData("h", (), T0, T0 - timedelta(1), UTC, {}, 0, 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        ReportData("h", (), T0, T0, UTC, {}, 0, 0, markers=(Restart(datetime(2025, 1, 1), "u"),))


def _incident(diagnosis: ReportDiagnosis) -> ReportIncident:
    return ReportIncident.of(
        id="i1", rule="auth-failures", source="/log", opened_at=T0, resolved_at=None,
        duration=timedelta(minutes=3), failed=12, by_status={"401": 12}, diagnosis=diagnosis,
    )


def test_incident_verdict_fields_come_from_the_top_finding() -> None:
    top = ReportFinding("token-drift", "critical", "high", "Drift", ("e",), ("restart it", "then check"))
    inc = _incident(ReportDiagnosis((top, ReportFinding("token-changed", "warning", "low", "Changed"))))
    assert (inc.verdict, inc.verdict_title, inc.severity, inc.confidence, inc.first_step) == (
        "token-drift", "Drift", "critical", "high", "restart it",
    )


def test_incident_without_findings_is_unknown() -> None:
    inc = _incident(ReportDiagnosis())
    assert inc.verdict == "unknown"
    assert inc.first_step == ""
    assert inc.confidence == ""
