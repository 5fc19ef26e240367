"""The command line: argument parsing, commands, terminal text, the demo."""

from snapwatch import lazy_exports

__all__ = [
    "main",
]

__getattr__ = lazy_exports(__name__, {
    "main": "app",
})
