"""One function per command: turn parsed arguments into work and output; return the exit code."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import socket
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from snapwatch.cli.style import colourize, wanted
from snapwatch.errors import EX_OK, EX_RUNTIME, ConfigError, SnapwatchError, UsageError

if TYPE_CHECKING:
    from snapwatch.config.models import Config, TokenConfig

# The config (pydantic), yaml and the rest are imported by the commands that use them: `--help` and
# `token --stdin` start without them.

log = logging.getLogger(__name__)


def _text(args: argparse.Namespace, out: TextIO, text: str) -> None:
    """Human output: coloured on a terminal when ``--color`` allows (JSON never is)."""
    out.write(colourize(text) if wanted(getattr(args, "color", "never"), out, os.environ) else text)


def _dump(data: object, out: TextIO) -> None:
    # json writes one chunk per key, value and punctuation: every string arrives whole at the redactor.
    json.dump(data, out, indent=2, ensure_ascii=False)
    out.write("\n")


def masked_config(config: Config) -> dict[str, object]:
    """The effective config as plain data, with every URL's secrets masked."""
    from snapwatch.alert.urls import mask_url  # noqa: PLC0415  (apprise is slow to import)
    from snapwatch.config.loading import plain  # noqa: PLC0415  (pydantic is slow to import)

    data = plain(config)
    alerts = data["alerts"]
    alerts["urls"] = [mask_url(url) for url in config.alerts.urls]
    alerts["alertmanager"] = [mask_url(url) for url in config.alerts.alertmanager]
    return data


def check_config(args: argparse.Namespace, out: TextIO) -> int:
    import yaml  # noqa: PLC0415

    from snapwatch.cli.configfile import resolve_config_places  # noqa: PLC0415
    from snapwatch.run.preflight import preflight, warnings  # noqa: PLC0415  (apprise is slow to import)

    config, places = resolve_config_places(args)
    refused = preflight(config, places, creating=False)  # what `run` would refuse, as `run` refuses it
    if refused:
        raise ConfigError("\n".join(str(p) for p in refused))
    noted = warnings(config, places)
    for problem in noted:
        print(f"snapwatch: warning: {problem}", file=sys.stderr)
    if noted and args.strict:
        raise ConfigError(f"{len(noted)} warning(s), and --strict makes them errors")
    out.write(yaml.safe_dump(masked_config(config), sort_keys=False, allow_unicode=True))
    return EX_OK


def scan(args: argparse.Namespace, out: TextIO) -> int:
    from snapwatch.cli.configfile import resolve_config  # noqa: PLC0415
    from snapwatch.run.scan import render_text, scan_with_diagnosis  # noqa: PLC0415

    config = resolve_config(args, required=False)
    token_config = config.token
    if args.env_file:
        token_config = dataclasses.replace(token_config, env_file=Path(args.env_file))
    show_progress = not args.no_progress and sys.stderr.isatty()
    report = scan_with_diagnosis(args.files, config, token_config, os.environ, progress=show_progress,
                                 strict_token=bool(args.env_file))  # a file named on the command line must be read
    if args.json:
        _dump(report.to_json(), out)
    else:
        _text(args, out, render_text(report))
    return EX_OK


def token(args: argparse.Namespace, out: TextIO) -> int:
    from snapwatch.cli.token_text import explain, to_json  # noqa: PLC0415
    from snapwatch.ingest.tokens import inspect  # noqa: PLC0415

    now = datetime.now(UTC)
    if args.stdin:
        raw = sys.stdin.read()
        # One trailing newline is how a pipe ends, not part of the value; any other whitespace is kept.
        raw = raw[:-1] if raw.endswith("\n") else raw
        source = "standard input"
        if not raw.strip():
            print("snapwatch: no token on standard input", file=sys.stderr)
            return EX_RUNTIME
        report = inspect(raw)
    else:
        from snapwatch.cli.configfile import resolve_config  # noqa: PLC0415
        from snapwatch.run.configured import load_configured  # noqa: PLC0415

        token_config = resolve_config(args, required=False).token
        if args.env_file:
            token_config = dataclasses.replace(token_config, env_file=Path(args.env_file))
        elif token_config.env_file is None and token_config.env is None and token_config.file is None:
            token_config = dataclasses.replace(token_config, env=token_config.key)
        configured = load_configured(token_config, os.environ)
        if configured is None:
            print(f"snapwatch: no token found ({_where(token_config)})", file=sys.stderr)
            return EX_RUNTIME
        report, source = configured.report(), configured.source
    if args.json:
        _dump(to_json(report, source), out)
    else:
        out.write("\n".join(explain(report, source, now)) + "\n")
    return EX_OK


