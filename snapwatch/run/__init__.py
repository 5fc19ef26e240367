"""The applications that wire the stages together: the daemon, scan, diagnose now, probe, metrics."""
