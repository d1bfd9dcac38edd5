"""``dagtier eval``: each node on each tier over the user's cases, scored; the table, JSON,
HTML or outcomes file, and the statistics seeded."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from .. import _exit
from ._app import app, command_line, err, guarded, with_store, write_output
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
    """Score each node on each tier over your cases: the tier each node needs.

    Run it before routing anything: each case runs once as a reference, then each selected
    node answers on each tier from the same upstream outputs."""
    import shlex

    from .._callables import import_callable
    from .._interrupt import CtrlC
    from ..batch import ItemResult
    from ..catalog import load_catalog
    from ..eval import (
        EvalResult,
        Unit,
        build_eval_report,
        evaluate,
        print_eval,
        render_eval_html,
        render_eval_json,
        write_outcomes,
    )
    from ..eval import seed_stats as seed_into
    from ..eval._cases import parse_tiers
    from ..eval._runner import new_eval_id
    from ..report.batch import BatchLiveView, BatchProgress, progress_console
    from ..report.live import live_enabled
    from ..report.tables import output_console
    from ..spec import load_workflow
    from ..store import shown_location

    wf = guarded(lambda: load_workflow(workflow))
    cat = guarded(lambda: load_catalog(models))
    tier_list = guarded(lambda: parse_tiers(tiers))
    node_list = [n.strip() for n in nodes.split(",") if n.strip()] if nodes else None
    score = guarded(lambda: import_callable(scorer, what="scorer")) if scorer else None
    eid = resume or new_eval_id()
    again = command_line(
        ["eval", str(workflow), "--cases", str(cases)],
        ("--tiers", tiers, "1,2,3"),
        ("--nodes", nodes, None),
        ("--repeat", repeat, 1),
        ("--judge", judge, None),
        ("--scorer", scorer, None),
        ("--budget", budget, None),
        ("--store", store and shown_location(store), None),
        ("--models", models, None),
    )
    resume_cmd = shlex.join([*again, "--resume", eid])
    console = progress_console()
    progress = BatchProgress(0)
    seeded: list[int] = []

    def unit_done(u: Unit) -> None:
        status = "succeeded" if u.status in ("succeeded", "unverified") else u.status
        progress.item(
            ItemResult(
                u.case,
                u.line,
                u.run_id,
                status,
                cost=u.cost,
                tiers={u.node_id: u.tier},
                resumed=u.resumed,
            )
        )

    async def go(run_store: Any) -> EvalResult:
        result = await evaluate(
            wf,
            cases,
            tiers=tier_list,
            nodes=node_list,
            repeat=repeat,
            judge=judge,
            scorer=score,
            store=run_store,
            catalog=cat,
            concurrency=concurrency,
            budget=budget,
            eval_id=eid,
            resume=resume,
            subscribers=[progress],
            on_unit=unit_done,
            on_start=lambda total: setattr(progress, "total", total),
        )
        if seed_stats and result.status == "finished":
            seeded.append(await seed_into(result, run_store))
        return result

    ctrl_c = CtrlC()
    view = BatchLiveView(console, progress) if live_enabled(console, quiet=quiet) else None
    done = guarded(lambda: ctrl_c.run(lambda: with_store(store, go), view=view), debug=debug)
    if ctrl_c.pressed or done is None:
        err(
            f"interrupted: eval {eid} stopped with {progress.done} of {progress.total} answers "
            f"scored; every finished run is kept.\nresume it with:\n  {resume_cmd}"
        )
        raise typer.Exit(_exit.INTERRUPTED)
    result = done
    report = build_eval_report(result)
    if json_out:
        typer.echo(render_eval_json(report), nl=False)
    else:
        print_eval(report, output_console())
    if html is not None:
        write_output(render_eval_html(report), html)
    if out is not None:
        n, queries = guarded(lambda: write_outcomes(result, out))
        err(f"wrote {n} outcome rows to {out} (query texts: {queries})")
    if seeded:
        before = sum(u.scored for u in result.units) - seeded[0]
        err(
            f"seeded the statistics with {seeded[0]} answers (marked TASK#eval)"
            + (f"; {before} seeded before were not counted again" if before else "")
        )
    elif seed_stats:
        err("statistics not seeded: the eval did not finish")
    if result.status != "finished":
        err(f"eval {result.status}; resume it with:\n  {resume_cmd}")
        raise typer.Exit(_exit.RUN_FAILED)
