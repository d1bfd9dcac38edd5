"""Exit codes of the ``dagtier`` command, in one place (documented in the README)."""

OK = 0
RUN_FAILED = 1
"""The run finished but a node failed (or the budget ran out)."""
USAGE = 2
"""Bad command line, or an invalid workflow, catalog or inputs; or a ``--resume`` of a run
that another live process is running (refused: nothing ran)."""
CONFIG = 3
"""Configuration or credentials: no usable model, authentication refused, store unusable."""
INTERNAL = 4
"""A bug in dagtier: please report it."""
INTERRUPTED = 130
"""Ctrl-C: the run was cancelled; what finished is kept."""
