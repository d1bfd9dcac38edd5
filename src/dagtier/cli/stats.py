"""``dagtier stats``: what the adaptive policy has learned, per task key and tier."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._app import (
    app,
    guarded,
    in_store,
)
from ._options import JsonOpt, StoreOpt

if TYPE_CHECKING:
    from ..policies.stats_view import KeyStats, RouterState


@app.command()
def stats(
    workflow: Annotated[
        str | None,
        typer.Option(
            "--workflow",
            "-w",
            help="Only this workflow: a YAML file (its nodes' task keys and adaptive "
            "settings) or a workflow name.",
            show_default=False,
        ),
    ] = None,
    task: Annotated[
        str | None, typer.Option("--task", "-t", help="Only this task key.", show_default=False)
    ] = None,
    store: StoreOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """What adaptive has learned, per task key and tier, and the tier it would pick now.

    Per task key and tier: observations (and how many an eval seeded), successes, estimated
    success rate, mean cost and latency, and the tier the adaptive policy would pick now. With a workflow file, each
    routed node's last routing decision too (a classifier's evidence and AUC). --json prints
    both as {"keys": [...], "routers": [...]}."""
    from ..policies.stats_view import collect, render, render_routers, router_states

    wf = None
    name = None
    if workflow is not None:
        if workflow.endswith((".yaml", ".yml")) or Path(workflow).is_file():
            from ..spec import load_workflow

            wf = guarded(lambda: load_workflow(Path(workflow)))
        else:
            name = workflow

    async def gather(st: Any) -> tuple[list[KeyStats], list[RouterState]]:
        keys = await collect(st, workflow=wf, workflow_name=name, task=task)
        return keys, (await router_states(st, wf) if wf is not None else [])

    keys, routers = in_store(store, gather)
    if json_out:
        data = {"keys": [k.to_dict() for k in keys], "routers": [r.to_dict() for r in routers]}
        typer.echo(json.dumps(data, indent=2))
        return
    from ..report.tables import output_console, print_uncut

    if not keys:
        typer.echo("no statistics yet" + (" for that filter" if workflow or task else ""))
    else:
        print_uncut(render(keys), output_console())
    if routers:
        print_uncut(render_routers(routers), output_console())
