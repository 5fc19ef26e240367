"""snapwatch: watches a backend's Snap Conversions API log and explains 401 streaks."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any

__version__ = "0.1.0"


def lazy_exports(package: str, public: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` (PEP 562) for a subpackage's public face: ``public`` maps each name of its
    ``__all__`` to the module that defines it, imported on first use, so that importing a subpackage
    costs nothing until one of its names is asked for."""

    def __getattr__(name: str) -> Any:
        module = public.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(import_module(f"{package}.{module}"), name)

    return __getattr__
