"""snapwatch: watches a backend's Snap Conversions API log and explains 401 streaks."""

__version__ = "0.1.0"
