"""``dagtier runs`` and ``dagtier cache``: the store's runs and cached answers."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ._app import (
    app,
    guarded,
    in_store,
)
from ._options import JsonOpt, StoreOpt


@app.command()
def runs(
    store: StoreOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many runs, newest first.")] = 20,
    json_out: JsonOpt = False,
) -> None:
    """List recent runs with their status (a crashed run shows as interrupted), to --resume."""

    async def go(st: Any) -> tuple[str, list[tuple[Any, dict[str, int]]]]:
        records = await st.list_runs(limit)
        return str(st.path), [(r, await st.node_counts(r.run_id)) for r in records]

    where, rows = in_store(store, go)
    if json_out:
        from ..report.render import render_runs_json

        typer.echo(render_runs_json(rows), nl=False)
        return
    from ..report.tables import output_console, print_runs

    print_runs(rows, where, output_console())


cache_app = typer.Typer(help="The result cache of nodes with cache: true.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


@cache_app.command("clear")
def cache_clear(
    store: StoreOpt = None,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than", help="Only entries older than this (30s, 12h, 7d).", show_default=False
        ),
    ] = None,
) -> None:
    """Delete cached answers (all, or only old ones)."""
    from .._durable import parse_duration

    age = guarded(lambda: parse_duration(older_than, "--older-than")) if older_than else None

    async def go(st: Any) -> tuple[str, int]:
        return str(st.path), await st.cache_clear(older_than_s=age)

    where, n = in_store(store, go)
    typer.echo(f"removed {n} cached answer{'s' if n != 1 else ''} from {where}")
