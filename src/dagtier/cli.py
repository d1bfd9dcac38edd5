"""The ``dagtier`` command. Thin: parses, calls the library, prints."""

from __future__ import annotations

import json
import logging
import math
import shlex
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import typer

from . import _exit
from ._exceptions import (
    AuthError,
    CatalogError,
    DagtierError,
    ProviderError,
    RunClaimed,
    RunNotFound,
    SpecError,
    StoreError,
)

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
DebugOpt = Annotated[bool, typer.Option("--debug", help="Show tracebacks of internal errors.")]
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        help="The run store: a SQLite file or a postgresql://user:password@host/db URL "
        "(env: DAGTIER_STORE; default: dagtier.db in the user data directory).",
        show_default=False,
        metavar="PATH|URL",
    ),
]
WorkflowArg = Annotated[Path, typer.Argument(help="The workflow YAML file.", show_default=False)]
VerboseOpt = Annotated[
    bool, typer.Option("--verbose", "-v", help="Log every model call to stderr.")
]
CacheTtlOpt = Annotated[
    str,
    typer.Option(
        "--cache-ttl", help="Max age of cached answers for cache: true nodes (30s, 12h, 7d)."
    ),
]


def _err(text: str) -> None:
    from ._logging import redact_text

    typer.echo(redact_text(text), err=True)


def _usage(message: str) -> NoReturn:
    """A mistake on the command line: the diagnostic, then exit 2."""
    _err(f"error[usage]: {message}")
    raise typer.Exit(_exit.USAGE)


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
    except (RunNotFound, RunClaimed) as exc:  # nothing ran: the resume is refused
        _err(f"error[{exc.code}]: {exc}")
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
    except (typer.Exit, typer.Abort, BrokenPipeError):
        # a closed pipe (`dagtier ... | head`) is nobody's mistake: click exits quietly
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


