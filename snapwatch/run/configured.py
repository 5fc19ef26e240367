"""The configured token read from its source (.env, environment, file), and whether its service restarted since."""

from __future__ import annotations

import io
import logging
import os
import shutil
import subprocess
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path

from dotenv import dotenv_values

from snapwatch.config.models import TokenConfig
from snapwatch.errors import SourceError
from snapwatch.ingest.tokens import ConfiguredToken, Secret
from snapwatch.redact import SECRETS

log = logging.getLogger(__name__)


def _read_text(path: Path, what: str) -> tuple[str, datetime]:
    try:
        with path.open(encoding="utf-8") as handle:
            text = handle.read()
            # fstat on the open handle: the time belongs to the content just read.
            mtime = datetime.fromtimestamp(os.fstat(handle.fileno()).st_mtime, tz=UTC)
    except FileNotFoundError as exc:
        raise SourceError(f"{path}: {what} not found") from exc
    except UnicodeDecodeError as exc:
        raise SourceError(f"{path}: {what} is not UTF-8 text") from exc
    except OSError as exc:
        raise SourceError(f"{path}: cannot read {what}: {exc.strerror or exc}") from exc
    return text, mtime


def _present(value: str | None) -> str | None:
    return value if value is not None and value.strip() else None


def load_configured(cfg: TokenConfig, environ: Mapping[str, str]) -> ConfiguredToken | None:
    """The configured token from the first source that holds one: ``env_file``, then ``env``, then ``file``.

    The .env is parsed with python-dotenv (the backend's loader: ``export``, quotes, comments, multi-line
    values), so quotes dotenv strips are not defects; quotes left after parsing are. A whole-file token
    loses exactly one trailing line ending (``\\n`` or ``\\r\\n``), as ``$(cat file)`` and line-based
    loaders drop it; any other surrounding whitespace is kept so that ``inspect`` reports it.
    An empty or blank value counts as no token. Raises SourceError (naming the file) when a configured
    file cannot be read; returns None when no source holds a token.
    """
    pixel: str | None = None
    env_values: dict[str, str | None] = {}
    env_mtime: datetime | None = None
    if cfg.env_file is not None:
        text, env_mtime = _read_text(cfg.env_file, ".env file")
        env_values = dict(dotenv_values(stream=io.StringIO(text)))
        pixel = _present(env_values.get(cfg.pixel_key))
    pixel = (pixel or _present(environ.get(cfg.pixel_key)) or "").strip() or None
    if cfg.env_file is not None:
        value = _present(env_values.get(cfg.key))
        if value is not None:
            where = f"{cfg.key} in {cfg.env_file}"
            return ConfiguredToken(_remembered(value), where, pixel, cfg.env_file, env_mtime)
    if cfg.env is not None:
        value = _present(environ.get(cfg.env))
        if value is not None:
            return ConfiguredToken(_remembered(value), f"environment variable {cfg.env}", pixel)
    if cfg.file is not None:
        text, mtime = _read_text(cfg.file, "token file")
        value = _present(_drop_final_line_ending(text))
        if value is not None:
            return ConfiguredToken(_remembered(value), f"token file {cfg.file}", pixel, cfg.file, mtime)
    return None


def _drop_final_line_ending(text: str) -> str:
    if text.endswith("\r\n"):
        return text[:-2]
    return text.removesuffix("\n")


def service_restart_pending(unit: str, env_file_mtime: datetime | None, timeout: float = 3.0) -> bool | None:
    """Whether the token file changed after ``unit`` last started (so the backend still runs the old
    token); None when unknowable: no mtime, no systemctl, systemd not running, unit never started."""
    systemctl = shutil.which("systemctl")
    if env_file_mtime is None or systemctl is None:
        return None
    started = _unit_started(systemctl, unit, timeout)
    if started is None:
        return None
    return env_file_mtime > started


def unit_started(unit: str, timeout: float = 3.0) -> datetime | None:
    """When ``unit`` last (re)started, as systemd tells (ActiveEnterTimestamp); None when unknowable."""
    systemctl = shutil.which("systemctl")
    return None if systemctl is None else _unit_started(systemctl, unit, timeout)


def _unit_started(systemctl: str, unit: str, timeout: float) -> datetime | None:
    for prop in ("ActiveEnterTimestamp", "ExecMainStartTimestamp"):
        try:
            done = subprocess.run(  # noqa: S603 - fixed argv, no shell; the unit name is one argument
                [systemctl, "show", "-p", prop, "--value", "--timestamp=unix", "--", unit],
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            log.debug("systemctl show %s failed: %s", unit, exc)
            return None
        if done.returncode != 0:
            log.debug("systemctl show %s: exit %s: %s", unit, done.returncode, done.stderr.strip())
            return None
        value = done.stdout.strip()
        # "@1701646517" with --timestamp=unix; empty, "n/a" or "@0" when the unit never started.
        if value.startswith("@"):
            try:
                seconds = float(value[1:])
            except ValueError:
                continue
            if seconds > 0:
                return datetime.fromtimestamp(seconds, tz=UTC)
    return None


def _remembered(value: str) -> Secret:
    SECRETS.add(value)  # the configured token is shown as its label wherever it turns up
    return Secret(value)
