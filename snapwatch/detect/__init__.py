"""Exchanges to incident transitions and per-token memory, pure."""

from snapwatch import lazy_exports

__all__ = [
    "AcceptedRun",
    "Batch",
    "Detector",
    "History",
    "SourcePipeline",
    "SourceView",
    "incident_id",
    "status_key",
]

__getattr__ = lazy_exports(__name__, {
    "AcceptedRun": "history",
    "Batch": "pipeline",
    "Detector": "detector",
    "History": "history",
    "SourcePipeline": "pipeline",
    "SourceView": "pipeline",
    "incident_id": "tally",
    "status_key": "tally",
})
