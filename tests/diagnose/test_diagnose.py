"""Golden diagnosis scenarios (tests/data/scenarios) and the ranking rules of snapwatch.diagnose.rank."""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta

import pytest
from dotenv import dotenv_values

from snapwatch.config import TokenConfig
from snapwatch.detect.history import History
from snapwatch.diagnose import facts as knowledge
from snapwatch.diagnose.case import Evidence
from snapwatch.diagnose.rank import diagnose
from snapwatch.diagnose.traffic import LogCounts, invalid_reasons, log_findings
from snapwatch.ingest.shapes import url_parts
from snapwatch.ingest.tokens import TokenReport, fingerprint, inspect, kind_of
from snapwatch.model import (
    Api,
    Diagnosis,
    Exchange,
    FindingCode,
    Incident,
    Placement,
    ProbeOutcome,
    ProbeResult,
    Request,
    Response,
    Rule,
)
from tests.helpers.paths import DATA

SCENARIOS = DATA / "scenarios"
NAMES = sorted(p.name for p in SCENARIOS.iterdir() if (p / "scenario.json").is_file())
STREAK = 5
FAILS = {
    Rule.AUTH_FAILURES: lambda s: s in (401, 403),
    Rule.RATE_LIMITED: lambda s: s == 429,
    Rule.SERVER_ERRORS: lambda s: 500 <= s < 600,
    Rule.INVALID_EVENTS: lambda s: s == 400,
}


@dataclass
class Loaded:
    evidence: Evidence
    expected: dict[str, object]
    tokens: list[str]


def _request(at: datetime, event: str, url: str) -> tuple[Request, str | None]:
    api, path, pixel, raw = url_parts(url)  # as the parser reads a logged URL (a key in the pixel slot masked)
    placement = Placement.QUERY if raw is not None else Placement.NONE if api is Api.V3 else Placement.UNKNOWN
    fp = fingerprint(raw) if raw is not None else None
    kind = kind_of(raw) if raw is not None else None
    return Request(at, event, api, path, pixel, placement, fp, kind), raw


def load(name: str, *, one_second: bool = False) -> Loaded:
    """Scenario ``name``'s evidence; with ``one_second``, every exchange is stamped with the first one's time
    (a backend fast enough to log them all within one second: the log's stamps are whole seconds)."""
    folder = SCENARIOS / name
    spec = json.loads((folder / "scenario.json").read_text())
    expected = json.loads((folder / "expected.json").read_text())
    tokens: dict[str, str] = spec["tokens"]
    exchanges: list[Exchange] = []
    seen: dict[str, TokenReport] = {}
    tokens_in_log = False
    for group in spec["exchanges"]:
        start = datetime.fromisoformat(group["at"])
        for i in range(group["repeat"]):
            at = start + timedelta(seconds=i * group["every"])
            if one_second:
                at = datetime.fromisoformat(spec["exchanges"][0]["at"])
            req, raw = _request(at, group["event"], group["url"].format(**tokens))
            if raw is not None:
                tokens_in_log = True
                report = inspect(raw)
                seen.setdefault(report.fingerprint, report)
            exchanges.append(Exchange(Response(at, group["event"], group["status"], group["body"]), req))

    history = History()
    incident = None
    rule_name = spec.get("incident")
    now = datetime.fromisoformat(spec["now"]) if spec.get("now") else exchanges[-1].at
    bodies: list[str] = []
    if rule_name in (None, "silence"):
        history.observe_all(exchanges)
        if rule_name == "silence":
            last = exchanges[-1].at
            incident = Incident("silence", Rule.SILENCE, "backend.log", last + timedelta(minutes=30), None,
                                0, (), now)
    else:
        rule = Rule(rule_name)
        fails = FAILS[rule]
        start = next(i for i, ex in enumerate(exchanges)
                     if all(fails(e.status) for e in exchanges[i:i + STREAK]))
        streak = exchanges[start:start + STREAK]
        history.observe_all(exchanges[:start + STREAK])
        by_status = Counter(str(ex.status) for ex in streak)
        bodies = [ex.response.body for ex in streak if ex.status == 400]
        incident = Incident("i1", rule, "backend.log", streak[0].at, None, len(streak),
                            tuple(sorted(by_status.items())), streak[-1].at, first_failure=streak[0])
        now = streak[-1].at if not spec.get("now") else now

    env_path = folder / ".env"
    env = dotenv_values(env_path)
    raw_configured = env.get("SNAP_ACCESS_TOKEN")
    configured = inspect(raw_configured) if raw_configured else None
    probe = None
    if spec.get("probe"):
        p = spec["probe"]
        probe = ProbeResult(ProbeOutcome(p["outcome"]), p["status"], p["detail"], now, 0.2)
    evidence = Evidence(
        now=now,
        incident=incident,
        history=history,
        configured=configured,
        configured_source=f"SNAP_ACCESS_TOKEN in {env_path}",
        configured_pixel=env.get("SNAP_PIXEL_ID"),
        seen=seen,
        config=TokenConfig(env_file=env_path, service=spec.get("service")),
        restart_pending=spec.get("restart_pending"),
        probe=probe,
        tokens_in_log=tokens_in_log,
        log_gaps=tuple(spec.get("log_gaps", ())),
        invalid_reasons=invalid_reasons(bodies),
        log_paths=(str(folder / "backend.log"),),
    )
    secrets = list(tokens.values()) + ([raw_configured] if raw_configured else [])
    return Loaded(evidence, expected, secrets)


