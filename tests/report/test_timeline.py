"""The timeline SVG read back: bars equal the input counts, aggregation keeps sums exact, bands and
markers carry their labels, tick labels are in the display zone."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from datetime import UTC, datetime, timedelta, tzinfo
from itertools import pairwise
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from snapwatch.report import (
    CLASSES,
    Bucket,
    EnvChange,
    LogGap,
    ReportData,
    ReportDiagnosis,
    ReportIncident,
    Restart,
    TokenChange,
    render_report,
    sample_report,
)

from .readback import bars, by_class, svg_of, text

T0 = datetime(2025, 12, 4, 12, 0, tzinfo=UTC)


def _data(buckets: tuple[Bucket, ...], start: datetime, end: datetime, tz: tzinfo = UTC, **kw: Any) -> ReportData:
    return ReportData(
        host="h", sources=("/log",), start=start, end=end, tz=tz,
        totals_by_status={}, requests=0, conversions_lost=0, buckets=buckets, **kw,
    )


def _child(el: ET.Element, tag: str) -> ET.Element:
    found = el.find(tag)
    assert found is not None, f"no <{tag}> in <{el.tag}>"
    return found


def _expected(buckets: tuple[Bucket, ...]) -> Counter[tuple[datetime, str]]:
    return Counter({(b.start, c): n for b in buckets for c, n in b.counts.items() if n})


def test_sample_bars_equal_the_per_minute_input_exactly() -> None:
    data = sample_report()
    svg = svg_of(render_report(data))
    assert svg.attrib["data-bucket-minutes"] == "1"
    assert bars(svg) == _expected(data.buckets)
    assert sum(bars(svg).values()) == sum(data.totals_by_status.values())
    # One bar per non-zero class per minute, each with its hover text.
    for rect in svg.iter("rect"):
        if "data-class" in rect.attrib:
            n = int(rect.attrib["data-count"])
            assert n > 0
            assert text(_child(rect, "title")).endswith(f"{rect.attrib['data-class']}: {n:,}")


def test_bars_stack_in_class_order_without_overlap() -> None:
    svg = svg_of(render_report(sample_report()))
    columns: dict[str, list[tuple[float, float, str]]] = {}
    for rect in svg.iter("rect"):
        if "data-class" in rect.attrib:
            y, h = float(rect.attrib["y"]), float(rect.attrib["height"])
            columns.setdefault(rect.attrib["data-minute"], []).append((y, h, rect.attrib["data-class"]))
    for stack in columns.values():
        stack.sort(reverse=True)  # bottom first
        assert [c for _, _, c in stack] == [c for c in CLASSES if c in {c for _, _, c in stack}]
        for (y_low, _, _), (y_up, h_up, _) in pairwise(stack):
            assert abs(y_up + h_up - y_low) < 0.02


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 5 * 1440), st.sampled_from(CLASSES), st.integers(1, 10_000)), min_size=1, max_size=60
    ),
    st.integers(0, 6 * 1440),
    st.sampled_from(["UTC", "Europe/Paris", "Asia/Kolkata", "America/New_York"]),
)
def test_aggregation_keeps_every_count(entries: list[tuple[int, str, int]], length: int, zone: str) -> None:
    counts: dict[datetime, dict[str, int]] = {}
    for minute, cls, n in entries:
        slot = counts.setdefault(T0 + timedelta(minutes=minute), {})
        slot[cls] = slot.get(cls, 0) + n
    buckets = tuple(Bucket(t, c) for t, c in counts.items())
    svg = svg_of(render_report(_data(buckets, T0, T0 + timedelta(minutes=length), ZoneInfo(zone))))
    width = int(svg.attrib["data-bucket-minutes"])
    assert int(svg.attrib["data-columns"]) <= 720
    got = bars(svg)
    # Each input minute belongs to exactly one bar start: the last one at or before it, within width.
    starts = sorted({t for t, _ in got})
    expected: Counter[tuple[datetime, str]] = Counter()
    for b in buckets:
        start = max(s for s in starts if s <= b.start)
        assert b.start < start + timedelta(minutes=width)
        for cls, n in b.counts.items():
            expected[(start, cls)] += n
    assert got == expected
    assert sum(got.values()) == sum(n for _, _, n in entries)


def test_three_days_are_summed_into_ten_minute_buckets_on_round_local_times() -> None:
    tz = ZoneInfo("Asia/Kolkata")  # +05:30: round local times are not round UTC times
    buckets = tuple(Bucket(T0 + timedelta(minutes=m), {"2xx": 1 + m % 7, "401/403": m % 3}) for m in range(3 * 1440))
    svg = svg_of(render_report(_data(buckets, T0, T0 + timedelta(days=3), tz)))
    assert svg.attrib["data-bucket-minutes"] == "10"
    got = bars(svg)
    assert all(t.astimezone(tz).minute % 10 == 0 for t, _ in got)
    for cls in ("2xx", "401/403"):
        assert sum(n for (_, c), n in got.items() if c == cls) == sum(b.count(cls) for b in buckets)


def test_tick_labels_are_in_the_display_zone() -> None:
    buckets = (Bucket(T0, {"2xx": 3}),)
    for zone, first in (("UTC", "12:00"), ("Asia/Tokyo", "21:00"), ("Asia/Kolkata", "17:30")):
        tz = ZoneInfo(zone)
        page = render_report(_data(buckets, T0, T0 + timedelta(hours=2), tz))
        labels = by_class(svg_of(page), "text", "xlabel")
        assert text(labels[0]) == first
        for label in labels:
            at = datetime.fromisoformat(label.attrib["data-at"])
            assert text(label) == at.astimezone(tz).strftime("%H:%M")
            assert at.utcoffset() == at.astimezone(tz).utcoffset()
            assert at.minute % 15 == 0
        assert first in page.split("<svg")[0]  # the header's range, too
        assert "<tspan" not in page  # one day: no dates under the ticks


def test_dates_appear_under_ticks_when_the_range_spans_days_and_dst_keeps_round_hours() -> None:
    tz = ZoneInfo("America/New_York")
    start = datetime(2025, 3, 8, 12, 0, tzinfo=tz)  # clocks go forward on the 9th at 02:00
    svg = svg_of(render_report(_data((), start, start + timedelta(days=2), tz)))
    labels = by_class(svg, "text", "xlabel")
    dates = [d.text for d in svg.iter("tspan")]
    assert dates == ["8 Mar", "9 Mar", "10 Mar"]
    for label in labels:
        hh, mm = label.text.split(":") if label.text else ("", "")
        assert int(mm) == 0
        assert int(hh) % 6 == 0, label.text


def _incident(id_: str, verdict: str, opened: datetime, resolved: datetime | None) -> ReportIncident:
    return ReportIncident(
        id=id_, rule="auth-failures", source="/log", opened_at=opened, resolved_at=resolved,
        duration=(resolved or opened) - opened, failed=5, by_status={"401": 5}, verdict=verdict,
        verdict_title="Title", severity="critical", confidence="high", first_step="Do it",
        diagnosis=ReportDiagnosis(),
    )


def test_incident_bands_and_labels() -> None:
    start, end = T0, T0 + timedelta(hours=2)
    closed = _incident("a1", "token-drift", T0 + timedelta(minutes=10), T0 + timedelta(minutes=40))
    still = _incident("b2", "rate-limited", T0 + timedelta(minutes=100), None)
    svg = svg_of(render_report(_data((Bucket(T0, {"2xx": 1}),), start, end, incidents=(closed, still))))
    bands = {r.attrib["data-incident"]: r for r in by_class(svg, "rect", "incident")}
    assert set(bands) == {"a1", "b2"}
    x0, w0 = float(bands["a1"].attrib["x"]), float(bands["a1"].attrib["width"])
    assert abs(w0 - 3 * float(bands["b2"].attrib["width"]) / 2) < 1  # 30 minutes against the last 20
    assert x0 < float(bands["b2"].attrib["x"])
    assert "open" in bands["b2"].attrib["class"].split()
    labels = {t.attrib["data-incident"]: text(t) for t in by_class(svg, "text", "incident-label")}
    assert labels == {"a1": "token-drift", "b2": "rate-limited"}


def test_markers_are_drawn_with_their_labels() -> None:
    at = T0 + timedelta(minutes=30)
    markers = (
        TokenChange(at, "3f9a1c0b2e4d", "7c2e91ab04d3"),
        TokenChange(at + timedelta(minutes=1), None, "aaaaaaaaaaaa"),
        EnvChange(at, "7c2e91ab04d3"),
        Restart(at, "shop-backend.service"),
        LogGap(at, "/var/log/app.log.1", "rotated away while snapwatch was down"),
        Restart(T0 - timedelta(days=1), "outside.service"),  # before the range: listed, not drawn
    )
    page = render_report(_data((), T0, T0 + timedelta(hours=1), markers=markers))
    drawn = [
        (g.attrib["data-kind"], text(_child(g, "text")), text(_child(g, "title")))
        for g in by_class(svg_of(page), "g", "marker")
    ]
    kinds = sorted(k for k, _, _ in drawn)
    assert kinds == ["env-change", "log-gap", "restart", "token-change", "token-change"]
    labels = {label for _, label, _ in drawn}
    assert "token 3f9a1c0b2e4d → 7c2e91ab04d3" in labels
    assert "token (none) → aaaaaaaaaaaa" in labels
    assert ".env 7c2e91ab04d3" in labels
    assert "restart shop-backend.service" in labels
    assert "gap /var/log/app.log.1" in labels
    assert any("rotated away while snapwatch was down" in hover for _, _, hover in drawn)
    assert "outside.service" not in page[page.index("<svg") : page.index("</svg>")]
    assert "outside.service" in page  # the list under the timeline names every marker


def test_labels_close_together_go_to_separate_rows() -> None:
    at = T0 + timedelta(minutes=30)
    markers = (EnvChange(at, "7c2e91ab04d3"), Restart(at, "shop.service"), TokenChange(at, "a" * 12, "b" * 12))
    svg = svg_of(render_report(_data((), T0, T0 + timedelta(hours=1), markers=markers)))
    rows = {float(t.attrib["y"]) for g in by_class(svg, "g", "marker") for t in g.iter("text")}
    assert len(rows) == 3


def test_empty_timeline_says_so_and_keeps_its_axes() -> None:
    svg = svg_of(render_report(_data((), T0, T0 + timedelta(hours=1))))
    assert not bars(svg)
    assert [text(t) for t in by_class(svg, "text", "empty")] == ["No responses in this window"]
    assert len(by_class(svg, "text", "xlabel")) >= 2
    assert [text(t) for t in by_class(svg, "text", "ylabel")] == ["0", "1"]


def test_y_axis_shows_a_round_maximum() -> None:
    svg = svg_of(render_report(_data((Bucket(T0, {"2xx": 41, "429": 3}),), T0, T0 + timedelta(minutes=30))))
    assert [text(t) for t in by_class(svg, "text", "ylabel")] == ["0", "25", "50"]
    assert re.fullmatch(r"responses / min", text(by_class(svg, "text", "ytitle")[0]))
