"""Where runs, node results, attempts and tier statistics are kept.

Two protocols, so a PostgreSQL store can follow without touching the executor or the
policies: :class:`RunStore` (durable runs, resume) and :class:`StatsStore` (per task key and
tier evidence, for the adaptive policy). :class:`MemoryStore` implements both in process.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from .._types import RunStatus, Tier
from ..results import NodeResult


@dataclass(slots=True)
class TierStats:
    """Evidence for one (task key, tier). ``successes``/``failures`` are decayed weights."""

    task_key: str
    tier: Tier
    successes: float = 0.0
    failures: float = 0.0
    observations: int = 0
    """Raw count, not decayed."""
    total_cost: float = 0.0
    total_latency_s: float = 0.0

    @property
    def weight(self) -> float:
        return self.successes + self.failures

    @property
    def mean_cost(self) -> float:
        return self.total_cost / self.observations if self.observations else 0.0

    @property
    def mean_latency_s(self) -> float:
        return self.total_latency_s / self.observations if self.observations else 0.0

    def apply(
        self, success: bool, weight: float, cost: float, latency_s: float, half_life: float | None
    ) -> None:
        """Fold one observation in; older evidence fades by half every ``half_life`` observations."""
        if half_life:
            decay = math.pow(0.5, weight / half_life)
            self.successes *= decay
            self.failures *= decay
        if success:
            self.successes += weight
        else:
            self.failures += weight
        self.observations += 1
        self.total_cost += cost
        self.total_latency_s += latency_s


@dataclass(slots=True)
class RunRecord:
    run_id: str
    workflow: str
    status: RunStatus
    started_at: float
    finished_at: float | None = None
    fingerprint: str | None = None
    inputs: dict[str, Any] = field(default_factory=dict)
    cost: float = 0.0
    source: str | None = None


@runtime_checkable
class StatsStore(Protocol):
    async def tier_stats(self, task_key: str) -> dict[Tier, TierStats]: ...

    async def record_observation(
        self,
        task_key: str,
        tier: Tier,
        *,
        success: bool,
        weight: float = 1.0,
        cost: float = 0.0,
        latency_s: float = 0.0,
        half_life: float | None = None,
    ) -> None: ...

    async def all_stats(self) -> list[TierStats]:
        """Every (task key, tier) with evidence, for ``dagtier stats``."""
        ...


@runtime_checkable
class RunStore(Protocol):
    async def begin_run(self, record: RunRecord) -> None: ...

    async def commit_node(self, run_id: str, result: NodeResult) -> None:
        """Durably save a finished node. Returns only once it is safe against a crash."""
        ...

    async def finish_run(self, run_id: str, status: RunStatus, cost: float) -> None: ...

    async def load_run(self, run_id: str) -> tuple[RunRecord, dict[str, NodeResult]] | None: ...

    async def list_runs(self, limit: int = 50) -> list[RunRecord]: ...


class MemoryStore:
    """Both protocols in memory: for replay, tests and programs that persist nothing."""

    def __init__(self) -> None:
        self.stats: dict[str, dict[Tier, TierStats]] = {}
        self.runs: dict[str, RunRecord] = {}
        self.nodes: dict[str, dict[str, NodeResult]] = {}

    async def tier_stats(self, task_key: str) -> dict[Tier, TierStats]:
        return self.stats.get(task_key, {})

    async def record_observation(
        self,
        task_key: str,
        tier: Tier,
        *,
        success: bool,
        weight: float = 1.0,
        cost: float = 0.0,
        latency_s: float = 0.0,
        half_life: float | None = None,
    ) -> None:
        by_tier = self.stats.setdefault(task_key, {})
        st = by_tier.get(tier)
        if st is None:
            st = by_tier[tier] = TierStats(task_key, tier)
        st.apply(success, weight, cost, latency_s, half_life)

    async def all_stats(self) -> list[TierStats]:
        return [st for by_tier in self.stats.values() for st in by_tier.values()]

    async def begin_run(self, record: RunRecord) -> None:
        self.runs[record.run_id] = record
        self.nodes.setdefault(record.run_id, {})

    async def commit_node(self, run_id: str, result: NodeResult) -> None:
        self.nodes.setdefault(run_id, {})[result.node_id] = result

    async def finish_run(self, run_id: str, status: RunStatus, cost: float) -> None:
        rec = self.runs.get(run_id)
        if rec is not None:
            import time

            rec.status, rec.cost, rec.finished_at = status, cost, time.time()

    async def load_run(self, run_id: str) -> tuple[RunRecord, dict[str, NodeResult]] | None:
        rec = self.runs.get(run_id)
        return None if rec is None else (rec, dict(self.nodes.get(run_id, {})))

    async def list_runs(self, limit: int = 50) -> list[RunRecord]:
        return sorted(self.runs.values(), key=lambda r: r.started_at, reverse=True)[:limit]


__all__ = ["MemoryStore", "RunRecord", "RunStore", "StatsStore", "TierStats"]
