"""``static``: always the same tier. The hot path: it adds nothing to the attempt itself."""

from __future__ import annotations

from .base import NodeContext, Outcome
from .checks import callable_problem
from .routers import start_floor


async def run_static(ctx: NodeContext) -> Outcome:
    policy = ctx.workflow.node_policy(ctx.node_id)
    assert policy.kind == "static"
    problem = callable_problem(ctx)
    if problem:
        return Outcome("failed", None, problem)
    # a router's start tier replaces the static one (route-only: no judge to climb on)
    tier = policy.tier if ctx.route is None else start_floor(ctx, policy.tier, 3)
    att = await ctx.attempt(tier)
    if att.verdict == "fail":
        return Outcome("failed", None, f"tier {att.tier} answer failed its checks: {att.reason}")
    return Outcome("succeeded", att)
