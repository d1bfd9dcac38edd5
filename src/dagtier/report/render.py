"""Renderers: a :class:`RunReport` or :class:`Comparison` in, text out. No computing here.

Every renderer redacts secrets on the way out, as a last line of defence: error messages
recorded in a run come from providers and may quote what they were sent.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING, Literal

from .._logging import redact_text, redact_value
from ._text import savings_lines, usd

if TYPE_CHECKING:
    from rich.console import Console

    from ..store import RunRecord
    from .model import Comparison, RunReport

Format = Literal["table", "json", "csv", "html"]
FORMATS: tuple[str, ...] = ("table", "json", "csv", "html")


def render_json(report: RunReport | Comparison) -> str:
    return json.dumps(redact_value(report.to_dict()), indent=2, default=str) + "\n"


def render_runs_json(runs: Sequence[tuple[RunRecord, dict[str, int]]]) -> str:
    """Runs (each with its node counts by status) as a JSON list, as `dagtier runs --json`."""
    out = []
    for record, counts in runs:
        item = {**asdict(record), "nodes": counts}
        item.pop("node_fingerprints", None)  # internal, and long
        out.append(item)
    return json.dumps(redact_value(out), indent=2, default=str) + "\n"


_CSV_COLUMNS = (
    "run_id",
    "node",
    "status",
    "policy",
    "final_tier",
    "final_model",
    "cache_hit",
    "attempt",
    "purpose",
    "tier",
    "model",
    "provider",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "judge_cost_usd",
    "latency_s",
    "verdict",
    "reason",
    "fallbacks",
)


def render_csv(report: RunReport) -> str:
    """One row per attempt (nodes that made no call get one row with blank attempt
    columns): the shape a spreadsheet pivot wants."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(_CSV_COLUMNS)
    for n in report.nodes:
        head = [
            report.run_id,
            n.node_id,
            n.status,
            n.policy or "",
            n.tier or "",
            n.model or "",
            int(n.cache_hit),
        ]
        if not n.attempts:
            w.writerow([*head, *[""] * (len(_CSV_COLUMNS) - len(head))])
        for a in n.attempts:
            w.writerow(
                [
                    *head,
                    a.index,
                    a.purpose,
                    a.tier,
                    a.model,
                    a.provider,
                    a.input_tokens,
                    a.output_tokens,
                    a.cache_read_tokens,
                    a.cache_write_tokens,
                    a.reasoning_tokens,
                    f"{a.cost:.8f}",
                    f"{a.judge_cost:.8f}",
                    f"{a.latency_s:.4f}",
                    a.verdict,
                    redact_text(a.reason),
                    a.fallbacks,
                ]
            )
    return buf.getvalue()


def print_table(report: RunReport, console: Console) -> None:
    """The report for a terminal: nodes, attempts, totals, savings."""
    from rich.table import Table

    t = report.totals
    nodes = Table(
        title=f"run {report.run_id} · {report.workflow} · {report.status} · "
        f"{report.duration_s:.2f}s",
        title_justify="left",
    )
    for col in ("node", "policy", "status", "tier", "model", "tries", "esc", "tokens", "cost $"):
        nodes.add_column(
            col, justify="right" if col in ("tries", "esc", "tokens", "cost $") else "left"
        )
    nodes.add_column("secs", justify="right")
    for n in report.nodes:
        status = n.status + (" (cache)" if n.cache_hit and n.status != "cached" else "")
        nodes.add_row(
            n.node_id + (" *" if n.critical else ""),
            n.policy or "-",
            status,
            f"T{n.tier}" if n.tier else "-",
            n.model or "-",
            str(sum(a.tries for a in n.attempts)),
            str(n.escalations),
            f"{n.tokens:,}",
            f"{n.cost:.6f}",
            f"{n.latency_s:.2f}",
        )
    nodes.add_section()
    nodes.add_row(
        "total", "", "", "", "", str(t.attempts), str(t.escalations),
        f"{t.input_tokens + t.output_tokens + t.cache_read_tokens + t.cache_write_tokens + t.reasoning_tokens:,}",
        f"{t.cost:.6f}", f"{report.duration_s:.2f}",
    )  # fmt: skip
    console.print(nodes)
    if report.critical_path:
        console.print(
            f"* critical path: {' → '.join(report.critical_path)} ({report.critical_path_s:.2f}s)",
            markup=False,
        )
    if report.deadline is not None:
        console.print(report.deadline.describe(), markup=False, highlight=False)

    attempts = Table(title="attempts", title_justify="left")
    for col in ("node", "#", "tier", "model", "in", "out", "cache r/w", "reasoning", "cost $"):
        attempts.add_column(col, justify="left" if col in ("node", "model") else "right")
    attempts.add_column("secs", justify="right")
    attempts.add_column("verdict")
    attempts.add_column("reason", overflow="fold")
    for n in report.nodes:
        for a in n.attempts:
            attempts.add_row(
                n.node_id,
                str(a.index) + ("" if a.purpose == "answer" else f" {a.purpose}"),
                f"T{a.tier}",
                a.model,
                f"{a.input_tokens:,}",
                f"{a.output_tokens:,}",
                f"{a.cache_read_tokens:,}/{a.cache_write_tokens:,}",
                f"{a.reasoning_tokens:,}",
                f"{a.cost + a.judge_cost:.6f}",
                f"{a.latency_s:.2f}",
                a.verdict,
                redact_text(a.reason),
            )
            for k, turn in enumerate(a.turns):
                u = turn.usage
                attempts.add_row(
                    "",
                    f"  {a.index}.{k}",
                    "",
                    turn.model,
                    f"{u.input_tokens:,}",
                    f"{u.output_tokens:,}",
                    f"{u.cache_read_tokens:,}/{u.cache_write_tokens:,}",
                    f"{u.reasoning_tokens:,}",
                    f"{turn.cost:.6f}",
                    f"{turn.latency_s:.2f}",
                    "turn",
                    ", ".join(
                        f"{c.name} {c.duration_s:.2f}s" + (" (error)" if c.error else "")
                        for c in turn.tool_calls
                    )
                    or "final answer",
                )
    console.print(attempts)
    by_tier = ", ".join(
        f"T{tier}: {t.calls_by_tier[tier]} calls {usd(cost)}"
        for tier, cost in t.cost_by_tier.items()
    )
    console.print(
        f"calls by tier: {by_tier or 'none'}; escalations: {t.escalations}; "
        f"cache hits: {t.cache_hits}; judge cost: {usd(t.judge_cost)}",
        markup=False,
    )
    for line in savings_lines(report.savings):
        console.print(line, markup=False)
    for n in report.nodes:
        if n.error:
            console.print(f"{n.node_id}: {redact_text(n.error)}", markup=False, style="red")


