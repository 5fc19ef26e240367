"""Entry point for ``python -m snapwatch``."""

import sys

from snapwatch.cli.main import main

sys.exit(main())
