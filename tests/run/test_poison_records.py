"""A record that cannot be read is skipped and counted, and never stops anything: the daemon following the file
keeps counting what comes after it, and scan over the same file exits 0 with the same counts."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.helpers.cli import scan_json
from tests.helpers.daemon import write_config
from tests.helpers.files import append
from tests.helpers.peers import Backend
from tests.helpers.process import READY, DaemonProcess, status_json
from tests.helpers.tokens import make_canvas_token

T0 = datetime(2025, 12, 6, 9, 0, 0, tzinfo=UTC)
SEP = "=" * 100
DEEP = "[" * 1000 + "]" * 1000  # 2 KB: json.loads raises RecursionError on it


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _block(at: datetime, status: str, body: str, token: str) -> str:
    """A request and its response, as the backend logs them, with ``status`` and ``body`` as given."""
    p = at.strftime("%Y-%m-%d %H:%M:%S") + " - INFO - "
    url = f"https://tr.snapchat.com/v3/5bf81ee1-15b1-4dc1-b636-d7dae49b950e/events?access_token={token}"
    lines = [SEP, "[OUT] OUTGOING REQUEST - PURCHASE Event (v3)", f"URL: {url}", "Method: POST", "Payload:",
             json.dumps({"data": [{"event_name": "PURCHASE"}]}, indent=2), SEP,
             SEP, "[IN] INCOMING RESPONSE - PURCHASE Event", f"Status Code: {status}", f"Body: {body}", SEP, ""]
    return "".join(p + line + "\n" for line in lines)


def poison(start: datetime) -> tuple[str, dict[str, int], int]:
    """Every poison shape, one call each: the text, the responses it holds by status, the records it poisons."""
    token = make_canvas_token(seed="poison")
    header = _b64(json.dumps({"alg": "HS256"}).encode())
    deep_claims = f"{header}.{_b64(DEEP.encode())}.{_b64(b'signature' * 4)}"
    pretty_deep = "\n".join(["["] + [" " * (k + 1) + "[" for k in range(1500)]
                            + [" " * (k + 1) + "]" for k in reversed(range(1500))] + ["]"])
    text = "".join([
        _block(start, "400", DEEP, token),  # a one-line body nested 1,000 deep
        _block(start + timedelta(seconds=1), "400", pretty_deep, token),  # a pretty one, 1,500 deep
        _block(start + timedelta(seconds=2), "4" * 4301, '{"status": "FAILED"}', token),  # int-string limit
        _block(start + timedelta(seconds=3), "200", '{"status": "VALID"}', deep_claims),  # a token nested deep
    ])
    return text, {"400": 2, "none": 1, "200": 1}, 1


def _counted(status: dict[str, object]) -> dict[str, int]:
    sources = status["sources"]
    assert isinstance(sources, list)
    return {str(k): int(v) for s in sources for k, v in s["responses"].items()}


@pytest.mark.timeout(90)
def test_the_daemon_counts_what_follows_each_poison_record_and_scan_agrees(tmp_path: Path) -> None:
    log = tmp_path / "capi.log"
    log.touch()
    config = write_config(tmp_path / "config.yaml", [log], tmp_path / "state",
                          "rules:\n  invalid_events:\n    count: 2\n    window: 5m\n"
                          "alerts:\n  urls: []\n  group_wait: 1s\n", timezone="UTC")
    token = make_canvas_token(seed="healthy")
    text, poisoned, poisons = poison(T0 + timedelta(seconds=10))
    expected = {"200": 2 + poisoned["200"] + 2, "400": 2, "401": 1, "none": 1}
    daemon = DaemonProcess(config)
    try:
        daemon.wait_for(READY, 30)
        backend = Backend(log, name="snapwatch.tests.poison")
        backend.calls(token, [200, 200], [T0, T0 + timedelta(seconds=1)])
        append(log, text)
        backend.calls(token, [200, 200, 401], [T0 + timedelta(seconds=20 + i) for i in range(3)])
        backend.close()
        deadline = time.monotonic() + 30
        while _counted(status_json(config)) != expected:
            assert daemon.proc.poll() is None, f"the daemon stopped:\n{daemon.output()}"
            assert time.monotonic() < deadline, f"{_counted(status_json(config))} != {expected}:\n{daemon.output()}"
            time.sleep(0.2)
        [source] = status_json(config)["sources"]  # type: ignore[misc]
        assert source["skipped"] == {"poison_records": poisons, "responses_without_status": 1}
        daemon.wait_for("poison records", 10)  # said in its log as well
    finally:
        code, _ = daemon.terminate()
    assert code == 0, daemon.output()
    scan = scan_json("-c", str(config), str(log))
    assert scan["responses"] == {"total": sum(expected.values()), "by_status": dict(sorted(expected.items()))}
    skipped = scan["skipped"]
    assert isinstance(skipped, dict)
    assert (skipped["poison_records"], skipped["responses_without_status"]) == (poisons, 1)
    incidents = scan["incidents"]
    assert isinstance(incidents, list)
    assert [i["rule"] for i in incidents] == ["invalid-events"]  # diagnosed: the deep bodies were read safely


def test_jsonl_records_nested_too_deep_or_with_a_huge_status_are_malformed(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_text("\n".join([json.dumps({"ts": "2025-12-06T09:00:00+00:00", "status": 200}),
                              '{"ts": "2025-12-06T09:00:01+00:00", "status": 200, "reason": ' + DEEP + "}",
                              '{"ts": "2025-12-06T09:00:02+00:00", "status": "' + "5" * 5000 + '"}',
                              json.dumps({"ts": "2025-12-06T09:00:03+00:00", "status": 401})]) + "\n")
    config = tmp_path / "config.yaml"
    config.write_text(f"sources:\n  - path: {log}\n    format: jsonl\n", encoding="utf-8")
    scan = scan_json("-c", str(config), str(log))
    assert scan["responses"] == {"total": 2, "by_status": {"200": 1, "401": 1}}
    skipped = scan["skipped"]
    assert isinstance(skipped, dict)
    assert skipped["malformed_records"] == 2
