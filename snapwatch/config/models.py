"""The configuration's shape: frozen dataclasses with their defaults and durations, checked as they are built.

Plain dataclasses, so that a command run without a config file (scan, token, --help) starts without
pydantic. ``config.loading`` reads a file into them with pydantic, which coerces the YAML's types; the
checks here (``check`` in a field's metadata, run by ``__post_init__``) then name the field they refuse
(``FieldError``), so every mistake is reported at its key.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from snapwatch.model import Rule

if TYPE_CHECKING:
    from pydantic import GetCoreSchemaHandler
    from pydantic_core import CoreSchema

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


class _DurationText:
    """How pydantic reads and writes a ``Duration``: ``parse_duration`` in, ``format_duration`` out."""

    def __get_pydantic_core_schema__(self, source: type[Any], handler: GetCoreSchemaHandler) -> CoreSchema:
        from pydantic_core import core_schema  # noqa: PLC0415  (only a config file needs pydantic)

        return core_schema.no_info_before_validator_function(
            parse_duration, handler(source),
            serialization=core_schema.plain_serializer_function_ser_schema(format_duration))


Duration = Annotated[timedelta, _DurationText()]


class FieldError(ValueError):
    """A field's value refused by its check: ``field`` names it, the message says why."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(reason)
        self.field = name


Check = Callable[[Any], None]  # raises ValueError with the reason


def _checked(default: Any, *, check: Check) -> Any:
    """A field with a default and a check."""
    return field(default=default, metadata={"check": check})


def _at_least(low: float) -> Check:
    def check(value: float) -> None:
        if value < low:
            raise ValueError(f"must be at least {low}")
    return check


def _more_than(low: float | timedelta, *, at_most: float | None = None) -> Check:
    def check(value: Any) -> None:
        if not value > low:
            raise ValueError(f"must be more than {format_duration(low) if isinstance(low, timedelta) else low}")
        if at_most is not None and value > at_most:
            raise ValueError(f"must be at most {at_most}")
    return check


class _Section:
    """A section of the configuration: refuses unknown keys when read from a file (``__pydantic_config__``),
    and runs the ``check`` of every field that has one, then ``_check_whole``, as it is built."""

    __slots__ = ()
    __pydantic_config__: ClassVar[dict[str, str]] = {"extra": "forbid"}

    def __post_init__(self) -> None:
        for f in fields(self):  # type: ignore[arg-type]  # every subclass is a dataclass
            check = f.metadata.get("check")
            if check is not None:
                try:
                    check(getattr(self, f.name))
                except ValueError as exc:
                    raise FieldError(f.name, str(exc)) from None
        self._check_whole()

    def _check_whole(self) -> None:
        """Checks that span fields: raise ValueError (FieldError to name one of them)."""


def _known_zone(value: str) -> None:
    if value != "local":
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None


def _usable_pattern(value: str) -> None:
    try:
        groups = re.compile(value).groupindex
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    missing = {"ts", "status"} - set(groups)
    if missing:
        raise ValueError(f"needs the named groups {', '.join(sorted(missing))}")


@dataclass(frozen=True, slots=True)
class JsonlFields(_Section):
    """Field names of a ``jsonl`` source's objects."""

    ts: str = "ts"
    status: str = "status"
    url: str = "url"
    event: str = "event"
    reason: str = "reason"


@dataclass(frozen=True, slots=True)
class SourceConfig(_Section):
    """One followed log file or glob."""

    path: str
    format: Literal["backend", "jsonl", "regex"] = "backend"
    start_at: Literal["end", "beginning"] = "end"
    # Checked here so that check-config rejects what the parser would refuse at its first line.
    timezone: str = _checked("local", check=_known_zone)
    max_line_bytes: int = _checked(1 << 20, check=_at_least(1024))
    fields: JsonlFields = JsonlFields()
    pattern: str | None = None
    # How long (in record time) a request waits for its response before it counts as unanswered.
    pairing_timeout: Duration = _checked(timedelta(seconds=120), check=_more_than(timedelta(0)))  # noqa: RUF009 (a field())

    def _check_whole(self) -> None:
        if self.format != "regex":
            return
        if not self.pattern:
            raise ValueError("the regex format needs a pattern")
        try:
            _usable_pattern(self.pattern)
        except ValueError as exc:
            raise FieldError("pattern", str(exc)) from None


@dataclass(frozen=True, slots=True)
class TokenConfig(_Section):
    """Where the backend's configured token lives."""

    env_file: Path | None = None
    key: str = "SNAP_ACCESS_TOKEN"
    pixel_key: str = "SNAP_PIXEL_ID"
    env: str | None = None
    file: Path | None = None
    service: str | None = None
    activation_window: Duration = timedelta(minutes=60)


