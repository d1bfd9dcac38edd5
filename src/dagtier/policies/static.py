"""``static``: always the same tier. The hot path: it adds nothing to the attempt itself."""

from __future__ import annotations

from .base import NodeContext, Outcome
from .checks import callable_problem


async def run_static(ctx: NodeContext) -> Outcome:
    policy = ctx.workflow.node_policy(ctx.node_id)
    assert policy.kind == "static"
    problem = callable_problem(ctx)
    if problem:
        return Outcome("failed", None, problem)
    att = await ctx.attempt(policy.tier)
    if att.verdict == "fail":
        return Outcome("failed", None, f"tier {att.tier} answer failed its checks: {att.reason}")
    return Outcome("succeeded", att)