def _where(cfg: TokenConfig) -> str:
    places = [f"{cfg.key} in {cfg.env_file}" if cfg.env_file else None,
              f"${cfg.env}" if cfg.env else None, str(cfg.file) if cfg.file else None]
    return ", ".join(p for p in places if p) or "no token source configured"


def _existing_state(config: Config) -> Path:
    """The state directory of a daemon that has run; a read-only command never creates one."""
    if not os.path.lexists(config.state_dir / "state.db"):  # a planted symlink is for Store.open to refuse
        raise SnapwatchError(f"no state in {config.state_dir}: has `snapwatch run` run with this config?")
    return config.state_dir


def status(args: argparse.Namespace, out: TextIO) -> int:
    from snapwatch.cli.configfile import resolve_config  # noqa: PLC0415
    from snapwatch.store.silences import Silences  # noqa: PLC0415
    from snapwatch.store.state import Store  # noqa: PLC0415
    from snapwatch.store.statedir import LOCK_NAME, holder  # noqa: PLC0415

    config = resolve_config(args, required=True)
    with Store.open(_existing_state(config)) as store:
        data = store.status()
        data["silences"] = [s.to_json() for s in Silences(store.conn).active(datetime.now(UTC))]
        if args.history:
            data["history"] = store.recent_incidents(datetime.now(UTC) - config.history.retention)
    pid = holder(config.state_dir)
    lock = config.state_dir / LOCK_NAME
    data["daemon"] = {"running": pid is not None, "pid": pid or None,
                      "since": datetime.fromtimestamp(lock.stat().st_mtime, UTC).isoformat(timespec="seconds")
                      if pid is not None and lock.exists() else None}
    if args.json:
        _dump(data, out)
        return EX_OK
    _text(args, out, _status_text(data))
    return EX_OK


def report(args: argparse.Namespace, out: TextIO) -> int:
    from snapwatch.cli.configfile import resolve_config  # noqa: PLC0415
    from snapwatch.config.models import parse_duration  # noqa: PLC0415
    from snapwatch.ingest.stamps import zone_of  # noqa: PLC0415
    from snapwatch.run.report import from_scan, from_state, page_of  # noqa: PLC0415
    from snapwatch.run.scan import scan_with_diagnosis  # noqa: PLC0415
    from snapwatch.store.state import Store  # noqa: PLC0415

    config = resolve_config(args, required=not args.files)
    if args.files and (args.since or args.incident):
        raise UsageError("report: --since and --incident read the daemon's history; give them without FILEs")
    now = datetime.now(UTC)
    named = config.sources[0].timezone if config.sources else "local"
    tz = zone_of(named) or now.astimezone().tzinfo or UTC
    host = socket.gethostname()
    if args.files:
        token_config = config.token
        if args.env_file:
            token_config = dataclasses.replace(token_config, env_file=Path(args.env_file))
        scanned = scan_with_diagnosis(args.files, config, token_config, os.environ, strict_token=bool(args.env_file))
        data = from_scan(scanned, host=host, tz=tz, now=now)
    else:
        since = parse_duration(args.since) if args.since else None
        with Store.open(_existing_state(config)) as store:
            data = from_state(store, host=host, tz=tz, now=now, since=since, incident_id=args.incident,
                              unit=config.token.service)
    page = page_of(data)
    if args.output in (None, "-"):
        out.write(page)
    else:
        target = Path(args.output)
        partial = target.with_name(f".{target.name}.partial")
        partial.write_text(page, encoding="utf-8")
        partial.replace(target)  # a reader never sees half a page
        print(f"snapwatch: wrote {target} ({len(data.incidents)} incident(s))", file=sys.stderr)
    return EX_OK


