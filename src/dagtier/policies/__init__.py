"""Routing policies: which tier a node runs on, and when to escalate."""

from __future__ import annotations

from .adaptive import record_outcome, run_adaptive
from .base import AttemptFailed, NodeContext, Outcome, Policy
from .cascade import run_cascade
from .static import run_static

POLICIES: dict[str, Policy] = {
    "static": run_static,
    "cascade": run_cascade,
    "adaptive": run_adaptive,
}

__all__ = ["POLICIES", "AttemptFailed", "NodeContext", "Outcome", "Policy", "record_outcome"]