@app.command()
def validate(workflow: WorkflowArg) -> None:
    """Check a workflow file and report every problem with its line and column."""
    from .spec.loader import load_and_import

    wf = guarded(lambda: load_and_import(workflow))
    policies: dict[str, int] = {}
    for nid, node in wf.nodes.items():
        kind = node.kind if not node.uses_model else wf.node_policy(nid).kind
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
        _usage(f"--format must be mermaid or dot, got '{format}'")
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
    from .catalog import load_catalog
    from .report.tables import output_console, print_models

    cat = guarded(lambda: load_catalog(models))
    print_models(cat, output_console())


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
    cache_ttl: CacheTtlOpt = "7d",
    log_json: Annotated[
        Path | None,
        typer.Option(
            "--log-json",
            help="Also write every event (run, node, each model call) as JSON lines to FILE.",
            show_default=False,
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No live progress view.")] = False,
) -> None:
    """Run a workflow end to end and print its outputs and per-node cost."""
    import anyio

    from . import executor
    from .catalog import load_catalog
    from .spec import load_workflow

    if budget is not None and not (math.isfinite(budget) and budget > 0):
        # checked before anything is recorded: -1 would otherwise store a junk
        # budget_exhausted run
        _usage(f"--budget must be more than 0 USD, got {budget:g}\nhint: --budget 0.50")
    log_file = _setup_logging(verbose=verbose, log_json=log_json)
    wf = guarded(lambda: load_workflow(workflow))
    from ._durable import parse_duration
    from .providers.registry import ProviderRegistry

    values = guarded(lambda: executor.read_inputs(input or [], inputs))
    given = values if values or not resume else None  # resume: the first run's inputs
    cat = guarded(lambda: load_catalog(models))
    if given is not None:
        guarded(lambda: executor.coerce_inputs(wf, given))
    ttl = guarded(lambda: parse_duration(cache_ttl, "--cache-ttl"))
    local = [str(t) for t in ProviderRegistry.local_fallback_tiers(cat, wf)]
    if local:
        _err(
            f"note: no API key for tier{'s' if len(local) > 1 else ''} {', '.join(local)}: running "
            f"{'it' if len(local) == 1 else 'them'} on the local model '{cat.local_fallback}' "
            "(in-process, free, small; see `dagtier models`)"
        )

    from .report.live import LiveView, live_enabled
    from .report.tables import output_console, print_run_summary
    from .store import shown_location
    from .telemetry import LogSubscriber

    console = output_console()
    live = LiveView(console) if live_enabled(console, quiet=quiet or json_out or verbose) else None
    subscribers: list[Any] = [LogSubscriber()] + ([live] if live is not None else [])

    # named here, so that an interrupted run can be named in the resume command
    run_id = resume or executor.new_run_id()
    again = _command_line(
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
            cache_ttl_s=ttl,
            subscribers=subscribers,
        )

    from ._interrupt import CtrlC

    ctrl_c = CtrlC()

    def go_live() -> Any:
        async def stoppable() -> Any:
            return await ctrl_c.guard(lambda: _with_store(store, go))

        with ctrl_c:
            if live is None:
                return anyio.run(stoppable)
            with live:
                return anyio.run(stoppable)

    try:
        result = guarded(go_live, debug=debug)
    finally:
        if log_file is not None:
            log_file.close()
    if ctrl_c.pressed:
        _err(
            f"interrupted: run {run_id} stopped; its finished nodes are kept\n"
            f"hint: resume it with: {shlex.join(again)}"
        )
        raise typer.Exit(_exit.INTERRUPTED)
    if json_out:
        from ._logging import redact_value

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
    _err(
        f"error[{AuthError.code}]: the provider refused the API key (node "
        f"{', '.join(repr(r.node_id) for r in refused)})\n"
        "note: your workflow is fine; the key is not.\n"
        f"hint: check {' and '.join(keys) if keys else 'the API key'}, then resume: "
        f"{resume_command}"
    )
    return _exit.CONFIG


def _command_line(words: list[str], *options: tuple[str, object, object]) -> list[str]:
    """``dagtier WORDS`` plus each ``(flag, value, default)`` whose value is not the
    default: the command that repeats, or resumes, the one being run."""
    line = ["dagtier", *words]
    for flag, value, default in options:
        if value != default:
            line += [flag, str(value)]
    return line


def _setup_logging(*, verbose: bool, log_json: Path | None) -> Any:
    """Console logs (WARNING, or INFO with --verbose) plus the JSON lines file, if asked."""
    from ._logging import configure_logging

    log_file = None
    if log_json is not None:
        try:
            log_file = open(log_json, "a", encoding="utf-8")  # noqa: SIM115 (closed by run)
        except OSError as exc:
            _usage(f"cannot write the log file {log_json}: {exc.strerror}")
    configure_logging(level=logging.INFO if verbose else logging.WARNING, json_file=log_file)
    return log_file


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
    json_out: Annotated[bool, typer.Option("--json", help="Print the statistics as JSON.")] = False,
) -> None:
    """Per task key and tier: observations, successes, estimated success rate, mean cost and
    latency, and the tier the adaptive policy would pick now."""
    from .policies.stats_view import collect, render

    wf = None
    name = None
    if workflow is not None:
        if workflow.endswith((".yaml", ".yml")) or Path(workflow).is_file():
            from .spec import load_workflow

            wf = guarded(lambda: load_workflow(Path(workflow)))
        else:
            name = workflow

    keys = _in_store(store, lambda st: collect(st, workflow=wf, workflow_name=name, task=task))
    if json_out:
        typer.echo(json.dumps([k.to_dict() for k in keys], indent=2))
        return
    if not keys:
        typer.echo("no statistics yet" + (" for that filter" if workflow or task else ""))
        return
    from .report.tables import output_console, print_uncut

    print_uncut(render(keys), output_console())


