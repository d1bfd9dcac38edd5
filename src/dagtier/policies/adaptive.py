"""``adaptive``: learn per task key which tier is cheapest at the target success rate.

Until the policies issue lands this behaves as a cascade over [min_tier, max_tier], which
is also how it gathers its evidence.
"""

from __future__ import annotations

from .base import NodeContext, Outcome
from .cascade import cascade_from


async def run_adaptive(ctx: NodeContext) -> Outcome:
    policy = ctx.workflow.node_policy(ctx.node_id)
    assert policy.kind == "adaptive"
    return await cascade_from(ctx, policy.min_tier, policy.max_tier, policy.on_exhausted)
