"""The ``dagtier`` command. Thin: parses, calls the library, prints."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from . import _exit
from ._exceptions import CatalogError, DagtierError, ProviderError, SpecError, StoreError

app = typer.Typer(
    name="dagtier",
    help="Run LLM agent workflows declared as YAML DAGs, each node on the cheapest model tier "
    "that does the job.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,  # never print locals: they hold API keys
    add_completion=False,
)

T = TypeVar("T")

ModelsOpt = Annotated[
    Path | None,
    typer.Option(
        "--models",
        help="A model catalog YAML merged over the default one (env: DAGTIER_MODELS).",
        show_default=False,
    ),
]
WorkflowArg = Annotated[Path, typer.Argument(help="The workflow YAML file.", show_default=False)]


def _err(text: str) -> None:
    from ._logging import redact_text

    typer.echo(redact_text(text), err=True)


def guarded(fn: Callable[[], T], *, debug: bool = False) -> T:
    """Turn each dagtier error family into a diagnostic on stderr and an exit code."""
    try:
        return fn()
    except SpecError as exc:
        _err(f"error[{exc.code}]: {exc}")
        raise typer.Exit(_exit.USAGE) from None
    except CatalogError as exc:
        _err(f"error[{exc.code}]: {exc}" + (f"\nhint: {exc.hint}" if exc.hint else ""))
        raise typer.Exit(_exit.USAGE) from None
    except StoreError as exc:
        _err(f"error[{exc.code}]: {exc}")
        raise typer.Exit(_exit.CONFIG) from None
    except ProviderError as exc:
        _err(
            f"error[{exc.code}]: {exc}\nnote: the provider refused or failed; your workflow is fine."
        )
        raise typer.Exit(_exit.CONFIG) from None
    except DagtierError as exc:
        _err(f"error[{exc.code}]: {exc}")
        raise typer.Exit(_exit.RUN_FAILED) from None
    except KeyboardInterrupt:
        _err("interrupted: the run was cancelled; finished nodes are kept")
        raise typer.Exit(_exit.INTERRUPTED) from None
    except (typer.Exit, typer.Abort):
        raise
    except Exception as exc:
        if debug:
            raise
        _err(
            f"error[internal]: {type(exc).__name__}: {exc}\n"
            "note: this is a bug in dagtier, not in your workflow.\n"
            "hint: rerun with --debug for the traceback and report it."
        )
        raise typer.Exit(_exit.INTERNAL) from None


def _parse_inputs(pairs: list[str], file: Path | None) -> dict[str, Any]:
    from ._exceptions import SpecIssue

    values: dict[str, Any] = {}
    if file is not None:
        from ._yaml import read_text

        try:
            loaded = json.loads(read_text(file))
        except json.JSONDecodeError as exc:
            raise SpecError(
                source=str(file),
                issues=[
                    SpecIssue(
                        "",
                        f"not valid JSON: {exc.msg}",
                        "json-syntax",
                        exc.lineno,
                        exc.colno,
                        hint="--inputs takes a JSON object of input names to values",
                    )
                ],
            ) from None
        if not isinstance(loaded, dict):
            raise SpecError(
                source=str(file),
                issues=[
                    SpecIssue(
                        "", "expected a JSON object of input names to values", "not-an-object", 1, 1
                    )
                ],
            )
        values.update(loaded)
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SpecError(
                source="--input",
                issues=[
                    SpecIssue(
                        "",
                        f"'{pair}' is not NAME=VALUE",
                        "bad-input-flag",
                        hint="write --input text='some text'; use --inputs FILE.json for many",
                    )
                ],
            )
        if value.startswith("@"):
            from ._yaml import read_text

            value = read_text(value[1:])
        values[name] = value
    return values


@app.command()
def validate(workflow: WorkflowArg) -> None:
    """Check a workflow file and report every problem with its line and column."""
    from .spec import load_workflow

    wf = guarded(lambda: load_workflow(workflow))
    policies: dict[str, int] = {}
    for nid in wf.nodes:
        kind = wf.node_policy(nid).kind
        policies[kind] = policies.get(kind, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(policies.items()))
    typer.echo(f"ok: {workflow} is valid: workflow '{wf.name}', {len(wf.nodes)} nodes ({summary})")


@app.command()
def graph(
    workflow: WorkflowArg,
    format: Annotated[str, typer.Option("--format", "-f", help="mermaid or dot.")] = "mermaid",
) -> None:
    """Print the workflow's DAG as Mermaid or Graphviz dot, nodes labelled with policy and tier."""
    from .graph import to_dot, to_mermaid
    from .spec import load_workflow

    if format not in ("mermaid", "dot"):
        _err(f"error[usage]: --format must be mermaid or dot, got '{format}'")
        raise typer.Exit(_exit.USAGE)
    wf = guarded(lambda: load_workflow(workflow))
    typer.echo(to_mermaid(wf) if format == "mermaid" else to_dot(wf), nl=False)


@app.command()
def schema() -> None:
    """Print the JSON Schema of the workflow format (point your editor's YAML plugin at it)."""
    from .spec import json_schema_text

    typer.echo(json_schema_text())