def _codes(d: Diagnosis) -> list[str]:
    return [f.code.value for f in d.findings]


def _as_list(value: object) -> list[str]:
    return [value] if isinstance(value, str) else list(value)  # type: ignore[call-overload]


@pytest.mark.parametrize("name", NAMES)
def test_scenario(name: str) -> None:
    case = load(name)
    d = diagnose(case.evidence)
    codes = _codes(d)
    exp = case.expected
    assert d.verdict == exp["verdict"], (codes, d.ruled_out)
    for code in exp.get("include", []):
        assert code in codes, (code, codes)
    for code in exp.get("exclude", []):
        assert code not in codes, (code, codes)
    for needle in exp.get("ruled_out_contains", []):
        assert any(needle in line for line in d.ruled_out), (needle, d.ruled_out)
    by_code = {f.code.value: f for f in d.findings}
    for code, needles in exp.get("remediation_contains", {}).items():
        text = "\n".join(by_code[code].remediation)
        for needle in _as_list(needles):
            assert needle in text, (needle, text)
    for code, needle in exp.get("title_contains", {}).items():
        assert needle in by_code[code].title
    for code, needle in exp.get("evidence_contains", {}).items():
        assert any(needle in e for e in by_code[code].evidence), by_code[code].evidence
    # every finding is complete: a title, evidence, concrete remediation without unfilled placeholders
    for f in d.findings:
        assert f.title and f.evidence and f.remediation, f
        assert not any("{" in step for step in f.remediation), f.remediation


def test_every_finding_code_has_a_scenario() -> None:
    produced: set[str] = set()
    for name in NAMES:
        produced.update(_codes(diagnose(load(name).evidence)))
    # How the log is written is judged from its reading, not from an incident's evidence (scan, the daemon).
    produced.update(f.code.value for f in log_findings([LogCounts("app.log", unanswered=3, interleaved=2)]))
    assert produced == {c.value for c in FindingCode}, {c.value for c in FindingCode} - produced


def _leaks(text: str, secrets: list[str]) -> list[str]:
    # A leak is the whole token, or any 11-character piece of it (more than its first 6 + last 4).
    found = []
    for secret in secrets:
        core = secret.strip().strip("\"'").removeprefix("Bearer ").strip()
        if core in text:
            found.append("whole")
        found += [core[i:i + 11] for i in range(0, max(len(core) - 10, 0)) if core[i:i + 11] in text]
    return found


@pytest.mark.parametrize("name", NAMES)
def test_no_token_in_any_finding(name: str) -> None:
    case = load(name)
    text = json.dumps(diagnose(case.evidence).to_json(), ensure_ascii=False)
    assert not _leaks(text, case.tokens)


def test_leak_check_catches_a_token() -> None:
    case = load("placement-change")
    assert _leaks(f"oops {case.tokens[0]}", case.tokens)
    assert _leaks(f"oops {case.tokens[0][20:40]}", case.tokens)


def test_placement_scenario_never_blames_the_token_type() -> None:
    d = diagnose(load("placement-change").evidence)
    assert d.findings[0].code is FindingCode.AUTH_PLACEMENT
    assert d.findings[0].confidence.value == "high"
    text = json.dumps(d.to_json())
    assert "Camera Kit" not in text and "not a Conversions API token" not in text
    assert any(line.startswith("token type:") for line in d.ruled_out)


