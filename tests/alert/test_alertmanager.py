"""Alertmanager target: payload shape, re-post schedule, and delivery to real Alertmanagers on loopback."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from snapwatch.alert.alertmanager import GROUP_LABELS, AlertmanagerTarget, ResendSchedule, postable, retire
from snapwatch.alert.messages import render
from snapwatch.codec import Message
from snapwatch.config import validated
from snapwatch.errors import NotifyError
from snapwatch.ingest.tokens import fingerprint
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
from tests.helpers.alertmanager_peer import Alertmanagers, Running
from tests.helpers.alertmanager_peer import active_alerts as _active
from tests.helpers.alertmanager_peer import get_json as _get
from tests.helpers.exchanges import exchange
from tests.helpers.paths import ROOT
from tests.helpers.peers import free_port as _free_port
from tests.helpers.tokens import assert_no_secret, make_canvas_token
from tests.helpers.tools import need_tool
from tests.helpers.wait import wait_until as _wait

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
PIXEL = "3f1c2e4a-1111-2222-3333-444455556666"
TOKEN = make_canvas_token(seed="m")
FP = fingerprint(TOKEN)
DIAG = Diagnosis(
    findings=(
        Finding(
            FindingCode.TOKEN_EXPIRED,
            Severity.CRITICAL,
            Confidence.HIGH,
            "The access token was revoked or expired",
            evidence=(f"every request with token {FP} got 401 since 12:00",),
            remediation=("Generate a new token in Business Manager", "Restart the backend"),
        ),
    )
)


def _message(host: str, kind: AlertKind = AlertKind.OPENED, at: datetime = T0) -> Message:
    first = exchange(T0, 401, '{"status":"UNAUTHORIZED"}', pixel=PIXEL, fp=FP, source="backend")
    resolved = at if kind is AlertKind.RESOLVED else None
    incident = Incident("inc1", Rule.AUTH_FAILURES, "backend", T0, resolved, 5, (("401", 5),), at, first)
    alert = Alert(f"{host}-{kind.value}", kind, at, host, incident, DIAG, FP, TokenKind.CANVAS_S2S)
    return render(alert)


# --- pure parts ----------------------------------------------------------------------------------------------


def test_postable_carries_group_labels_host_and_annotations() -> None:
    firing = postable(_message("web-1"), T0, generator_url="http://web-1:9464/metrics")
    labels = firing["labels"]
    assert isinstance(labels, dict)
    assert {k: labels[k] for k in GROUP_LABELS} == {
        "alertname": "SnapCapiIncident",
        "rule": "auth-failures",
        "verdict": "token-expired",
        "pixel": PIXEL,
        "token_fingerprint": FP,
    }
    assert labels["host"] == "web-1"
    notes = firing["annotations"]
    assert isinstance(notes, dict)
    assert {"summary", "evidence", "remediation"} <= set(notes)
    assert "endsAt" not in firing and firing["generatorURL"] == "http://web-1:9464/metrics"
    later = T0 + timedelta(minutes=3)
    assert postable(_message("web-1", AlertKind.RESOLVED, later), later)["endsAt"] == "2025-03-01T12:03:00.000Z"


def test_postable_dates_the_alert_from_the_incident_not_the_send_time() -> None:
    sent = T0 + timedelta(hours=2)  # the outbox retried long after the incident
    firing = postable(_message("web-1", AlertKind.REMINDER, T0 + timedelta(minutes=1)), sent)
    assert firing["startsAt"] == "2025-03-01T12:00:00.000Z" and "endsAt" not in firing
    ended = T0 + timedelta(minutes=3, seconds=7, milliseconds=250)
    resolved = postable(_message("web-1", AlertKind.RESOLVED, ended), sent)
    assert (resolved["startsAt"], resolved["endsAt"]) == ("2025-03-01T12:00:00.000Z", "2025-03-01T12:03:07.250Z")
    # A retired label set has no end of its own: it ends when it is posted, still dated from the incident.
    retired = retire(_message("web-1"), replace(_message("web-1"), labels={"alertname": "other"}))
    assert retired is not None
    assert postable(retired, sent)["endsAt"] == "2025-03-01T14:00:00.000Z"
    assert postable(retired, sent)["startsAt"] == "2025-03-01T12:00:00.000Z"
    # An end logged before the start (clock skew between sources) is clamped: Alertmanager would refuse it.
    skewed = replace(_message("web-1", AlertKind.RESOLVED), ends_at=T0 - timedelta(seconds=2))
    assert postable(skewed, sent)["endsAt"] == postable(skewed, sent)["startsAt"] == "2025-03-01T12:00:00.000Z"
    # Test and held-back notices keep the one-off behaviour: no start given, an end ONE_OFF_TTL ahead.
    notice = postable(render(Alert("t1", AlertKind.TEST, sent, "web-1")), sent)
    assert "startsAt" not in notice and notice["endsAt"] == "2025-03-01T14:05:00.000Z"


def test_postable_redacts_a_token_that_slipped_into_a_message() -> None:
    leaky = replace(
        _message("web-1"),
        labels={"alertname": "X", "bad-name": "v", "empty": ""},
        annotations={"evidence": f"GET /v3/x?access_token={TOKEN}", "summary": f"Bearer {TOKEN}"},
    )
    out = postable(leaky, T0)
    assert out["labels"] == {"alertname": "X", "bad_name": "v"}
    assert_no_secret(json.dumps(out), TOKEN)


def test_resend_schedule_is_due_per_interval_and_never_for_resolved() -> None:
    schedule = ResendSchedule(timedelta(minutes=1))
    open_messages = {"a": _message("h"), "b": _message("h"), "c": _message("h", AlertKind.RESOLVED)}
    last = {"a": T0, "c": T0 - timedelta(hours=1)}
    assert [i for i, _ in schedule.due(open_messages, last, T0 + timedelta(seconds=30))] == ["b"]
    assert schedule.next_due(open_messages, last, T0) == T0
    assert schedule.next_due({"a": open_messages["a"]}, last, T0) == T0 + timedelta(minutes=1)
    assert [i for i, _ in schedule.due(open_messages, last, T0 + timedelta(minutes=1))] == ["a", "b"]
    assert schedule.next_due({}, last, T0) is None


def test_retire_only_when_labels_change() -> None:
    old = _message("web-1")
    assert retire(old, old) is None
    new = replace(old, labels={**old.labels, "verdict": "token-staging"})
    retired = retire(old, new)
    assert retired is not None and retired.kind is AlertKind.RESOLVED and retired.labels == old.labels
    assert retired.alert_id != old.alert_id


def test_bad_urls_are_refused_with_masked_one_line_errors() -> None:
    with pytest.raises(NotifyError, match="no URL"):
        AlertmanagerTarget([" "])
    with pytest.raises(NotifyError) as err:
        AlertmanagerTarget(["ftp://user:hunter2secret@am:9093"])
    assert "hunter2secret" not in str(err.value) and "\n" not in str(err.value)
    a = AlertmanagerTarget(["http://am1:9093", "http://am2:9093/"])
    b = AlertmanagerTarget(["http://am2:9093", "http://am1:9093"])
    assert a.key == b.key and a.key != AlertmanagerTarget(["http://am3:9093"]).key
    assert AlertmanagerTarget(["http://u:pw-secret-123@am:9093/x"]).display == "alertmanager http://…@am:9093/…"


def test_a_member_that_never_answers_times_out_with_a_clear_reason() -> None:
    with socket.socket() as silent:  # accepts connections (backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(NotifyError, match=r"127\.0\.0\.1:\d+: no answer within 0\.5 s"):
            AlertmanagerTarget([url]).send(_message("web-1"), timeout=0.5)
        assert time.monotonic() - started < 3


# --- real Alertmanagers --------------------------------------------------------------------------------------

CONFIG = """\
route:
  receiver: "null"
  group_by: [alertname, rule, verdict, pixel, token_fingerprint]
