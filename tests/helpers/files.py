"""Writing to files as a writer would."""

from __future__ import annotations

from pathlib import Path


def append(path: Path, data: bytes | str) -> None:
    """Append ``data`` to ``path`` (text as UTF-8) and close it."""
    with path.open("ab") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
