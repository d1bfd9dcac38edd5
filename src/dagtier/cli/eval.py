"""``dagtier eval``: each node on each tier over the user's cases."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._app import (
    app,
    guarded,
)
from ._options import DebugOpt, JsonOpt, ModelsOpt, QuietOpt, StoreOpt, WorkflowArg, opt


@app.command("eval")
def eval_(
    workflow: WorkflowArg,
    cases: Annotated[Path, opt('JSONL: {"inputs": {...}, "expected": {...}} per line.', "--cases")],
    tiers: Annotated[str, typer.Option("--tiers", help="Tiers to try each node on.")] = "1,2,3",
    nodes: Annotated[str | None, opt("Nodes to evaluate (default: every prompt node).", "--nodes")] = None,
    repeat: Annotated[int, typer.Option("--repeat", min=1, help="Answers per case and tier.")] = 1,
    judge: Annotated[int | None, opt("Tier of a blind judge that scores the tiers' answers.", "--judge")] = None,
    scorer: Annotated[str | None, opt("module:function(node_id, output, expected) -> bool or 0..1.", "--scorer")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Runs in flight at once.")] = 8,
    budget: Annotated[float | None, opt("Most USD the whole eval may spend.", "--budget")] = None,
    resume: Annotated[str | None, opt("Finish eval EVAL_ID: nothing paid for runs again.", "--resume")] = None,
    store: StoreOpt = None,
    models: ModelsOpt = None,
    json_out: JsonOpt = False,
    html: Annotated[Path | None, opt("Write an HTML page with a chart per node.", "--html")] = None,
    out: Annotated[Path | None, opt("Write an outcomes file for `dagtier replay`.", "--out")] = None,
    seed_stats: Annotated[bool, typer.Option("--seed-stats", help="Load the evidence into the statistics adaptive reads.")] = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:  # fmt: skip
    """Run each node of a workflow on each tier over your cases and score the answers: the
    tier each node needs, before routing anything."""
    from ..eval._cli import EvalArgs, run_eval

    args = EvalArgs(workflow, cases, tiers, nodes, repeat, judge, scorer, concurrency, budget,
                    resume, store, models, json_out, html, out, seed_stats, quiet)  # fmt: skip
    code = guarded(lambda: run_eval(args), debug=debug)
    if code:
        raise typer.Exit(code)