@dataclass(frozen=True, slots=True)
class StreakRule(_Section):
    """Opens after ``streak`` consecutive matching responses; resolves after ``recovery`` 2xx in a row."""

    enabled: bool = True
    streak: int = _checked(5, check=_at_least(1))
    recovery: int = _checked(3, check=_at_least(1))


@dataclass(frozen=True, slots=True)
class WindowCountRule(_Section):
    """Opens when ``count`` matching responses fall within ``window``."""

    enabled: bool = True
    count: int = _checked(10, check=_at_least(1))
    window: Duration = timedelta(minutes=5)
    recovery: int = _checked(3, check=_at_least(1))


@dataclass(frozen=True, slots=True)
class ErrorRateRule(_Section):
    """Opens when the share of non-2xx responses within ``window`` reaches ``threshold``."""

    enabled: bool = True
    threshold: float = _checked(0.5, check=_more_than(0, at_most=1))
    window: Duration = timedelta(minutes=5)
    min_responses: int = _checked(20, check=_at_least(1))
    recovery: int = _checked(3, check=_at_least(1))


@dataclass(frozen=True, slots=True)
class SilenceRule(_Section):
    """Opens when no request is seen for ``after``; resolves when traffic returns."""

    enabled: bool = False
    after: Duration = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class RulesConfig(_Section):
    auth_failures: StreakRule = StreakRule()
    rate_limited: StreakRule = StreakRule()
    server_errors: StreakRule = StreakRule()
    invalid_events: WindowCountRule = WindowCountRule()
    error_rate: ErrorRateRule = ErrorRateRule()
    silence: SilenceRule = SilenceRule()


@dataclass(frozen=True, slots=True)
class InhibitRule(_Section):
    """While an incident of a ``source_rules`` rule is open, a ``target_rules`` incident that agrees with it on
    every ``equal`` label (``source``: the same followed file) is folded into it instead of announced:
    Alertmanager's ``inhibit_rules``, with rules in place of matchers."""

    source_rules: list[Rule]
    target_rules: list[Rule]
    equal: list[Literal["source"]] = field(default_factory=lambda: ["source"])

    def _check_whole(self) -> None:
        both = set(self.source_rules) & set(self.target_rules)
        if both:
            raise ValueError(f"a rule cannot inhibit itself: {', '.join(sorted(both))}")


def _default_inhibit_rules() -> list[InhibitRule]:
    # One problem, one message: a high error rate that a streak or window rule on the same file explains.
    return [InhibitRule(source_rules=[Rule.AUTH_FAILURES, Rule.RATE_LIMITED, Rule.SERVER_ERRORS, Rule.INVALID_EVENTS],
                        target_rules=[Rule.ERROR_RATE])]


DEFAULT_INHIBIT_RULES = _default_inhibit_rules()


@dataclass(frozen=True, slots=True)
class AlertsConfig(_Section):
    urls: list[str] = field(default_factory=list)
    alertmanager: list[str] = field(default_factory=list)
    repeat_every: Duration = timedelta(hours=1)
    send_resolved: bool = True
    # Short enough that the first message lands within about two seconds of the streak; rules that
    # open together within it still become one message.
    group_wait: Duration = timedelta(seconds=1)
    max_per_hour: int = _checked(20, check=_at_least(1))
    timeout: Duration = timedelta(seconds=10)
    max_age: Duration = timedelta(hours=24)
    retention: Duration = timedelta(days=14)  # delivered and failed outbox rows are kept this long, then pruned
    attach_report: bool = False  # e-mail targets get the incident's HTML report with its RESOLVED message
    inhibit_rules: list[InhibitRule] = field(default_factory=_default_inhibit_rules)


@dataclass(frozen=True, slots=True)
class ProbeConfig(_Section):
    enabled: bool = False
    base_url: str = "https://tr.snapchat.com"
    min_interval: Duration = timedelta(minutes=5)
    timeout: Duration = timedelta(seconds=10)


@dataclass(frozen=True, slots=True)
class MetricsConfig(_Section):
    listen: str | None = None


@dataclass(frozen=True, slots=True)
class HistoryConfig(_Section):
    """What the state file keeps for ``snapwatch report``: responses per minute and token switches."""

    retention: Duration = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class Config(_Section):
    """The whole configuration. ``Config()`` is the built-in default used by scan, token and demo."""

    sources: list[SourceConfig] = field(default_factory=list)
    token: TokenConfig = TokenConfig()
    rules: RulesConfig = RulesConfig()
    alerts: AlertsConfig = AlertsConfig()
    probe: ProbeConfig = ProbeConfig()
    metrics: MetricsConfig = MetricsConfig()
    history: HistoryConfig = HistoryConfig()
    state_dir: Path = Path("/var/lib/snapwatch")
