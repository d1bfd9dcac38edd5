"""Option declarations shared by several commands, so that a flag means one thing everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

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

DeadlineOpt = Annotated[
    float | None,
    typer.Option(
        "--deadline",
        help="Seconds a run should end within (default: the workflow's deadline_s:): a node "
        "on the critical path expected to miss it starts at a tier that fits.",
        metavar="SECONDS",
        show_default=False,
    ),
]

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="No live progress view (it shows on a terminal).")
]


def opt(help: str, *flags: str) -> Any:
    """An option without a default shown (its help says what leaving it out means)."""
    return typer.Option(*flags, help=help, show_default=False)
