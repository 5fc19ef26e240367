"""The configuration: pydantic models for the whole daemon, with their defaults."""

from __future__ import annotations

import difflib
import os
import re
import typing
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from snapwatch.errors import ConfigError
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


# --- loading: YAML with positions, ${ENV} expansion, one-line errors -------------------------------------

_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
MAX_CONFIG_BYTES = 1 << 20  # a real configuration is a few kilobytes
MAX_VALUES = 10_000  # values a configuration may expand to, aliases included; a real one has a few hundred
MAX_DEPTH = 32
Mark = tuple[int, int]  # 1-based line and column
Loc = tuple[str | int, ...]


def _expand(text: str, environ: Mapping[str, str]) -> str:
    def sub(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise ValueError(f"environment variable {name} is not set")
        return environ[name]

    return _ENV_REF.sub(sub, text)


def _mark(node: yaml.Node) -> Mark:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Builder:
    """Turns a composed YAML node tree into plain data, remembering where every value and key stood."""

    def __init__(self, filename: str, environ: Mapping[str, str]) -> None:
        self.filename = filename
        self.environ = environ
        self.values: dict[Loc, Mark] = {}
        self.keys: dict[Loc, Mark] = {}
        self.built = 0  # values built so far, an alias counted each time it is used

    def build(self, node: yaml.Node, loc: Loc = ()) -> object:
        # Aliases share one composed node, so a few hundred bytes can stand for billions of values: the
        # budget counts what is built, and stops a bomb before it costs time or memory.
        self.built += 1
        if self.built > MAX_VALUES:
            raise self.error(node, loc, f"the file expands to more than {MAX_VALUES} values through YAML "
                                        "aliases (an alias bomb?); write the values out instead")
        if len(loc) > MAX_DEPTH:
            raise self.error(node, loc, f"nested more than {MAX_DEPTH} levels deep")
        self.values[loc] = _mark(node)
        if isinstance(node, yaml.MappingNode):
            out: dict[str, object] = {}
            for key_node, value_node in node.value:
                key = str(self._scalar(key_node, loc))
                if key in out:
                    raise self.error(key_node, (*loc, key), "duplicate key")
                self.keys[(*loc, key)] = _mark(key_node)
                out[key] = self.build(value_node, (*loc, key))
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*loc, i)) for i, item in enumerate(node.value)]
        return self._scalar(node, loc)

    def _scalar(self, node: yaml.Node, loc: Loc) -> object:
        if not isinstance(node, yaml.ScalarNode):
            raise self.error(node, loc, "expected a plain value here")
        try:
            resolved: object = _LOADER.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError) as exc:  # e.g. an implicit date like 2025-13-01
            raise self.error(node, loc, f"cannot read this value: {exc}") from None
        if isinstance(resolved, str):
            try:
                return _expand(resolved, self.environ)
            except ValueError as exc:
                raise self.error(node, loc, str(exc)) from None
        return resolved

    def error(self, node: yaml.Node, loc: Loc, message: str) -> ConfigError:
        line, col = _mark(node)
        return ConfigError(f"{self.filename}:{line}:{col}: {_dotted(loc) or '(top)'}: {message}")


_LOADER = yaml.SafeLoader("")


def _dotted(loc: Loc) -> str:
    parts: list[str] = []
    for part in loc:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        else:
            parts.append(("." if parts else "") + part)
    return "".join(parts)


def _locate(builder: _Builder, loc: Loc, error_type: str) -> Mark:
    """The position of the deepest part of ``loc`` that exists in the file."""
    if error_type == "extra_forbidden" and loc in builder.keys:
        return builder.keys[loc]
    for end in range(len(loc), -1, -1):
        if loc[:end] in builder.values:
            return builder.values[loc[:end]]
    return 1, 1


def _keys_at(loc: Loc) -> list[str]:
    """The keys the config accepts at ``loc`` (a section, or an item of a list of sections)."""
    model: object = Config
    for part in loc:
        if isinstance(part, int):
            continue  # an item of a list: its model was found with the list's field
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return []
        model = _model_of(fields[part].annotation)
    fields = getattr(model, "model_fields", None)
    return list(fields) if fields else []


