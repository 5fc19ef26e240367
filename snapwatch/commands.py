"""One function per command: turn parsed arguments into work and output; return the exit code."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TextIO

import yaml

from snapwatch.cli import resolve_config
from snapwatch.config import Config
from snapwatch.errors import EX_OK


def masked_config(config: Config) -> dict[str, object]:
    """The effective config as plain data, with every URL's secrets masked."""
    from snapwatch.notify import mask_url  # noqa: PLC0415

    data = config.model_dump(mode="json")
    alerts = data["alerts"]
    alerts["urls"] = [mask_url(url) for url in config.alerts.urls]
    alerts["alertmanager"] = [mask_url(url) for url in config.alerts.alertmanager]
    return data


def check_config(args: argparse.Namespace, out: TextIO) -> int:
    config = resolve_config(args, required=True)
    out.write(yaml.safe_dump(masked_config(config), sort_keys=False, allow_unicode=True))
    return EX_OK


COMMANDS: dict[str, Callable[[argparse.Namespace, TextIO], int]] = {
    "check-config": check_config,
}


def dispatch(args: argparse.Namespace, out: TextIO) -> int:
    return COMMANDS[args.command](args, out)
