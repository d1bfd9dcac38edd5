"""``dagtier replay FILE --compare A B``: two routing configurations on the same stream.

A configuration is a replay policy name followed by its settings as ``key=value`` words:
``"adaptive fix_worth=1.5"``, ``"cascade:2 on_exhausted=fail"``. Both run on the same
shuffled queries with the same judge errors, so the difference is paired query by query.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..report.abtest import ABReport, compare_arms
from ._data import Outcomes
from ._runner import parse_policy, replay


async def compare_policies(
    outcomes: Outcomes,
    tiers: Sequence[str],
    config_a: str,
    config_b: str,
    *,
    seed: int = 0,
    canary: float | None = None,
    **replay_options: Any,
) -> ABReport:
    """Replay ``config_a`` and ``config_b`` on the same stream; B - A in quality and cost
    per query, with paired bootstrap intervals.

    ``replay_options`` are :func:`dagtier.replay.replay`'s (judge rates, limit, progress).
    """
    n = len(tiers)
    specs = [
        parse_policy(config_a, n, canary, source="--compare"),
        parse_policy(config_b, n, canary, source="--compare"),
    ]
    report = await replay(outcomes, tiers, specs, seed=seed, canary=canary, **replay_options)
    a, b = report.policies
    return compare_arms(
        config_a,
        config_b,
        {"quality": [q for q, _ in a.per_query], "cost $/query": [c for _, c in a.per_query]},
        {"quality": [q for q, _ in b.per_query], "cost $/query": [c for _, c in b.per_query]},
        paired=True,
        seed=seed,
        source=f"replay of {report.source}, tiers {' / '.join(report.tiers)}, seed {seed}",
    )
