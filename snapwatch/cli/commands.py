"""One function per command: turn parsed arguments into work and output; return the exit code."""

from __future__ import annotations

import argparse
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
from snapwatch.errors import EX_OK, EX_RUNTIME, UsageError

if TYPE_CHECKING:
    from snapwatch.config import Config, TokenConfig

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
    from snapwatch.alert.notify import mask_url  # noqa: PLC0415  (apprise is slow to import)

    data = config.model_dump(mode="json")
    alerts = data["alerts"]
    alerts["urls"] = [mask_url(url) for url in config.alerts.urls]
    alerts["alertmanager"] = [mask_url(url) for url in config.alerts.alertmanager]
    return data


def check_config(args: argparse.Namespace, out: TextIO) -> int:
    import yaml  # noqa: PLC0415

    from snapwatch.cli.configfile import resolve_config_places  # noqa: PLC0415
    from snapwatch.run.preflight import require_preflight  # noqa: PLC0415  (apprise is slow to import)

    config, places = resolve_config_places(args)
    require_preflight(config, places)  # what `run` would refuse, exactly as `run` refuses it
    out.write(yaml.safe_dump(masked_config(config), sort_keys=False, allow_unicode=True))
    return EX_OK


def scan(args: argparse.Namespace, out: TextIO) -> int:
    from snapwatch.cli.configfile import resolve_config  # noqa: PLC0415
    from snapwatch.run.scan import render_text, scan_with_diagnosis  # noqa: PLC0415

    config = resolve_config(args, required=False)
    token_config = config.token
    if args.env_file:
        token_config = token_config.model_copy(update={"env_file": Path(args.env_file)})
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
            token_config = token_config.model_copy(update={"env_file": Path(args.env_file)})
        elif token_config.env_file is None and token_config.env is None and token_config.file is None:
            token_config = token_config.model_copy(update={"env": token_config.key})
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


def status(args: argparse.Namespace, out: TextIO) -> int:
    from snapwatch.cli.configfile import resolve_config  # noqa: PLC0415
    from snapwatch.store.state import Store  # noqa: PLC0415

    config = resolve_config(args, required=True)
    with Store.open(config.state_dir) as store:
        data = store.status()
        if args.history:
            data["history"] = store.recent_incidents(datetime.now(UTC) - config.history.retention)
    if args.json:
        _dump(data, out)
        return EX_OK
    _text(args, out, _status_text(data))
    return EX_OK


def report(args: argparse.Namespace, out: TextIO) -> int:
    from snapwatch.cli.configfile import resolve_config  # noqa: PLC0415
    from snapwatch.config import parse_duration  # noqa: PLC0415
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
            token_config = token_config.model_copy(update={"env_file": Path(args.env_file)})
        scanned = scan_with_diagnosis(args.files, config, token_config, os.environ, strict_token=bool(args.env_file))
        data = from_scan(scanned, host=host, tz=tz, now=now)
    else:
        since = parse_duration(args.since) if args.since else None
        with Store.open(config.state_dir) as store:
            data = from_state(store, host=host, tz=tz, now=now, since=since, incident_id=args.incident)
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
    sources = data["sources"]
    assert isinstance(sources, list)
    for s in sources:
        counts = ", ".join(f"{code}: {n}" for code, n in s["responses"].items()) or "no responses yet"
        lines.append(f"{s['path']}: offset {s['offset']} (inode {s['inode']}), {s['requests']} requests; "
                     f"{counts}; last record {s['last_record_at'] or 'never'}")
    incidents = data["incidents"]
    assert isinstance(incidents, list)
    lines.append(f"open incidents: {len(incidents) or 'none'}")
    lines.extend(f"  {i['rule']} on {i['source']} since {i['opened_at']}: {i['verdict'] or 'unknown'}"
                 for i in incidents)
    outbox = data["outbox"]
    assert isinstance(outbox, dict)
    lines.append(f"outbox: {outbox['pending']} pending, {outbox['delivered']} delivered, {outbox['failed']} failed")
    gaps = data.get("log_gaps") or []
    assert isinstance(gaps, list)
    lines.extend(f"log gap in {g['path']}: {g['lost_bytes'] if g['lost_bytes'] is not None else 'unknown'} bytes "
                 f"lost ({g['reason']})" for g in gaps)
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
    from snapwatch.run.now import diagnose_now, render_findings  # noqa: PLC0415

    config = resolve_config(args, required=False)
    try:
        now = datetime.fromisoformat(args.now) if args.now is not None else datetime.now(UTC)
    except ValueError:
        raise UsageError(f"--now {args.now!r} is not an ISO 8601 time") from None
    if now.tzinfo is None:
        now = now.astimezone()
    diagnosis = diagnose_now(config, os.environ, now, probe=args.probe)
    if args.json:
        _dump({"now": now.isoformat(), **diagnosis.to_json()}, out)
    else:
        _text(args, out, render_findings(diagnosis))
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
}


def dispatch(args: argparse.Namespace, out: TextIO) -> int:
    return COMMANDS[args.command](args, out)