def _status_text(data: dict[str, object]) -> str:
    lines: list[str] = []
    daemon = data.get("daemon")
    if isinstance(daemon, dict):
        lines.append(f"daemon: running (pid {daemon['pid']}, since {daemon['since']})" if daemon["running"]
                     else "daemon: not running (no snapwatch holds this state directory)")
    sources = data["sources"]
    assert isinstance(sources, list)
    for s in sources:
        counts = ", ".join(f"{code}: {n}" for code, n in s["responses"].items()) or "no responses yet"
        lines.append(f"{s['path']}: offset {s['offset']} (inode {s['inode']}), {s['requests']} requests; "
                     f"{counts}; last record {s['last_record_at'] or 'never'}")
        lines.extend(f"  token {fp}: {n['accepted']} accepted, {n['rejected']} rejected"
                     for fp, n in s.get("tokens", {}).items())
        skipped = ", ".join(f"{kind} {n}" for kind, n in s.get("skipped", {}).items())
        if skipped:
            lines.append(f"  not taken at face value: {skipped}")
    incidents = data["incidents"]
    assert isinstance(incidents, list)
    lines.append(f"open incidents: {len(incidents) or 'none'}")
    lines.extend(f"  {i['rule']} on {i['source']} since {i['opened_at']}"
                 + (f", {i['responses']} failed" if "responses" in i else "") + f": {i['verdict'] or 'unknown'}"
                 for i in incidents)
    outbox = data["outbox"]
    assert isinstance(outbox, dict)
    lines.append(f"outbox: {outbox['pending']} pending, {outbox['delivered']} delivered, {outbox['failed']} failed")
    gaps = data.get("log_gaps") or []
    assert isinstance(gaps, list)
    lines.extend(f"log gap in {g['path']}: {g['lost_bytes'] if g['lost_bytes'] is not None else 'unknown'} bytes "
                 f"lost ({g['reason']})" for g in gaps)
    targets = data.get("targets") or []
    assert isinstance(targets, list)
    lines.extend(f"target {g['target']}: last alert {g['last']} at {g['at']}"
                 + (f" ({g['error']})" if g["error"] else "") for g in targets)
    silences = data.get("silences") or []
    assert isinstance(silences, list)
    lines.extend(f"silenced: {s['rule'] or 'every rule'} on {s['source'] or 'every source'} until {s['ends_at']} "
                 f"(silence {s['id']}{': ' + s['comment'] if s['comment'] else ''})" for s in silences)
    history = data.get("history")
    if isinstance(history, list):
        lines.append(f"recent incidents: {len(history) or 'none'}")
        lines.extend(f"  {h['id']}: {h['rule']} on {h['source']}, {h['opened_at']} → {h['resolved_at'] or 'open'}"
                     f" ({h['duration']}), {h['failed']} failed; verdict {h['verdict'] or 'unknown'}"
                     for h in history)
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, out: TextIO) -> int:
    from snapwatch.cli.configfile import config_path, resolve_config_places  # noqa: PLC0415
    from snapwatch.run.logs import setup_logging  # noqa: PLC0415
    from snapwatch.run.preflight import require_preflight  # noqa: PLC0415
    from snapwatch.run.startup import run as run_daemon  # noqa: PLC0415

    config, places = resolve_config_places(args)
    require_preflight(config, places)  # the same checks as check-config: exit 78, which systemd does not restart
    setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    return run_daemon(config, config_path(args))


