"""`snapwatch scan` end to end: golden logs (tests/data/scan), bench/genlog.py logs, and the text summary."""

from __future__ import annotations

import gzip
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.cli import run_cli, scan_json
from tests.helpers.paths import DATA, ROOT
from tests.helpers.tokens import make_canvas_token

GOLDEN = DATA / "scan"
CASES = sorted(p.name.removesuffix(".expected.json") for p in GOLDEN.glob("*.expected.json"))
SKIPPED_KEYS = ("invalid_utf8", "nul_bytes", "long_lines", "truncated_bodies", "responses_without_status",
                "unpaired_responses", "unpaired_requests", "bad_timestamps", "malformed_records", "unanswered_requests",
                "requests_without_url", "poison_records", "unrecognized_lines")


def _load(name: str) -> dict[str, object]:
    expected = json.loads((GOLDEN / f"{name}.expected.json").read_text())
    assert isinstance(expected, dict)
    return expected


def _golden_args(expected: dict[str, object]) -> list[str]:
    args = expected["args"]
    assert isinstance(args, list)
    return ["-c", str(GOLDEN / str(expected["config"])), *(str(GOLDEN / a) for a in args)]


@pytest.mark.parametrize("name", CASES)
def test_golden_log(name: str) -> None:
    expected = _load(name)
    got = scan_json(*_golden_args(expected))
    assert [Path(str(f)).name for f in got["files"]] == expected["files"]  # type: ignore[attr-defined]
    assert got["responses"] == expected["responses"]
    assert got["requests"] == expected["requests"]
    tokens = got["tokens"]
    assert isinstance(tokens, list)
    assert [{k: t[k] for k in ("fingerprint", "kind", "first_seen", "last_seen", "accepted", "rejected")}
            for t in tokens] == expected["tokens"]
    incidents = got["incidents"]
    assert isinstance(incidents, list)
    want_incidents = expected["incidents"]
    assert isinstance(want_incidents, list)
    assert len(incidents) == len(want_incidents), [(i["rule"], i["opened_at"]) for i in incidents]
    for inc, want in zip(incidents, want_incidents, strict=True):
        for key in ("rule", "opened_at", "resolved_at", "responses", "by_status"):
            assert inc[key] == want[key], (key, inc)
        if "verdict" in want:
            assert inc["diagnosis"]["verdict"] == want["verdict"], inc["diagnosis"]
    skipped = expected["skipped"]
    assert isinstance(skipped, dict)
    assert got["skipped"] == {k: skipped.get(k, 0) for k in SKIPPED_KEYS}
    security = got["security"]
    assert isinstance(security, list)
    assert [f["code"] for f in security] == expected["security"]


def test_each_rule_and_bad_input_case_has_a_golden_log() -> None:
    rules = {i["rule"] for name in CASES for i in _load(name)["incidents"]}  # type: ignore[attr-defined]
    assert rules == {"auth-failures", "rate-limited", "server-errors", "invalid-events", "error-rate", "silence"}
    skipped: set[str] = set()
    for name in CASES:
        skipped.update(_load(name)["skipped"])  # type: ignore[arg-type]
    assert {"invalid_utf8", "nul_bytes", "long_lines", "truncated_bodies", "responses_without_status",
            "unpaired_responses", "unanswered_requests"} <= skipped
    resolved = [i["resolved_at"] for name in CASES for i in _load(name)["incidents"]]  # type: ignore[attr-defined]
    assert None in resolved and any(r is not None for r in resolved)


