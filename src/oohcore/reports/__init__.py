"""The contract's reports (11.5-11.10): kinds built from the KPIs, drawn as xlsx, CSV or HTML.

``build_report(store, organisation, "monthly", "2026-10")`` gives a :class:`Report`;
``write_report(report, "october.xlsx")`` draws it. The daily summary goes out through the
channels (:func:`enqueue_daily_summary`).
"""

from oohcore.reports.daily import daily_summary_text, enqueue_daily_summary, evening_reports
from oohcore.reports.kinds import KINDS, ReportError, build_report
from oohcore.reports.model import Report
from oohcore.reports.render import FORMATS, RenderError, write_report

__all__ = [
    "FORMATS",
    "KINDS",
    "RenderError",
    "Report",
    "ReportError",
    "build_report",
    "daily_summary_text",
    "enqueue_daily_summary",
    "evening_reports",
    "write_report",
]
