"""Which configuration a command uses: -c, $SNAPWATCH_CONFIG, or the default location."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import TYPE_CHECKING

from snapwatch.config.models import Config
from snapwatch.errors import UsageError

if TYPE_CHECKING:
    from snapwatch.config.loading import Places

DEFAULT_CONFIG = Path("/etc/snapwatch/config.yaml")


def config_path(args: argparse.Namespace) -> Path | None:
    """The config file named by -c, $SNAPWATCH_CONFIG or the default location (None when there is none)."""
    if args.config:
        return Path(args.config)
    env = os.environ.get("SNAPWATCH_CONFIG")
    if env:
        return Path(env)
    return DEFAULT_CONFIG if DEFAULT_CONFIG.exists() else None


def resolve_config(args: argparse.Namespace, *, required: bool) -> Config:
    """The config named by -c, $SNAPWATCH_CONFIG or /etc/snapwatch/config.yaml; defaults when optional."""
    path = config_path(args)
    if path is None:
        if required:
            raise UsageError(
                f"no configuration: pass -c CONFIG, set SNAPWATCH_CONFIG, or create {DEFAULT_CONFIG}"
            )
        return Config()
    from snapwatch.config.loading import load_config  # noqa: PLC0415  (yaml: only when there is a file)
    return load_config(path)


def resolve_config_places(args: argparse.Namespace) -> tuple[Config, Places]:
    """The required config (as ``resolve_config``), and where each of its settings stands in the file."""
    path = config_path(args)
    if path is None:
        resolve_config(args, required=True)  # raises the usage error
    assert path is not None
    from snapwatch.config.loading import load_config_places  # noqa: PLC0415

    return load_config_places(path)
