"""``static``: always the same tier."""

from __future__ import annotations

from .base import NodeContext, Outcome


async def run_static(ctx: NodeContext) -> Outcome:
    policy = ctx.workflow.node_policy(ctx.node_id)
    assert policy.kind == "static"
    att = await ctx.attempt(policy.tier)
    if att.verdict == "fail":
        return Outcome("failed", None, f"tier {att.tier} answer failed its checks: {att.reason}")
    return Outcome("succeeded", att)
