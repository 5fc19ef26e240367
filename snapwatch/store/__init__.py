"""The SQLite state file: every table, and one ordered list of migrations."""
