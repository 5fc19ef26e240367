"""``snapwatch report``: from log files it says exactly what ``scan`` says; from the daemon's history it draws
what the daemon saw (a revoke, an incident, a token switch at the recovery); the page renders offline."""

from __future__ import annotations

import email
import json
import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from snapwatch.ingest.tokens import fingerprint
from snapwatch.report import status_class
from snapwatch.store.state import Store
from tests.helpers import cli
from tests.helpers.daemon import write_config
from tests.helpers.paths import DATA
from tests.helpers.peers import SMTP_PASSWORD, Backend, Hook, Mailbox, smtp_server
from tests.helpers.process import DaemonProcess, status_json
from tests.helpers.systemd import fake_systemctl
from tests.helpers.tokens import make_canvas_token
from tests.report.readback import bars, by_class, parse, svg_of
from tests.report.test_chromium import _assert_drawn, _screenshot, browser  # noqa: F401  (the fixture)

GOLDEN = sorted(p for p in (DATA / "scan").glob("*.log"))
_STATUS_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d):\d\d(?:,\d+)? - \w+ - (?:HTTP )?Status Code: *(\d+)", re.M)
_TOTAL = re.compile(r'<li data-status="([^"]+)"><span[^>]*></span><b>[^<]*</b> × ([\d,]+)</li>')


def _report(*argv: str) -> str:
    done = cli.snapwatch_process("report", *argv)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _per_minute_from_the_log(log: Path) -> Counter[tuple[datetime, str]]:
    """(minute, class) → responses, read straight off the log's status lines (not through snapwatch)."""
    out: Counter[tuple[datetime, str]] = Counter()
    for minute, status in _STATUS_LINE.findall(log.read_text(encoding="utf-8", errors="replace")):
        out[(datetime.fromisoformat(minute).replace(tzinfo=UTC), status_class(int(status)))] += 1
    return out


