"""Rendering a replay report: a rich table for people, JSON for programs."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.table import Table

    from ._runner import ReplayReport


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _usd(x: float) -> str:
    return f"{x:.6f}"


def report_table(report: ReplayReport, title: str | None = None) -> Table:
    """One row per policy, then the tiers alone (from the data) and the oracle."""
    from rich.table import Table

    n = len(report.tiers)
    top = report.top
    table = Table(
        title=title
        or f"replay of {report.source}: {report.queries:,} queries, tiers "
        + " / ".join(report.tiers),
        caption=(
            f"judge: {100 * report.judge.false_accept:g}% false accept, "
            f"{100 * report.judge.false_reject:g}% false reject, "
            f"${report.judge.cost:.6f} per call; seed {report.seed}"
            + (f"; adaptive canary {100 * report.canary:g}%" if report.canary is not None else "")
            + (
                f"; the first {report.trained:,} queries only trained (not counted)"
                if report.trained
                else ""
            )
            + (
                f"; {report.skipped:,} queries lacking a tier's outcome skipped"
                if report.skipped
                else ""
            )
        ),
    )
    cols = ["policy", "quality", "% of top", "cost $/query", "% of top", "PGR", "escalated"]
    cols += ["wasted /100", "t1 wasted /100", "routed"]
    cols += [f"t{t} calls" for t in range(1, n + 1)]
    cols += ["judge $/query"]
    for c in cols:
        table.add_column(c, justify="left" if c == "policy" else "right")
    for st in report.policies:
        shares = st.call_shares()
        table.add_row(
            st.label,
            f"{st.mean_quality:.4f}",
            _pct(st.quality_pct),
            _usd(st.mean_cost),
            _pct(st.cost_pct),
            "-" if st.pgr is None else f"{st.pgr:.2f}",
            _pct(st.escalation_rate),
            f"{st.wasted_per_100:.1f}",
            f"{st.wasted_cheap_per_100:.1f}",
            _pct(st.routed / st.queries if st.queries else None),
            *(_pct(shares[t]) for t in range(1, n + 1)),
            _usd(st.mean_judge_cost),
        )
    table.add_section()
    for i, ref in enumerate([*report.tier_refs, report.oracle]):
        label = f"tier {i + 1} alone ({ref.label})" if i < n else "oracle (cheapest right model)"
        table.add_row(
            label,
            f"{ref.mean_quality:.4f}",
            _pct(ref.mean_quality / top.mean_quality if top.mean_quality else None),
            _usd(ref.mean_cost),
            _pct(ref.mean_cost / top.mean_cost if top.mean_cost else None),
            *([""] * (len(cols) - 5)),
        )
    return table


def summary_lines(report: ReplayReport) -> list[str]:
    def f(x: float | None) -> str:
        return "-" if x is None else f"{x:.4f}"

    routers = [f"{st.label}: router {st.router['state']}" for st in report.policies if st.router]
    return [
        *routers,
        f"AIQ (mean quality of the cost-quality frontier from tier 1's cost to the top tier's): "
        f"tiers alone {f(report.aiq_tiers)}, with the policies {f(report.aiq_policies)}",
        f"replayed {report.queries:,} queries x {len(report.policies)} policies in "
        f"{report.seconds:.1f} s",
    ]


def report_json(report: ReplayReport) -> str:
    data: dict[str, Any] = report.to_dict()
    return json.dumps(data, indent=2)
