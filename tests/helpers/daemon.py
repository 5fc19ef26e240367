"""The daemon in this process: its configs, running it for a while, stopping it."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

from snapwatch.config import AlertsConfig, Config, ErrorRateRule, RulesConfig, SourceConfig, StreakRule, TokenConfig
from snapwatch.run.daemon import Daemon


def streak_config(log: Path, state_dir: Path, env_file: Path, alerts: AlertsConfig, *, service: str | None = None,
                  **more: Any) -> Config:
    """``log`` followed from its beginning (UTC), the token in ``env_file``; auth failures open an incident at a
    streak of 5 and resolve it after 3 successes, and the error-rate rule is off. ``more``: further sections."""
    return Config(
        sources=[SourceConfig(path=str(log), start_at="beginning", timezone="UTC")],
        token=TokenConfig(env_file=env_file, service=service),
        rules=RulesConfig(auth_failures=StreakRule(streak=5, recovery=3), error_rate=ErrorRateRule(enabled=False)),
        alerts=alerts,
        state_dir=state_dir,
        **more,
    )


def write_config(path: Path, sources: list[Path], state_dir: Path, extra: str = "", *,
                 timezone: str | None = None) -> Path:
    """A YAML config at ``path``: ``sources`` read from their beginning (their times in ``timezone`` when
    given), ``state_dir``, then ``extra`` as given."""
    lines = ["sources:"]
    for source in sources:
        lines += [f"  - path: {json.dumps(str(source))}", "    start_at: beginning"]
        if timezone is not None:
            lines.append(f"    timezone: {timezone}")
    lines.append(f"state_dir: {json.dumps(str(state_dir))}")
    path.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return path


async def stop(daemon: Daemon, task: asyncio.Task[int]) -> None:
    """Ask the daemon to stop; it must exit 0 within 15 seconds."""
    daemon.stop_requested.set()
    assert await asyncio.wait_for(task, 15) == 0


def run_daemon_for(config: Config, seconds: float, host: str = "web-test") -> None:
    """Run the real daemon in-process on what is on disk for ``seconds``, then stop it; it must exit 0."""

    async def main() -> None:
        daemon = Daemon(config, None, environ={}, host=host, flush_after=0.1, console=io.StringIO())
        task = asyncio.create_task(daemon.run())
        await asyncio.sleep(seconds)
        await stop(daemon, task)

    asyncio.run(main())