@pytest.mark.parametrize("log", GOLDEN, ids=lambda p: p.stem)
def test_a_report_from_files_says_what_scan_says(log: Path, tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yaml", [], tmp_path / "state", timezone="UTC")
    config.write_text("sources:\n  - path: x\n    timezone: UTC\n" + f"state_dir: {tmp_path / 'state'}\n")
    page = _report("-c", str(config), str(log))
    scan = json.loads(cli.snapwatch_process("scan", "--json", "-c", str(config), str(log)).stdout)
    totals = {status: int(n.replace(",", "")) for status, n in _TOTAL.findall(page)}
    assert totals == scan["responses"]["by_status"]
    rows = [a["data-incident"] for a in parse(page).find("tr") if "data-incident" in a]
    assert rows == [i["id"] for i in scan["incidents"]]
    if scan["incidents"]:
        svg = svg_of(page)
        verdicts = {r.attrib["data-incident"]: r.attrib["data-verdict"] for r in by_class(svg, "rect", "incident")}
        assert verdicts == {i["id"]: i["diagnosis"]["verdict"] for i in scan["incidents"]}
    if scan["responses"]["total"]:
        drawn = bars(svg_of(page))
        from_log = _per_minute_from_the_log(log)
        if sum(from_log.values()) == scan["responses"]["total"]:  # every response has a plain status line
            assert drawn == from_log
        assert sum(drawn.values()) == scan["responses"]["total"]


def _healthy_then_revoked_then_swapped(backend: Backend, old: str, new: str, start: datetime) -> datetime:
    """20 accepted, 10 rejected (revoked), then the new token accepted; returns when the new one began."""
    second = timedelta(seconds=1)
    backend.calls(old, [200] * 20, [start + i * second for i in range(20)])
    backend.calls(old, [401] * 10, [start + (20 + i) * second for i in range(10)])
    recovered = start + 40 * second
    backend.calls(new, [200] * 8, [recovered + i * second for i in range(8)])
    return recovered


@pytest.mark.timeout(120)
def test_a_report_from_the_daemon_history_shows_the_revoke_and_the_recovery(tmp_path: Path) -> None:
    old, new = make_canvas_token(seed="hist-old"), make_canvas_token(seed="hist-new")
    log = tmp_path / "capi.log"
    backend = Backend(log, name="snapwatch.tests.report-history")
    config = write_config(tmp_path / "config.yaml", [log], tmp_path / "state",
                          "rules:\n  auth_failures:\n    streak: 5\n    recovery: 3\n", timezone="UTC")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    daemon = DaemonProcess(config)
    try:
        daemon.wait_for("; ready", 30)
        recovered = _healthy_then_revoked_then_swapped(backend, old, new, start)
        daemon.wait_for("incident resolved: auth-failures", 30)
    finally:
        backend.close()
        code, _ = daemon.terminate()
    assert code == 0, daemon.output()

    page = _report("-c", str(config), "--since", "1h")
    svg = svg_of(page)
    bands = by_class(svg, "rect", "incident")
    assert len(bands) == 1
    verdict = bands[0].attrib["data-verdict"]
    assert verdict != "unknown" and verdict in page
    switches = [g for g in by_class(svg, "g", "marker") if g.attrib["data-kind"] == "token-change"]
    assert len(switches) == 1, [g.attrib for g in by_class(svg, "g", "marker")]
    assert datetime.fromisoformat(switches[0].attrib["data-at"]) == recovered
    label = "".join(switches[0].itertext())
    assert fingerprint(old) in label and fingerprint(new) in label
    assert sum(bars(svg).values()) == 38  # every response the backend logged, minute by minute

    status = status_json(config)
    assert status["incidents"] == []  # nothing open any more …
    done = cli.snapwatch_process("status", "--history", "--json", "-c", str(config))
    history = json.loads(done.stdout)["history"]
    assert [(h["rule"], h["failed"], h["verdict"]) for h in history] == [("auth-failures", 10, verdict)]
    one = _report("-c", str(config), "--incident", history[0]["id"])
    assert len(by_class(svg_of(one), "rect", "incident")) == 1
    text = cli.snapwatch_process("status", "--history", "-c", str(config)).stdout
    assert f"{history[0]['id']}: auth-failures on {log}" in text


def test_nothing_to_report_is_a_clear_answer(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.yaml", [tmp_path / "capi.log"], tmp_path / "state", timezone="UTC")
    done = cli.snapwatch_process("report", "-c", str(config))
    assert done.returncode == 1, done.stderr
    assert done.stderr == f"snapwatch: no state in {tmp_path / 'state'}: has `snapwatch run` run with this config?\n"
    assert not (tmp_path / "state").exists()  # a read-only command creates no state
    Store.open(tmp_path / "state").close()  # a daemon that ran and saw nothing
    done = cli.snapwatch_process("report", "-c", str(config))
    assert done.returncode == 1 and done.stderr.startswith("snapwatch: no traffic and no incident in "), done.stderr
    done = cli.snapwatch_process("report", "-c", str(config), "--incident", "nope")
    assert done.returncode == 1 and "no incident nope" in done.stderr


@pytest.mark.timeout(120)
def test_a_report_from_files_renders_in_chromium(browser: list[str], tmp_path: Path) -> None:  # noqa: F811
    out = tmp_path / "report.html"
    done = cli.snapwatch_process("report", "-o", str(out), str(DATA / "scenarios" / "revoked" / "backend.log"))
    assert done.returncode == 0 and done.stderr.startswith(f"snapwatch: wrote {out}"), done.stderr
    _assert_drawn(_screenshot(browser, out, tmp_path / "shot.png", "1200,1600"))


@pytest.mark.timeout(120)
def test_an_email_resolved_message_carries_the_report_and_every_resolved_names_the_command(tmp_path: Path) -> None:
    old, new = make_canvas_token(seed="mail-old"), make_canvas_token(seed="mail-new")
    log = tmp_path / "capi.log"
    backend = Backend(log, name="snapwatch.tests.report-mail")
    box, hook = Mailbox(), Hook()
    try:
        with smtp_server(box) as port:
            mail = f"mailto://ops:{SMTP_PASSWORD}@127.0.0.1:{port}?to=oncall@example.com&from=snapwatch@example.com"
            config = write_config(
                tmp_path / "config.yaml", [log], tmp_path / "state",
                "rules:\n  auth_failures:\n    streak: 5\n    recovery: 3\n"
                f"alerts:\n  group_wait: 0s\n  attach_report: true\n  urls:\n    - {json.dumps(mail)}\n"
                f"    - json://127.0.0.1:{hook.port}/hook\n", timezone="UTC")
            daemon = DaemonProcess(config)
            try:
                daemon.wait_for("; ready", 30)
                _healthy_then_revoked_then_swapped(backend, old, new, datetime.now(UTC).replace(microsecond=0)
                                                   - timedelta(minutes=5))
                messages = box.wait_for(2, 60)
                bodies = [body for _, body in hook.wait_for(2, 60)]
            finally:
                backend.close()
                code, _ = daemon.terminate()
            assert code == 0, daemon.output()
    finally:
        hook.stop()
    resolved = [email.message_from_bytes(m) for m in messages if b"RESOLVED" in m]
    assert len(resolved) == 1
    attached = [p for p in resolved[0].walk() if p.get_filename() == "snapwatch-report.html"]
    assert len(attached) == 1
    page = attached[0].get_payload(decode=True).decode()
    assert len(by_class(svg_of(page), "rect", "incident")) == 1
    firing = [email.message_from_bytes(m) for m in messages if b"RESOLVED" not in m]
    assert not any(p.get_filename() for p in firing[0].walk())  # only the RESOLVED message carries it
    [incident_id] = {b["message"].split("snapwatch report --incident ")[1].split()[0]
                     for b in bodies if "RESOLVED" in b["title"]}
    assert f'data-incident="{incident_id}"' in page


def test_a_report_from_history_marks_the_env_changes_it_recorded(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from snapwatch.model import EnvState
    from snapwatch.report import EnvChange, Restart
    from snapwatch.run.report import from_state

    now = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)
    with Store.open(tmp_path) as store:
        store.commit_batch(None, path="/var/log/app.log", minutes={(now - timedelta(minutes=30), "200"): 5})
        store.record_env(EnvState(now - timedelta(minutes=20), "ae6a9db423e3", "SNAP_ACCESS_TOKEN in /srv/app/.env"))
        # systemd, as `systemctl show -p ActiveEnterTimestamp --value --timestamp=unix` answers
        restarted = now - timedelta(minutes=19)
        monkeypatch.setenv("PATH", str(fake_systemctl(tmp_path / "bin", f"@{int(restarted.timestamp())}")))
        data = from_state(store, host="h", tz=UTC, now=now, since=timedelta(hours=1), unit="shop-backend.service")
    assert [m for m in data.markers if isinstance(m, EnvChange)] == [
        EnvChange(now - timedelta(minutes=20), "ae6a9db423e3")]
    assert [m for m in data.markers if isinstance(m, Restart)] == [Restart(restarted, "shop-backend.service")]