def test_committed_golden_files_equal_a_fresh_build() -> None:
    spec = importlib.util.spec_from_file_location("scan_golden_build", GOLDEN / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being built
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[spec.name]
    built: dict[str, bytes] = module.build()
    on_disk = {p.name for p in GOLDEN.iterdir() if p.is_file() and p.name != "build.py"}
    assert on_disk == set(built), "run: python tests/data/scan/build.py"
    for name, data in built.items():
        committed, fresh = (GOLDEN / name).read_bytes(), data
        if name.endswith(".gz"):  # compressed bytes may differ between zlib versions; the content may not
            committed, fresh = gzip.decompress(committed), gzip.decompress(fresh)
        assert committed == fresh, f"{name} differs from a fresh build: run python tests/data/scan/build.py"


def test_rotated_order_does_not_depend_on_argument_order() -> None:
    expected = _load("rotated")
    args = _golden_args(expected)
    forward = scan_json(*args)
    backward = scan_json(*args[:2], *reversed(args[2:]))
    assert forward["incidents"] == backward["incidents"]
    assert forward["files"] == backward["files"]


def test_text_summary_has_the_key_lines() -> None:
    expected = _load("auth-failures")
    code, text, err = run_cli("scan", *_golden_args(expected))
    assert code == 0, err
    responses = expected["responses"]
    assert isinstance(responses, dict)
    lines = text.splitlines()
    assert lines[0].startswith("Read 1 file(s): ") and lines[0].endswith("auth-failures.log")
    assert "Responses: 38 (200: 25, 401: 6, 403: 7)" in lines
    assert "Requests: 38 (v3: 38)" in lines
    assert "Incidents: 2" in lines
    first, second = expected["incidents"]  # type: ignore[misc]
    assert (f"  - auth-failures from {first['opened_at']}, resolved {first['resolved_at']} after 2m; "
            "6 failed (401×6)") in lines
    assert f"  - auth-failures from {second['opened_at']}, still open at the end; 7 failed (403×7)" in lines
    # The first streak ended with the very same requests accepted again: nothing in the log explains it.
    assert "    Verdict:\n      unknown: " in "\n".join(lines)
    assert "token-revoked: Token " in "\n".join(lines) and "but Snap accepted it again from" in "\n".join(lines)
    assert "    Verdict:\n      auth-placement: " in "\n".join(lines)
    token = expected["tokens"][0]  # type: ignore[index]
    assert any(line.startswith(f"  - {token['fingerprint']} (canvas-s2s): 25 accepted, 6 rejected")
               for line in lines), lines
    assert "Tokens seen in requests: 1" in lines
    assert any(line.startswith("Security: ") for line in lines)
    # the same remediation as --json gives, in the text too
    assert any(line.startswith("  1. Mask the access_token query parameter before the backend logs") for line in lines)
    assert "Not taken at face value" not in text  # a clean log reports nothing skipped


def test_text_summary_names_what_was_skipped() -> None:
    code, text, _ = run_cli("scan", "-c", str(GOLDEN / "utc.config.yaml"), str(GOLDEN / "no-status.log"))
    assert code == 0
    assert "Not taken at face value: responses_without_status 1" in text
    assert "Responses: 4 (200: 3, none: 1)" in text


# ---- logs written by the project's own generator ------------------------------------------------------------


def _genlog(tmp_path: Path, *args: str) -> tuple[Path, dict[str, int]]:
    log = tmp_path / "genlog.log"
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "genlog.py"), str(log), *args],
                          capture_output=True, text=True, check=True, timeout=120)
    counts = json.loads(done.stdout)
    assert isinstance(counts, dict)
    return log, counts


def test_genlog_fail_every_counts_exactly(tmp_path: Path) -> None:
    log, counts = _genlog(tmp_path, "--events", "5000", "--fail-every", "7")
    got = scan_json("-c", str(GOLDEN / "utc.config.yaml"), str(log))
    assert got["responses"] == {"total": counts["events"],
                                "by_status": {"200": counts["status_200"], "401": counts["status_401"]}}
    assert got["requests"] == {"total": counts["events"], "by_api": {"v3": counts["events"]}, "unanswered": 0}
    tokens = got["tokens"]
    assert isinstance(tokens, list) and len(tokens) == 1
    assert (tokens[0]["accepted"], tokens[0]["rejected"]) == (counts["status_200"], counts["status_401"])
    assert tokens[0]["kind"] == "canvas-s2s"
    assert got["incidents"] == []  # one 401 in 7 is no streak, and far below the error-rate threshold
    assert set(got["skipped"].values()) == {0}  # type: ignore[attr-defined]


def test_genlog_streaks_give_one_incident_each(tmp_path: Path) -> None:
    log, counts = _genlog(tmp_path, "--events", "5000", "--streaks", "100", "--streak-len", "10")
    got = scan_json("-c", str(GOLDEN / "utc.config.yaml"), str(log))
    assert got["responses"] == {"total": 5000, "by_status": {"200": counts["status_200"], "401": counts["status_401"]}}
    incidents = got["incidents"]
    assert isinstance(incidents, list)
    assert len(incidents) == 5000 // 100
    assert all(i["rule"] == "auth-failures" and i["responses"] == 10 and i["by_status"] == {"401": 10}
               and i["resolved_at"] is not None for i in incidents)
    opened = [i["opened_at"] for i in incidents]
    assert opened == sorted(opened) and len(set(opened)) == len(opened)
    # every incident is judged once it ended: the same token got 2xx before each streak and again after it,
    # with nothing changed in the requests, so revocation is ruled out and nothing else explains it
    assert {i["diagnosis"]["verdict"] for i in incidents[1:]} == {"unknown"}
    assert all("token-previously-accepted" in [f["code"] for f in i["diagnosis"]["findings"]] for i in incidents[1:])


