"""``snapwatch demo``: a synthetic backend writes a log; the real daemon follows it through a 401 streak and back."""

from __future__ import annotations

import asyncio
import logging
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TextIO

from snapwatch.config.models import AlertsConfig, Config, RulesConfig, SourceConfig, StreakRule, TokenConfig
from snapwatch.run.daemon import Daemon
from snapwatch.synthetic import Call, backend_logger, demo_token, log_call

EVENTS = ("PAGE_VIEW", "VIEW_CONTENT", "ADD_CART", "PURCHASE")
PIXEL = "5bf81ee1-15b1-4dc1-b636-d7dae49b950e"
OLD_TOKEN, NEW_TOKEN = demo_token(seed="old"), demo_token(nbf=1764900000, seed="new")
UNIT = "shop-backend.service"


def _config(folder: Path, log_path: Path, env_file: Path) -> Config:
    return Config(
        sources=[SourceConfig(path=str(log_path), start_at="beginning", timezone="UTC")],
        token=TokenConfig(env_file=env_file, service=UNIT),
        rules=RulesConfig(auth_failures=StreakRule(streak=5, recovery=3)),
        alerts=AlertsConfig(group_wait=timedelta(seconds=1), repeat_every=timedelta(hours=1)),
        state_dir=folder / "state",
    )


async def _backend(log_path: Path, env_file: Path, say: TextIO, pace: float) -> None:
    """The shop's backend: healthy traffic, then a token rotation it never reloads, then the restart."""
    handler = logging.FileHandler(log_path, encoding="utf-8")
    logger = backend_logger(handler, "snapwatch.cli.demo.backend")
    old, new = OLD_TOKEN, NEW_TOKEN

    async def calls(n: int, token: str, status: int) -> None:
        for i in range(n):
            log_call(logger, Call(EVENTS[i % len(EVENTS)], status, token), datetime.now(UTC))
            await asyncio.sleep(pace)

    try:
        say.write("backend: sending conversions; Snap answers 200\n")
        await calls(12, old, 200)
        env_file.write_text(f"SNAP_ACCESS_TOKEN={new}\nSNAP_PIXEL_ID={PIXEL}\n")
        say.write(f"backend: someone regenerated the token and updated {env_file.name}, "
                  f"but {UNIT} was not restarted: Snap answers 401\n")
        # The log's times are whole seconds: only a request logged in a later second than the .env change
        # shows that the backend still sends the old token after it.
        await asyncio.sleep(1.1)
        await calls(10, old, 401)
        await asyncio.sleep(2.5)  # the alert goes out while the streak lasts
        say.write(f"backend: {UNIT} restarted with the new token; Snap answers 200 again\n")
        await calls(8, new, 200)
    finally:
        handler.close()


async def _run(out: TextIO, pace: float, report: Path | None = None) -> int:
    with tempfile.TemporaryDirectory(prefix="snapwatch-demo-") as tmp:
        folder = Path(tmp)
        log_path, env_file = folder / "snap_conversions_api.log", folder / ".env"
        log_path.touch()
        # the shop's .env as it is when the demo starts (the daemon reads it as it starts)
        env_file.write_text(f"SNAP_ACCESS_TOKEN={OLD_TOKEN}\nSNAP_PIXEL_ID={PIXEL}\n")
        out.write(f"snapwatch demo: following {log_path}\n")
        daemon = Daemon(_config(folder, log_path, env_file), None, environ={}, host="demo-host",
                        flush_after=0.2, console=out)
        running = asyncio.create_task(daemon.run())
        await _backend(log_path, env_file, out, pace)
        counts: dict[str, int] = {}
        for _ in range(100):  # wait for the resolved message to be delivered (at most ~10 s)
            await asyncio.sleep(0.1)
            counts = daemon.outbox.counts()
            if counts.get("delivered", 0) >= 2 and not counts.get("pending"):
                break
        daemon.stop_requested.set()
        code = await running
        out.write(f"snapwatch demo: done; {counts.get('delivered', 0)} alert(s) delivered to the console\n")
        if report is not None:
            _write_report(folder, report)
            out.write(f"snapwatch demo: the report of this run is in {report}\n")
        return code


def _write_report(folder: Path, target: Path) -> None:
    """The run's report, from the daemon's history, as ``snapwatch report --since 1h`` would write it."""
    from snapwatch.run.report import from_state, page_of  # noqa: PLC0415  (only when asked for)
    from snapwatch.store.state import Store  # noqa: PLC0415

    with Store.open(folder / "state") as store:
        data = from_state(store, host="demo-host", tz=UTC, now=datetime.now(UTC), since=timedelta(hours=1))
    target.write_text(page_of(data), encoding="utf-8")


def run_demo(out: TextIO, *, fast: bool = False, report: Path | None = None) -> int:
    """Run the live demo; returns 0. ``fast`` paces the backend quicker (for tests); ``report`` writes the
    run's HTML report there."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    return asyncio.run(_run(out, 0.02 if fast else 0.15, report))
