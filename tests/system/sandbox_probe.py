#!/usr/bin/env python3
"""Tries what a process may and may not do on the test machine; prints one JSON object of outcomes.

Standard library only. Each outcome is "ok" or the errno name of the failure (EACCES, EROFS, ENOENT, ...).
Run once as the ``snapwatch`` user without a sandbox (the control: each target is reachable for that user)
and once under snapwatch.service's own sandbox properties.
"""

from __future__ import annotations

import errno
import json
import os
import sys

WRITES = {
    "state_dir": "/var/lib/snapwatch/.probe",
    "world_writable_dir": "/srv/open/.probe-{pid}",
}
READS = {
    "log": "/var/log/app/snap_conversions_api.log",
    "env_file": "/srv/app/.env",
    "config": "/etc/snapwatch/config.yaml",
    "home_file": "/home/alice/notes.txt",
}


def outcome(action) -> str:  # type: ignore[no-untyped-def]
    try:
        action()
    except OSError as exc:
        return errno.errorcode.get(exc.errno or 0, str(exc))
    return "ok"


def write(path: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, b"probe\n")
    os.close(fd)
    os.unlink(path)


def read(path: str) -> None:
    with open(path, "rb") as f:
        f.read(64)


def main() -> int:
    pid = os.getpid()
    result = {f"write {k}": outcome(lambda p=p: write(p.format(pid=pid))) for k, p in WRITES.items()}
    result |= {f"read {k}": outcome(lambda p=p: read(p)) for k, p in READS.items()}
    result["list /home"] = outcome(lambda: os.listdir("/home/alice"))
    json.dump(result, sys.stdout, sort_keys=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
