"""snapwatch.service under a real systemd: a Debian 12 machine booted with systemd-nspawn, installed by the guide.

One machine for the module (booting and installing is the slow part); the tests run in order against it
and share its state. Counts are compared with what the backend writer reports it wrote (the ledger in
harness.py). Every failure carries the tail of ``journalctl -u snapwatch``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest

from tests.system.boot import installed_machine
from tests.system.harness import (
    AT_READY,
    CONFIG,
    CONFIG_TEMPLATE,
    LOG,
    LOG_DIR,
    STATE_DIR,
    TOOLS,
    WATCHDOG_SEC,
    WRITER_PID,
    Installed,
    counted,
)

pytestmark = [pytest.mark.system, pytest.mark.timeout(900)]

RESTART_SEC = 5  # the shipped unit's RestartSec=


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    """One machine for the module: booted, snapwatch installed by the guide, the service running."""
    with installed_machine(tmp_path_factory.mktemp("wheels")) as svc:
        yield svc


def seconds(span: str) -> float:
    """A systemd time span as `systemctl show` prints it (``30s``, ``1min 30s``, ``500ms``) in seconds."""
    units = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0}
    parts = re.findall(r"(\d+(?:\.\d+)?)(us|ms|s|min|h)", span)
    assert parts, f"not a time span: {span!r}"
    return sum(float(n) * units[u] for n, u in parts)


def config(streak: int) -> str:
    return CONFIG_TEMPLATE.format(log=LOG, streak=streak, state_dir=STATE_DIR)


INVALID = config(0)  # rules.auth_failures.streak must be >= 1


def test_ready_only_once_the_backlog_is_read(installed: Installed) -> None:
    at_ready = json.loads(installed.m.run(["cat", AT_READY]).stdout)
    times = installed.show("ExecMainStartTimestampMonotonic", "ActiveEnterTimestampMonotonic", "NRestarts")
    activating = (int(times["ActiveEnterTimestampMonotonic"]) - int(times["ExecMainStartTimestampMonotonic"])) / 1e6
    offsets = [s["offset"] for s in at_ready["sources"]]
    detail = (f"at READY=1 (ExecStartPost=) snapwatch had {counted(at_ready)} at offsets {offsets}; the backlog "
              f"is {installed.backlog} in {installed.backlog_bytes} bytes; activating for {activating:.2f}s")
    assert times["NRestarts"] == "0", installed.journal_tail()
    assert offsets == [installed.backlog_bytes], f"{detail}\n{installed.journal_tail()}"
    assert counted(at_ready) == installed.backlog, f"{detail}\n{installed.journal_tail()}"
    assert activating > 0, f"{detail}\n{installed.journal_tail()}"
    print(detail)


def traced(output: str) -> dict[str, str]:
    """A traced script's output (``bash -x``), as {command: what it printed}."""
    out: dict[str, str] = {}
    command = ""
    for line in output.splitlines():
        if line.startswith("+ "):
            command = line[2:]
            out[command] = ""
        elif command:
            out[command] += line + "\n"
    return out


def test_the_guide_ran_as_written(installed: Installed) -> None:
    step4, step5 = traced(installed.step_output[4]), traced(installed.step_output[5])
    assert step4.get("echo readable") == "readable\n", installed.why(installed.step_output[4])
    verify = [out for cmd, out in step5.items() if cmd.startswith("sudo systemd-analyze verify ")]
    assert verify == [""], installed.why(f"systemd-analyze verify should print nothing: {verify}")
    check = next(out for cmd, out in step5.items() if cmd.endswith("check-config -c /etc/snapwatch/config.yaml"))
    masked = "json://127.0.0.1:9/…" in check and "snapwatch-test" not in check  # the webhook URL's path hidden
    assert masked, installed.why(check)
    status = next(out for cmd, out in step5.items() if cmd == "systemctl status snapwatch.service")
    assert "Active: active (running)" in status and 'Status: "following' in status, installed.why(status)


def test_status_text_says_what_it_follows(installed: Installed) -> None:
    pattern = re.compile(r"following (\d+) file\(s\); (\d+) open incident\(s\); (\d+) alert\(s\) pending")
    seen: dict[str, str] = {}

    def agrees() -> bool:
        text = installed.show("StatusText")["StatusText"]
        status = installed.status()
        m = pattern.fullmatch(text)
        seen.update(text=text, status=json.dumps({k: status[k] for k in ("incidents", "outbox")}))
        outbox = status["outbox"]
        assert isinstance(outbox, dict) and isinstance(status["incidents"], list)
        return bool(m) and int(m[1]) >= 1 and int(m[2]) == len(status["incidents"]) and \
            int(m[3]) == outbox["pending"]

    installed.wait_for("StatusText= to agree with snapwatch status --json", agrees, timeout=30)
    print(seen)


