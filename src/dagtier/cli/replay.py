"""``dagtier replay`` and ``dagtier export-outcomes``: routing policies over recorded outcomes."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Annotated, Any

import typer

from .._exceptions import SpecError, SpecIssue
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
    """Replay real models' recorded outcomes under routing policies: quality and cost.

    The real executor and policies run on recorded answers and costs, so policies can be
    compared (or A/B tested with --compare) without calling a model."""
    if tiers.count(",") < 1:
        usage("--tiers takes 2 or 3 comma-separated model names, cheapest first")
    guarded(
        lambda: _replay(
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
    """Write your run history as per-query outcomes, the format `dagtier replay` reads.

    Gzipped CSV on stdout: replay other policies on your own traffic before switching."""
    from ..replay._export import export_store_outcomes

    if not plain and sys.stdout.isatty():
        usage("refusing to write gzip to a terminal; redirect: > outcomes.csv.gz")
    n = guarded(lambda: export_store_outcomes(store, sys.stdout.buffer, compress=not plain))
    sys.stdout.flush()
    err(f"exported {n} outcome rows")


def _split(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


def _replay(
    file: Path,
    *,
    tiers: str,
    policies: str | None,
    far: float,
    frr: float,
    judge_cost: float | None,
    seed: int,
    limit: int | None,
    json_out: bool,
    canary: float | None = None,
    out: IO[str] | None = None,
    queries: Path | None = None,
    train: float | None = None,
    compare: tuple[str, str] | None = None,
) -> None:
    """Load, replay with a progress bar on a terminal, print the table or JSON.

    Raises:
        SpecError: a bad file, model name, policy or rate.
    """
    import anyio

    from .._logging import configure_logging
    from ..replay._data import load_outcomes, load_queries
    from ..replay._render import report_json, report_table, summary_lines
    from ..replay._runner import default_policies, replay

    # at INFO every replayed attempt would be logged: tens of thousands of lines
    configure_logging(level=logging.WARNING)
    for flag, value in (
        ("--judge-far", far),
        ("--judge-frr", frr),
        ("--canary", canary),
        ("--train", train),
    ):
        if value is not None and not 0.0 <= value <= 1.0:
            raise SpecError(
                source=flag,
                issues=[SpecIssue("", f"must lie in [0, 1], got {value:g}", "value-out-of-range")],
            )
    if judge_cost is not None and judge_cost < 0:
        raise SpecError(
            source="--judge-cost",
            issues=[SpecIssue("", f"must not be negative, got {judge_cost:g}", "value-too-small")],
        )
    if limit is not None and limit < 1:
        raise SpecError(
            source="--limit",
            issues=[SpecIssue("", f"must be at least 1, got {limit}", "value-too-small")],
        )
    ladder = _split(tiers)
    names: Sequence[str] = _split(policies) if policies else default_policies(len(ladder))
    if compare is not None:
        names = compare
    outcomes = load_outcomes(file, models=ladder)
    outcomes.check_models(ladder)
    texts = (
        load_queries(queries, outcomes, outcomes.complete_queries(ladder))
        if queries is not None
        else None
    )
    out = out or sys.stdout

    async def go() -> object:
        options: dict[str, Any] = dict(
            false_accept=far,
            false_reject=frr,
            judge_cost=judge_cost,
            seed=seed,
            limit=limit,
            canary=canary,
            progress=bar.advance if bar is not None else None,
            texts=texts,
            train=train,
        )
        if compare is not None:
            from ..replay._compare import compare_policies

            return await compare_policies(outcomes, ladder, *compare, **options)
        return await replay(outcomes, ladder, names, **options)

    bar = _Bar.maybe(len(names) * min(limit or 1 << 62, len(outcomes.complete_queries(ladder))))
    try:
        report = anyio.run(go)
    finally:
        if bar is not None:
            bar.close()
    from ..replay._runner import ReplayReport
    from ..report.abtest import ABReport, print_ab, render_ab_json

    if isinstance(report, ABReport):
        if json_out:
            out.write(render_ab_json(report))
            return
        from rich.console import Console

        print_ab(report, Console(file=out, soft_wrap=False, width=max(120, Console().width)))
        return
    assert isinstance(report, ReplayReport)
    if json_out:
        out.write(report_json(report) + "\n")
        return
    from rich.console import Console

    console = Console(file=out, soft_wrap=False, width=max(160, Console().width))
    console.print(report_table(report))
    for line in summary_lines(report):
        console.print(line, markup=False, highlight=False)


class _Bar:
    """A rich progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, total: int) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("replaying"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            transient=True,
        )
        self._task = self._progress.add_task("replay", total=total)
        self._progress.start()

    @classmethod
    def maybe(cls, total: int) -> _Bar | None:
        return cls(total) if sys.stderr.isatty() else None

    def advance(self, n: int) -> None:
        self._progress.advance(self._task, n)

    def close(self) -> None:
        self._progress.stop()
