"""The ``dagtier`` command. Thin: each command parses, calls the library, prints.

One module per command group; ``_app`` holds the Typer app and the helpers they share
(diagnostics and exit codes, the store, output), ``_options`` the options several share.
"""

from __future__ import annotations

import sys

from .. import _exit

# Importing a command module registers its commands; --help lists them in this order.
# isort: off
from . import workflow as _workflow  # noqa: F401 (validate, graph, schema, models)
from . import run as _run  # noqa: F401 (run)
from . import batch as _batch  # noqa: F401 (batch)
from . import runs as _runs  # noqa: F401 (runs, cache)
from . import report as _report  # noqa: F401 (report, estimate)
from . import stats as _stats  # noqa: F401 (stats)
from . import eval as _eval  # noqa: F401 (eval)
from . import replay as _replay  # noqa: F401 (replay, export-outcomes)

# isort: on
from ._app import app, err

__all__ = ("app", "main")


def main() -> None:
    """Entry point of the ``dagtier`` console script."""
    import warnings

    from .._exceptions import LocalFallbackWarning

    # the commands say it in their own words ("note: no API key for tier ...")
    warnings.filterwarnings("ignore", category=LocalFallbackWarning)
    try:
        app()
    except KeyboardInterrupt:
        err("interrupted")
        sys.exit(_exit.INTERRUPTED)
