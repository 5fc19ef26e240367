"""The configuration: its shape (models, defaults) and how a file is read into it (positions, budget, errors)."""

from snapwatch import lazy_exports

__all__ = [
    "DEFAULT_INHIBIT_RULES",
    "AlertsConfig",
    "Config",
    "Duration",
    "ErrorRateRule",
    "HistoryConfig",
    "InhibitRule",
    "JsonlFields",
    "MetricsConfig",
    "Places",
    "ProbeConfig",
    "RulesConfig",
    "SilenceRule",
    "SourceConfig",
    "StreakRule",
    "TokenConfig",
    "WindowCountRule",
    "format_duration",
    "load_config",
    "load_config_places",
    "parse_config",
    "parse_duration",
]

# Lazily: a command run without a config file (scan, token) needs the models, never the YAML reader.
__getattr__ = lazy_exports(__name__, {
    "DEFAULT_INHIBIT_RULES": "models",
    "AlertsConfig": "models",
    "Config": "models",
    "Duration": "models",
    "ErrorRateRule": "models",
    "HistoryConfig": "models",
    "InhibitRule": "models",
    "JsonlFields": "models",
    "MetricsConfig": "models",
    "Places": "loading",
    "ProbeConfig": "models",
    "RulesConfig": "models",
    "SilenceRule": "models",
    "SourceConfig": "models",
    "StreakRule": "models",
    "TokenConfig": "models",
    "WindowCountRule": "models",
    "format_duration": "models",
    "load_config": "loading",
    "load_config_places": "loading",
    "parse_config": "loading",
    "parse_duration": "models",
})
