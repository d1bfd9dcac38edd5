"""``implements`` answers as ``isinstance`` does for every store protocol, for real stores
and for objects that play only some of the roles (the run's store roles are asked by it)."""

from __future__ import annotations

from typing import Any

import pytest

from dagtier.replay._runner import _StatsOnly
from dagtier.store import (
    BatchQueue,
    BatchStore,
    MemoryStore,
    ResultCache,
    RunStore,
    StandInStats,
    StatsStore,
    implements,
)

pytestmark = pytest.mark.anyio

PROTOCOLS = (RunStore, StatsStore, ResultCache, BatchStore, BatchQueue)


class _NoneMethod(MemoryStore):
    """A store whose ``begin_run`` is switched off (None): not a RunStore."""

    begin_run = None  # type: ignore[assignment]


class _HalfStats:
    async def tier_stats(self, task_key: str) -> dict[Any, Any]:
        return {}


async def test_implements_agrees_with_isinstance_on_every_store_and_protocol(store: Any) -> None:
    """Real stores (SQLite, PostgreSQL, memory) and partial ones get the same answer from
    ``implements`` as from ``isinstance``."""
    objects = [
        store,
        _StatsOnly(),
        StandInStats(MemoryStore(), {1: "local"}),
        _NoneMethod(),
        _HalfStats(),
        object(),
    ]
    for obj in objects:
        for protocol in PROTOCOLS:
            assert implements(obj, protocol) == isinstance(obj, protocol), (obj, protocol)
    # the partial objects really are partial: the comparison above is not vacuous
    assert implements(_StatsOnly(), StatsStore) and not implements(_StatsOnly(), RunStore)
    assert not implements(_NoneMethod(), RunStore) and implements(_NoneMethod(), StatsStore)
    assert not implements(_HalfStats(), StatsStore)
