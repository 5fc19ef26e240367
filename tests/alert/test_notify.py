"""Delivery: URL masking and real apprise sends to SMTP and webhook peers on loopback (the outbox: test_outbox)."""

from __future__ import annotations

import asyncio
import email
import io
import logging
import socket
import sqlite3
import threading
import time
from datetime import timedelta
from email import policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from snapwatch.alert.messages import render
from snapwatch.alert.notify import (
    AppriseTarget,
    ConsoleTarget,
    Notifier,
    mask_url,
    scrub,
    send_test,
    targets_from_urls,
    url_secrets,
)
from snapwatch.codec import Message
from snapwatch.errors import NotifyError
from snapwatch.model import AlertKind
from tests.helpers.alerts import FP, T0, TOKEN, make_alert, open_outbox
from tests.helpers.peers import HOOK_SECRET, SMTP_PASSWORD, Hook, Mailbox, free_port
from tests.helpers.tokens import assert_no_secret


@pytest.fixture
def dead_port() -> int:
    return free_port()  # nothing listens there: connections are refused at once


# --- masking ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("json://127.0.0.1:8080/hook/abc", "json://127.0.0.1:8080/…"),
        (f"mmost://chat.example.com/{HOOK_SECRET}", "mmost://chat.example.com/…"),
        ("https://hooks.slack.com/services/T000/B000/XXXXXXXXXXXXXXXXXXXXXXXX", "https://hooks.slack.com/…"),
        ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ", "slack://…/…"),
        (f"mailtos://ops:{SMTP_PASSWORD}@smtp.example.com?to=a@example.com", "mailtos://…@smtp.example.com?to=…"),
        ("tgram://123456789:AAFakeBotTokenValue/4242", "tgram://…"),
        ("http://alertmanager:9093", "http://alertmanager:9093"),
        ("not a url", "…"),
    ],
)
def test_mask_url_hides_credentials_paths_and_query_values(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_scrub_removes_every_url_secret_and_tokens() -> None:
    url = f"mailto://ops:{SMTP_PASSWORD}@127.0.0.1:2525?to=a@example.com"
    text = f"login ops/{SMTP_PASSWORD} failed for {url}\nwith Bearer {TOKEN}"
    clean = scrub(text, url_secrets(url))
    assert_no_secret(clean, SMTP_PASSWORD, TOKEN, url)
    assert "\n" not in clean and clean.startswith("login ops/… failed")


# --- real peers ----------------------------------------------------------------------------------------------


def test_json_and_mattermost_webhooks_receive_the_alert(tmp_path: Path, hook: Hook) -> None:
    targets = [
        AppriseTarget(f"json://127.0.0.1:{hook.port}/hook"),
        AppriseTarget(f"mmost://127.0.0.1:{hook.port}/{HOOK_SECRET}"),
    ]
    notifier = Notifier(open_outbox(tmp_path / "s.db")[1], targets, timeout=5)
    try:
        notifier.enqueue(make_alert(), T0)
        report = notifier.deliver_due_sync(T0)
    finally:
        notifier.close()
    assert (report.delivered, report.retrying) == (2, 0)
    got = dict(hook.wait_for(2))
    as_json = got["/hook"]
    assert as_json["title"].startswith("[snapwatch] FIRING auth-failures on web-1")
    mattermost = got[f"/hooks/{HOOK_SECRET}"]["text"]
    for body in (as_json["message"], mattermost):
        assert "token-drift: The backend still sends an old token" in body
        assert "1. Restart the backend so it loads the new token" in body
        assert "2. Watch the log for 200 responses" in body
        assert FP in body and "a1b2c3d4e5f6" in body
        assert_no_secret(body, TOKEN, HOOK_SECRET)
    assert all(t.display.endswith("/…") and HOOK_SECRET not in t.display for t in targets)


def test_smtp_server_receives_the_email_alert(tmp_path: Path) -> None:
    box = Mailbox()
    port = free_port()
    controller = Controller(
        box, hostname="127.0.0.1", port=port, authenticator=box.authenticate, auth_require_tls=False
    )
    controller.start()
    try:
        url = f"mailto://ops:{SMTP_PASSWORD}@127.0.0.1:{port}?to=oncall@example.com&from=snapwatch@example.com"
        target = AppriseTarget(url)
        target.send(render(make_alert()), timeout=5)
        assert box.arrived.wait(10)
    finally:
        controller.stop()
    assert box.logins == [(b"ops", SMTP_PASSWORD.encode())]
    mail = email.message_from_bytes(box.messages[0], policy=policy.default)
    # The subject a phone's lock screen shows whole: state, rule, host, verdict; the details are in the body.
    assert mail["Subject"] == "[snapwatch] FIRING auth-failures on web-1: token-drift"
    assert mail["To"].endswith("oncall@example.com>") or mail["To"] == "oncall@example.com"
    plain = mail.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
    for body in (plain, html):
        assert "token-drift: The backend still sends an old token" in body
        assert "1. Restart the backend so it loads the new token" in body
        assert FP in body and "a1b2c3d4e5f6" in body
    assert_no_secret(box.messages[0], TOKEN, SMTP_PASSWORD)
    assert SMTP_PASSWORD not in target.display


def test_outage_and_restarts_deliver_every_alert_once_in_order(tmp_path: Path) -> None:
    db = tmp_path / "state.db"
    port = free_port()
    url = f"json://127.0.0.1:{port}/hook"

    def start() -> tuple[sqlite3.Connection, Notifier]:
        conn, box = open_outbox(db)
        return conn, Notifier(box, [AppriseTarget(url)], timeout=2, max_age=timedelta(hours=1))

    conn, n = start()
    n.enqueue(make_alert(id="alert-1"), T0)
    first = n.deliver_due_sync(T0)
    assert (first.delivered, first.retrying) == (0, 1)
    assert "Connection error" in first.errors[0] and first.errors[0].startswith(f"json://127.0.0.1:{port}/…")
    n.enqueue(make_alert(AlertKind.REMINDER, id="alert-2"), T0 + timedelta(seconds=1))
    n.close()
    conn.close()  # restart 1

    conn, n = start()
    assert n.deliver_due_sync(T0 + timedelta(seconds=2)).retrying == 0  # the head still waits for its retry
    assert n.deliver_due_sync(T0 + timedelta(minutes=1)).retrying == 1  # still down; alert-2 waits behind it
    assert n.outbox.counts() == {"pending": 2, "delivered": 0, "failed": 0}
    n.close()
    conn.close()  # restart 2

    hook = Hook(port)
    try:
        conn, n = start()
        report = n.deliver_due_sync(T0 + timedelta(minutes=5))
        assert (report.delivered, report.retrying) == (2, 0)
        n.enqueue(make_alert(id="alert-1"), T0 + timedelta(minutes=6))  # owed again by a replay: not resent
        assert n.deliver_due_sync(T0 + timedelta(minutes=7)).delivered == 0
        got = hook.wait_for(2)  # sends are synchronous: after the rounds return, nothing more is on its way
        n.close()
    finally:
        hook.stop()
    ids = ["alert-1" if "id alert-1" in body["message"] else "alert-2" for _, body in hook.received]
    assert ids == ["alert-1", "alert-2"] and len(got) == 2
    assert n.outbox.counts() == {"pending": 0, "delivered": 2, "failed": 0}


def test_a_slow_target_does_not_hold_up_the_others(tmp_path: Path, hook: Hook) -> None:
    silent = socket.socket()  # accepts connections into its backlog, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    slow = AppriseTarget(f"json://127.0.0.1:{silent.getsockname()[1]}/hook")
    fast = AppriseTarget(f"json://127.0.0.1:{hook.port}/hook")
    notifier = Notifier(open_outbox(tmp_path / "s.db")[1], [slow, fast], timeout=1.0, grace=2.0)
    try:
        notifier.enqueue(make_alert(), T0)
        report = notifier.deliver_due_sync(T0)
        finished = time.monotonic()
    finally:
        notifier.close()
        silent.close()
    assert report.delivered == 1 and report.retrying == 1
    assert report.errors[0].startswith(slow.display)
    hook.wait_for(1)
    counts = notifier.outbox.target_counts()
    assert counts[fast.display]["delivered"] == 1 and counts[slow.display]["pending"] == 1
    # The fast target got its alert while the slow one was still waiting out its 1 s timeout.
    assert finished - hook.arrived_at[0] > 0.5


class StuckTarget:
    """A target whose send hangs until released: what a send ignoring its timeout looks like."""

    key = "stuck"
    display = "stuck://"

    def __init__(self) -> None:
        self.release = threading.Event()

    def send(self, message: Message, timeout: float) -> None:
        self.release.wait(10)


def test_a_hung_send_is_abandoned_after_timeout_plus_grace(tmp_path: Path) -> None:
    stuck, out = StuckTarget(), io.StringIO()
    notifier = Notifier(open_outbox(tmp_path / "s.db")[1], [stuck, ConsoleTarget(out)], timeout=0.1, grace=0.2)
    try:
        notifier.enqueue(make_alert(), T0)
        started = time.monotonic()
        report = asyncio.run(notifier.deliver_due(T0))
        elapsed = time.monotonic() - started
    finally:
        stuck.release.set()
        notifier.close()
    assert report.delivered == 1 and report.errors == ("stuck://: no answer within 0.1 s",)
    assert elapsed < 2.0
    assert "a1b2c3d4e5f6" in out.getvalue()


def test_no_urls_means_the_console(tmp_path: Path) -> None:
    out = io.StringIO()
    targets = targets_from_urls([], stream=out)
    notifier = Notifier(open_outbox(tmp_path / "s.db")[1], targets)
    try:
        notifier.enqueue(make_alert(), T0)
        assert notifier.deliver_due_sync(T0).delivered == 1
    finally:
        notifier.close()
    assert "[snapwatch] FIRING auth-failures" in out.getvalue() and "1. Restart the backend" in out.getvalue()


def test_expired_rows_are_counted_as_failed_by_the_notifier(tmp_path: Path, dead_port: int) -> None:
    notifier = Notifier(
        open_outbox(tmp_path / "s.db")[1],
        [AppriseTarget(f"json://127.0.0.1:{dead_port}/hook")],
        timeout=1,
        max_age=timedelta(minutes=30),
    )
    try:
        notifier.enqueue(make_alert(), T0)
        assert notifier.deliver_due_sync(T0).retrying == 1
        report = notifier.deliver_due_sync(T0 + timedelta(minutes=31))
    finally:
        notifier.close()
    assert (report.expired, report.retrying) == (1, 0)
    assert notifier.outbox.counts() == {"pending": 0, "delivered": 0, "failed": 1}


def test_send_test_reports_each_target(hook: Hook, dead_port: int) -> None:
    targets = [AppriseTarget(f"json://127.0.0.1:{hook.port}/hook"), AppriseTarget(f"json://127.0.0.1:{dead_port}/x")]
    results = send_test(targets, "web-1", T0, timeout=2)
    assert results[0] == (f"json://127.0.0.1:{hook.port}/…", True, "delivered")
    display, ok, reason = results[1]
    assert not ok and reason.startswith(display) and "Connection error" in reason
    assert hook.wait_for(1)[0][1]["title"] == "[snapwatch] TEST Test alert from snapwatch on web-1"


def test_bad_url_is_refused_at_startup_without_showing_secrets(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(NotifyError, match="apprise cannot use this URL") as err:
        AppriseTarget(f"mailto://ops:{SMTP_PASSWORD}@127.0.0.1:25?from=not-an-address")
    with pytest.raises(NotifyError):
        AppriseTarget(f"nosuchscheme://{HOOK_SECRET}@example.com")
    assert_no_secret(str(err.value) + caplog.text, SMTP_PASSWORD, HOOK_SECRET)


def test_secrets_stay_out_of_db_logs_and_errors(
    tmp_path: Path, dead_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    urls = [
        f"mmost://127.0.0.1:{dead_port}/{HOOK_SECRET}",
        f"mailto://ops:{SMTP_PASSWORD}@127.0.0.1:{dead_port}?to=oncall@example.com&from=snapwatch@example.com",
    ]
    conn, box = open_outbox(tmp_path / "s.db")
    notifier = Notifier(box, targets_from_urls(urls), timeout=1, max_age=timedelta(minutes=5))
    try:
        message = notifier.enqueue(make_alert(), T0)
        report = notifier.deliver_due_sync(T0)
        notifier.deliver_due_sync(T0 + timedelta(minutes=6))  # expiry logs each row with its last error
        results = send_test(notifier.targets, "web-1", T0, timeout=1)
    finally:
        notifier.close()
    conn.close()
    assert report.retrying == 2 and not any(ok for _, ok, _ in results)
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    leaks = [stored, message.to_json(), caplog.text, " ".join(report.errors), repr(results)]
    for text in leaks:
        assert_no_secret(text, TOKEN, HOOK_SECRET, SMTP_PASSWORD)
    assert "given up" in caplog.text
