"""The HTML report: ReportData (plain values) in, one self-contained HTML page with an SVG timeline out."""

from snapwatch.report.data import (
    CLASSES,
    Bucket,
    EnvChange,
    LogGap,
    Marker,
    ReportData,
    ReportDiagnosis,
    ReportFinding,
    ReportIncident,
    ReportToken,
    Restart,
    TokenChange,
    minute_buckets,
    status_class,
)
from snapwatch.report.page import render_report
from snapwatch.report.sample import sample_report

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
