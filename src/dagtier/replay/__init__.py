"""Replay: evaluate routing policies offline on recorded real outcomes.

A ``replay`` provider answers each call with the recorded outcome of the model asked and
charges its recorded cost; a :class:`ReplayJudge` sees the recorded quality through
configurable errors. Everything else (executor, policies, checks, statistics store) is the
real thing. ``dagtier replay`` and ``bench/routing.py`` are built on :func:`replay`.
"""

from __future__ import annotations

from ._data import (
    COLUMNS,
    OutcomeRow,
    Outcomes,
    load_outcomes,
    load_queries,
    read_rows,
    write_rows,
)
from ._export import export_store_outcomes
from ._judge import ReplayJudge
from ._metrics import aiq, frontier, pgr
from ._provider import ReplayProvider
from ._runner import (
    DEFAULT_POLICIES,
    PolicyStats,
    Reference,
    ReplayReport,
    default_policies,
    parse_policy,
    replay,
    replay_catalog,
)

__all__ = (
    "COLUMNS",
    "DEFAULT_POLICIES",
    "OutcomeRow",
    "Outcomes",
    "PolicyStats",
    "Reference",
    "ReplayJudge",
    "ReplayProvider",
    "ReplayReport",
    "aiq",
    "default_policies",
    "export_store_outcomes",
    "frontier",
    "load_outcomes",
    "load_queries",
    "parse_policy",
    "pgr",
    "read_rows",
    "replay",
    "replay_catalog",
    "write_rows",
)
