"""``snapwatch diagnose`` speaks of now: the open incidents with exact counts, or since when all is healthy; a
standing configuration problem is a warning, and an open incident is judged against the token source as
the daemon saw it over time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from snapwatch.ingest.tokens import fingerprint
from snapwatch.model import EnvState
from snapwatch.store.state import Store
from tests.helpers.cli import run_cli
from tests.helpers.clock import seconds
from tests.helpers.peers import Backend
from tests.helpers.tokens import assert_no_secret, make_canvas_token

T0 = datetime(2025, 12, 5, 10, 0, 0, tzinfo=UTC)
OLD, NEW = make_canvas_token(seed="now-old"), make_canvas_token(seed="now-new")
PIXEL = "5bf81ee1-15b1-4dc1-b636-d7dae49b950e"


def _setup(tmp: Path, env_token: str, calls: list[tuple[str, list[int]]]) -> Path:
    env = tmp / ".env"
    env.write_text(f"SNAP_ACCESS_TOKEN={env_token}\nSNAP_PIXEL_ID={PIXEL}\n", encoding="utf-8")
    log = tmp / "capi.log"
    backend = Backend(log, name="snapwatch.tests.now")
    written = 0
    try:
        for token, statuses in calls:
            backend.calls(token, statuses, seconds(T0, len(statuses), first=written))
            written += len(statuses)
    finally:
        backend.close()
    config = tmp / "config.yaml"
    config.write_text(f"sources:\n  - path: {log}\n    timezone: UTC\ntoken:\n  env_file: {env}\n"
                      f"state_dir: {tmp / 'state'}\n", encoding="utf-8")
    return config


def _diagnose(config: Path, *args: str) -> tuple[dict[str, object], str]:
    now = (T0 + timedelta(minutes=5)).isoformat()
    code, out, err = run_cli("diagnose", "--json", "--now", now, "-c", str(config), *args)
    assert code == 0, err
    code, text, err = run_cli("diagnose", "--now", now, "-c", str(config), *args)
    assert code == 0, err
    assert_no_secret(out + text, OLD, NEW)
    return json.loads(out), text


def test_an_open_incident_with_its_rule_since_and_exact_counts(tmp_path: Path) -> None:
    # 20 accepted, then 25 refused: auth-failures opens at the 5th, error-rate at the 20th (folded into it).
    config = _setup(tmp_path, OLD, [(OLD, [200] * 20), (OLD, [401] * 25)])
    data, text = _diagnose(config)
    incidents = data["incidents"]
    assert isinstance(incidents, list)
    assert [(i["rule"], i["opened_at"], i["responses"], i["by_status"]) for i in incidents] == [
        ("auth-failures", (T0 + timedelta(seconds=20)).isoformat(), 25, {"401": 25}),
        ("error-rate", (T0 + timedelta(seconds=20)).isoformat(), 25, {"401": 25}),
    ]
    assert incidents[1]["inhibited_by"] == incidents[0]["id"] and incidents[0]["inhibited_by"] is None
    assert data["verdict"] == "token-revoked" and data["healthy_since"] is None
    lines = text.splitlines()
    assert lines[0] == "Open incidents: 2"
    assert lines[1].startswith(f"  auth-failures on {tmp_path / 'capi.log'} since {T0 + timedelta(seconds=20)}"
                               .replace(" 10:", "T10:"))
    assert "25 failed (401: 25)" in lines[1] and "(open 4m 40s)" in lines[1]
    assert lines[3] == "    folded into the auth-failures incident, which explains it"
    assert "\nVerdict:\n  token-revoked: " in text


def test_none_open_says_healthy_since_and_the_last_2xx(tmp_path: Path) -> None:
    config = _setup(tmp_path, OLD, [(OLD, [200] * 10), (OLD, [401] * 6), (OLD, [200] * 10)])
    data, text = _diagnose(config)
    resolved = T0 + timedelta(seconds=18)  # the third 2xx after the streak ends it
    assert data["incidents"] == [] and data["healthy_since"] == resolved.isoformat()
    assert data["last_2xx"] == (T0 + timedelta(seconds=25)).isoformat()
    assert text.splitlines()[0] == (f"Healthy since {resolved.isoformat()} (last 2xx at "
                                    f"{(T0 + timedelta(seconds=25)).isoformat()}): no incident open.")


def test_a_standing_configuration_problem_is_a_warning_not_a_critical_verdict(tmp_path: Path) -> None:
    # Traffic flows with OLD; the .env holds a value cut short (a restart would break things): worth a warning.
    config = _setup(tmp_path, NEW[:-40], [(OLD, [200] * 10)])
    data, text = _diagnose(config)
    findings = data["findings"]
    assert isinstance(findings, list) and findings
    assert {f["code"] for f in findings} >= {"token-drift", "token-malformed"}
    assert all(f["severity"] != "critical" for f in findings), findings
    assert text.splitlines()[0].startswith("Healthy since ")
    assert "Standing problems (warnings: nothing is failing because of them right now):" in text


def test_an_open_incident_is_judged_against_the_source_as_the_daemon_saw_it(tmp_path: Path) -> None:
    # The backend's token was refused from 10:00:20 on; the .env got the new token at 10:01:00, after the last
    # request: the fix is in progress, the cause is still the revocation (today's .env alone says drift).
    config = _setup(tmp_path, NEW, [(OLD, [200] * 20), (OLD, [401] * 8)])
    without_history, _ = _diagnose(config)
    assert without_history["verdict"] == "token-drift"
    source = f"SNAP_ACCESS_TOKEN in {tmp_path / '.env'}"
    with Store.open(tmp_path / "state") as store:
        store.record_env(EnvState(T0 - timedelta(days=3), fingerprint(OLD), source))
        store.record_env(EnvState(T0 + timedelta(minutes=1), fingerprint(NEW), source))
        assert not store.record_env(EnvState(T0 + timedelta(minutes=2), fingerprint(NEW), source))  # no change
        assert [s.fingerprint for s in store.env_history()] == [fingerprint(OLD), fingerprint(NEW)]
    with_history, _ = _diagnose(config)
    assert with_history["verdict"] == "token-revoked"
    assert "token-drift" not in [f["code"] for f in with_history["findings"]]  # type: ignore[union-attr]