receivers:
  - name: "null"
"""


@pytest.fixture
def alertmanagers(tmp_path: Path) -> Iterator[Callable[[str, list[str]], Running]]:
    with Alertmanagers(tmp_path, CONFIG) as peers:
        yield peers.start


def test_two_hosts_make_one_group_and_resolving_ends_the_alert(
    alertmanagers: Callable[[str, list[str]], Running],
) -> None:
    am = alertmanagers("single", ["--cluster.listen-address="])
    web1, web2 = AlertmanagerTarget([am.url]), AlertmanagerTarget([am.url])  # one per snapwatch instance
    web1.send(_message("web-1"), timeout=5)
    web2.send(_message("web-2"), timeout=5)

    alerts = _active(am.url)
    assert sorted(a["labels"]["host"] for a in alerts) == ["web-1", "web-2"]
    # Dated from the incident's opened_at (long past), not from when the alert was posted.
    assert [datetime.fromisoformat(a["startsAt"]) for a in alerts] == [T0, T0]
    for alert in alerts:
        assert {k: alert["labels"][k] for k in GROUP_LABELS} == {
            "alertname": "SnapCapiIncident",
            "rule": "auth-failures",
            "verdict": "token-expired",
            "pixel": PIXEL,
            "token_fingerprint": FP,
        }
        assert "expired" in alert["annotations"]["summary"]
        assert FP in alert["annotations"]["evidence"]
        assert "Business Manager" in alert["annotations"]["remediation"]

    def one_group_with_both() -> bool:
        groups = _get(am.url, "/api/v2/alerts/groups")
        hosts = sorted(a["labels"]["host"] for g in groups for a in g["alerts"])
        return len(groups) == 1 and hosts == ["web-1", "web-2"]

    _wait(one_group_with_both, "both hosts' alerts in one group", timeout=10)
    group = _get(am.url, "/api/v2/alerts/groups")[0]
    assert set(group["labels"]) == set(GROUP_LABELS)
    assert_no_secret(json.dumps(_get(am.url, "/api/v2/alerts")), TOKEN)

    # A re-post of the open alert keeps it one alert; resolving one host ends only that host's alert.
    web1.send(_message("web-1", AlertKind.REMINDER, T0 + timedelta(minutes=1)), timeout=5)
    assert [datetime.fromisoformat(a["startsAt"]) for a in _active(am.url)] == [T0, T0]
    web1.send(_message("web-1", AlertKind.RESOLVED, T0 + timedelta(minutes=2)), timeout=5)
    assert [a["labels"]["host"] for a in _active(am.url)] == ["web-2"]
    web2.send(_message("web-2", AlertKind.RESOLVED, T0 + timedelta(minutes=2)), timeout=5)
    assert _active(am.url) == []


def test_cluster_with_a_member_down_still_receives(
    alertmanagers: Callable[[str, list[str]], Running], caplog: pytest.LogCaptureFixture
) -> None:
    port_a, port_b = _free_port(), _free_port()

    def cluster(own: int, peer: int) -> list[str]:
        return [
            f"--cluster.listen-address=127.0.0.1:{own}",
            f"--cluster.advertise-address=127.0.0.1:{own}",
            f"--cluster.peer=127.0.0.1:{peer}",
        ]

    am_a = alertmanagers("a", cluster(port_a, port_b))
    am_b = alertmanagers("b", cluster(port_b, port_a))
    _wait(lambda: len(_get(am_a.url, "/api/v2/status")["cluster"].get("peers") or []) == 2, "the cluster to form")

    am_b.stop()
    target = AlertmanagerTarget([am_b.url, am_a.url])
    target.send(_message("web-1"), timeout=5)
    assert [a["labels"]["host"] for a in _active(am_a.url)] == ["web-1"]
    assert any(am_b.url in r.getMessage() and "another member took it" in r.getMessage() for r in caplog.records)

    # With every member down the send fails, naming each URL masked.
    secret_url = am_b.url.replace("http://", "http://ops:pw-Zq81xv@") + "/prefix-Zq81xv"
    with pytest.raises(NotifyError) as err:
        AlertmanagerTarget([secret_url]).send(_message("web-1"), timeout=2)
    assert "Zq81xv" not in str(err.value) and "127.0.0.1" in str(err.value)
    assert_no_secret(am_a.log.read_text(), TOKEN)


def _doc_block(first_line: str) -> str:
    text = (ROOT / "docs" / "fleet.md").read_text()
    blocks = [b for b in text.split("```yaml\n")[1:] if b.startswith(first_line)]
    assert len(blocks) == 1, first_line
    return blocks[0].split("```", 1)[0]


def test_documented_alertmanager_config_is_valid(tmp_path: Path) -> None:
    amtool = need_tool("amtool")
    path = tmp_path / "alertmanager.yml"
    path.write_text(_doc_block("# alertmanager.yml"))
    done = subprocess.run([amtool, "check-config", str(path)], check=False, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_documented_snapwatch_config_validates() -> None:
    import yaml

    from snapwatch.config import Config

    config = validated(Config, yaml.safe_load(_doc_block("# /etc/snapwatch/config.yaml")))
    AlertmanagerTarget(config.alerts.alertmanager)
    assert config.metrics.listen is not None
