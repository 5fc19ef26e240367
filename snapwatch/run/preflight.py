"""What `run` checks before it follows anything, and `check-config` reports: one list, so the two cannot drift."""

from __future__ import annotations

import errno
import glob
import os
import socket
from dataclasses import dataclass

from dotenv import dotenv_values

from snapwatch.alert.notify import AppriseTarget
from snapwatch.config.loading import Places
from snapwatch.config.models import Config
from snapwatch.errors import ConfigError, NotifyError
from snapwatch.store.statedir import holder, problems


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason `run` would refuse the configuration; ``line`` reads ``FILE:LINE:COL: key: message``."""

    line: str

    def __str__(self) -> str:
        return self.line


def preflight(config: Config, places: Places | None = None, *, creating: bool = True) -> list[Problem]:
    """Every problem `run` would refuse to start with, in the order of the file's sections; changes nothing.

    At least one source; each alert URL usable by apprise (and the Alertmanager URLs well formed); the
    metrics address parsed, resolved and bindable (unless the snapwatch running on this state directory
    holds it); the state directory usable and safe (``store.statedir.problems``). With ``creating`` false
    (``check-config``) a state directory that does not exist yet is left to ``warnings``: under systemd,
    ``StateDirectory=`` creates it before ``run`` starts.
    """
    at = places or Places(None)
    found: list[tuple[tuple[str | int, ...], str]] = []
    if not config.sources:
        found.append((("sources",), "no source to follow: list at least one log file under sources"))
    for i, url in enumerate(config.alerts.urls):
        try:
            AppriseTarget(url)
        except NotifyError as exc:
            found.append((("alerts", "urls", i), str(exc)))
    if config.alerts.alertmanager:
        from snapwatch.alert.alertmanager import AlertmanagerTarget  # noqa: PLC0415  (httpx only when used)

        try:
            AlertmanagerTarget(config.alerts.alertmanager)
        except NotifyError as exc:
            found.append((("alerts", "alertmanager"), str(exc).removeprefix("alerts.alertmanager: ")))
    if config.metrics.listen is not None:
        reason = listen_problem(config.metrics.listen, config)
        if reason:
            found.append((("metrics", "listen"), reason))
    if creating or os.path.lexists(config.state_dir):
        found.extend((("state_dir",), reason) for reason in problems(config.state_dir))
    found.sort(key=lambda item: at.mark(item[0]))  # in file order, as the loader reports its mistakes
    return [Problem(at.line(loc, reason)) for loc, reason in found]


def warnings(config: Config, places: Places | None = None) -> list[Problem]:
    """What `run` accepts but a person setting it up should hear: sources that match no file yet, an
    ``env_file`` that is missing or lacks the token's key, a state directory that does not exist yet."""
    at = places or Places(None)
    found: list[tuple[tuple[str | int, ...], str]] = []
    for i, source in enumerate(config.sources):
        if not glob.glob(source.path):
            what = "matches no file" if glob.has_magic(source.path) else "does not exist"
            found.append((("sources", i, "path"), f"{source.path} {what} yet: snapwatch waits for it to appear"))
    env_file = config.token.env_file
    if env_file is not None:
        if not env_file.is_file():
            found.append((("token", "env_file"), f"{env_file} does not exist: the diagnosis cannot compare the "
                                                  "backend's token with the one it is configured with"))
        elif os.access(env_file, os.R_OK) and config.token.key not in dotenv_values(env_file):
            found.append((("token", "env_file"), f"{env_file} has no {config.token.key} (token.key): check the "
                                                  "key's name"))
    if not os.path.lexists(config.state_dir):
        creatable = problems(config.state_dir)
        found.append((("state_dir",), f"{config.state_dir} does not exist yet: `snapwatch run` creates it"
                      + (" (as this user it could not; under systemd, StateDirectory= does)" if creatable else "")))
    found.sort(key=lambda item: at.mark(item[0]))
    return [Problem(at.line(loc, reason)) for loc, reason in found]


def require_preflight(config: Config, places: Places | None = None) -> None:
    """Raise ConfigError (exit 78) listing every preflight problem, one per line; return when there is none."""
    found = preflight(config, places)
    if found:
        raise ConfigError("\n".join(p.line for p in found))


def listen_problem(listen: str, config: Config) -> str | None:
    """Why ``listen`` cannot serve the metrics, or None: malformed, unknown host, or not bindable."""
    from snapwatch.run.metrics import parse_listen  # noqa: PLC0415  (prometheus_client only when used)

    try:
        host, port = parse_listen(listen)
    except ConfigError as exc:
        return str(exc).removeprefix("metrics.listen: ")
    try:
        family, kind, proto, _name, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError) as exc:
        return f"{host!r} is not an address or a host name that resolves ({exc})"
    try:
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE and holder(config.state_dir) is not None:
            return None  # the snapwatch already running on this state directory serves it
        return f"cannot listen on {listen}: {exc.strerror or exc}"
    return None
