"""What a policy is expected to cost on one node, from each tier's price of one call and
chance of passing the node's checks: the policies' own routing, taken in expectation.

``dagtier estimate`` asks here instead of modelling the policies itself, so a change to how
a policy routes is made next to the policy and its forecast together.

A cascade's expected cost is ``sum_t c_t * P(all tiers before t failed)``. Adaptive, with
recorded evidence, starts at the first tier whose (monotone) pass rate reaches its target
and cascades from there; without evidence it cascades from its lowest tier (that is how it
gathers evidence); and a share ``canary`` of the runs that start below its top tier also
runs the top tier.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..spec.models import AdaptivePolicy, CascadePolicy, StaticPolicy

__all__ = ["cascade_cost", "forecast"]


def forecast(
    policy: StaticPolicy | CascadePolicy | AdaptivePolicy,
    call: Mapping[int, float],
    pass_rate: Mapping[int, float],
    evidence: Mapping[int, int],
) -> float:
    """The expected cost of running a node under ``policy``.

    Args:
        policy: the node's policy (or the one a scenario assumes for it).
        call: one call's expected cost per tier (answer plus judge checks).
        pass_rate: per tier, the chance an answer passes the node's checks.
        evidence: recorded observations per tier (0: the pass rates are assumptions).
    """
    return _FORECASTS[policy.kind](policy, call, pass_rate, evidence)


def cascade_cost(
    call: Mapping[int, float], pass_rate: Mapping[int, float], start: int, top: int
) -> float:
    """Start at ``start``; each failed answer escalates one tier, up to ``top``."""
    cost, reach = 0.0, 1.0
    for t in range(start, top + 1):
        cost += reach * call[t]
        reach *= 1.0 - pass_rate[t]
    return cost


def _static(policy: Any, call: Mapping[int, float], *_: Any) -> float:
    return call[policy.tier]


def _cascade(
    policy: Any, call: Mapping[int, float], pass_rate: Mapping[int, float], _: Any
) -> float:
    return cascade_cost(call, pass_rate, policy.start, policy.max)


def _adaptive(
    policy: Any,
    call: Mapping[int, float],
    pass_rate: Mapping[int, float],
    evidence: Mapping[int, int],
) -> float:
    # as run_adaptive routes: without evidence, cascade from the bottom to gather some;
    # with evidence, start at the first tier whose (monotone: a higher tier is never
    # assumed worse) pass rate reaches the target, else at the bottom
    lo, hi = policy.min_tier, policy.max_tier
    start = lo
    if any(evidence.get(t, 0) for t in range(lo, hi + 1)):
        best, mono = 0.0, {}
        for t in range(lo, hi + 1):
            best = max(best, pass_rate[t])
            mono[t] = best
        start = next((t for t in range(lo, hi + 1) if mono[t] >= policy.target), lo)
    cost = cascade_cost(call, pass_rate, start, hi)
    if start < hi:  # the canary runs the policy's own top tier beside an answer below it
        cost += policy.canary * call[hi]
    return cost


_FORECASTS: dict[str, Callable[..., float]] = {
    "static": _static,
    "cascade": _cascade,
    "adaptive": _adaptive,
}
