"""The page: self-contained (nothing to fetch), every caller string escaped, tables linked to the
diagnoses, sensible when empty, and the renderer pure (stdlib imports only, no clock, no I/O)."""

from __future__ import annotations

import ast
import html
import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

import snapwatch.report
from snapwatch.report import (
    EnvChange,
    LogGap,
    ReportData,
    ReportDiagnosis,
    ReportFinding,
    ReportIncident,
    ReportToken,
    Restart,
    TokenChange,
    render_report,
    sample_report,
)
from snapwatch.report.sample import INCIDENT_ID, NEW_FP, OLD_FP

from .readback import parse, svg_of

T0 = datetime(2025, 12, 4, 12, 0, tzinfo=UTC)
FORBIDDEN = ("http://", "https://", "src=", "<link", "@import", "url(", "<script", "<img", "<iframe")
HOSTILE = "<script>alert(\"x\")</script>' onload='x' https://evil.example/a.css url(https://e) @import src=x <link"
ALLOWED_TAGS = {
    "html", "head", "meta", "title", "style", "body", "main", "header", "h1", "h2", "h3", "h4", "p", "ul", "ol",
    "li", "b", "strong", "span", "code", "time", "section", "figure", "svg", "line", "text", "tspan", "rect", "path",
    "g", "table", "thead", "tbody", "tr", "th", "td", "a", "br", "div", "footer",
}


def _hostile_data() -> ReportData:
    """A report with the hostile string in every string field a caller fills in."""
    h = HOSTILE
    finding = ReportFinding(h, h, h, h, (h, h), (h,))
    incident = ReportIncident(
        id=h, rule=h, source=h, opened_at=T0, resolved_at=T0 + timedelta(minutes=5),
        duration=timedelta(minutes=5), failed=3, by_status={h: 3}, verdict=h, verdict_title=h, severity=h,
        confidence=h, first_step=h, diagnosis=ReportDiagnosis((finding,), (h,)),
    )
    return ReportData(
        host=h, sources=(h, h), start=T0, end=T0 + timedelta(hours=1), tz=UTC, totals_by_status={h: 3, "200": 1},
        requests=4, conversions_lost=3,
        incidents=(incident,),
        markers=(TokenChange(T0, h, h), EnvChange(T0, h), Restart(T0, h), LogGap(T0, h, h)),
        tokens=(ReportToken(h, h, T0, T0, 1, 2),),
    )


def test_the_sample_page_has_nothing_to_fetch() -> None:
    page = render_report(sample_report())
    for needle in FORBIDDEN:
        assert needle not in page.lower(), needle
    parsed = parse(page)
    assert {t for t, _ in parsed.tags} <= ALLOWED_TAGS
    for tag, attrs in parsed.tags:
        assert not {"src", "srcset", "style", "background", "action", "xlink:href"} & set(attrs), tag
        assert not any(a.startswith("on") for a in attrs), tag
        if tag == "a":
            assert attrs["href"].startswith("#")


def test_hostile_strings_are_escaped_everywhere() -> None:
    page = render_report(_hostile_data())
    assert "<script" not in page.lower()
    # Take out the caller's text, escaped as it should be: nothing that fetches or runs remains.
    rest = page.replace(html.escape(HOSTILE, quote=True), "")
    for needle in FORBIDDEN:
        assert needle not in rest.lower(), needle
    parsed = parse(page)
    assert {t for t, _ in parsed.tags} <= ALLOWED_TAGS
    for tag, attrs in parsed.tags:
        assert not any(a.startswith("on") for a in attrs), (tag, attrs)
        assert "src" not in attrs
        if tag == "a":
            assert re.fullmatch(r"#[A-Za-z0-9_-]+", attrs["href"]), attrs["href"]
    # Every field came through as text: the title, host, sources, incident fields, markers, tokens...
    assert parsed.text.count(HOSTILE) >= 20
    assert parsed.find("tr", data_incident=HOSTILE)
    assert parsed.find("tr", data_fingerprint=HOSTILE)
    svg_of(page)  # and the SVG is still well-formed XML


def test_hostile_incident_id_still_links_to_its_section() -> None:
    parsed = parse(render_report(_hostile_data()))
    hrefs = [a["href"][1:] for t, a in parsed.tags if t == "a" and a["href"] != "#incidents"]
    ids = {a["id"] for _, a in parsed.tags if "id" in a}
    assert hrefs
    assert set(hrefs) <= ids


