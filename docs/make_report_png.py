#!/usr/bin/env python3
"""Regenerates docs/report.png: the demo's report (``snapwatch demo --report``), as headless Chromium shows it.

    python docs/make_report_png.py            # needs Debian's chromium (apt-get install chromium)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars")


def main() -> int:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="snapwatch-report-png-") as tmp:
        page = Path(tmp) / "report.html"
        subprocess.run([sys.executable, "-m", "snapwatch", "demo", "--report", str(page)], cwd=HERE.parent,
                       check=True, stdout=subprocess.DEVNULL)
        subprocess.run([chromium, *FLAGS, f"--user-data-dir={tmp}/profile", "--window-size=1100,1500",
                        f"--screenshot={HERE / 'report.png'}", page.as_uri()], check=True, capture_output=True)
    print(f"wrote {HERE / 'report.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
