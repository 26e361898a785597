"""Report: a run directory as DataFrames, figures, a self-contained HTML page, and the dashboard."""

from ensprune.report.dashboard import (
    open_dashboard_storage,
    redact,
    resolve_storage,
    serve_dashboard,
)
from ensprune.report.frames import (
    comparison_frame,
    ensemble_accuracy,
    format_summary,
    members_frame,
    summary,
    teams_frame,
    trials_frame,
)
from ensprune.report.html import build_report

__all__ = [
    "build_report",
    "comparison_frame",
    "ensemble_accuracy",
    "format_summary",
    "members_frame",
    "open_dashboard_storage",
    "redact",
    "resolve_storage",
    "serve_dashboard",
    "summary",
    "teams_frame",
    "trials_frame",
]
