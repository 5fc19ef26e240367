"""Entry point for ``python -m snapwatch``."""

import sys

from snapwatch.cli.app import main

sys.exit(main())