def _model_of(annotation: object) -> object:
    """The pydantic model an annotation holds (``X``, ``list[X]``, ``X | None``), or the annotation."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if isinstance(found, type) and issubclass(found, BaseModel):
            return found
    return annotation


def _plain_yaml(problem: str, line: int, col: int, lines: list[str]) -> tuple[int, int, str]:
    """PyYAML's complaint in plain words, at the line that caused it (for a missing ``:``, the line above)."""
    if "mapping values are not allowed" in problem:
        above = next((n for n in range(line - 1, 0, -1) if lines[n - 1].strip()), None)
        if above is not None and ":" not in lines[above - 1].split("#", 1)[0]:
            text = lines[above - 1].strip()
            return above, len(lines[above - 1]) + 1, f"'{text}' needs a ':' after it (a key and its value)"
        return line, col, ("a 'key:' where a value goes: is this line indented under a value? Line it up with "
                           "the keys of its section")
    if "expected <block end>" in problem or "did not find expected key" in problem:
        return line, col, "this line is indented differently from the keys above it: line it up with its section"
    if "found character '\\t'" in problem or "found character '\t'" in problem:
        return line, col, "a tab character: indent with spaces"
    if "expected ',' or ']'" in problem or "expected ',' or '}'" in problem:
        return line, col, "a [list] or {mapping} above is not closed, or misses a comma"
    if "could not find expected ':'" in problem:
        return line, col, "a key without its ':', or a quote left open"
    return line, col, problem


def _message(error: Mapping[str, Any]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        loc = tuple(error["loc"])
        close = difflib.get_close_matches(str(loc[-1]), _keys_at(loc[:-1]), n=1, cutoff=0.6)
        return f"unknown key; did you mean '{close[0]}'?" if close else "unknown key"
    if kind == "missing":
        return "required key is missing"
    text = str(error["msg"])
    return text.removeprefix("Value error, ")


class Places:
    """Where each setting of a loaded file stands, for messages about a valid config (``FILE:LINE:COL``)."""

    def __init__(self, filename: str | None, builder: _Builder | None = None) -> None:
        self.filename = filename
        self._builder = builder

    def mark(self, loc: Loc) -> Mark:
        """The line and column of the deepest part of ``loc`` the file holds (1:1 when none)."""
        return _locate(self._builder, loc, "") if self._builder is not None else (1, 1)

    def line(self, loc: Loc, message: str) -> str:
        """``FILE:LINE:COL: dotted.key: message`` at the deepest part of ``loc`` the file holds."""
        key = _dotted(loc) or "(top)"
        if self.filename is None:
            return f"{key}: {message}"
        line, col = self.mark(loc)
        return f"{self.filename}:{line}:{col}: {key}: {message}"


def load_config(path: Path | str, environ: Mapping[str, str] | None = None) -> Config:
    """Read, expand and validate a YAML config; raise ConfigError with ``FILE:LINE:COL: key: message``."""
    return load_config_places(path, environ)[0]


def load_config_places(path: Path | str, environ: Mapping[str, str] | None = None) -> tuple[Config, Places]:
    """``load_config``, and where each setting stands in the file."""
    filename = str(path)
    try:
        with Path(path).open("rb") as f:
            raw = f.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{filename}:1:1: (top): larger than {MAX_CONFIG_BYTES // 1024} KiB; "
                              "a configuration is a few kilobytes")
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"{filename}: cannot read: {reason}") from None
    return _parse(text, filename, os.environ if environ is None else environ)


def parse_config(text: str, filename: str, environ: Mapping[str, str]) -> Config:
    """Validate config text; see load_config."""
    return _parse(text, filename, environ)[0]


def _parse(text: str, filename: str, environ: Mapping[str, str]) -> tuple[Config, Places]:
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{filename}:1:1: (top): larger than {MAX_CONFIG_BYTES // 1024} KiB; "
                          "a configuration is a few kilobytes")
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        line, col, message = _plain_yaml(str(exc.problem or exc), line, col, text.splitlines())
        raise ConfigError(f"{filename}:{line}:{col}: (yaml): {message}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{filename}:1:1: (yaml): {exc}") from None
    except RecursionError:  # the composer recurses per level: [[[[…]]]] thousands deep
        raise ConfigError(f"{filename}:1:1: (yaml): nested more than {MAX_DEPTH} levels deep") from None
    builder = _Builder(filename, environ)
    data = {} if root is None else builder.build(root)
    if not isinstance(data, dict):
        raise ConfigError(f"{filename}:1:1: (top): expected a mapping of settings")
    try:
        return Config.model_validate(data), Places(filename, builder)
    except ValidationError as exc:
        found: list[tuple[Mark, str]] = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            line, col = _locate(builder, loc, error["type"])
            found.append(((line, col), f"{filename}:{line}:{col}: {_dotted(loc)}: {_message(error)}"))
        # One line per mistake, in file order, so every typo is fixed in one pass.
        raise ConfigError("\n".join(line for _, line in sorted(found))) from None
