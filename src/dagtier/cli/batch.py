"""``dagtier batch``: one workflow over every item of a file, each item a durable run."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import _exit
from .._exceptions import StoreError
from ._app import (
    app,
    check_positive,
    command_line,
    err,
    guarded,
    setup_logging,
    usage,
    with_store,
)
from ._options import (
    CacheTtlOpt,
    DeadlineOpt,
    DebugOpt,
    ModelsOpt,
    QuietOpt,
    StoreOpt,
    VerboseOpt,
    WorkflowArg,
)


@app.command()
def batch(
    workflow: WorkflowArg,
    inputs: Annotated[
        Path,
        typer.Option(
            "--inputs",
            help="The items: a .jsonl file (one JSON object of inputs per line) or a .csv "
            "file (a header row of input names).",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Write the results (JSON lines) to FILE instead of stdout.",
            show_default=False,
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option(min=1, help="Runs in flight at once (each under the workflow's own).")
    ] = 16,
    budget: Annotated[
        float | None,
        typer.Option(
            "--budget",
            help="Most USD the whole batch may spend (with --ray: shared by the actors "
            "through the store).",
            metavar="USD",
            show_default=False,
        ),
    ] = None,
    deadline: DeadlineOpt = None,
    on_bad_item: Annotated[
        str,
        typer.Option(
            "--on-bad-item",
            help="A malformed line: stop (refuse the batch, naming every such line) or skip "
            "(report it as invalid and run the rest).",
        ),
    ] = "stop",
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            help="Finish batch BATCH_ID: finished items are not run again, interrupted runs "
            "resume node by node.",
            metavar="BATCH_ID",
            show_default=False,
        ),
    ] = None,
    store: StoreOpt = None,
    models: ModelsOpt = None,
    cache_ttl: CacheTtlOpt = "7d",
    verbose: VerboseOpt = False,
    quiet: QuietOpt = False,
    ray: Annotated[
        bool,
        typer.Option(
            "--ray",
            help="Run on a pool of Ray actors claiming items from the store (a local Ray, "
            "or --ray-address's cluster; pip install 'dagtier[ray]').",
        ),
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(
            "--ray-address",
            help="With --ray: the Ray cluster to join (ray.init(address=...)).",
            metavar="ADDRESS",
            show_default=False,
        ),
    ] = None,
    actors: Annotated[
        int, typer.Option("--actors", min=1, help="With --ray: actor processes in the pool.")
    ] = 2,
    lease: Annotated[
        float,
        typer.Option(
            "--lease",
            min=1.0,
            help="With --ray: seconds an actor's claim on an item holds without renewal "
            "(how soon a dead actor's items are claimed again).",
        ),
    ] = 30.0,
    debug: DebugOpt = False,
) -> None:
    """Run a workflow once per item of a JSONL or CSV file, every item a durable run."""

    from .._durable import parse_duration
    from .._interrupt import CtrlC
    from ..batch import new_batch_id, run_batch
    from ..catalog import load_catalog
    from ..report.batch import (
        BatchLiveView,
        BatchProgress,
        print_batch_summary,
        progress_console,
    )
    from ..report.live import live_enabled
    from ..spec import load_workflow
    from ..store import shown_location

    if on_bad_item not in ("stop", "skip"):
        usage(f"--on-bad-item must be stop or skip, got '{on_bad_item}'")
    if out is not None and not out.parent.is_dir():
        usage(f"--out {out}: the directory {out.parent} does not exist")
    setup_logging(verbose=verbose, log_json=None)
    check_positive("--deadline", deadline, "seconds", "30")
    if ray and deadline is not None:
        usage(
            "--deadline is not offered with --ray\n"
            "hint: set deadline_s: in the workflow; every actor's runs keep it"
        )
    wf = guarded(lambda: load_workflow(workflow))
    cat = guarded(lambda: load_catalog(models))
    ttl = guarded(lambda: parse_duration(cache_ttl, "--cache-ttl"))
    bid = resume or new_batch_id()
    again = command_line(
        ["batch", str(workflow), "--inputs", str(inputs)],
        ("--out", out, None),
        ("--store", store and shown_location(store), None),
        ("--models", models, None),
        ("--concurrency", concurrency, 16),
        ("--budget", budget, None),
        ("--deadline", deadline, None),
        ("--on-bad-item", on_bad_item, "stop"),
        ("--cache-ttl", cache_ttl, "7d"),
        ("--ray-address", ray_address, None),
        ("--actors", actors, 2),
        ("--lease", lease, 30.0),
    )
    if ray:
        again.append("--ray")
    resume_cmd = shlex.join([*again, "--resume", bid])

    console = progress_console()
    progress = BatchProgress(0)
    show = live_enabled(console, quiet=quiet or verbose)
    sinks: list[Any] = []

    def emit(r: Any) -> None:
        # opened at the first result: a batch refused (bad lines, already running) leaves
        # the results of an earlier session alone. A resume rewrites it whole.
        if not sinks:
            sinks.append(out.open("w", encoding="utf-8") if out is not None else sys.stdout)
        progress.item(r)
        sinks[0].write(r.to_json() + "\n")
        sinks[0].flush()

    store_opened = False

    async def go(run_store: Any) -> Any:
        nonlocal store_opened
        store_opened = True  # from here a store failure leaves a batch to resume
        if ray:
            from ..batch_ray import run_batch_on_ray
            from ..store import default_store_path

            # the actors open the store themselves, by its path
            return await run_batch_on_ray(
                workflow,
                inputs,
                store=store or default_store_path(),
                models=models,
                address=ray_address,
                budget=budget,
                actors=actors,
                concurrency=concurrency,
                on_bad_item=on_bad_item,
                resume=resume,
                batch_id=bid,
                lease_s=lease,
                cache_ttl_s=ttl,
                on_result=emit,
            )
        return await run_batch(
            wf,
            inputs,
            store=run_store,
            catalog=cat,
            concurrency=concurrency,
            budget=budget,
            deadline_s=deadline,
            on_bad_item=on_bad_item,  # type: ignore[arg-type]
            resume=resume,
            batch_id=bid,
            subscribers=[progress],
            on_result=emit,
            cache_ttl_s=ttl,
            on_start=lambda total: setattr(progress, "total", total),
        )

    # the first Ctrl-C cancels the batch and its runs record what they finished; later ones
    # are ignored, so that this bookkeeping is never torn down halfway (as with `run`)
    ctrl_c = CtrlC()
    view = BatchLiveView(console, progress) if show else None

    def run_it() -> Any:
        try:
            return ctrl_c.run(lambda: with_store(store, go), view=view)
        except StoreError as exc:
            if not store_opened:
                raise
            # the store's own hint can only say "--resume": name the command, as Ctrl-C does
            raise StoreError(f"{exc}\nresume it with:\n  {resume_cmd}") from exc

    try:
        summary = guarded(run_it, debug=debug)
    finally:
        if out is not None and sinks:
            sinks[0].close()
    if ctrl_c.pressed or summary is None:
        err(
            f"interrupted: batch {bid} stopped with {progress.done} of {progress.total} items "
            f"done; every committed node is kept.\nresume it with:\n  {resume_cmd}"
        )
        raise typer.Exit(_exit.INTERRUPTED)
    print_batch_summary(summary, console)
    if summary.status == "budget_exhausted":
        cut = again.index("--budget") if "--budget" in again else len(again)
        larger = [*again[:cut], *again[cut + 2 :], "--budget", "USD", "--resume", bid]
        err(f"hint: resume it with a larger budget:\n  {shlex.join(larger)}")
    elif summary.status != "finished":
        err(f"resume it with:\n  {resume_cmd}")
    console.print(
        f"batch report: dagtier report --batch {bid}"
        + (f" --store {shlex.quote(shown_location(store))}" if store else ""),
        markup=False,
        highlight=False,
    )
    if summary.status != "finished" or summary.succeeded != summary.total:
        raise typer.Exit(_exit.RUN_FAILED)