def test_counts_exact_through_rotating_file_handler(installed: Installed) -> None:
    before = set(installed.m.path(LOG_DIR).iterdir())
    installed.write("200x150,401x6,200x150,401x5,200x100", handler="rotating", max_bytes=65536, backup_count=50,
                    pace=0.003)
    rotated = set(installed.m.path(LOG_DIR).iterdir()) - before
    assert len(rotated) >= 5, installed.why(f"expected several rotations, new files: {sorted(rotated)}")
    installed.wait_exact()
    # the files are the backend's, closed to others: snapwatch reads them through the ACLs alone
    for path in installed.m.path(LOG_DIR).iterdir():
        assert path.stat().st_mode & 0o007 == 0, installed.why(f"{path} is open to others")
    acl = installed.m.run(["getfacl", "--omit-header", "--absolute-names", LOG]).stdout
    assert "user:snapwatch:r--" in acl, installed.why(acl)


def test_counts_exact_through_logrotate_create(installed: Installed) -> None:
    # logrotate renames the log and creates a new one while the backend writes; postrotate tells the
    # backend to reopen, so it writes a little more to the renamed file first
    writer = installed.writer_command("200x300,401x6,200x300", "file", pace=0.004, pidfile=WRITER_PID)
    rotate = "logrotate -f -s /var/lib/logrotate/snapwatch-test.status /etc/snapwatch-test-logrotate-create.conf"
    done = installed.m.sh(f"{writer} > /run/writer.json & w=$!\n"
                          f"for i in 1 2 3 4 5; do sleep 0.4; {rotate}; done\n"
                          "wait $w\ncat /run/writer.json", timeout=180)
    installed.record(done.stdout)
    installed.wait_exact()


def test_counts_exact_through_logrotate_copytruncate(installed: Installed) -> None:
    # logrotate copies the log and truncates it while the backend keeps writing to it (O_APPEND). The
    # lock only keeps logrotate from copying in the middle of a call: what it loses then is its own doing.
    cursor = installed.cursor()
    lock = "/srv/app/backend-writer.lock"
    writer = installed.writer_command("200x400,401x6,200x200", "file", pace=0.004, lock=lock)
    rotate = ("flock /srv/app/backend-writer.lock logrotate -f -s /var/lib/logrotate/snapwatch-test.status "
              "/etc/snapwatch-test-logrotate-copytruncate.conf")
    done = installed.m.sh(f"{writer} > /run/writer.json & w=$!\n"
                          f"for i in 1 2 3; do sleep 0.8; {rotate}; done\n"
                          "wait $w\ncat /run/writer.json", timeout=180)
    installed.record(done.stdout)
    installed.wait_exact()
    truncations = [m for m in installed.messages_since(cursor) if "truncated" in m]
    assert len(truncations) == 3, f"{truncations}\n{installed.journal_tail()}"


def test_reload_applies_a_changed_rule_without_a_restart(installed: Installed) -> None:
    pid = installed.main_pid()
    cursor = installed.cursor()
    installed.write("200x3,401x3,200x4")  # three 401s: below the streak of 5, no incident
    installed.wait_exact()
    assert not [m for m in installed.messages_since(cursor) if "incident opened" in m], installed.journal_tail()
    installed.set_edits(config(streak=3))
    installed.day_to_day("systemctl reload")
    installed.wait_for_message(cursor, f"configuration reloaded from {CONFIG}")
    cursor = installed.cursor()
    installed.write("401x3,200x4")
    opened = installed.wait_for_message(cursor, "incident opened: auth-failures")
    assert "(3 failed" in opened, installed.why(opened)
    installed.wait_exact()
    state = installed.show("MainPID", "ActiveState", "NRestarts")
    assert (int(state["MainPID"]), state["ActiveState"]) == (pid, "active"), f"{state}\n{installed.journal_tail()}"


def test_reload_refuses_an_invalid_config_and_keeps_running(installed: Installed) -> None:
    pid = installed.main_pid()
    cursor = installed.cursor()
    installed.set_edits(INVALID)
    try:
        installed.day_to_day("systemctl reload")
        refused = installed.wait_for_message(cursor, "reload refused")
        assert re.search(rf"{CONFIG}:\d+:\d+: rules\.auth_failures\.streak", refused), installed.why(refused)
        state = installed.show("MainPID", "ActiveState")
        assert (int(state["MainPID"]), state["ActiveState"]) == (pid, "active"), \
            f"{state}\n{installed.journal_tail()}"
        cursor = installed.cursor()
        installed.write("401x3,200x4")  # still the previous config's streak of 3
        opened = installed.wait_for_message(cursor, "incident opened: auth-failures")
        assert "(3 failed" in opened, installed.why(opened)
    finally:  # a valid file again (`snapwatch status` reads it too), whatever happened above
        cursor = installed.cursor()
        installed.set_edits(config(streak=5))
        installed.day_to_day("systemctl reload", check=False)
    installed.wait_for_message(cursor, f"configuration reloaded from {CONFIG}")
    installed.wait_exact()
    assert installed.main_pid() == pid, installed.journal_tail()


