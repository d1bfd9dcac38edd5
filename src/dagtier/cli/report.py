"""``dagtier report`` and ``dagtier estimate``: cost after a run, and before one."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ._app import (
    app,
    guarded,
    in_store,
    usage,
    write_output,
    write_table_or_json,
)
from ._options import JsonOpt, ModelsOpt, StoreOpt, WorkflowArg


@app.command()
def report(
    run_id: Annotated[
        str | None, typer.Argument(help="The run to report on.", show_default=False)
    ] = None,
    last: Annotated[bool, typer.Option("--last", help="Report on the latest run.")] = False,
    compare: Annotated[
        tuple[str, str] | None,
        typer.Option(
            "--compare",
            help="Compare two runs node by node (cost and tier changes), or two batches "
            "(A/B: quality and cost per item, bootstrap intervals, significance).",
            metavar="RUN_A RUN_B",
            show_default=False,
        ),
    ] = None,
    format: Annotated[
        str, typer.Option("--format", "-f", help="table, json, csv or html.")
    ] = "table",
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to FILE instead of stdout.", show_default=False),
    ] = None,
    store: StoreOpt = None,
    models: ModelsOpt = None,
    workflow: Annotated[
        Path | None,
        typer.Option(
            "--workflow",
            help="The workflow file, when the run's recorded path moved (for policies, "
            "static tiers and the critical path).",
            show_default=False,
        ),
    ] = None,
    batch: Annotated[
        str | None,
        typer.Option(
            "--batch",
            help="Report on batch BATCH_ID: cost per item over the batch, tier mix over "
            "time, where escalations happened.",
            metavar="BATCH_ID",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Per-node cost report of a run: attempts, tiers, escalations, cache hits, savings."""
    if batch is not None:
        _batch_report(batch, format, output, store)
        return

    from ..catalog import load_catalog
    from ..report import load_comparison, load_run_report
    from ..report.render import FORMATS

    if format not in FORMATS:
        usage(f"--format must be one of {', '.join(FORMATS)}, got '{format}'")
    chosen = sum(x for x in (run_id is not None, last, compare is not None))
    if chosen != 1:
        usage(
            "name exactly one run: RUN_ID, --last, or --compare RUN_A RUN_B\n"
            "hint: dagtier report --last"
        )
    cat = guarded(lambda: load_catalog(models))

    async def go(s: Any) -> Any:
        if compare is not None:
            return await load_comparison(s, *compare, catalog=cat, workflow=workflow)
        return await load_run_report(s, run_id, catalog=cat, workflow=workflow)

    result = in_store(store, go)
    _render_report(result, format, output)


def _render_report(result: Any, format: str, output: Path | None) -> None:
    from ..report import Comparison
    from ..report.abtest import ABReport, print_ab, render_ab_json
    from ..report.render import print_report, render_to_text
    from ..report.tables import output_console

    if isinstance(result, ABReport):
        if format not in ("table", "json"):
            usage("--compare of two batches renders as table or json")
        write_table_or_json(
            format, output, lambda: render_ab_json(result), lambda c: print_ab(result, c)
        )
        return
    if isinstance(result, Comparison) and format == "html":
        usage("--compare renders as table, json or csv")
    if format == "table" and output is None:
        print_report(result, output_console())
    else:
        write_output(render_to_text(result, format), output)  # type: ignore[arg-type]


@app.command()
def estimate(
    workflow: WorkflowArg,
    input: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            "-i",
            help="An input as NAME=VALUE, to size the prompts (VALUE @file reads a file).",
            show_default=False,
        ),
    ] = None,
    models: ModelsOpt = None,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            metavar="PATH|URL",
            help="Use recorded costs and pass rates from this store where it has them.",
            show_default=False,
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Forecast a workflow's cost per node and per policy, before running it (dry run)."""
    from ..catalog import load_catalog
    from ..executor import read_inputs
    from ..report.estimate import estimate_workflow, print_estimate, recorded_stats
    from ..report.tables import output_console
    from ..spec import load_workflow

    wf = guarded(lambda: load_workflow(workflow))
    values = guarded(lambda: read_inputs(input or []))
    cat = guarded(lambda: load_catalog(models))
    stats = in_store(store, lambda s: recorded_stats(s, wf)) if store is not None else {}
    est = estimate_workflow(wf, cat, inputs=values, stats=stats)
    if json_out:
        typer.echo(json.dumps(est.to_dict(), indent=2))
    else:
        print_estimate(est, output_console())


def _batch_report(batch_id: str, format: str, output: Path | None, store: str | None) -> None:
    from ..report.batch import load_batch_report, print_batch_report, render_batch_json

    if format not in ("table", "json"):
        usage(f"--batch renders as table or json, got '{format}'")

    result = in_store(store, lambda s: load_batch_report(s, batch_id))
    write_table_or_json(
        format,
        output,
        lambda: render_batch_json(result),
        lambda c: print_batch_report(result, c),
    )
