"""``cascade``: the cheapest tier first; escalate exactly one tier when the answer fails its
checks, up to the max tier. Provider errors never escalate (the gateway retries and falls
back within the tier, then :class:`AttemptFailed` fails the node); only an answer that
fails its checks does. Every attempt is kept, in order, on the node's result."""

from __future__ import annotations

from typing import Literal, cast

from .._types import Tier
from ..results import Attempt
from .base import DEFAULT_HALF_LIFE, NodeContext, Outcome
from .checks import callable_problem


async def cascade_from(
    ctx: NodeContext,
    start: Tier,
    top: Tier,
    on_exhausted: Literal["fail", "accept_unverified"],
    *,
    record_evidence: bool = True,
    half_life: float | None = DEFAULT_HALF_LIFE,
) -> Outcome:
    """Try ``start``, then each next tier up to ``top`` while answers fail their checks.

    Raises:
        AttemptFailed: a tier could not be reached at all (availability, not quality).
    """
    last = None
    served: list[str] | None = None
    for t in range(start, top + 1):
        tier = cast(Tier, t)
        models = [m.name for m in ctx.gateway.catalog.usable_models(tier)]
        if last is not None and models == served:
            # e.g. no API key for tiers 1 and 2, which both fall back to the local model:
            # asking the same model again is not an escalation, only a second bill. The
            # tier counts as tried; the next distinct tier is the real next step up.
            ctx.decide(
                tier,
                f"tier {tier} serves the same model(s) as tier {last.tier} "
                f"({', '.join(models)}): counted as tried",
            )
            continue
        served = models
        if last is not None:
            ctx.decide(
                tier,
                f"tier {last.tier} answer failed its checks ({last.reason}): escalating to tier {tier}",
            )
        last = await ctx.attempt(tier, record_evidence=record_evidence, half_life=half_life)
        if last.verdict != "fail":
            return Outcome("succeeded", last)
    assert last is not None
    return exhausted(last, last.tier, on_exhausted)


def exhausted(
    last: Attempt, top: Tier, on_exhausted: Literal["fail", "accept_unverified"]
) -> Outcome:
    """The outcome when even ``top`` failed its checks: fail, or accept and say so."""
    why = f"the answer at max tier {top} failed its checks: {last.reason}"
    if on_exhausted == "accept_unverified":
        return Outcome(
            "unverified",
            last,
            f"{why}; accepted unverified (on_exhausted: accept_unverified): check it yourself",
        )
    return Outcome("failed", None, why)


async def run_cascade(ctx: NodeContext) -> Outcome:
    policy = ctx.workflow.node_policy(ctx.node_id)
    assert policy.kind == "cascade"
    problem = callable_problem(ctx)
    if problem:
        return Outcome("failed", None, problem)
    return await cascade_from(ctx, policy.start, policy.max, policy.on_exhausted)
