"""The daemon's /metrics during a live 401 streak: every value checked against what the backend wrote."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from snapwatch.config import AlertsConfig, MetricsConfig
from snapwatch.ingest import tokens
from snapwatch.run.daemon import Daemon
from snapwatch.synthetic import DEFAULT_PIXEL, Call, demo_token
from tests.helpers.clock import seconds
from tests.helpers.daemon import stop, streak_config
from tests.helpers.metrics import Series, scrape, value
from tests.helpers.peers import Backend
from tests.helpers.tokens import assert_no_secret
from tests.helpers.wait import until

TOKEN = demo_token(seed="metrics-live")
FP = tokens.fingerprint(TOKEN)
HEALTHY_V3, HEALTHY_V2, FAILED = 6, 2, 7
CONSOLE = "console"


def test_metrics_during_a_streak_match_what_was_written(tmp_path: Path) -> None:
    log_path, env_file = tmp_path / "capi.log", tmp_path / ".env"
    log_path.touch()
    env_file.write_text(f"SNAP_ACCESS_TOKEN={TOKEN}\nSNAP_PIXEL_ID={DEFAULT_PIXEL}\n")
    config = streak_config(log_path, tmp_path / "state", env_file,
                           AlertsConfig(group_wait=timedelta(0), repeat_every=timedelta(days=1)),
                           metrics=MetricsConfig(listen="127.0.0.1:0"))
    source = str(log_path)
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    at = seconds(t0, HEALTHY_V3 + HEALTHY_V2 + FAILED + 3)
    healthy = [Call("PAGE_VIEW", 200, None, api="v2")] * HEALTHY_V2 + [Call("PURCHASE", 200, TOKEN)] * HEALTHY_V3
    failing = [Call("PURCHASE", 401, TOKEN)] * FAILED
    console = io.StringIO()
    backend = Backend(log_path, "snapwatch.tests.metrics.backend")
    texts: list[str] = []

    backend.write(healthy, at[: len(healthy)])  # a backlog the daemon reads before it is ready

    async def scenario() -> None:
        daemon = Daemon(config, None, environ={}, host="host-a", flush_after=0.2, console=console)
        task = asyncio.create_task(daemon.run())
        try:
            assert daemon.telemetry.server is not None
            port = daemon.telemetry.server.port
            samples: Series = {}

            def seen(check: Callable[[Series], bool]) -> Callable[[], bool]:
                def probe() -> bool:
                    nonlocal samples
                    text, samples = scrape(port)
                    texts.append(text)
                    return check(samples)

                return probe

            await until(seen(lambda s: value(s, "snapwatch_lag_bytes", source=source) == 0), "the catch-up",
                        off_loop=True)
            assert value(samples, "snapwatch_responses_total", source=source, code="200") == HEALTHY_V3 + HEALTHY_V2
            assert value(samples, "snapwatch_incidents_open", rule="auth-failures", verdict="unknown") is None

            n = len(healthy) + FAILED
            backend.write(failing, at[len(healthy) : n])
            await until(
                seen(
                    lambda s: (
                        value(s, "snapwatch_streak", source=source, rule="auth-failures") == FAILED
                        and value(s, "snapwatch_lag_bytes", source=source) == 0
                    )
                ),
                "the streak on /metrics",
                off_loop=True,
            )
            # During the streak (still open): the log's counts, as written.
            assert value(samples, "snapwatch_responses_total", source=source, code="200") == HEALTHY_V3 + HEALTHY_V2
            assert value(samples, "snapwatch_responses_total", source=source, code="401") == FAILED
            assert value(samples, "snapwatch_requests_total", source=source, api="v3") == HEALTHY_V3 + FAILED
            assert value(samples, "snapwatch_requests_total", source=source, api="v2") == HEALTHY_V2
            assert value(samples, "snapwatch_last_record_timestamp_seconds", source=source) == at[n - 1].timestamp()
            assert (
                value(samples, "snapwatch_token_last_seen_timestamp_seconds", fingerprint=FP, kind="canvas-s2s")
                == at[n - 1].timestamp()
            )
            token_series = [k for k in samples if k[0] == "snapwatch_token_last_seen_timestamp_seconds"]
            assert len(token_series) == 1  # the v2 calls carry no token in the log
            assert value(samples, "snapwatch_log_gaps_total", source=source) in (None, 0.0)
            (verdict,) = daemon.investigator.verdicts.values()
            assert verdict == "token-revoked"  # the same token got 200 until the streak, nothing else changed
            assert value(samples, "snapwatch_incidents_open", rule="auth-failures", verdict=verdict) == 1
            assert sum(v for (name, _), v in samples.items() if name == "snapwatch_incidents_open") == 1

            # The opened alert reaches the console target, and the outbox metrics say so.
            await until(
                seen(lambda s: value(s, "snapwatch_alerts_total", target=CONSOLE, outcome="delivered") == 1),
                "the opened alert delivered",
                off_loop=True,
            )
            assert value(samples, "snapwatch_outbox_pending", target=CONSOLE) == 0
            assert value(samples, "snapwatch_alerts_total", target=CONSOLE, outcome="expired") in (None, 0.0)
            assert "FIRING auth-failures on host-a" in console.getvalue()

            # Recovery: three 2xx end the streak and the incident; the resolved alert is delivered too.
            backend.write([Call("PURCHASE", 200, TOKEN)] * 3, at[n:])
            await until(
                seen(
                    lambda s: (
                        value(s, "snapwatch_alerts_total", target=CONSOLE, outcome="delivered") == 2
                        and value(s, "snapwatch_incidents_open", rule="auth-failures", verdict=verdict) == 0
                    )
                ),
                "the resolved alert delivered",
                off_loop=True,
            )
            assert value(samples, "snapwatch_streak", source=source, rule="auth-failures") == 0
            assert value(samples, "snapwatch_responses_total", source=source, code="200") == HEALTHY_V3 + HEALTHY_V2 + 3
            assert value(samples, "snapwatch_outbox_pending", target=CONSOLE) == 0
            assert value(samples, "snapwatch_lag_bytes", source=source) == 0
            assert "RESOLVED auth-failures on host-a" in console.getvalue()
        finally:
            await stop(daemon, task)

    try:
        asyncio.run(scenario())
    finally:
        backend.close()
    assert texts and FP in texts[-1]
    for text in (*texts, console.getvalue()):
        assert_no_secret(text, TOKEN)
