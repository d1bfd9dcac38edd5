"""``cascade``: the start tier first; escalate exactly one tier when the answer fails its
checks, up to the max tier. Provider errors never escalate (the gateway retries and falls
back within the tier, then :class:`AttemptFailed` fails the node); only an answer that
fails its checks does. Every attempt is kept, in order, on the node's result.

A node with ``on_exhausted: accept_unverified`` run with a statistics store also learns,
per task key, which tiers rarely fix what reaches them by escalation (see
:mod:`dagtier.policies.escalation`): once a tier's fixes are ruled out as costing more
than the node's ``fix_worth``, the cascade stops one tier lower and accepts that answer
unverified, as it would at the max tier. Without such evidence (or with ``on_exhausted:
fail``) it is the plain cascade; every ceiling is logged with its reason (``ctx.decide``)."""

from __future__ import annotations

from typing import Literal, cast

from .._types import Tier
from ..results import Attempt
from .base import DEFAULT_HALF_LIFE, AttemptFailed, NodeContext, Outcome
from .checks import callable_problem
from .escalation import (
    Ceiling,
    ceiling,
    ceiling_evidence,
    explore_past,
    record_escalations,
    settled,
)
from .routers import start_floor
from .tuning import TUNING


async def cascade_from(
    ctx: NodeContext,
    start: Tier,
    top: Tier,
    on_exhausted: Literal["fail", "accept_unverified"],
    *,
    record_evidence: bool = True,
    half_life: float | None = DEFAULT_HALF_LIFE,
    ceiling_of: Tier | None = None,
    judge_top: bool = False,
) -> Outcome:
    """Try ``start``, then each next tier up to ``top`` while answers fail their checks.
    ``ceiling_of``: the node's max tier when ``top`` is a learnt ceiling below it (named in
    the outcome when the last answer is accepted unverified).

    At ``top`` a node that accepts its last answer anyway (``accept_unverified``) skips the
    judge: no tier above pays, so its verdict cannot change the action. The answer is then
    ``unverified``. With ``judge_top`` (a canary run, or a tier still being learnt) and on a
    share :attr:`Tuning.judge_at_ceiling` of the others it is judged all the same, so the
    tier's rate and its yield keep being measured.

    Raises:
        AttemptFailed: a tier could not be reached at all (availability, not quality).
    """
    last = None
    served: list[str] | None = None
    for t in range(start, top + 1):
        tier = cast(Tier, t)
        models = [m.name for m in ctx.gateway.usable_models(tier)]
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
        judge = (
            tier < top
            or on_exhausted != "accept_unverified"
            or judge_top
            or ctx.rng.random() < TUNING.judge_at_ceiling
        )
        last = await ctx.attempt(
            tier, record_evidence=record_evidence, half_life=half_life, judge=judge
        )
        if not judge and ctx.unjudged and last.index in ctx.unjudged:
            return Outcome("unverified", last, _unjudged(last.tier, ceiling_of))
        if last.verdict != "fail":
            return Outcome("succeeded", last)
    assert last is not None
    return exhausted(last, last.tier, on_exhausted, ceiling_of=ceiling_of)


def _where(top: Tier, ceiling_of: Tier | None) -> str:
    if ceiling_of is None or ceiling_of <= top:
        return f"max tier {top}"
    return f"tier {top} (the learnt ceiling below max tier {ceiling_of})"


def _unjudged(top: Tier, ceiling_of: Tier | None) -> str:
    return (
        f"the answer at {_where(top, ceiling_of)} is accepted unverified without the judge: no tier above "
        "pays, so its verdict could not change the action (on_exhausted: accept_unverified)"
    )


def exhausted(
    last: Attempt,
    top: Tier,
    on_exhausted: Literal["fail", "accept_unverified"],
    *,
    ceiling_of: Tier | None = None,
) -> Outcome:
    """The outcome when even ``top`` failed its checks: fail, or accept and say so."""
    why = f"the answer at {_where(top, ceiling_of)} failed its checks: {last.reason}"
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
    top = policy.max
    start = start_floor(ctx, policy.start, top)
    stats = ctx.stats
    if stats is None or policy.on_exhausted != "accept_unverified" or start == top:
        return await cascade_from(ctx, start, top, policy.on_exhausted)
    # a node that accepts its last answer anyway need not pay for a tier that is ruled out
    # as rarely fixing what reaches it (a node that must fail at its max tier has to try it)
    # a router's class without evidence of its own starts from the ceiling of the key it
    # came from (else it would pay the max tier until it had failed there itself); its
    # escalations are its own: routed inputs are harder than the key's others
    keys = [ctx.task_key] + ([ctx.base_key] if ctx.base_key else [])
    evidence = await ceiling_evidence(stats, *keys)
    cap = Ceiling(top, "")
    judge_top = True
    if evidence is not None:
        yields, prices = evidence
        cap = ceiling(yields, prices, start, top, worth=policy.fix_worth)
        cap = explore_past(cap, top, ctx.rng)
        # the ceiling's verdict is evidence until its yield is settled either way
        judge_top = not settled(yields, prices, cap.top, top, policy.fix_worth)
    if cap.reason:
        ctx.decide(start, f"cascade from tier {start}; {cap.reason}")
    first = len(ctx.attempts)
    try:
        outcome = await cascade_from(
            ctx,
            start,
            cap.top,
            policy.on_exhausted,
            ceiling_of=top if cap.top < top else None,
            judge_top=judge_top,
        )
    except AttemptFailed:
        await record_escalations(stats, ctx.task_key, ctx.attempts[first:], DEFAULT_HALF_LIFE)
        raise
    await record_escalations(stats, ctx.task_key, ctx.attempts[first:], DEFAULT_HALF_LIFE)
    return outcome