def print_comparison(cmp: Comparison, console: Console) -> None:
    from rich.table import Table

    table = Table(title=f"{cmp.run_a} → {cmp.run_b}", title_justify="left")
    for col in ("node", "status", "tier", "model", "cost A $", "cost B $", "Δ $"):
        table.add_column(col, justify="right" if "$" in col else "left")
    for n in cmp.nodes:
        status = (
            n.status_a if n.status_a == n.status_b else f"{n.status_a or '-'}→{n.status_b or '-'}"
        )
        model = n.model_a if n.model_a == n.model_b else f"{n.model_a or '-'}→{n.model_b or '-'}"
        table.add_row(
            n.node_id,
            status or "-",
            n.tier_change,
            model or "-",
            f"{n.cost_a:.6f}",
            f"{n.cost_b:.6f}",
            f"{n.cost_delta:+.6f}",
        )
    table.add_section()
    table.add_row(
        "total", "", "", "", f"{cmp.cost_a:.6f}", f"{cmp.cost_b:.6f}", f"{cmp.cost_delta:+.6f}"
    )
    console.print(table)


def render_comparison_csv(cmp: Comparison) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    cols = ("node", "status_a", "status_b", "tier_a", "tier_b", "model_a", "model_b",
            "cost_a_usd", "cost_b_usd", "cost_delta_usd")  # fmt: skip
    w.writerow(cols)
    for n in cmp.nodes:
        w.writerow(
            [n.node_id, n.status_a or "", n.status_b or "", n.tier_a or "", n.tier_b or "",
             n.model_a or "", n.model_b or "", f"{n.cost_a:.8f}", f"{n.cost_b:.8f}",
             f"{n.cost_delta:.8f}"]
        )  # fmt: skip
    return buf.getvalue()


def print_report(report: RunReport | Comparison, console: Console) -> None:
    """A run's report (:func:`print_table`) or a comparison (:func:`print_comparison`)."""
    from .model import Comparison

    if isinstance(report, Comparison):
        print_comparison(report, console)
    else:
        print_table(report, console)


def render_to_text(report: RunReport | Comparison, fmt: Format, *, width: int = 160) -> str:
    """Any format as a string (the table through a recording console, without colour).
    A comparison renders as table, json or csv. *Changed in issue 11*: takes a Comparison.

    Raises:
        DagtierUsageError: html of a comparison.
    """
    from .model import Comparison

    if fmt == "json":
        return render_json(report)
    if isinstance(report, Comparison):
        if fmt == "html":
            from .._exceptions import DagtierUsageError

            raise DagtierUsageError("a comparison renders as table, json or csv, not html")
        if fmt == "csv":
            return render_comparison_csv(report)
    elif fmt == "csv":
        return render_csv(report)
    elif fmt == "html":
        from .html import render_html

        return render_html(report)
    from .tables import record_text

    return record_text(lambda console: print_report(report, console), width=width)
