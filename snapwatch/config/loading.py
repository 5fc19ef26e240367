"""Reading a config file: YAML with positions, ${ENV} expansion, a size budget, one-line errors at FILE:LINE:COL.

pydantic reads the plain data into the dataclasses of ``config.models`` (types coerced, durations parsed,
unknown keys refused); it is imported here only, so only a command given a config file pays for it.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import TypeAdapter, ValidationError

from snapwatch.config.models import Config, FieldError
from snapwatch.errors import ConfigError

T = TypeVar("T")

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


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


def _adapter(shape: type[Any]) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(shape)
    if adapter is None:
        adapter = _ADAPTERS[shape] = TypeAdapter(shape)
    return adapter


def validated(shape: type[T], data: object) -> T:
    """``data`` (plain values, as YAML gives them) read into the config class ``shape``: types coerced,
    durations parsed, every check run; raises pydantic's ValidationError (``_parse`` words its errors)."""
    checked: T = _adapter(shape).validate_python(data)
    return checked


def plain(config: object) -> dict[str, Any]:
    """A config (or one of its sections) as JSON-ready data, durations written as ``30s``, ``5m``…"""
    data: dict[str, Any] = _adapter(type(config)).dump_python(config, mode="json")
    return data


_UNKNOWN_KEY = "unexpected_keyword_argument"  # how pydantic names a key that a config dataclass does not have


def _error_loc(error: Mapping[str, Any]) -> Loc:
    """Where an error stands: a field's check names its field below the section pydantic reports."""
    loc = tuple(error["loc"])
    cause = (error.get("ctx") or {}).get("error")
    return (*loc, cause.field) if isinstance(cause, FieldError) else loc


def _locate(builder: _Builder, loc: Loc, error_type: str) -> Mark:
    """The position of the deepest part of ``loc`` that exists in the file."""
    if error_type == _UNKNOWN_KEY and loc in builder.keys:
        return builder.keys[loc]
    for end in range(len(loc), -1, -1):
        if loc[:end] in builder.values:
            return builder.values[loc[:end]]
    return 1, 1


def _keys_at(loc: Loc) -> list[str]:
    """The keys the config accepts at ``loc`` (a section, or an item of a list of sections)."""
    section: object = Config
    for part in loc:
        if isinstance(part, int):
            continue  # an item of a list: its section was found with the list's field
        hints = typing.get_type_hints(section) if dataclasses.is_dataclass(section) else {}
        if part not in hints:
            return []
        section = _section_of(hints[part])
    return [f.name for f in dataclasses.fields(section)] if dataclasses.is_dataclass(section) else []


def _section_of(annotation: object) -> object:
    """The config class an annotation holds (``X``, ``list[X]``, ``X | None``), or the annotation."""
    if dataclasses.is_dataclass(annotation):
        return annotation
    for arg in typing.get_args(annotation):
        found = _section_of(arg)
        if dataclasses.is_dataclass(found):
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
    if kind == _UNKNOWN_KEY:
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
        return validated(Config, data), Places(filename, builder)
    except ValidationError as exc:
        found: list[tuple[Mark, str]] = []
        for error in exc.errors():
            loc = _error_loc(error)
            line, col = _locate(builder, loc, error["type"])
            found.append(((line, col), f"{filename}:{line}:{col}: {_dotted(loc)}: {_message(error)}"))
        # One line per mistake, in file order, so every typo is fixed in one pass.
        raise ConfigError("\n".join(line for _, line in sorted(found))) from None