def test_drift_without_service_says_restart_the_process() -> None:
    case = load("drift-restart-pending")
    ev = case.evidence
    plain = Evidence(**{**{s: getattr(ev, s) for s in Evidence.__slots__}, "config": TokenConfig(
        env_file=ev.config.env_file), "restart_pending": None})
    top = diagnose(plain).findings[0]
    assert top.code is FindingCode.TOKEN_DRIFT
    assert top.confidence.value == "medium"
    assert any("restart the backend process" in step for step in top.remediation)
    assert not any("systemctl" in step for step in top.remediation)


def test_pending_restart_raises_drift_confidence() -> None:
    d = diagnose(load("drift-restart-pending").evidence)
    assert d.findings[0].confidence.value == "high"
    assert any("restart is pending" in e for e in d.findings[0].evidence)


def test_evidence_times_carry_an_offset() -> None:
    d = diagnose(load("placement-change").evidence)
    assert "2025-12-03T23:20:00+00:00" in d.findings[0].evidence[0]


def test_scan_judges_token_age_at_log_time_not_wall_clock() -> None:
    # Years later by the wall clock, the token was still not valid yet when the failures happened.
    ev = load("not-yet-valid").evidence
    later = Evidence(**{**{s: getattr(ev, s) for s in Evidence.__slots__}, "now": ev.now + timedelta(days=900)})
    assert diagnose(later).verdict == "token-not-yet-valid"


def test_answers_logged_in_the_same_second_as_the_first_failure_came_before_it() -> None:
    # The log stamps whole seconds: twenty 2xx and then the 401 streak, all within one second. The 2xx were
    # still Snap accepting the token before it refused it (revoked), not a token it never accepted.
    d = diagnose(load("revoked", one_second=True).evidence)
    assert d.verdict == "token-revoked", [f.code for f in d.findings]
    assert "token-rejected-for-pixel" not in _codes(d)
    # With no 2xx at all, one second changes nothing: never accepted for the pixel.
    assert diagnose(load("never-accepted", one_second=True).evidence).verdict == \
        diagnose(load("never-accepted").evidence).verdict == "token-rejected-for-pixel"


def test_expired_only_from_an_exp_claim() -> None:
    # A Canvas S2S token has no exp: never reported expired, however old its nbf.
    for name in ("revoked", "never-accepted", "placement-change"):
        d = diagnose(load(name).evidence)
        assert "token-expired" not in _codes(d)
        assert any(line.startswith("expiry:") for line in d.ruled_out)


def test_accepting_probe_demotes_token_causes() -> None:
    ev = load("staging-token").evidence
    assert ev.configured is not None
    probe = ProbeResult(ProbeOutcome.ACCEPTED, 200, "VALID", ev.now, 0.1)
    with_probe = Evidence(**{**{s: getattr(ev, s) for s in Evidence.__slots__}, "probe": probe})
    d = diagnose(with_probe)
    # A live "accepted" outranks what the token looks like: staging is a note, and no cause is left.
    assert d.verdict == "unknown"
    assert d.findings[0].code is FindingCode.PROBE_ACCEPTED
    staging = next(f for f in d.findings if f.code is FindingCode.TOKEN_STAGING)
    assert staging.confidence.value == "low" and staging.severity.value == "info"
    assert "but Snap's validate endpoint accepted token" in staging.title


def test_nothing_configured_and_no_log_is_token_missing() -> None:
    d = diagnose(Evidence(now=datetime.fromisoformat("2025-12-03T23:00:00+00:00")))
    assert d.verdict == "token-missing"


def test_a_sound_token_and_no_log_is_unknown() -> None:
    ev = load("never-accepted").evidence
    d = diagnose(Evidence(now=ev.now, configured=ev.configured, config=ev.config))
    assert d.verdict == "unknown"
    assert d.findings == ()
    assert any(line.startswith("expiry:") for line in d.ruled_out)


def test_knowledge_titles_name_the_pixel() -> None:
    d = diagnose(load("never-accepted").evidence)
    top = d.findings[0]
    assert knowledge.BUSINESS_MANAGER_PATH in "\n".join(top.remediation)
    assert "5bf81ee1-15b1-4dc1-b636-d7dae49b950e" in top.title
