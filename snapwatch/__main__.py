"""Entry point for ``python -m snapwatch``."""

import sys

from snapwatch.cli import main

sys.exit(main())
