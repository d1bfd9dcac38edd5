"""``dagtier replay`` and ``dagtier export-outcomes``: routing policies over recorded outcomes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from ._app import (
    app,
    err,
    guarded,
    usage,
)
from ._options import DebugOpt, JsonOpt, StoreOpt


@app.command()
def replay(
    file: Annotated[
        Path, typer.Argument(help="Outcomes CSV(.gz): query_id, task, model, quality, cost_usd.")
    ],
    tiers: Annotated[
        str,
        typer.Option(
            "--tiers",
            help="The ladder: 2 or 3 model names from the file, cheapest first.",
            show_default=False,
        ),
    ],
    policy: Annotated[
        str | None,
        typer.Option(
            "--policy",
            help="Comma-separated: static:N, cascade[:START], adaptive[:TARGET], "
            "router+cascade[:P], router+adaptive[:P], router-only[:P] (need --queries; P: "
            "the router's threshold; router-only without P picks it on the training part) "
            "(default: static on each tier of the ladder, cascade, adaptive).",
            show_default=False,
        ),
    ] = None,
    queries: Annotated[
        Path | None,
        typer.Option(
            "--queries",
            help="CSV(.gz) of query_id, text: the prompts routers read "
            "(NAME.queries.csv.gz beside NAME.csv.gz).",
            show_default=False,
        ),
    ] = None,
    train: Annotated[
        float | None,
        typer.Option(
            "--train",
            help="Share of the stream that only trains, left out of every figure "
            "(default: 0.5 with router policies, else 0).",
            show_default=False,
        ),
    ] = None,
    judge_far: Annotated[
        float, typer.Option("--judge-far", help="The judge's false-accept rate.")
    ] = 0.1,
    judge_frr: Annotated[
        float, typer.Option("--judge-frr", help="The judge's false-reject rate.")
    ] = 0.1,
    judge_cost: Annotated[
        float | None,
        typer.Option(
            "--judge-cost",
            help="USD per judge call (default: tier 1's mean cost in the file).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Shuffle and judge errors.")] = 0,
    limit: Annotated[
        int | None,
        typer.Option("--limit", help="Replay only N queries.", show_default=False),
    ] = None,
    canary: Annotated[
        float | None,
        typer.Option(
            "--canary",
            help="Share of adaptive runs that also run the top tier, which measures the "
            "judge (default: the policy's 1%).",
            show_default=False,
        ),
    ] = None,
    compare: Annotated[
        tuple[str, str] | None,
        typer.Option(
            "--compare",
            help='A/B: two policy configurations, e.g. "cascade" "adaptive fix_worth=1.5"; '
            "the difference in quality and cost with paired bootstrap intervals.",
            metavar="A B",
            show_default=False,
        ),
    ] = None,
    json_out: JsonOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Replay recorded per-query outcomes of real models under routing policies, and compare
    their quality and cost (the real executor and policies; recorded answers and costs)."""
    from ..replay._cli import run_replay

    if tiers.count(",") < 1:
        usage("--tiers takes 2 or 3 comma-separated model names, cheapest first")
    guarded(
        lambda: run_replay(
            file,
            tiers=tiers,
            policies=policy,
            far=judge_far,
            frr=judge_frr,
            judge_cost=judge_cost,
            seed=seed,
            limit=limit,
            json_out=json_out,
            canary=canary,
            queries=queries,
            train=train,
            compare=compare,
        ),
        debug=debug,
    )


@app.command("export-outcomes")
def export_outcomes(
    store: StoreOpt = None,
    plain: Annotated[
        bool, typer.Option("--plain", help="Write plain CSV instead of gzip.")
    ] = False,
) -> None:
    """Write dagtier's own history as per-query outcomes (gzipped CSV on stdout), the format
    `dagtier replay` reads: replay other policies on your own traffic before switching."""
    from ..replay._cli import run_export

    if not plain and sys.stdout.isatty():
        usage("refusing to write gzip to a terminal; redirect: > outcomes.csv.gz")
    n = guarded(lambda: run_export(store, sys.stdout.buffer, compress=not plain))
    sys.stdout.flush()
    err(f"exported {n} outcome rows")