def test_watchdog_restarts_a_frozen_daemon_which_resumes_where_it_was(installed: Installed) -> None:
    installed.wait_exact()
    pid = installed.main_pid()
    restarts = int(installed.show("NRestarts")["NRestarts"])
    cursor = installed.cursor()
    installed.m.run(["kill", "-STOP", str(pid)])
    frozen_at = time.monotonic()
    try:
        installed.write("200x80,401x6,200x40")  # the backend goes on while snapwatch is frozen
        installed.wait_active(timeout=WATCHDOG_SEC + RESTART_SEC + 60, other_than=pid)
    finally:
        installed.m.run(["kill", "-CONT", str(pid)], check=False)  # if the watchdog did not act
    took = time.monotonic() - frozen_at
    messages = installed.messages_since(cursor)
    assert any("Watchdog timeout" in m for m in messages), installed.journal_tail()
    assert int(installed.show("NRestarts")["NRestarts"]) == restarts + 1, installed.journal_tail()
    installed.wait_exact()
    print(f"frozen daemon replaced after {took:.1f}s (WatchdogSec={WATCHDOG_SEC}s, RestartSec={RESTART_SEC}s)")


def test_crash_is_restarted_and_loses_nothing(installed: Installed) -> None:
    installed.wait_exact()
    outbox_before = installed.status()["outbox"]
    assert isinstance(outbox_before, dict)
    pid = installed.main_pid()
    restarts = int(installed.show("NRestarts")["NRestarts"])
    installed.m.run(["kill", "-KILL", str(pid)])
    installed.write("200x50,401x7,200x30")  # written while snapwatch is down
    installed.wait_active(timeout=RESTART_SEC + 60, other_than=pid)
    assert int(installed.show("NRestarts")["NRestarts"]) == restarts + 1, installed.journal_tail()
    status = installed.wait_exact()
    outbox = status["outbox"]
    assert isinstance(outbox, dict)
    kept = outbox["pending"] + outbox["delivered"] + outbox["failed"]
    assert kept >= sum(outbox_before.values()), installed.why(f"outbox before the crash {outbox_before}, now {outbox}")


def test_invalid_config_exits_78_without_a_restart_loop(installed: Installed) -> None:
    cursor = installed.cursor()
    installed.set_edits(INVALID)
    try:
        done = installed.admin(f"sudoedit {CONFIG} && sudo systemctl restart snapwatch.service", check=False)
        assert done.returncode != 0, installed.why(done.stdout)
        props = ("ActiveState", "Result", "ExecMainStatus", "NRestarts")
        first = installed.show(*props)
        assert (first["ActiveState"], first["Result"], first["ExecMainStatus"]) == ("failed", "exit-code", "78"), \
            f"{first}\n{installed.journal_tail()}"
        time.sleep(RESTART_SEC + 3)  # long enough for Restart=on-failure to have fired, had it been allowed
        later = installed.show(*props)
        assert later == first, f"{first} then {later}\n{installed.journal_tail()}"
        messages = installed.messages_since(cursor)
        exits = [m for m in messages if "Main process exited" in m and "status=78" in m]
        assert len(exits) == 1, f"{exits}\n{installed.journal_tail()}"
        assert any(re.search(rf"{CONFIG}:\d+:\d+: rules\.auth_failures\.streak", m) for m in messages), \
            installed.journal_tail()
        installed.write("200x20")  # written while it is down
    finally:  # fixed and started by hand, whatever happened above
        installed.set_edits(config(streak=5))
        installed.admin(f"sudoedit {CONFIG} && sudo systemctl restart snapwatch.service", check=False)
    installed.wait_active()
    installed.wait_exact()  # what was written while it was down is read now


SANDBOX_SKIP = {"Type", "NotifyAccess", "WatchdogSec", "ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload",
                "Restart", "RestartSec", "RestartPreventExitStatus", "TimeoutStopSec"}


def unit_sandbox(installed: Installed) -> list[tuple[str, str]]:
    """The [Service] settings of snapwatch.service (file and drop-ins) that shape its process, in order."""
    text = installed.m.run(["systemctl", "cat", "snapwatch.service"]).stdout
    out: list[tuple[str, str]] = []
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        key, _, value = line.partition("=")
        if section == "[Service]" and key not in SANDBOX_SKIP:
            out.append((key, value))
    return out


