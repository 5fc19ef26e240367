"""The configuration's shape: pydantic models for the whole daemon, with their defaults and durations."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    field_validator,
    model_validator,
)

from snapwatch.model import Rule

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
    try:
        return timedelta(seconds=seconds)
    except (OverflowError, ValueError):  # inf, nan, or more days than a timedelta holds
        raise ValueError(f"{value!r} is not a duration snapwatch can use (too large, or not a number)") from None


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
    # How long (in record time) a request waits for its response before it counts as unanswered.
    pairing_timeout: Duration = Field(default=timedelta(seconds=120), gt=timedelta(0))

    # Checked here so that check-config rejects what the parser would refuse at its first line.
    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if value != "local":
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @field_validator("pattern")
    @classmethod
    def _usable_pattern(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or info.data.get("format") != "regex":
            return value
        try:
            groups = re.compile(value).groupindex
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        missing = {"ts", "status"} - set(groups)
        if missing:
            raise ValueError(f"needs the named groups {', '.join(sorted(missing))}")
        return value

    @model_validator(mode="after")
    def _regex_has_pattern(self) -> SourceConfig:
        if self.format == "regex" and not self.pattern:
            raise ValueError("the regex format needs a pattern")
        return self


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


class InhibitRule(_Strict):
    """While an incident of a ``source_rules`` rule is open, a ``target_rules`` incident that agrees with it on
    every ``equal`` label (``source``: the same followed file) is folded into it instead of announced:
    Alertmanager's ``inhibit_rules``, with rules in place of matchers."""

    source_rules: list[Rule]
    target_rules: list[Rule]
    equal: list[Literal["source"]] = ["source"]

    @model_validator(mode="after")
    def _no_self_inhibition(self) -> InhibitRule:
        both = set(self.source_rules) & set(self.target_rules)
        if both:
            raise ValueError(f"a rule cannot inhibit itself: {', '.join(sorted(both))}")
        return self


# One problem, one message: a high error rate that a streak or window rule on the same file explains.
DEFAULT_INHIBIT_RULES = [InhibitRule(
    source_rules=[Rule.AUTH_FAILURES, Rule.RATE_LIMITED, Rule.SERVER_ERRORS, Rule.INVALID_EVENTS],
    target_rules=[Rule.ERROR_RATE])]


class AlertsConfig(_Strict):
    urls: list[str] = []
    alertmanager: list[str] = []
    repeat_every: Duration = timedelta(hours=1)
    send_resolved: bool = True
    # Short enough that the first message lands within about two seconds of the streak; rules that
    # open together within it still become one message.
    group_wait: Duration = timedelta(seconds=1)
    max_per_hour: int = Field(default=20, ge=1)
    timeout: Duration = timedelta(seconds=10)
    max_age: Duration = timedelta(hours=24)
    retention: Duration = timedelta(days=14)  # delivered and failed outbox rows are kept this long, then pruned
    attach_report: bool = False  # e-mail targets get the incident's HTML report with its RESOLVED message
    inhibit_rules: list[InhibitRule] = DEFAULT_INHIBIT_RULES


class ProbeConfig(_Strict):
    enabled: bool = False
    base_url: str = "https://tr.snapchat.com"
    min_interval: Duration = timedelta(minutes=5)
    timeout: Duration = timedelta(seconds=10)


class MetricsConfig(_Strict):
    listen: str | None = None


class HistoryConfig(_Strict):
    """What the state file keeps for ``snapwatch report``: responses per minute and token switches."""

    retention: Duration = timedelta(days=30)


class Config(_Strict):
    """The whole configuration. ``Config()`` is the built-in default used by scan, token and demo."""

    sources: list[SourceConfig] = []
    token: TokenConfig = TokenConfig()
    rules: RulesConfig = RulesConfig()
    alerts: AlertsConfig = AlertsConfig()
    probe: ProbeConfig = ProbeConfig()
    metrics: MetricsConfig = MetricsConfig()
    history: HistoryConfig = HistoryConfig()
    state_dir: Path = Path("/var/lib/snapwatch")
