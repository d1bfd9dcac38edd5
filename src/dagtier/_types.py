"""Type aliases shared across dagtier (one place, like structlog's ``typing.py``)."""

from __future__ import annotations

from typing import Any, Literal, TypeAlias

Tier: TypeAlias = Literal[1, 2, 3]
TIERS: tuple[Tier, ...] = (1, 2, 3)

JSON: TypeAlias = Any
"""A value decoded from JSON: dict, list, str, int, float, bool or None."""

NodeStatus: TypeAlias = Literal[
    "succeeded", "unverified", "failed", "skipped", "cancelled", "cached"
]
"""How a node ended. ``unverified``: the answer failed its checks at the top tier and the
node's policy says to accept it anyway. ``cached``: reused from the result cache."""

RunStatus: TypeAlias = Literal[
    "running", "succeeded", "failed", "cancelled", "interrupted", "budget_exhausted"
]

FixWorth: TypeAlias = float | tuple[float, float]
"""What one answer fixed by escalating is worth, in calls of the node's max tier: one value,
or a ``(low, high)`` range over which the adaptive policy spreads its belief."""

Verdict: TypeAlias = Literal["pass", "fail", "unchecked", "error"]
"""An attempt's verdict. ``error``: the provider call failed (availability, not quality)."""
