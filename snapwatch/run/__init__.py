"""The applications that wire the stages together: the daemon, scan, diagnose now, probe, metrics, sd_notify."""

from snapwatch import lazy_exports

__all__ = [
    "Daemon",
    "Prober",
    "diagnose_now",
    "load_configured",
    "render_now",
    "render_text",
    "run",
    "scan_with_diagnosis",
    "setup_logging",
]

__getattr__ = lazy_exports(__name__, {
    "Daemon": "daemon",
    "Prober": "probe",
    "diagnose_now": "now",
    "load_configured": "configured",
    "render_now": "now",
    "render_text": "scan",
    "run": "startup",
    "scan_with_diagnosis": "scan",
    "setup_logging": "logs",
})
