"""The batch record and the batch work queue (``dagtier batch --ray``), on a real SQLite file
and a real PostgreSQL database. Concurrent claimers use a store each: their own connection,
as two Ray actors have."""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest

from dagtier.store import BatchQueue, BatchRecord, BatchStore, QueuedItem, RunRecord, open_store

pytestmark = pytest.mark.anyio


def _items(n: int) -> list[QueuedItem]:
    return [QueuedItem(i, i + 1, f"run-{i}", {"x": i}) for i in range(n)]


def _record(batch_id: str = "b") -> BatchRecord:
    return BatchRecord(batch_id, "wf", "running", 1.0, "items.jsonl", "sha", 3, budget=2.0)


async def test_every_durable_store_keeps_batches_and_queues(location: str) -> None:
    store = open_store(location)
    assert isinstance(store, BatchStore) and isinstance(store, BatchQueue)
    await store.aclose()


async def test_a_batch_and_its_items_read_back_after_reopening(location: str) -> None:
    """The record (fingerprint, size, budget) and each item's run, status and cost survive."""
    store = open_store(location)
    claimed = await store.claim_batch(_record())
    assert claimed is not None and claimed.status == "running"
    await store.begin_run(RunRecord("run-0", "wf", "running", 1.0))
    await store.finish_run("run-0", "succeeded", 0.25)
    await store.record_batch_item("b", 0, 1, "run-0")
    await store.record_batch_item("b", 1, 2, None, status="invalid", error="missing input 'x'")
    await store.finish_batch("b", "succeeded")
    await store.aclose()

    again = open_store(location)
    loaded = await again.load_batch("b")
    assert loaded is not None
    record, items = loaded
    assert (record.status, record.items_fingerprint, record.items_total, record.budget) == (
        "succeeded",
        "sha",
        3,
        2.0,
    )
    assert [(i.index, i.line, i.run_id, i.status) for i in items] == [
        (0, 1, "run-0", "succeeded"),
        (1, 2, None, "invalid"),
    ]
    assert items[0].cost == pytest.approx(0.25)
    assert items[1].error == "missing input 'x'"
    assert [b.batch_id for b in await again.list_batches()] == ["b"]
    assert await again.load_batch("other") is None
    await again.aclose()


async def test_of_two_concurrent_claims_of_a_batch_exactly_one_wins(location: str) -> None:
    """Two ``--resume`` at once: one runs the batch, the other is refused (None)."""
    stores = [open_store(location) for _ in range(2)]
    got: list[BatchRecord | None] = []

    async def claim(store: Any) -> None:
        got.append(await store.claim_batch(_record()))

    async with anyio.create_task_group() as tg:
        for s in stores:
            tg.start_soon(claim, s)
    assert sorted(g is None for g in got) == [False, True]
    # once stopped, the batch can be taken over
    await stores[0].finish_batch("b", "cancelled")
    taken = await stores[1].claim_batch(_record())
    assert taken is not None and taken.status == "running"
    for s in stores:
        await s.aclose()


async def test_two_concurrent_claimers_never_take_the_same_item(location: str) -> None:
    """Two workers claiming 3 at a time until the queue is empty take every item exactly once."""
    first, second = open_store(location), open_store(location)
    await first.enqueue_items("b", _items(40))
    await first.enqueue_items("b", _items(5))  # queued again: left as they are
    taken: dict[str, list[int]] = {"w1": [], "w2": []}

    async def work(store: Any, owner: str) -> None:
        while batch := await store.claim_items("b", owner, 3, 60.0):
            taken[owner].extend(i.index for i in batch)
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(work, first, "w1")
        tg.start_soon(work, second, "w2")
    # no duplicates, none lost (how the 40 split between the two depends on scheduling)
    assert sorted(taken["w1"] + taken["w2"]) == list(range(40))
    assert await first.items_left("b") == 40  # claimed is not finished
    for s in (first, second):
        await s.aclose()


async def test_an_expired_lease_is_claimed_again_and_a_renewed_one_is_not(location: str) -> None:
    """A dead worker's items (lease ran out) go to another; a live worker renews and keeps
    its items; a finished item is never handed out again."""
    store = open_store(location)
    await store.enqueue_items("b", _items(3))
    claimed = await store.claim_items("b", "dead", 2, 0.0)
    assert [(i.index, i.line, i.run_id, i.inputs) for i in claimed] == [
        (0, 1, "run-0", {"x": 0}),
        (1, 2, "run-1", {"x": 1}),
    ]
    await anyio.sleep(0.01)  # let the zero-second lease run out
    assert [i.index for i in await store.claim_items("b", "alive", 10, 0.0)] == [0, 1, 2]
    await store.renew_items("b", "alive", 60.0)
    assert await store.claim_items("b", "other", 10, 60.0) == []

    await store.finish_item("b", 1)
    assert await store.items_left("b") == 2
    await store.renew_items("b", "alive", 0.0)
    await anyio.sleep(0.01)
    assert [i.index for i in await store.claim_items("b", "other", 10, 60.0)] == [0, 2]
    await store.finish_item("b", 0)
    await store.finish_item("b", 2)
    assert await store.items_left("b") == 0
    assert await store.claim_items("b", "other", 10, 0.0) == []
    await store.aclose()


async def test_an_item_queued_with_an_error_is_never_claimed(location: str) -> None:
    store = open_store(location)
    await store.enqueue_items("b", [QueuedItem(0, 1, None, None, error="bad json"), *_items(2)[1:]])
    assert [i.index for i in await store.claim_items("b", "w", 10, 60.0)] == [1]
    assert await store.items_left("b") == 1
    await store.aclose()


async def test_a_released_item_is_claimed_again_at_once(location: str) -> None:
    """An item given up unfinished (its run stopped on the budget) goes to the next claim
    without waiting for its lease; it is still left to do."""
    store = open_store(location)
    await store.enqueue_items("b", _items(2))
    assert [i.index for i in await store.claim_items("b", "w1", 2, 60.0)] == [0, 1]
    await store.release_item("b", 1)
    assert [i.index for i in await store.claim_items("b", "w2", 10, 60.0)] == [1]
    assert await store.items_left("b") == 2
    await store.aclose()