def test_incident_rows_link_to_their_diagnosis() -> None:
    page = render_report(sample_report())
    parsed = parse(page)
    assert parsed.find("a", href=f"#incident-{INCIDENT_ID}")
    assert parsed.find("section", id=f"incident-{INCIDENT_ID}", data_incident=INCIDENT_ID)
    section = page[page.index(f'id="incident-{INCIDENT_ID}"') :]
    for phrase in ("token-revoked", "Evidence", "What to do", "Ruled out", "token-previously-accepted",
                   "Restart shop-backend.service so that it reads the new .env", "401 × 1,430"):
        assert phrase in section, phrase
    cells = [a["data-label"] for t, a in parsed.tags if t == "td" and a.get("data-label")]
    assert cells[:8] == ["Rule", "Opened", "Resolved", "Duration", "Failed", "Verdict", "Confidence", "First step"]
    assert "34 minutes 2 seconds" in parsed.text
    assert "Generate a new Conversions API token" in parsed.text


def test_header_and_tokens_table() -> None:
    data = sample_report()
    parsed = parse(render_report(data))
    text = parsed.text
    assert "shop-api-1" in text
    assert "/var/log/app/snap_conversions_api.log" in text
    assert "2025-12-04 13:00 – 15:00" in text
    assert "Europe/Paris (CET)" in text
    assert f"{data.conversions_lost:,}" in text
    assert "conversions lost (failed responses)" in text
    for status, n in data.totals_by_status.items():
        assert parsed.find("li", data_status=status)
        assert f"{n:,}" in text
    for fp in (OLD_FP, NEW_FP):
        assert parsed.find("tr", data_fingerprint=fp)
    assert "2025-12-04 14:21:04" in text  # the new token's first use, in Paris time


def test_open_incident_and_unknown_verdict() -> None:
    inc = ReportIncident.of(
        id="x1", rule="silence", source="/log", opened_at=T0, resolved_at=None, duration=timedelta(hours=26),
        failed=0, by_status={}, diagnosis=ReportDiagnosis(),
    )
    data = replace(sample_report(), incidents=(inc,), tz=ZoneInfo("UTC"))
    text = parse(render_report(data)).text
    assert "open" in text
    assert "1 day 2 hours" in text
    assert "unknown" in text
    assert "No finding" in text


def test_empty_report_renders_sensibly() -> None:
    data = ReportData(
        host="quiet-host", sources=(), start=T0, end=T0 + timedelta(hours=1), tz=UTC, totals_by_status={},
        requests=0, conversions_lost=0,
    )
    page = render_report(data)
    text = parse(page).text
    for phrase in ("quiet-host", "No responses in this window", "No incidents in this window.",
                   "No token was seen in request URLs.", "times in UTC"):
        assert phrase in text, phrase
    assert "Diagnoses" not in text
    assert 'class="lost"' not in page  # nothing lost: the figure is not painted as an alarm


def test_phone_and_print_ready() -> None:
    page = render_report(sample_report())
    parsed = parse(page)
    assert parsed.find("meta", name="viewport", content="width=device-width, initial-scale=1")
    assert parsed.find("html", lang="en")
    assert "@media print" in parsed.style
    assert "@media (max-width:" in parsed.style
    assert "--c-2xx:" in parsed.style


def test_rendering_is_deterministic() -> None:
    assert render_report(sample_report()) == render_report(sample_report())


STDLIB_ALLOWED = {"__future__", "html", "datetime", "zoneinfo", "dataclasses", "math", "typing", "collections.abc"}


@pytest.mark.parametrize("module", sorted(Path(snapwatch.report.__file__).parent.glob("*.py")), ids=lambda p: p.name)
def test_report_modules_are_pure(module: Path) -> None:
    source = module.read_text(encoding="utf-8")
    tree = ast.parse(source)
    assert ast.get_docstring(tree), "each module starts with a docstring saying what it owns"
    assert len(source.splitlines()) < 400
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            name = node.module or ""
            assert name in STDLIB_ALLOWED or name.startswith("snapwatch.report") or name == "snapwatch", name
        elif isinstance(node, ast.Import):
            for alias in node.names:
                assert alias.name in STDLIB_ALLOWED, alias.name
        elif isinstance(node, ast.Attribute):
            assert node.attr not in {"now", "today", "utcnow", "time", "monotonic", "read_text", "write_text"}
        elif isinstance(node, ast.Name):
            assert node.id not in {"open", "print", "input"}


def test_public_names_are_pinned() -> None:
    assert snapwatch.report.__all__ == [
        "CLASSES", "Bucket", "EnvChange", "LogGap", "Marker", "ReportData", "ReportDiagnosis", "ReportFinding",
        "ReportIncident", "ReportToken", "Restart", "TokenChange", "minute_buckets", "render_report",
        "sample_report", "status_class",
    ]
    assert all(hasattr(snapwatch.report, name) for name in snapwatch.report.__all__)
