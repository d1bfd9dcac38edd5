"""Run reports (build plain data, render last), the cost estimate and the live view.

``model`` builds a :class:`RunReport` from what a RunStore recorded; ``render`` and
``html`` turn it into a table, JSON, CSV or one self-contained HTML file; ``estimate``
forecasts a workflow's cost before it runs; ``live`` draws a run as it goes.
"""

from __future__ import annotations

from .model import (
    Comparison,
    NodeChange,
    NodeRow,
    RunReport,
    Savings,
    build_report,
    compare_reports,
    load_comparison,
    load_run_report,
    recorded_workflow,
    report_from_result,
)

__all__ = [
    "Comparison",
    "NodeChange",
    "NodeRow",
    "RunReport",
    "Savings",
    "build_report",
    "compare_reports",
    "load_comparison",
    "load_run_report",
    "recorded_workflow",
    "report_from_result",
]