def test_the_sandbox_holds(installed: Installed) -> None:
    pid = installed.main_pid()
    user = installed.m.run(["ps", "-o", "user=", "-p", str(pid)]).stdout.strip()
    assert user == "snapwatch", installed.journal_tail()
    # the daemon's own mount namespace: /home is hidden and everything but the state directory is read-only
    inside = installed.m.sh(
        f"nsenter -t {pid} -m -- sh -c 'test -e /home/alice/notes.txt && echo home-visible; "
        "touch /srv/open/from-daemon-ns 2>&1 || true; touch /var/lib/snapwatch/.ns-probe && echo state-writable; "
        "rm -f /var/lib/snapwatch/.ns-probe'").stdout
    held = "home-visible" not in inside and "Read-only file system" in inside and "state-writable" in inside
    assert held, installed.why(inside)
    # the same probe as the snapwatch user, first bare (the control), then with the unit's own settings
    probe = ["/usr/bin/python3", f"{TOOLS}/sandbox_probe.py"]
    bare = json.loads(installed.m.run(["runuser", "-u", "snapwatch", "--", *probe]).stdout)
    assert set(bare.values()) == {"ok"}, installed.why(f"the control run should reach everything: {bare}")
    settings = unit_sandbox(installed)
    unit = "snapwatch-sandbox-probe.service"
    installed.m.run(["systemd-run", "--quiet", f"--unit={unit}", "-p", "RemainAfterExit=yes",
                     "-p", "StandardOutput=truncate:/run/sandbox-probe.json",
                     *(a for k, v in settings for a in ("-p", f"{k}={v}")), *probe])
    try:
        installed.wait_for("the sandbox probe to finish",
                           lambda: installed.m.show(unit, "SubState")["SubState"] in ("exited", "failed"))
        keys = sorted({k for k, _ in settings} - {"EnvironmentFile"})
        same = installed.m.show(unit, *keys) == installed.show(*keys)
        assert same, installed.why("the probe did not run with the unit's settings")
        boxed = json.loads(installed.m.run(["cat", "/run/sandbox-probe.json"]).stdout)
    finally:
        installed.m.run(["systemctl", "stop", unit], check=False)
    expected_ok = {"write state_dir", "read log", "read env_file", "read config"}
    assert {k for k, v in boxed.items() if v == "ok"} == expected_ok, installed.why(boxed)
    assert boxed["write world_writable_dir"] == "EROFS", installed.why(boxed)
    print(f"in the daemon's mount namespace: {inside!r}; bare: {bare}; sandboxed: {boxed}")


def test_journal_carries_priorities(installed: Installed) -> None:
    warnings = installed.day_to_day("-p warning").stdout
    assert "incident opened: auth-failures" in warnings, installed.why(warnings[-3000:])
    assert "; ready" not in warnings, installed.why(warnings[-3000:])
    entries = installed.m.journal_entries("snapwatch.service")
    priority = {e["MESSAGE"]: e["PRIORITY"] for e in entries if isinstance(e.get("MESSAGE"), str)}
    opened = [p for m, p in priority.items() if "incident opened: auth-failures" in m]
    ready = [p for m, p in priority.items() if m.endswith("following 1 source(s); ready")]
    assert opened and set(opened) == {"4"}, installed.why(opened)
    assert ready and set(ready) == {"6"}, installed.why(ready)


def test_stop_is_clean_and_keeps_the_pending_alert(installed: Installed) -> None:
    cursor = installed.cursor()
    # an incident that stays open (one that resolves within group_wait sends nothing): its alert is owed, and
    # cannot be delivered (nobody listens at the webhook)
    installed.write("200x5,401x6")
    installed.wait_for_message(cursor, "incident opened: auth-failures")
    before = installed.wait_exact()["outbox"]
    assert isinstance(before, dict)

    def pending_grew() -> bool:
        outbox = installed.status()["outbox"]
        assert isinstance(outbox, dict)
        return outbox["pending"] > before["pending"]

    installed.wait_for("the new incident's alert in the outbox", pending_grew, timeout=30)
    pending = installed.status()["outbox"]
    limit = seconds(installed.show("TimeoutStopUSec")["TimeoutStopUSec"])
    started = time.monotonic()
    done = installed.day_to_day("systemctl stop", check=False)
    took = time.monotonic() - started
    state = installed.show("ActiveState", "Result", "ExecMainCode", "ExecMainStatus")
    assert done.returncode == 0, f"{done.stdout}\n{installed.journal_tail()}"
    assert took < limit, installed.why(f"stop took {took:.1f}s, TimeoutStopSec={limit:.0f}s")
    assert state == {"ActiveState": "inactive", "Result": "success", "ExecMainCode": "1", "ExecMainStatus": "0"}, \
        f"{state}\n{installed.journal_tail()}"
    after = installed.status()
    assert after["outbox"] == pending, installed.why(f"outbox before stop {pending}, after {after['outbox']}")
    assert counted(after) == installed.ledger.as_tuple(), installed.journal_tail()
    print(f"stop took {took:.1f}s; outbox kept {after['outbox']}")
