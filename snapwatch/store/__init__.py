"""The SQLite state file: every table, and one ordered list of migrations keyed by PRAGMA user_version."""

from snapwatch import lazy_exports

__all__ = [
    "SCHEMA_VERSION",
    "IncidentRow",
    "Outbox",
    "OutboxRow",
    "StateError",
    "Store",
    "joined_transaction",
    "migrate",
]

__getattr__ = lazy_exports(__name__, {
    "IncidentRow": "state",
    "Outbox": "outbox",
    "OutboxRow": "outbox",
    "SCHEMA_VERSION": "schema",
    "StateError": "schema",
    "Store": "state",
    "joined_transaction": "schema",
    "migrate": "schema",
})
