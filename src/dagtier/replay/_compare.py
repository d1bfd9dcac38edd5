"""``dagtier replay FILE --compare A B``: two routing configurations on the same stream.

A configuration is a replay policy name followed by its settings as ``key=value`` words:
``"adaptive fix_worth=1.5"``, ``"cascade:2 on_exhausted=fail"``. Both run on the same
shuffled queries with the same judge errors, so the difference is paired query by query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from .._exceptions import SpecError, SpecIssue
from ..report.abtest import ABReport, compare_arms
from ._data import Outcomes
from ._runner import PolicySpec, parse_policy, replay


def parse_config(text: str, n_tiers: int, canary: float | None = None) -> PolicySpec:
    """``NAME[:ARG] key=value ...`` as a replay policy with those settings.

    Raises:
        SpecError: an unknown policy, a word that is not ``key=value``, or a setting the
            policy does not take or a value it refuses (pydantic's message, located).
    """
    from ..spec.models import Policy

    head, *words = text.split()
    if not words:
        return parse_policy(head, n_tiers, canary)
    base = parse_policy(head, n_tiers, canary)
    policy: dict[str, Any] = dict(base.policy)
    for word in words:
        key, eq, raw = word.partition("=")
        if not eq or not key:
            raise SpecError(
                source="--compare",
                issues=[
                    SpecIssue(
                        text,
                        f"'{word}' is not key=value",
                        "bad-policy",
                        hint='write the policy then its settings: "adaptive fix_worth=1.5"',
                    )
                ],
            )
        try:
            policy[key] = yaml.safe_load(raw)
        except yaml.YAMLError:
            policy[key] = raw
    try:
        TypeAdapter(Policy).validate_python(policy)
    except ValidationError as exc:
        issues = [
            SpecIssue(
                text + (f": {'.'.join(str(p) for p in e['loc'][1:])}" if e["loc"][1:] else ""),
                e["msg"],
                "bad-policy",
                hint=f"settings of {policy['kind']}: see the policy reference in README.md",
            )
            for e in exc.errors()
        ]
        raise SpecError(source="--compare", issues=issues) from None
    return replace(base, label=text, policy=policy)


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
    specs = [parse_config(config_a, n, canary), parse_config(config_b, n, canary)]
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
