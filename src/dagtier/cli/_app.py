"""The Typer app and what every command shares: error diagnostics and exit codes,
the store, writing output, logging, and the command line that repeats a command."""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer

from .. import _exit
from .._exceptions import (
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


def err(text: str) -> None:
    from .._logging import redact_text

    typer.echo(redact_text(text), err=True)


def usage(message: str) -> NoReturn:
    """A mistake on the command line: the diagnostic, then exit 2."""
    err(f"error[usage]: {message}")
    raise typer.Exit(_exit.USAGE)


def check_positive(flag: str, value: float | None, unit: str, example: str) -> None:
    """Exit 2 unless ``value`` (None: not given) is a finite number above 0: checked before
    anything is recorded, so -1 leaves no junk run behind."""
    if value is not None and not (math.isfinite(value) and value > 0):
        usage(f"{flag} must be more than 0 {unit}, got {value:g}\nhint: {flag} {example}")


def guarded(fn: Callable[[], T], *, debug: bool = False) -> T:
    """Turn each dagtier error family into a diagnostic on stderr and an exit code."""
    try:
        return fn()
    except SpecError as exc:
        err(f"error[{exc.code}]: {exc}")
        raise typer.Exit(_exit.USAGE) from None
    except CatalogError as exc:
        err(f"error[{exc.code}]: {exc}" + (f"\nhint: {exc.hint}" if exc.hint else ""))
        raise typer.Exit(_exit.USAGE) from None
    except (RunNotFound, RunClaimed) as exc:  # nothing ran: the resume is refused
        err(f"error[{exc.code}]: {exc}")
        raise typer.Exit(_exit.USAGE) from None
    except StoreError as exc:
        err(f"error[{exc.code}]: {exc}")
        raise typer.Exit(_exit.CONFIG) from None
    except ProviderError as exc:
        err(
            f"error[{exc.code}]: {exc}\nnote: the provider refused or failed; your workflow is fine."
        )
        raise typer.Exit(_exit.CONFIG) from None
    except DagtierError as exc:
        err(f"error[{exc.code}]: {exc}")
        raise typer.Exit(_exit.RUN_FAILED) from None
    except KeyboardInterrupt:
        err("interrupted: the run was cancelled; finished nodes are kept")
        raise typer.Exit(_exit.INTERRUPTED) from None
    except (typer.Exit, typer.Abort, BrokenPipeError):
        # a closed pipe (`dagtier ... | head`) is nobody's mistake: click exits quietly
        raise
    except Exception as exc:
        if debug:
            raise
        err(
            f"error[internal]: {type(exc).__name__}: {exc}\n"
            "note: this is a bug in dagtier, not in your workflow.\n"
            "hint: rerun with --debug for the traceback and report it."
        )
        raise typer.Exit(_exit.INTERNAL) from None


async def with_store(path: str | None, fn: Callable[[Any], Awaitable[T]]) -> T:
    """``fn(store)`` on the store at ``path``, closed afterwards whatever happens."""
    from ..store import open_store

    store = open_store(path)
    try:
        return await fn(store)
    finally:
        await store.aclose()


def in_store(path: str | None, fn: Callable[[Any], Awaitable[T]]) -> T:
    """:func:`with_store` on its own event loop, its errors turned into diagnostics."""
    import anyio

    return guarded(lambda: anyio.run(with_store, path, fn))


def write_output(text: str, output: Path | None) -> None:
    from .._logging import redact_text

    text = redact_text(text)
    if output is None:
        typer.echo(text, nl=False)
    else:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as exc:
            usage(f"cannot write {output}: {exc.strerror}\nhint: the directory must exist")
        err(f"wrote {output}")


def write_table_or_json(
    format: str, output: Path | None, to_json: Callable[[], str], draw: Callable[[Any], None]
) -> None:
    """``--format json`` or the table: on the terminal, or as plain text to ``--output``."""
    from ..report.tables import output_console, record_text

    if format == "json":
        write_output(to_json(), output)
    elif output is None:
        draw(output_console())
    else:
        write_output(record_text(draw), output)


def command_line(words: list[str], *options: tuple[str, object, object]) -> list[str]:
    """``dagtier WORDS`` plus each ``(flag, value, default)`` whose value is not the
    default: the command that repeats, or resumes, the one being run."""
    line = ["dagtier", *words]
    for flag, value, default in options:
        if value != default:
            line += [flag, str(value)]
    return line


def setup_logging(*, verbose: bool, log_json: Path | None) -> Any:
    """Console logs (WARNING, or INFO with --verbose) plus the JSON lines file, if asked."""
    from .._logging import configure_logging

    log_file = None
    if log_json is not None:
        try:
            log_file = open(log_json, "a", encoding="utf-8")  # noqa: SIM115 (closed by run)
        except OSError as exc:
            usage(f"cannot write the log file {log_json}: {exc.strerror}")
    configure_logging(level=logging.INFO if verbose else logging.WARNING, json_file=log_file)
    return log_file