def main() -> None:
    """Entry point of the ``dagtier`` console script."""
    import warnings

    from ._exceptions import LocalFallbackWarning

    # the commands say it in their own words ("note: no API key for tier ...")
    warnings.filterwarnings("ignore", category=LocalFallbackWarning)
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

    async def go(st: Any) -> tuple[str, list[tuple[Any, dict[str, int]]]]:
        records = await st.list_runs(limit)
        return str(st.path), [(r, await st.node_counts(r.run_id)) for r in records]

    where, rows = _in_store(store, go)
    if json_out:
        from .report.render import render_runs_json

        typer.echo(render_runs_json(rows), nl=False)
        return
    from .report.tables import output_console, print_runs

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
    from ._durable import parse_duration

    age = guarded(lambda: parse_duration(older_than, "--older-than")) if older_than else None

    async def go(st: Any) -> tuple[str, int]:
        return str(st.path), await st.cache_clear(older_than_s=age)

    where, n = _in_store(store, go)
    typer.echo(f"removed {n} cached answer{'s' if n != 1 else ''} from {where}")


# --- reports and estimates (issue 6) ----------------------------------------------------


async def _with_store(path: str | None, fn: Callable[[Any], Awaitable[T]]) -> T:
    """``fn(store)`` on the store at ``path``, closed afterwards whatever happens."""
    from .store import open_store

    store = open_store(path)
    try:
        return await fn(store)
    finally:
        await store.aclose()


def _in_store(path: str | None, fn: Callable[[Any], Awaitable[T]]) -> T:
    """:func:`_with_store` on its own event loop, its errors turned into diagnostics."""
    import anyio

    return guarded(lambda: anyio.run(_with_store, path, fn))


def _write(text: str, output: Path | None) -> None:
    from ._logging import redact_text

    text = redact_text(text)
    if output is None:
        typer.echo(text, nl=False)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            _usage(f"cannot write {output}: {exc.strerror}\nhint: the directory must exist")
        _err(f"wrote {output}")


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

    from .catalog import load_catalog
    from .report import compare_reports, load_run_report
    from .report.render import FORMATS

    if format not in FORMATS:
        _usage(f"--format must be one of {', '.join(FORMATS)}, got '{format}'")
    chosen = sum(x for x in (run_id is not None, last, compare is not None))
    if chosen != 1:
        _usage(
            "name exactly one run: RUN_ID, --last, or --compare RUN_A RUN_B\n"
            "hint: dagtier report --last"
        )
    cat = guarded(lambda: load_catalog(models))

    async def load(s: Any, rid: str | None) -> Any:
        return await load_run_report(s, rid, catalog=cat, workflow=workflow)

    async def go(s: Any) -> Any:
        if compare is not None:
            batches = getattr(s, "load_batch", None)
            if batches is not None and all([await batches(b) for b in compare]):  # A/B test
                from .report.abtest import compare_batches

                return await compare_batches(s, *compare)
            return compare_reports(await load(s, compare[0]), await load(s, compare[1]))
        return await load(s, run_id)

    result = _in_store(store, go)
    _render_report(result, format, output)


