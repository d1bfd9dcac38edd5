"""Text pieces every renderer shares (console tables, HTML): money and the savings lines.

Kept apart from ``render`` and ``html`` so that neither has to import the other for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .model import Savings


def usd(value: float | None, places: int = 6) -> str:
    return "-" if value is None else f"${value:,.{places}f}"


def savings_lines(s: Savings) -> list[str]:
    """The savings, each line saying what it is compared against."""
    lines = [f"actual cost: {usd(s.actual)}"]
    if s.stand_ins:
        for tier, model in sorted(s.stand_ins.items()):
            lines.append(
                f"tier {tier} was served by the stand-in '{model}' (no API key for its "
                "models): its cost is not the tier's, so no savings are claimed"
            )
        return lines
    if s.top_tier_cost is not None:
        pct = s.pct(s.vs_top_tier, s.top_tier_cost)
        lines.append(
            f"vs. every node on tier 3 ({s.top_tier_model}): {usd(s.top_tier_cost)}, "
            f"saved {usd(s.vs_top_tier)}" + (f" ({pct:.1f}%)" if pct is not None else "")
        )
    if s.static_cost is not None:
        pct = s.pct(s.vs_static, s.static_cost)
        lines.append(
            f"vs. the workflow's static tiers: {usd(s.static_cost)}, "
            f"saved {usd(s.vs_static)}" + (f" ({pct:.1f}%)" if pct is not None else "")
        )
    else:
        lines.append("vs. static tiers: unknown (the workflow file is not available)")
    lines.append(f"note: {s.note}")
    return lines
