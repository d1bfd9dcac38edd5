"""``dagtier run``: one workflow run, live view, Ctrl-C and the resume command."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated, Any

import typer

from .. import _exit
from .._exceptions import AuthError
from ._app import (
    app,
    check_positive,
    command_line,
    err,
    guarded,
    setup_logging,
    with_store,
)
from ._options import (
    CacheTtlOpt,
    DeadlineOpt,
    DebugOpt,
    JsonOpt,
    ModelsOpt,
    QuietOpt,
    StoreOpt,
    VerboseOpt,
    WorkflowArg,
)


@app.command()
def run(
    workflow: WorkflowArg,
    input: Annotated[
        list[str] | None,
        typer.Option(
            "--input",
            "-i",
            help="An input as NAME=VALUE (VALUE @file reads a file). Repeatable.",
            show_default=False,
        ),
    ] = None,
    inputs: Annotated[
        Path | None,
        typer.Option("--inputs", help="A JSON file of input names to values.", show_default=False),
    ] = None,
    models: ModelsOpt = None,
    concurrency: Annotated[
        int | None,
        typer.Option(
            help="Most nodes calling models at once (default: the workflow's, else 16).",
            show_default=False,
        ),
    ] = None,
    fail_fast: Annotated[
        bool, typer.Option("--fail-fast", help="Stop everything at the first failed node.")
    ] = False,
    json_out: JsonOpt = False,
    verbose: VerboseOpt = False,
    debug: DebugOpt = False,
    store: StoreOpt = None,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            help="Continue run RUN_ID: finished nodes are kept, the rest run (see `dagtier runs`).",
            metavar="RUN_ID",
            show_default=False,
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="With --resume: rerun finished nodes the edited workflow changed."
        ),
    ] = False,
    budget: Annotated[
        float | None,
        typer.Option(
            "--budget",
            help="Most USD the run may spend (default: the workflow's budget:).",
            metavar="USD",
            show_default=False,
        ),
    ] = None,
    deadline: DeadlineOpt = None,
    cache_ttl: CacheTtlOpt = "7d",
    log_json: Annotated[
        Path | None,
        typer.Option(
            "--log-json",
            help="Also write every event (run, node, each model call) as JSON lines to FILE.",
            show_default=False,
        ),
    ] = None,
    quiet: QuietOpt = False,
) -> None:
    """Run a workflow end to end and print its outputs and per-node cost."""

    from .. import executor
    from ..catalog import load_catalog
    from ..spec import load_workflow

    check_positive("--budget", budget, "USD", "0.50")
    check_positive("--deadline", deadline, "seconds", "30")
    log_file = setup_logging(verbose=verbose, log_json=log_json)
    wf = guarded(lambda: load_workflow(workflow))
    from .._durable import parse_duration
    from ..providers.registry import ProviderRegistry

    values = guarded(lambda: executor.read_inputs(input or [], inputs))
    given = values if values or not resume else None  # resume: the first run's inputs
    cat = guarded(lambda: load_catalog(models))
    if given is not None:
        guarded(lambda: executor.coerce_inputs(wf, given))
    ttl = guarded(lambda: parse_duration(cache_ttl, "--cache-ttl"))
    local = [str(t) for t in ProviderRegistry.local_fallback_tiers(cat, wf)]
    if local:
        err(
            f"note: no API key for tier{'s' if len(local) > 1 else ''} {', '.join(local)}: running "
            f"{'it' if len(local) == 1 else 'them'} on the local model '{cat.local_fallback}' "
            "(in-process, free, small; see `dagtier models`)"
        )

    from ..report.live import LiveView, live_enabled
    from ..report.tables import output_console, print_run_summary
    from ..store import shown_location
    from ..telemetry import LogSubscriber

    console = output_console()
    live = LiveView(console) if live_enabled(console, quiet=quiet or json_out or verbose) else None
    subscribers: list[Any] = [LogSubscriber()] + ([live] if live is not None else [])

    # named here, so that an interrupted run can be named in the resume command
    run_id = resume or executor.new_run_id()
    again = command_line(
        ["run", str(workflow)],
        ("--resume", run_id, None),
        ("--store", store and shown_location(store), None),
        ("--models", models, None),
    )

    async def go(run_store: Any) -> Any:
        return await executor.run(
            wf,
            given,
            run_id=run_id,
            catalog=cat,
            concurrency=concurrency,
            fail_fast=fail_fast or None,
            store=run_store,
            resume=resume,
            force=force,
            budget=budget,
            deadline_s=deadline,
            cache_ttl_s=ttl,
            subscribers=subscribers,
        )

    from .._interrupt import CtrlC

    ctrl_c = CtrlC()

    try:
        result = guarded(lambda: ctrl_c.run(lambda: with_store(store, go), view=live), debug=debug)
    finally:
        if log_file is not None:
            log_file.close()
    if ctrl_c.pressed or result is None:
        err(
            f"interrupted: run {run_id} stopped; its finished nodes are kept\n"
            f"hint: resume it with: {shlex.join(again)}"
        )
        raise typer.Exit(_exit.INTERRUPTED)
    if json_out:
        from .._logging import redact_value

        typer.echo(json.dumps(redact_value(result.to_dict()), indent=2, default=str))
    else:
        print_run_summary(result, console)
    if not result.ok:
        raise typer.Exit(_failed_run_exit(result, cat, shlex.join(again)))


def _failed_run_exit(result: Any, cat: Any, resume_command: str) -> int:
    """1 for a failed run, but 3 when a provider refused a key: rerunning will not help,
    fixing the key will (the README's exit codes)."""
    refused = [r for r in result.nodes.values() if r.error_code == AuthError.code]
    if not refused:
        return _exit.RUN_FAILED
    keys = [
        f"${k}"
        for k in cat.key_variables((a.provider, a.model) for r in refused for a in r.attempts)
    ]
    err(
        f"error[{AuthError.code}]: the provider refused the API key (node "
        f"{', '.join(repr(r.node_id) for r in refused)})\n"
        "note: your workflow is fine; the key is not.\n"
        f"hint: check {' and '.join(keys) if keys else 'the API key'}, then resume: "
        f"{resume_command}"
    )
    return _exit.CONFIG