def diagnose(args: argparse.Namespace, out: TextIO) -> int:
    from snapwatch.cli.configfile import resolve_config  # noqa: PLC0415
    from snapwatch.run.now import diagnose_now, render_now  # noqa: PLC0415

    config = resolve_config(args, required=False)
    try:
        now = datetime.fromisoformat(args.now) if args.now is not None else datetime.now(UTC)
    except ValueError:
        raise UsageError(f"--now {args.now!r} is not an ISO 8601 time") from None
    if now.tzinfo is None:
        now = now.astimezone()
    report = diagnose_now(config, os.environ, now, probe=args.probe)
    if args.json:
        _dump(report.to_json(), out)
    else:
        _text(args, out, render_now(report))
    return EX_OK


def test_alert(args: argparse.Namespace, out: TextIO) -> int:
    from snapwatch.alert.notify import send_test, targets_from_urls  # noqa: PLC0415
    from snapwatch.cli.configfile import resolve_config  # noqa: PLC0415

    config = resolve_config(args, required=True)
    targets = targets_from_urls(config.alerts.urls)
    results = send_test(targets, socket.gethostname(), datetime.now(UTC), timeout=config.alerts.timeout.total_seconds())
    failed = 0
    for display, ok, reason in results:
        out.write(f"{display}: {'delivered' if ok else 'FAILED: ' + reason}\n")
        failed += not ok
    return EX_RUNTIME if failed else EX_OK


def demo(args: argparse.Namespace, out: TextIO) -> int:
    from snapwatch.cli.demo import run_demo  # noqa: PLC0415

    return run_demo(out, fast=args.fast, report=Path(args.report) if args.report else None)


def silence(args: argparse.Namespace, out: TextIO) -> int:
    from snapwatch.cli.configfile import resolve_config  # noqa: PLC0415
    from snapwatch.config.models import parse_duration  # noqa: PLC0415
    from snapwatch.model import Rule  # noqa: PLC0415
    from snapwatch.store.silences import Silences  # noqa: PLC0415
    from snapwatch.store.state import Store  # noqa: PLC0415

    config = resolve_config(args, required=True)
    now = datetime.now(UTC)
    with Store.open(_existing_state(config)) as store:
        silences = Silences(store.conn)
        if args.verb == "add":
            if args.rule is not None and args.rule not in {r.value for r in Rule}:
                raise UsageError(f"silence add: --rule {args.rule!r} is not a rule: "
                                 + ", ".join(r.value for r in Rule))
            try:
                length = parse_duration(args.length)
            except ValueError as exc:
                raise UsageError(f"silence add: --for: {exc}") from None
            made = silences.add(args.rule, args.source, length, args.comment, now)
            out.write(f"silence {made.id}: {made.rule or 'every rule'} on {made.source or 'every source'} "
                      f"until {made.ends_at.isoformat(timespec='seconds')}\n")
            return EX_OK
        if args.verb == "expire":
            if not silences.expire(args.id, now):
                raise SnapwatchError(f"no active silence {args.id}: `snapwatch silence list` shows them")
            out.write(f"silence {args.id} ended\n")
            return EX_OK
        listed = sorted(silences.all(), key=lambda s: (not s.active(now), s.ends_at))
    if args.json:
        _dump([{**s.to_json(), "active": s.active(now)} for s in listed], out)
    else:
        out.write("".join(f"{s.id}: {s.rule or 'every rule'} on {s.source or 'every source'} until "
                          f"{s.ends_at.isoformat(timespec='seconds')}{'' if s.active(now) else ' (ended)'}"
                          f"{': ' + s.comment if s.comment else ''}\n" for s in listed) or "no silences\n")
    return EX_OK


def completion(args: argparse.Namespace, out: TextIO) -> int:
    import shtab  # noqa: PLC0415  (only here)

    from snapwatch.cli.parser import build_parser  # noqa: PLC0415

    out.write(shtab.complete(build_parser(), shell=args.shell))
    return EX_OK


COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO], int]] = {
    "check-config": check_config,
    "scan": scan,
    "token": token,
    "status": status,
    "report": report,
    "run": run,
    "diagnose": diagnose,
    "test-alert": test_alert,
    "demo": demo,
    "completion": completion,
    "silence": silence,
}


def dispatch(args: argparse.Namespace, out: TextIO) -> int:
    return COMMANDS[args.command](args, out)
