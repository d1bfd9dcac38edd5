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
StoreOpt = Annotated[
    Path | None,
    typer.Option(
        "--store",
        help="The run store (SQLite file; env: DAGTIER_STORE; default: dagtier.db in the "
        "user data directory).",
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
    cache_ttl: Annotated[
        str,
        typer.Option(
            "--cache-ttl", help="Max age of cached answers for cache: true nodes (30s, 12h, 7d)."
        ),
    ] = "7d",
) -> None:
    """Run a workflow end to end and print its outputs and per-node cost."""
    import anyio

    from . import executor
    from ._logging import configure_logging
    from .catalog import load_catalog
    from .spec import load_workflow

    configure_logging(level=logging.INFO if verbose else logging.WARNING)
    wf = guarded(lambda: load_workflow(workflow))
    from ._durable import parse_duration
    from .store import open_store

    values = guarded(lambda: _parse_inputs(input or [], inputs))
    given = values if values or not resume else None  # resume: the first run's inputs
    cat = guarded(lambda: load_catalog(models))
    if given is not None:
        guarded(lambda: executor.coerce_inputs(wf, given))
    ttl = guarded(lambda: parse_duration(cache_ttl, "--cache-ttl"))
    run_store = guarded(lambda: open_store(store))
    for t in (1, 2, 3):
        used = {n for n in wf.nodes if _may_use_tier(wf, n, t)}
        if used and cat.uses_local_fallback(t):
            _err(
                f"note: no API key for tier {t}: running it on the local model "
                f"'{cat.local_fallback}' (in-process, free, small)"
            )

    async def go() -> Any:
        try:
            return await executor.run(
                wf,
                given,
                catalog=cat,
                concurrency=concurrency,
                fail_fast=fail_fast or None,
                store=run_store,
                resume=resume,
                force=force,
                budget=budget,
                cache_ttl_s=ttl,
            )
        finally:
            await run_store.aclose()

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
    if result.error:
        console.print(f"run: {result.error}", markup=False)
    if result.outputs:
        console.print("outputs:")
        for k, v in result.outputs.items():
            console.print(f"  {k}: {v}", markup=False)


def main() -> None:
    """Entry point of the ``dagtier`` console script."""
    try:
        app()
    except KeyboardInterrupt:
        _err("interrupted")
        sys.exit(_exit.INTERRUPTED)


@app.command()
def runs(
    store: StoreOpt = None,
    limit: Annotated[int, typer.Option("--limit", "-n", help="How many runs, newest first.")] = 20,
    json_out: Annotated[bool, typer.Option("--json", help="Print the runs as JSON.")] = False,
) -> None:
    """List recent runs with their status (a crashed run shows as interrupted), to --resume."""
    import anyio

    from .store import open_store

    st = guarded(lambda: open_store(store))

    async def go() -> list[tuple[Any, dict[str, int]]]:
        try:
            records = await st.list_runs(limit)
            return [(r, await st.node_counts(r.run_id)) for r in records]
        finally:
            await st.aclose()

    rows = guarded(lambda: anyio.run(go))
    if json_out:
        from dataclasses import asdict

        out = [{**asdict(r), "nodes": counts} for r, counts in rows]
        for item in out:
            item.pop("node_fingerprints", None)
        typer.echo(json.dumps(out, indent=2, default=str))
        return
    if not rows:
        typer.echo(f"no runs in {st.path}")
        return
    from datetime import datetime

    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"runs in {st.path}")
    for col in ("run id", "workflow", "status", "started", "nodes ok/total", "cost $"):
        table.add_column(col, justify="right" if col in ("cost $", "nodes ok/total") else "left")
    for r, counts in rows:
        ok = sum(n for s, n in counts.items() if s in ("succeeded", "unverified", "cached"))
        total = len(r.node_fingerprints) or sum(counts.values())
        table.add_row(
            r.run_id,
            r.workflow,
            r.status,
            datetime.fromtimestamp(r.started_at).strftime("%Y-%m-%d %H:%M:%S"),
            f"{ok}/{total}",
            f"{r.cost:.6f}",
        )
    Console(soft_wrap=True).print(table)
    if any(r.status in ("interrupted", "failed", "budget_exhausted") for r, _ in rows):
        typer.echo("resume one with: dagtier run WORKFLOW.yaml --resume RUN_ID")


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
    import anyio

    from ._durable import parse_duration
    from .store import open_store

    age = guarded(lambda: parse_duration(older_than, "--older-than")) if older_than else None
    st = guarded(lambda: open_store(store))

    async def go() -> int:
        try:
            return await st.cache_clear(older_than_s=age)
        finally:
            await st.aclose()

    n = guarded(lambda: anyio.run(go))
    typer.echo(f"removed {n} cached answer{'s' if n != 1 else ''} from {st.path}")
