"""The HTML report: ReportData (plain values) in, one self-contained HTML page with an SVG timeline out."""

from snapwatch import lazy_exports

__all__ = [
    "CLASSES",
    "Bucket",
    "EnvChange",
    "LogGap",
    "Marker",
    "ReportData",
    "ReportDiagnosis",
    "ReportFinding",
    "ReportIncident",
    "ReportToken",
    "Restart",
    "TokenChange",
    "minute_buckets",
    "render_report",
    "sample_report",
    "status_class",
]

__getattr__ = lazy_exports(__name__, {
    "Bucket": "data",
    "CLASSES": "data",
    "EnvChange": "data",
    "LogGap": "data",
    "Marker": "data",
    "ReportData": "data",
    "ReportDiagnosis": "data",
    "ReportFinding": "data",
    "ReportIncident": "data",
    "ReportToken": "data",
    "Restart": "data",
    "TokenChange": "data",
    "minute_buckets": "data",
    "render_report": "page",
    "sample_report": "sample",
    "status_class": "data",
})
