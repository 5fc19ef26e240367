"""The daemon at its edges: a reload naming an unusable alert target, an incident opened in a deferred commit."""

from __future__ import annotations

import asyncio
import io
import logging
import threading
from datetime import UTC, datetime
from pathlib import Path

import pytest

from snapwatch.config import AlertsConfig, Config, RulesConfig, SourceConfig, StreakRule, load_config
from snapwatch.model import Alert, AlertKind
from snapwatch.run.daemon import Daemon
from snapwatch.synthetic import Call, backend_logger, demo_token, log_call
from snapwatch.tail.follow import _and_the_new_one
from tests.helpers.daemon import stop, write_config
from tests.helpers.files import append
from tests.helpers.process import DaemonProcess
from tests.helpers.wait import until

TOKEN = demo_token(seed="edges")


def backend_text(calls: list[Call]) -> str:
    """What the backend writes for ``calls``, as one string (its logger's exact format)."""
    buffer = io.StringIO()
    logger = backend_logger(logging.StreamHandler(buffer), "snapwatch.tests.edges.backend")
    for call in calls:
        log_call(logger, call, datetime(2025, 12, 3, 23, 35, tzinfo=UTC))
    return buffer.getvalue()


@pytest.mark.parametrize("alerts", [
    "alerts:\n  urls: ['nosuchscheme://hook.example/s3cr3t-hook-path']\n",
    "alerts:\n  alertmanager: ['ftp://am.example:9093']\n",
], ids=["apprise", "alertmanager"])
def test_a_reload_naming_an_unusable_target_is_refused_and_the_daemon_keeps_running(
        tmp_path: Path, alerts: str, caplog: pytest.LogCaptureFixture) -> None:
    first, second = tmp_path / "a.log", tmp_path / "b.log"
    first.write_text(backend_text([Call("PAGE_VIEW", 200, TOKEN)] * 3), encoding="utf-8")
    second.write_text("", encoding="utf-8")
    state = tmp_path / "state"
    path = write_config(tmp_path / "config.yaml", [first], state)
    caplog.set_level(logging.INFO, logger="snapwatch")

    async def scenario() -> None:
        daemon = Daemon(load_config(path, {}), path, environ={}, host="edge-1", flush_after=0.1, console=io.StringIO())
        task = asyncio.get_running_loop().create_task(daemon.run())
        await until(lambda: daemon.store.counters(str(first)) == {"200": 3}, "the backlog to be counted")
        notifier = daemon.notifier
        # The new config adds a source and names a target that cannot be used.
        write_config(path, [first, second], state, alerts)
        daemon._request_reload()
        await until(lambda: "reload refused" in caplog.text or task.done(), "the reload to be answered")
        await asyncio.sleep(0.1)
        assert not task.done(), task.exception() if task.done() else None
        assert daemon.notifier is notifier and str(second) not in daemon.sources  # nothing of it applied
        # Still following, still alerting through the old targets...
        append(first, backend_text([Call("PAGE_VIEW", 200, TOKEN)] * 2))
        await until(lambda: daemon.store.counters(str(first)) == {"200": 5}, "new lines to be counted")
        await stop(daemon, task)

    asyncio.run(scenario())
    refused = [r.getMessage() for r in caplog.records if "reload refused" in r.getMessage()]
    assert len(refused) == 1 and "s3cr3t-hook-path" not in refused[0], refused


def test_an_incident_opened_while_a_response_is_held_reaches_the_incident_table(tmp_path: Path) -> None:
    log = tmp_path / "capi.log"
    log.write_text("", encoding="utf-8")
    config = Config(
        sources=[SourceConfig(path=str(log), start_at="beginning", timezone="UTC")],
        rules=RulesConfig(auth_failures=StreakRule(streak=5, recovery=3)),
        alerts=AlertsConfig(),
        state_dir=tmp_path / "state",
    )
    streak = backend_text([Call("PAGE_VIEW", 401, TOKEN)] * 5)
    healthy = backend_text([Call("PAGE_VIEW", 200, TOKEN)])
    cut = healthy.index("Status Code: 200")
    cut = healthy.index("\n", cut) + 1  # the 200's status line is written, its body not yet

    async def scenario() -> None:
        # No quiet flush during the test: the held response completes only with the next write.
        daemon = Daemon(config, None, environ={}, host="edge-2", flush_after=60, console=io.StringIO())
        task = asyncio.get_running_loop().create_task(daemon.run())
        await until(lambda: str(log) in daemon.sources, "the source to be followed")
        append(log, streak + healthy[:cut])  # the streak completes; the next response is held
        files = daemon.sources[str(log)].files
        await until(lambda: bool(files) and bool(files[str(log)].pipeline.detector.open_incidents()),
                    "the incident to open")
        append(log, healthy[cut:])
        await until(lambda: daemon.store.counters(str(log)) == {"401": 5, "200": 1}, "the commit")
        opened = [i.rule for i in daemon.store.incidents(open_only=True)]
        status = daemon.store.status()
        await stop(daemon, task)
        assert opened == ["auth-failures"]
        assert [i["rule"] for i in status["incidents"]] == ["auth-failures"]  # type: ignore[union-attr]

    asyncio.run(scenario())


class HeldStream(io.StringIO):
    """The console: each write waits until the test lets it through (a slow notification target)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered, self.release = threading.Event(), threading.Event()

    def write(self, text: str) -> int:
        self.entered.set()
        assert self.release.wait(10), "the test never released the write"
        return super().write(text)


def test_a_reload_during_a_delivery_round_lets_the_round_finish(tmp_path: Path) -> None:
    log = tmp_path / "capi.log"
    log.write_text("", encoding="utf-8")
    path = write_config(tmp_path / "config.yaml", [log], tmp_path / "state")
    console = HeldStream()

    async def scenario() -> None:
        daemon = Daemon(load_config(path, {}), path, environ={}, host="edge-3", flush_after=0.1, console=console)
        now = datetime.now(UTC)
        for n in range(2):  # two alerts owed to the console, sent one after the other
            daemon.notifier.enqueue(Alert(id=f"edge-{n}", kind=AlertKind.TEST, created_at=now, host="edge-3"), now)
        task = asyncio.get_running_loop().create_task(daemon.run())
        await until(console.entered.is_set, "the first alert to be on its way")
        daemon.reload()  # the same config, while the round is sending
        console.release.set()
        await until(lambda: daemon.outbox.counts()["delivered"] == 2, "both alerts to be delivered", timeout=5)
        attempts = daemon.store.conn.execute("SELECT SUM(attempts), COUNT(last_error) FROM outbox").fetchone()
        await stop(daemon, task)
        assert tuple(attempts) == (2, 0)  # one attempt each: none failed for the reload

    asyncio.run(scenario())



@pytest.mark.timeout(60)
def test_notices_read_as_sentences_about_the_file(tmp_path: Path) -> None:
    """What the daemon says about a followed file reads as a sentence about that file."""
    log = tmp_path / "capi.log"
    config = write_config(tmp_path / "config.yaml", [log], tmp_path / "state", timezone="UTC")
    daemon = DaemonProcess(config)
    try:
        daemon.wait_for(f"{log}: does not exist yet; waiting for it to appear", 30)
        log.write_text("")
        daemon.wait_for(f"{log}: appeared; reading it from its beginning", 30)
    finally:
        code, _ = daemon.terminate()
    assert code == 0
    assert _and_the_new_one(0) == "the new one"  # "then 0 rotated file(s)" no more
    assert _and_the_new_one(1) == "1 rotated file and the new one"
    assert _and_the_new_one(3) == "3 rotated files and the new one"
