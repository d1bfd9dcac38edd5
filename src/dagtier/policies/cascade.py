"""``cascade``: the cheapest tier first; escalate exactly one tier when the answer fails its
checks, up to the max tier. Provider errors never escalate (the gateway retries and falls
back within the tier); only an answer that fails its checks does."""

from __future__ import annotations

from typing import Literal

from .._types import Tier
from .base import NodeContext, Outcome


async def cascade_from(
    ctx: NodeContext, start: Tier, top: Tier, on_exhausted: Literal["fail", "accept_unverified"]
) -> Outcome:
    last = None
    for tier in range(start, top + 1):
        last = await ctx.attempt(tier)  # type: ignore[arg-type]
        if last.verdict != "fail":
            return Outcome("succeeded", last)
    assert last is not None
    why = f"the answer at max tier {top} failed its checks: {last.reason}"
    if on_exhausted == "accept_unverified":
        return Outcome("unverified", last, why)
    return Outcome("failed", None, why)


async def run_cascade(ctx: NodeContext) -> Outcome:
    policy = ctx.workflow.node_policy(ctx.node_id)
    assert policy.kind == "cascade"
    return await cascade_from(ctx, policy.start, policy.max, policy.on_exhausted)