def _render_report(result: Any, format: str, output: Path | None) -> None:
    from .report import Comparison
    from .report.abtest import ABReport, print_ab, render_ab_json
    from .report.render import print_report, render_to_text
    from .report.tables import output_console, record_text

    if isinstance(result, ABReport):
        if format not in ("table", "json"):
            _usage("--compare of two batches renders as table or json")
        if format == "json":
            _write(render_ab_json(result), output)
        elif output is None:
            print_ab(result, output_console())
        else:
            _write(record_text(lambda c: print_ab(result, c)), output)
        return
    if isinstance(result, Comparison) and format == "html":
        _usage("--compare renders as table, json or csv")
    if format == "table" and output is None:
        print_report(result, output_console())
    else:
        _write(render_to_text(result, format), output)  # type: ignore[arg-type]


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
    json_out: Annotated[bool, typer.Option("--json", help="Print the estimate as JSON.")] = False,
) -> None:
    """Forecast a workflow's cost per node and per policy, before running it (dry run)."""
    from .catalog import load_catalog
    from .executor import read_inputs
    from .report.estimate import estimate_workflow, print_estimate, recorded_stats
    from .report.tables import output_console
    from .spec import load_workflow

    wf = guarded(lambda: load_workflow(workflow))
    values = guarded(lambda: read_inputs(input or []))
    cat = guarded(lambda: load_catalog(models))
    stats = _in_store(store, lambda s: recorded_stats(s, wf)) if store is not None else {}
    est = estimate_workflow(wf, cat, inputs=values, stats=stats)
    if json_out:
        typer.echo(json.dumps(est.to_dict(), indent=2))
    else:
        print_estimate(est, output_console())


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
            "router+cascade[:P], router+adaptive[:P], router-only[:P] (need --queries) "
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
    json_out: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Replay recorded per-query outcomes of real models under routing policies, and compare
    their quality and cost (the real executor and policies; recorded answers and costs)."""
    from .replay._cli import run_replay

    if tiers.count(",") < 1:
        _usage("--tiers takes 2 or 3 comma-separated model names, cheapest first")
    guarded(
        lambda: run_replay(
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
    """Write dagtier's own history as per-query outcomes (gzipped CSV on stdout), the format
    `dagtier replay` reads: replay other policies on your own traffic before switching."""
    from .replay._cli import run_export

    if not plain and sys.stdout.isatty():
        _usage("refusing to write gzip to a terminal; redirect: > outcomes.csv.gz")
    n = guarded(lambda: run_export(store, sys.stdout.buffer, compress=not plain))
    sys.stdout.flush()
    _err(f"exported {n} outcome rows")


# --- eval (issue 15) ---------------------------------------------------------------------


def _opt(help: str, *flags: str) -> Any:
    return typer.Option(*flags, help=help, show_default=False)


@app.command("eval")
def eval_(
    workflow: WorkflowArg,
    cases: Annotated[Path, _opt('JSONL: {"inputs": {...}, "expected": {...}} per line.', "--cases")],
    tiers: Annotated[str, typer.Option("--tiers", help="Tiers to try each node on.")] = "1,2,3",
    nodes: Annotated[str | None, _opt("Nodes to evaluate (default: every prompt node).", "--nodes")] = None,
    repeat: Annotated[int, typer.Option("--repeat", min=1, help="Answers per case and tier.")] = 1,
    judge: Annotated[int | None, _opt("Tier of a blind judge that scores the tiers' answers.", "--judge")] = None,
    scorer: Annotated[str | None, _opt("module:function(node_id, output, expected) -> bool or 0..1.", "--scorer")] = None,
    concurrency: Annotated[int, typer.Option(min=1, help="Runs in flight at once.")] = 8,
    budget: Annotated[float | None, _opt("Most USD the whole eval may spend.", "--budget")] = None,
    resume: Annotated[str | None, _opt("Finish eval EVAL_ID: nothing paid for runs again.", "--resume")] = None,
    store: StoreOpt = None,
    models: ModelsOpt = None,
    json_out: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    html: Annotated[Path | None, _opt("Write an HTML page with a chart per node.", "--html")] = None,
    out: Annotated[Path | None, _opt("Write an outcomes file for `dagtier replay`.", "--out")] = None,
    seed_stats: Annotated[bool, typer.Option("--seed-stats", help="Load the evidence into the statistics adaptive reads.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    debug: DebugOpt = False,
) -> None:  # fmt: skip
    """Run each node of a workflow on each tier over your cases and score the answers: the
    tier each node needs, before routing anything."""
    from .eval._cli import EvalArgs, run_eval

    args = EvalArgs(workflow, cases, tiers, nodes, repeat, judge, scorer, concurrency, budget,
                    resume, store, models, json_out, html, out, seed_stats, quiet)  # fmt: skip
    code = guarded(lambda: run_eval(args), debug=debug)
    if code:
        raise typer.Exit(code)


# --- batches (issue 14) -----------------------------------------------------------------


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
            help="Most USD the whole batch may spend.",
            metavar="USD",
            show_default=False,
        ),
    ] = None,
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
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
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
    import anyio

    from ._durable import parse_duration
    from .batch import new_batch_id, run_batch
    from .catalog import load_catalog
    from .report.batch import (
        BatchLiveView,
        BatchProgress,
        print_batch_summary,
        progress_console,
    )
    from .report.live import live_enabled
    from .spec import load_workflow
    from .store import shown_location

    if on_bad_item not in ("stop", "skip"):
        _usage(f"--on-bad-item must be stop or skip, got '{on_bad_item}'")
    if out is not None and not out.parent.is_dir():
        _usage(f"--out {out}: the directory {out.parent} does not exist")
    _setup_logging(verbose=verbose, log_json=None)
    if ray and budget is not None:
        _usage("--budget is not offered with --ray (see `dagtier batch --help`)")
    wf = guarded(lambda: load_workflow(workflow))
    cat = guarded(lambda: load_catalog(models))
    ttl = guarded(lambda: parse_duration(cache_ttl, "--cache-ttl"))
    bid = resume or new_batch_id()
    again = _command_line(
        ["batch", str(workflow), "--inputs", str(inputs)],
        ("--out", out, None),
        ("--store", store and shown_location(store), None),
        ("--models", models, None),
        ("--concurrency", concurrency, 16),
        ("--budget", budget, None),
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

    async def go(run_store: Any) -> Any:
        if ray:
            from .batch_ray import run_batch_on_ray
            from .store import default_store_path

            # the actors open the store themselves, by its path
            return await run_batch_on_ray(
                workflow,
                inputs,
                store=store or default_store_path(),
                models=models,
                address=ray_address,
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
            on_bad_item=on_bad_item,  # type: ignore[arg-type]
            resume=resume,
            batch_id=bid,
            subscribers=[progress],
            on_result=emit,
            cache_ttl_s=ttl,
            on_start=lambda total: setattr(progress, "total", total),
        )

    def go_live() -> Any:
        try:
            if not show:
                return anyio.run(_with_store, store, go)
            with BatchLiveView(console, progress):
                return anyio.run(_with_store, store, go)
        except KeyboardInterrupt:
            return None

    try:
        summary = guarded(go_live, debug=debug)
    finally:
        if out is not None and sinks:
            sinks[0].close()
    if summary is None:
        _err(
            f"interrupted: batch {bid} stopped with {progress.done} of {progress.total} items "
            f"done; every committed node is kept.\nresume it with:\n  {resume_cmd}"
        )
        raise typer.Exit(_exit.INTERRUPTED)
    print_batch_summary(summary, console)
    if summary.status == "budget_exhausted":
        cut = again.index("--budget") if "--budget" in again else len(again)
        larger = [*again[:cut], *again[cut + 2 :], "--budget", "USD", "--resume", bid]
        _err(f"hint: resume it with a larger budget:\n  {shlex.join(larger)}")
    elif summary.status != "finished":
        _err(f"resume it with:\n  {resume_cmd}")
    console.print(
        f"batch report: dagtier report --batch {bid}"
        + (f" --store {shlex.quote(shown_location(store))}" if store else ""),
        markup=False,
        highlight=False,
    )
    if summary.status != "finished" or summary.succeeded != summary.total:
        raise typer.Exit(_exit.RUN_FAILED)


def _batch_report(batch_id: str, format: str, output: Path | None, store: str | None) -> None:
    from .report.batch import load_batch_report, print_batch_report, render_batch_json
    from .report.tables import output_console, record_text

    if format not in ("table", "json"):
        _usage(f"--batch renders as table or json, got '{format}'")

    result = _in_store(store, lambda s: load_batch_report(s, batch_id))
    if format == "json":
        _write(render_batch_json(result), output)
    elif output is None:
        print_batch_report(result, output_console())
    else:
        _write(record_text(lambda c: print_batch_report(result, c)), output)