@app.command()
def models(models: ModelsOpt = None) -> None:
    """List the catalog by tier and say which models are usable now, and why not."""
    from rich.console import Console
    from rich.table import Table

    from .catalog import load_catalog

    cat = guarded(lambda: load_catalog(models))
    table = Table(title=f"model catalog ({cat.source}; prices checked {cat.prices_checked or '?'})")
    for col in (
        "tier",
        "name",
        "provider",
        "model id",
        "$/M in",
        "$/M out",
        "$/M cache r/w",
        "context",
        "usable",
    ):
        table.add_column(col)
    rows: list[tuple[str, str]] = [(str(t), n) for t in (1, 2, 3) for n in cat.tiers[t]]
    listed = {n for _, n in rows}
    rows += [("-", n) for n in cat.models if n not in listed]
    for tier, name in rows:
        m = cat.models[name]
        ok, why = m.availability()
        p = m.price
        cache = f"{_fmt(p.cache_read)}/{_fmt(p.cache_write)}"
        table.add_row(
            tier,
            name,
            m.provider,
            m.model,
            _fmt(p.input),
            _fmt(p.output),
            cache,
            f"{m.context_window:,}",
            ("yes: " if ok else "no: ") + why,
        )
    Console(soft_wrap=False, width=200).print(table)
    for t in (1, 2, 3):
        if cat.uses_local_fallback(t):
            typer.echo(f"tier {t}: no usable model; runs on the local model '{cat.local_fallback}'")
        elif not cat.usable_models(t):
            typer.echo(f"tier {t}: no usable model (set an API key, or install the local model)")


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:g}"


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
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log every model call to stderr.")
    ] = False,
    debug: Annotated[
        bool, typer.Option("--debug", help="Show tracebacks of internal errors.")
    ] = False,
) -> None:
    """Run a workflow end to end and print its outputs and per-node cost."""
    import anyio

    from . import executor
    from ._logging import configure_logging
    from .catalog import load_catalog
    from .spec import load_workflow

    configure_logging(level=logging.INFO if verbose else logging.WARNING)
    wf = guarded(lambda: load_workflow(workflow))
    values = guarded(lambda: _parse_inputs(input or [], inputs))
    cat = guarded(lambda: load_catalog(models))
    guarded(lambda: executor.coerce_inputs(wf, values))
    for t in (1, 2, 3):
        used = {n for n in wf.nodes if _may_use_tier(wf, n, t)}
        if used and cat.uses_local_fallback(t):
            _err(
                f"note: no API key for tier {t}: running it on the local model "
                f"'{cat.local_fallback}' (in-process, free, small)"
            )

    async def go() -> Any:
        return await executor.run(
            wf, values, catalog=cat, concurrency=concurrency, fail_fast=fail_fast or None
        )

    result = guarded(lambda: anyio.run(go), debug=debug)
    if json_out:
        typer.echo(json.dumps(result.to_dict(), indent=2, default=str))
    else:
        _print_summary(result)
    if not result.ok:
        raise typer.Exit(_exit.RUN_FAILED)


def _may_use_tier(wf: Any, nid: str, tier: int) -> bool:
    p = wf.node_policy(nid)
    if p.kind == "static":
        return bool(p.tier == tier)
    lo, hi = (p.start, p.max) if p.kind == "cascade" else (p.min_tier, p.max_tier)
    return bool(lo <= tier <= hi)


def _print_summary(result: Any) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(stderr=False, soft_wrap=True)
    table = Table(title=f"run {result.run_id}: {result.status}")
    for col in ("node", "status", "tier", "model", "attempts", "tokens", "cost $", "secs"):
        table.add_column(
            col, justify="right" if col in ("attempts", "tokens", "cost $", "secs") else "left"
        )
    for r in result.nodes.values():
        table.add_row(
            r.node_id,
            r.status,
            str(r.tier or "-"),
            r.model or "-",
            str(len(r.attempts)),
            str(r.usage.total),
            f"{r.cost:.6f}",
            f"{r.latency_s:.2f}",
        )
    console.print(table)
    console.print(f"total cost: ${result.cost:.6f}")
    for r in result.nodes.values():
        if r.error:
            console.print(f"[red]{r.node_id}[/red]: {r.error}", markup=True)
    if result.outputs:
        console.print("outputs:")
        for k, v in result.outputs.items():
            console.print(f"  {k}: {v}", markup=False)


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
    store: Annotated[
        Path | None,
        typer.Option(
            "--store",
            help="The store (SQLite file; env: DAGTIER_STORE; default: dagtier.db in the "
            "user data directory).",
            show_default=False,
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the statistics as JSON.")] = False,
) -> None:
    """Per task key and tier: observations, successes, estimated success rate, mean cost and
    latency, and the tier the adaptive policy would pick now."""
    import anyio

    from .policies.stats_view import collect, render

    wf = None
    name = None
    if workflow is not None:
        if workflow.endswith((".yaml", ".yml")) or Path(workflow).is_file():
            from .spec import load_workflow

            wf = guarded(lambda: load_workflow(Path(workflow)))
        else:
            name = workflow

    async def go() -> Any:
        st = _open_store(store)
        try:
            return await collect(st, workflow=wf, workflow_name=name, task=task)
        finally:
            aclose = getattr(st, "aclose", None)
            if aclose is not None:
                await aclose()

    keys = guarded(lambda: anyio.run(go))
    if json_out:
        typer.echo(json.dumps([k.to_dict() for k in keys], indent=2))
        return
    if not keys:
        typer.echo("no statistics yet" + (" for that filter" if workflow or task else ""))
        return
    from rich.console import Console

    Console(soft_wrap=False, width=200).print(render(keys))


def _open_store(path: Path | None) -> Any:
    """The SQLite store at ``path`` (default: $DAGTIER_STORE, else the user data directory)."""
    from . import store as store_mod

    # open_store comes with the SQLite store (issue 5); looked up at run time so this
    # command does not depend on the order the branches are merged in
    opener = getattr(store_mod, "open_store", None)
    if opener is None:
        raise StoreError("this build of dagtier has no persistent store (open_store is missing)")
    return opener(path)


def main() -> None:
    """Entry point of the ``dagtier`` console script."""
    try:
        app()
    except KeyboardInterrupt:
        _err("interrupted")
        sys.exit(_exit.INTERRUPTED)
