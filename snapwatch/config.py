"""The configuration: pydantic models for the whole daemon, with their defaults."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> timedelta:
    """``30s``, ``5m``, ``1h``, ``1d``, ``250ms`` or a number of seconds, as a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 30s, 5m or 1h")
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration (use 30s, 5m, 1h, 1d)")
        seconds = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    """The shortest exact spelling of a duration (``90s``, ``5m``, ``1h``)."""
    seconds = value.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds * 1000)}ms"


Duration = Annotated[
    timedelta,
    BeforeValidator(parse_duration),
    PlainSerializer(format_duration, return_type=str),
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JsonlFields(_Strict):
    """Field names of a ``jsonl`` source's objects."""

    ts: str = "ts"
    status: str = "status"
    url: str = "url"
    event: str = "event"
    reason: str = "reason"


class SourceConfig(_Strict):
    """One followed log file or glob."""

    path: str
    format: Literal["backend", "jsonl", "regex"] = "backend"
    start_at: Literal["end", "beginning"] = "end"
    timezone: str = "local"
    max_line_bytes: int = Field(default=1 << 20, ge=1024)
    fields: JsonlFields = JsonlFields()
    pattern: str | None = None


class TokenConfig(_Strict):
    """Where the backend's configured token lives."""

    env_file: Path | None = None
    key: str = "SNAP_ACCESS_TOKEN"
    pixel_key: str = "SNAP_PIXEL_ID"
    env: str | None = None
    file: Path | None = None
    service: str | None = None
    activation_window: Duration = timedelta(minutes=60)


class StreakRule(_Strict):
    """Opens after ``streak`` consecutive matching responses; resolves after ``recovery`` 2xx in a row."""

    enabled: bool = True
    streak: int = Field(default=5, ge=1)
    recovery: int = Field(default=3, ge=1)


class WindowCountRule(_Strict):
    """Opens when ``count`` matching responses fall within ``window``."""

    enabled: bool = True
    count: int = Field(default=10, ge=1)
    window: Duration = timedelta(minutes=5)
    recovery: int = Field(default=3, ge=1)


class ErrorRateRule(_Strict):
    """Opens when the share of non-2xx responses within ``window`` reaches ``threshold``."""

    enabled: bool = True
    threshold: float = Field(default=0.5, gt=0, le=1)
    window: Duration = timedelta(minutes=5)
    min_responses: int = Field(default=20, ge=1)
    recovery: int = Field(default=3, ge=1)


class SilenceRule(_Strict):
    """Opens when no request is seen for ``after``; resolves when traffic returns."""

    enabled: bool = False
    after: Duration = timedelta(minutes=30)


class RulesConfig(_Strict):
    auth_failures: StreakRule = StreakRule()
    rate_limited: StreakRule = StreakRule()
    server_errors: StreakRule = StreakRule()
    invalid_events: WindowCountRule = WindowCountRule()
    error_rate: ErrorRateRule = ErrorRateRule()
    silence: SilenceRule = SilenceRule()


class AlertsConfig(_Strict):
    urls: list[str] = []
    alertmanager: list[str] = []
    repeat_every: Duration = timedelta(hours=1)
    send_resolved: bool = True
    group_wait: Duration = timedelta(seconds=10)
    max_per_hour: int = Field(default=20, ge=1)
    timeout: Duration = timedelta(seconds=10)
    max_age: Duration = timedelta(hours=24)


class ProbeConfig(_Strict):
    enabled: bool = False
    base_url: str = "https://tr.snapchat.com"
    min_interval: Duration = timedelta(minutes=5)
    timeout: Duration = timedelta(seconds=10)


class MetricsConfig(_Strict):
    listen: str | None = None


class Config(_Strict):
    """The whole configuration. ``Config()`` is the built-in default used by scan, token and demo."""

    sources: list[SourceConfig] = []
    token: TokenConfig = TokenConfig()
    rules: RulesConfig = RulesConfig()
    alerts: AlertsConfig = AlertsConfig()
    probe: ProbeConfig = ProbeConfig()
    metrics: MetricsConfig = MetricsConfig()
    state_dir: Path = Path("/var/lib/snapwatch")
