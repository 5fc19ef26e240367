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
from typing import TextIO

import yaml

from snapwatch.cli.configfile import config_path, resolve_config
from snapwatch.config import Config, TokenConfig
from snapwatch.errors import EX_OK, EX_RUNTIME, UsageError
from snapwatch.run.logs import setup_logging

log = logging.getLogger(__name__)


def _dump(data: object, out: TextIO) -> None:
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
    config = resolve_config(args, required=True)
    out.write(yaml.safe_dump(masked_config(config), sort_keys=False, allow_unicode=True))
    return EX_OK


def scan(args: argparse.Namespace, out: TextIO) -> int:
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
        out.write(render_text(report))
    return EX_OK


def token(args: argparse.Namespace, out: TextIO) -> int:
    from snapwatch.cli.token_text import explain, to_json  # noqa: PLC0415
    from snapwatch.ingest.tokens import inspect  # noqa: PLC0415
    from snapwatch.run.configured import load_configured  # noqa: PLC0415

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
    from snapwatch.store.state import Store  # noqa: PLC0415

    config = resolve_config(args, required=True)
    with Store.open(config.state_dir) as store:
        data = store.status()
    if args.json:
        _dump(data, out)
        return EX_OK
    out.write(_status_text(data))
    return EX_OK


def _status_text(data: dict[str, object]) -> str:
    lines: list[str] = []
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
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace, out: TextIO) -> int:
    from snapwatch.run.daemon import run as run_daemon  # noqa: PLC0415

    setup_logging(logging.DEBUG if args.verbose else logging.INFO)
    config = resolve_config(args, required=True)
    if not config.sources:
        raise UsageError("the config has no sources to follow")
    return run_daemon(config, config_path(args))


def diagnose(args: argparse.Namespace, out: TextIO) -> int:
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
        out.write(render_findings(diagnosis))
    return EX_OK


def test_alert(args: argparse.Namespace, out: TextIO) -> int:
    from snapwatch.alert.notify import send_test, targets_from_urls  # noqa: PLC0415

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

    return run_demo(out, fast=args.fast)


COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO], int]] = {
    "check-config": check_config,
    "scan": scan,
    "token": token,
    "status": status,
    "run": run,
    "diagnose": diagnose,
    "test-alert": test_alert,
    "demo": demo,
}


def dispatch(args: argparse.Namespace, out: TextIO) -> int:
    return COMMANDS[args.command](args, out)