def test_scan_with_progress_reads_files_given_as_an_iterator(tmp_path: Path) -> None:
    from snapwatch.config import Config
    from snapwatch.run.scan import scan_with_diagnosis

    log = tmp_path / "capi.log"
    log.write_text("2025-12-03 23:35:17 - INFO - [IN] INCOMING RESPONSE - A Event\n"
                   "2025-12-03 23:35:17 - INFO - Status Code: 200\n"
                   '2025-12-03 23:35:17 - INFO - Body: {"status": "VALID"}\n')
    config = Config()
    report = scan_with_diagnosis(iter([log]), config, config.token, {}, progress=True)
    assert report.files == [str(log)]
    assert dict(report.by_status) == {"200": 1}


def test_lines_a_regex_source_cannot_read_are_reported(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("garbage\n2025-12-03T10:00:00+00:00 401 https://tr.snapchat.com/v3/px/events\nmore garbage\n")
    config = tmp_path / "config.yaml"
    config.write_text("sources:\n  - path: x\n    format: regex\n"
                      "    pattern: '^(?P<ts>\\S+) (?P<status>\\d{3}) (?P<url>\\S+)'\n")
    data = scan_json("-c", str(config), str(log))
    assert data["responses"] == {"total": 1, "by_status": {"401": 1}}
    skipped = data["skipped"]
    assert isinstance(skipped, dict) and skipped["unmatched_lines"] == 2
    code, out, _ = run_cli("scan", "-c", str(config), str(log))
    assert code == 0 and "unmatched_lines 2" in out


def _interleaved_log(path: Path, pid: bool) -> None:
    """Two processes writing one file, their logging calls alternating (each call's lines together)."""
    token = make_canvas_token(seed="two-workers")
    url = f"https://tr.snapchat.com/v3/5bf81ee1-15b1-4dc1-b636-d7dae49b950e/events?access_token={token}"

    def calls(n: int, event: str, status: int) -> list[str]:
        p = "2025-12-03 23:35:17 - " + (f"[{n}] - " if pid else "") + "INFO - "
        return [p + line for line in [f"[OUT] OUTGOING REQUEST - {event} Event (v3)", f"URL: {url}", "Method: POST",
                                      "Payload:", '{\n  "data": []\n}', f"[IN] INCOMING RESPONSE - {event} Event",
                                      f"Status Code: {status}", 'Body: {\n  "status": "VALID"\n}', ""]]

    one, two = calls(101, "ADD_CART", 200), calls(202, "PURCHASE", 200)
    path.write_text("\n".join(line for pair in zip(one, two, strict=True) for line in pair) + "\n")


@pytest.mark.parametrize("pid", [False, True])
def test_interleaved_writers_are_reported_once_with_the_fix(tmp_path: Path, pid: bool) -> None:
    log = tmp_path / "capi.log"
    _interleaved_log(log, pid)
    data = scan_json("-c", str(GOLDEN / "utc.config.yaml"), str(log))
    assert data["responses"] == {"total": 2, "by_status": {"200": 2}}
    hygiene = data["hygiene"]
    assert isinstance(hygiene, list)
    if pid:  # the format names the process: pairing is exact, nothing to fix
        assert hygiene == []
        return
    [finding] = hygiene
    assert (finding["code"], finding["severity"]) == ("log-interleaved", "info")
    assert "%(process)d" in finding["remediation"][0]
    code, out, _ = run_cli("scan", "-c", str(GOLDEN / "utc.config.yaml"), str(log))
    assert code == 0 and "Log: Several processes write the log and their lines interleave" in out


def test_requests_never_answered_are_counted_and_reported(tmp_path: Path) -> None:
    log = tmp_path / "capi.log"
    token = make_canvas_token(seed="timeouts")
    url = f"https://tr.snapchat.com/v3/5bf81ee1-15b1-4dc1-b636-d7dae49b950e/events?access_token={token}"
    lines = []
    for minute in range(3):  # three requests a minute apart; only the last is answered
        p = f"2025-12-03 23:{35 + minute}:17 - INFO - "
        lines += [p + "[OUT] OUTGOING REQUEST - PURCHASE Event (v3)", p + f"URL: {url}", p + "Method: POST",
                  p + "Payload:", p + "{}"]
    lines += [p + "[IN] INCOMING RESPONSE - PURCHASE Event", p + "Status Code: 200", p + 'Body: {"status": "VALID"}']
    log.write_text("\n".join(lines) + "\n")
    config = tmp_path / "config.yaml"
    config.write_text("sources:\n  - path: x\n    timezone: UTC\n    pairing_timeout: 90s\n")
    data = scan_json("-c", str(config), str(log))
    assert data["requests"] == {"total": 3, "by_api": {"v3": 3}, "unanswered": 2}
    skipped = data["skipped"]
    assert isinstance(skipped, dict) and skipped["unanswered_requests"] == 2
    [finding] = data["hygiene"]  # type: ignore[misc]
    assert (finding["code"], finding["count"]) == ("requests-unanswered", 2)
    assert "pairing_timeout (90s)" in finding["evidence"][0]
