"""Console tables for people: a run's result, the list of runs, the model catalog.

Plain data in, a rich renderable out; the CLI prints them, and so can any Python caller::

    result = await dagtier.run(wf, inputs)
    print_run_summary(result, output_console())

Ids and money are copied out of these tables (``--resume RUN_ID``, a spreadsheet), so
:func:`print_uncut` never cuts a cell: it widens the output instead.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from .._logging import redact_text
from .model import DeadlineOutcome

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

    from ..catalog import Catalog
    from ..results import RunResult
    from ..store import RunRecord

_OK_STATUSES = ("succeeded", "unverified", "cached")
_RESUMABLE = ("interrupted", "failed", "budget_exhausted")


def output_console() -> Console:
    """stdout for people: rich honours NO_COLOR, FORCE_COLOR and TTY detection."""
    from rich.console import Console

    console = Console(soft_wrap=True)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # piped or captured: no terminal to fit, so do not squeeze text into 80 columns
        console = Console(soft_wrap=True, width=120)
    return console


def print_uncut(table: Table, console: Console) -> None:
    """Print ``table`` with every cell whole.

    Into a pipe or file the table gets its natural width (nothing to fit); on a terminal,
    text columns wrap, and if even wrapped the table cannot fit, the lines run longer than
    the terminal (which wraps them) rather than cut an id or a number to "0.0040…".
    """
    from rich.measure import Measurement

    natural = Measurement.get(console, console.options.update_width(10_000), table)
    needed = natural.maximum if not console.is_terminal else natural.minimum
    if needed <= console.width:
        console.print(table)
        return
    width = console.width
    console.width = needed
    try:
        console.print(table)
    finally:
        console.width = width


def record_text(draw: Callable[[Console], None], *, width: int = 160) -> str:
    """What ``draw`` prints, as plain text without colour (for ``--output FILE``)."""
    from rich.console import Console

    console = Console(record=True, width=width, file=io.StringIO(), color_system=None)
    draw(console)
    return console.export_text()


def print_run_summary(result: RunResult, console: Console) -> None:
    """A finished run: one row per node, the total cost, errors, outputs and where the
    full report is."""
    from rich.table import Table

    table = Table(title=f"run {result.run_id}: {result.status}")
    for col in ("node", "status", "tier", "model", "attempts", "tokens", "cost $", "secs"):
        table.add_column(
            col,
            justify="right" if col in ("attempts", "tokens", "cost $", "secs") else "left",
            overflow="fold",  # a model name cut to "local-sm…" says nothing
        )
    for r in result.nodes.values():
        table.add_row(
            r.node_id,
            r.status,
            str(r.tier or "-"),
            r.model or "-",
            str(r.tries),
            str(r.usage.total),
            f"{r.cost:.6f}",
            f"{r.latency_s:.2f}",
        )
    print_uncut(table, console)
    console.print(f"total cost: ${result.cost:.6f}")
    deadline = DeadlineOutcome.of(result)
    if deadline is not None:
        console.print(deadline.describe(), markup=False, highlight=False)
    for r in result.nodes.values():
        if r.error:
            console.print(f"{r.node_id}: {redact_text(r.error)}", markup=False, style="red")
    if result.error:
        console.print(f"run: {result.error}", markup=False)
    if result.outputs:
        console.print("outputs:")
        for k, v in result.outputs.items():
            console.print(f"  {k}: {v}", markup=False)
    console.print(
        f"full report: dagtier report {result.run_id} --format html -o report.html",
        markup=False,
        highlight=False,
    )


def print_runs(
    runs: Sequence[tuple[RunRecord, dict[str, int]]], where: str, console: Console
) -> None:
    """Recent runs (each with its node counts by status), and how to resume one."""
    if not runs:
        console.print(f"no runs in {where}", markup=False, highlight=False)
        return
    from rich.table import Table

    table = Table(title=f"runs in {where}")
    for col in ("run id", "workflow", "status", "started", "nodes ok/total", "cost $"):
        table.add_column(
            col,
            justify="right" if col in ("cost $", "nodes ok/total") else "left",
            no_wrap=col in ("run id", "cost $"),  # copied into --resume and spreadsheets
            overflow="fold",  # a narrow column wraps its text rather than cutting it
        )
    for r, counts in runs:
        ok = sum(n for s, n in counts.items() if s in _OK_STATUSES)
        total = len(r.node_fingerprints) or sum(counts.values())
        table.add_row(
            r.run_id,
            r.workflow,
            r.status,
            datetime.fromtimestamp(r.started_at).strftime("%Y-%m-%d %H:%M:%S"),
            f"{ok}/{total}",
            f"{r.cost:.6f}",
        )
    print_uncut(table, console)
    if any(r.status in _RESUMABLE for r, _ in runs):
        console.print("resume one with: dagtier run WORKFLOW.yaml --resume RUN_ID", markup=False)


def _price(v: float | None) -> str:
    return "-" if v is None else f"{v:g}"


def print_models(cat: Catalog, console: Console) -> None:
    """The catalog by tier, with whether each model is usable now and why not, then the
    tiers that have no usable model."""
    from rich.table import Table

    from ..providers.registry import ProviderRegistry

    table = Table(title=f"model catalog ({cat.source}; prices checked {cat.prices_checked or '?'})")
    for col in ("tier", "name", "provider", "model id", "$/M in", "$/M out", "$/M cache r/w",
                "context", "usable"):  # fmt: skip
        table.add_column(col)
    rows: list[tuple[str, str]] = [(str(t), n) for t in (1, 2, 3) for n in cat.tiers[t]]
    listed = {n for _, n in rows}
    rows += [("-", n) for n in cat.models if n not in listed]
    for tier, name in rows:
        m = cat.models[name]
        ok, why = ProviderRegistry.availability(m)
        p = m.price
        table.add_row(
            tier,
            name,
            m.provider,
            m.model,
            _price(p.input),
            _price(p.output),
            f"{_price(p.cache_read)}/{_price(p.cache_write)}",
            f"{m.context_window:,}",
            ("yes: " if ok else "no: ") + why,
        )
    print_uncut(table, console)
    for t in (1, 2, 3):
        usable, local = ProviderRegistry.usable(cat, t)
        if local:
            line = f"tier {t}: no usable model; runs on the local model '{cat.local_fallback}'"
        elif not usable:
            line = f"tier {t}: no usable model (set an API key, or install the local model)"
        else:
            continue
        console.print(line, markup=False, highlight=False)
