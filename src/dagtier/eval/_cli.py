"""The body of ``dagtier eval`` (the cli package stays thin): run with the batch progress bar,
print the table or JSON, write the HTML, the outcomes file, seed the statistics."""

from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

from .._exceptions import SpecError, SpecIssue


@dataclass(frozen=True, slots=True)
class EvalArgs:
    workflow: Path
    cases: Path
    tiers: str = "1,2,3"
    nodes: str | None = None
    repeat: int = 1
    judge: int | None = None
    scorer: str | None = None
    concurrency: int = 8
    budget: float | None = None
    resume: str | None = None
    store: str | None = None
    models: Path | None = None
    json_out: bool = False
    html: Path | None = None
    out: Path | None = None
    seed_stats: bool = False
    quiet: bool = False


def parse_tiers(text: str) -> list[int]:
    """``1,2,3`` as tiers (range-checked later, with the others).

    Raises:
        SpecError: a part that is not a whole number.
    """
    out = []
    for i, part in enumerate(p.strip() for p in text.split(",")):
        if not part.isdigit():
            raise SpecError(
                source="--tiers",
                issues=[
                    SpecIssue(
                        f"[{i}]", f"'{part}' is not a tier", "bad-tiers", hint="--tiers 1,2,3"
                    )
                ],
            )
        out.append(int(part))
    return out


def resume_command(args: EvalArgs, eval_id: str) -> str:
    again = ["dagtier", "eval", str(args.workflow), "--cases", str(args.cases)]
    for flag, value, default in (
        ("--tiers", args.tiers, "1,2,3"),
        ("--nodes", args.nodes, None),
        ("--repeat", args.repeat, 1),
        ("--judge", args.judge, None),
        ("--scorer", args.scorer, None),
        ("--budget", args.budget, None),
        ("--store", args.store, None),
        ("--models", args.models, None),
    ):
        if value != default:
            again += [flag, str(value)]
    return shlex.join([*again, "--resume", eval_id])


def run_eval(args: EvalArgs) -> int:
    """Run, render, write; returns the exit code (130 when interrupted).

    Raises:
        DagtierError: bad cases, tiers, nodes or scorer; a resume of an unknown eval.
    """

    from .. import _exit
    from .._callables import import_callable
    from .._interrupt import CtrlC
    from ..batch import ItemResult
    from ..catalog import load_catalog
    from ..report.batch import BatchLiveView, BatchProgress, progress_console
    from ..report.live import live_enabled
    from ..report.tables import output_console
    from ..spec import load_workflow
    from ..store import open_store
    from ._report import (
        build_eval_report,
        print_eval,
        render_eval_html,
        render_eval_json,
        seed_stats,
        write_outcomes,
    )
    from ._runner import EvalResult, Unit, evaluate, new_eval_id

    wf = load_workflow(args.workflow)
    cat = load_catalog(args.models)
    tiers = parse_tiers(args.tiers)
    nodes = [n.strip() for n in args.nodes.split(",") if n.strip()] if args.nodes else None
    scorer = import_callable(args.scorer, what="scorer") if args.scorer else None
    eid = args.resume or new_eval_id()
    console = progress_console()
    progress = BatchProgress(0)
    show = live_enabled(console, quiet=args.quiet)
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

    async def go() -> EvalResult:
        store = open_store(args.store)
        try:
            result = await evaluate(
                wf,
                args.cases,
                tiers=tiers,
                nodes=nodes,
                repeat=args.repeat,
                judge=args.judge,
                scorer=scorer,
                store=store,
                catalog=cat,
                concurrency=args.concurrency,
                budget=args.budget,
                eval_id=eid,
                resume=args.resume,
                subscribers=[progress],
                on_unit=unit_done,
                on_start=lambda total: setattr(progress, "total", total),
            )
            if args.seed_stats and result.status == "finished":
                seeded.append(await seed_stats(result, store))
            return result
        finally:
            await store.aclose()

    ctrl_c = CtrlC()

    done = ctrl_c.run(go, view=BatchLiveView(console, progress) if show else None)
    if done is None:
        print(
            f"interrupted: eval {eid} stopped with {progress.done} of {progress.total} answers "
            f"scored; every finished run is kept.\nresume it with:\n  {resume_command(args, eid)}",
            file=sys.stderr,
        )
        return _exit.INTERRUPTED
    result = done
    report = build_eval_report(result)
    if args.json_out:
        sys.stdout.write(render_eval_json(report))
    else:
        print_eval(report, output_console())
    notes: list[str] = []
    if args.html is not None:
        args.html.write_text(render_eval_html(report), encoding="utf-8")
        notes.append(f"wrote {args.html}")
    if args.out is not None:
        n, queries = write_outcomes(result, args.out)
        notes.append(f"wrote {n} outcome rows to {args.out} (query texts: {queries})")
    if seeded:
        again = sum(u.scored for u in result.units) - seeded[0]
        notes.append(
            f"seeded the statistics with {seeded[0]} answers (marked TASK#eval)"
            + (f"; {again} seeded before were not counted again" if again else "")
        )
    elif args.seed_stats:
        notes.append("statistics not seeded: the eval did not finish")
    if result.status != "finished":
        notes.append(f"eval {result.status}; resume it with:\n  {resume_command(args, eid)}")
    for line in notes:
        print(line, file=sys.stderr)
    return 0 if result.status == "finished" else _exit.RUN_FAILED
