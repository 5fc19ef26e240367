"""The golden diagnosis scenarios (tests/data/scenarios) through ``snapwatch scan --json --env-file``.

scan judges each incident at log time, from the files alone. What it cannot see is skipped here, by name:
- the live probe never runs in scan, so ``probe-*`` codes, what a probe excludes or rules out, and the
  "unknown" verdict a probe leaves are not expected;
  a probe scenario must diagnose exactly like the same log without a probe (``never-accepted``);
- ``token-in-log`` is reported under ``security``, never as an incident's finding (contract);
- scenarios without an incident diagnose the present: scan must report no incident for them, and
  ``snapwatch diagnose`` over the same log and .env must reach the expected verdict (``silence``: at
  the scenario's "now", 75 minutes after the last record), except where the evidence lives only in the
  daemon's state (``log-gap``: lost lines are found by its checkpoints).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from snapwatch.codec import diagnosis_from
from tests.helpers.cli import run_cli, scan_json
from tests.helpers.contradictions import contradictions
from tests.helpers.paths import DATA

SCENARIOS = DATA / "scenarios"
NAMES = sorted(p.name for p in SCENARIOS.iterdir() if (p / "scenario.json").is_file())
PROBE_CODES = {"probe-accepted", "probe-rejected", "probe-failed"}
SECURITY_CODES = {"token-in-log"}
PRESENT_NOT_SEEN = {
    "log-gap": "a log gap is found by the daemon's checkpoints (state), not in the log itself",
}


def _spec(name: str) -> tuple[dict[str, object], dict[str, object]]:
    folder = SCENARIOS / name
    return json.loads((folder / "scenario.json").read_text()), json.loads((folder / "expected.json").read_text())


def _config(tmp_path: Path, name: str, spec: dict[str, object], *, for_diagnose: bool = False) -> Path:
    folder = SCENARIOS / name
    path = folder / "backend.log" if for_diagnose else Path("backend.log")
    lines = ["sources:", f"  - path: {path}", "    timezone: UTC", "token:"]
    lines.append(f"  env_file: {folder / '.env'}" if for_diagnose else "  key: SNAP_ACCESS_TOKEN")
    if spec.get("service"):
        lines.append(f"  service: {spec['service']}")
    # the direct diagnose() tests open every incident at its 5th failure: so does invalid-events here
    lines += ["rules:", "  invalid_events:", "    count: 5"]
    if spec.get("incident") == "silence":
        lines += ["  silence:", "    enabled: true", "    after: 30m"]
    lines.append(f"state_dir: {tmp_path / 'state'}")
    config = tmp_path / f"{name}.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


def _scan(tmp_path: Path, name: str) -> dict[str, object]:
    spec, _ = _spec(name)
    folder = SCENARIOS / name
    return scan_json("-c", str(_config(tmp_path, name, spec)), "--env-file", str(folder / ".env"),
                     str(folder / "backend.log"))


def _token_in_log(spec: dict[str, object]) -> bool:
    exchanges = spec["exchanges"]
    assert isinstance(exchanges, list)
    return any("access_token=" in str(e["url"]) and "{" in str(e["url"]) for e in exchanges)


def _check(diagnosis: dict[str, object], expected: dict[str, object], *, probe: bool) -> None:
    findings = diagnosis["findings"]
    assert isinstance(findings, list)
    codes = [f["code"] for f in findings]
    # With a probe, an "unknown" verdict is the probe's doing (it rules the token's causes out): scan has none.
    if not (probe and expected["verdict"] == "unknown"):
        assert diagnosis["verdict"] == expected["verdict"], (codes, diagnosis["ruled_out"])
    for code in expected.get("include", []):  # type: ignore[attr-defined]
        if code not in PROBE_CODES | SECURITY_CODES:
            assert code in codes, (code, codes)
    ruled_out = diagnosis["ruled_out"]
    assert isinstance(ruled_out, list)
    if not probe:  # with a probe, what it excludes and rules out is the probe's doing
        for code in expected.get("exclude", []):  # type: ignore[attr-defined]
            assert code not in codes, (code, codes)
        for needle in expected.get("ruled_out_contains", []):  # type: ignore[attr-defined]
            assert any(needle in line for line in ruled_out), (needle, ruled_out)
    by_code = {f["code"]: f for f in findings}
    for code, needles in expected.get("remediation_contains", {}).items():  # type: ignore[attr-defined]
        text = "\n".join(by_code[code]["remediation"])
        for needle in [needles] if isinstance(needles, str) else needles:
            assert needle in text, (needle, text)
    for code, needle in expected.get("title_contains", {}).items():  # type: ignore[attr-defined]
        assert needle in by_code[code]["title"]
    for code, needle in expected.get("evidence_contains", {}).items():  # type: ignore[attr-defined]
        assert any(needle in line for line in by_code[code]["evidence"]), by_code[code]["evidence"]
    for f in findings:
        assert f["title"] and f["evidence"] and f["remediation"], f
        assert not any("{" in step for step in f["remediation"]), f["remediation"]
    assert contradictions(diagnosis_from(diagnosis)) == []


@pytest.mark.parametrize("name", NAMES)
def test_scenario_through_scan(name: str, tmp_path: Path) -> None:
    spec, expected = _spec(name)
    got = _scan(tmp_path, name)
    security = got["security"]
    assert isinstance(security, list)
    assert [f["code"] for f in security] == (["token-in-log"] if _token_in_log(spec) else [])
    incidents = got["incidents"]
    assert isinstance(incidents, list)
    rule = spec.get("incident")
    if rule in (None, "silence"):
        assert incidents == [], "the log itself holds no incident"
        return
    assert [i["rule"] for i in incidents] == [rule]
    incident = incidents[0]
    assert incident["resolved_at"] is None  # every scenario log ends inside its streak
    _check(incident["diagnosis"], expected, probe=bool(spec.get("probe")))


@pytest.mark.parametrize("name", [n for n in NAMES if _spec(n)[0].get("probe")])
def test_probe_scenarios_diagnose_like_the_same_log_without_a_probe(name: str, tmp_path: Path) -> None:
    got, plain = _scan(tmp_path, name), _scan(tmp_path, "never-accepted")
    codes = [[f["code"] for f in i["diagnosis"]["findings"]] for i in got["incidents"]]  # type: ignore[attr-defined]
    assert codes == [[f["code"] for f in i["diagnosis"]["findings"]]
                     for i in plain["incidents"]]  # type: ignore[attr-defined]
    assert codes == [["token-rejected-for-pixel"]]


@pytest.mark.parametrize("name", [n for n in NAMES if _spec(n)[0].get("incident") in (None, "silence")])
def test_present_scenario_through_diagnose(name: str, tmp_path: Path) -> None:
    if name in PRESENT_NOT_SEEN:
        pytest.skip(PRESENT_NOT_SEEN[name])
    spec, expected = _spec(name)
    config = _config(tmp_path, name, spec, for_diagnose=True)
    now = str(spec.get("now") or "2025-12-04T00:00:00+00:00")
    code, out, err = run_cli("diagnose", "--json", "--now", now, "-c", str(config))
    assert code == 0, err
    diagnosis = json.loads(out)
    assert diagnosis["now"] == now
    findings = diagnosis["findings"]
    if "token-in-log" in expected.get("include", []) or expected["verdict"] == "token-in-log":
        assert "token-in-log" in [f["code"] for f in findings]
    _check(diagnosis, expected, probe=False)
