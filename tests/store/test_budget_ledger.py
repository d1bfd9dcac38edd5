"""A budget's ledger in the store (``dagtier batch --ray --budget``), on a real SQLite file
and a real PostgreSQL database. Concurrent reservers use a store each: their own connection,
as two Ray actors have."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from dagtier import BudgetExhausted
from dagtier.budget import Budget, StoreBudget
from dagtier.store import BudgetLedger, open_store

pytestmark = pytest.mark.anyio


async def test_every_durable_store_keeps_budgets(location: str) -> None:
    store = open_store(location)
    assert isinstance(store, BudgetLedger)
    assert await store.reclaim_budget("none") is None
    await store.aclose()


async def test_reservers_on_separate_connections_never_pass_the_limit_together(
    location: str,
) -> None:
    """Four stores each try to hold 0.3 ten times at once against a limit of 1.0: exactly
    three holds are granted (3 x 0.3 <= 1.0 < 4 x 0.3), whatever the interleaving."""
    stores = [open_store(location) for _ in range(4)]
    await stores[0].open_budget("b", 1.0)
    granted: list[str] = []

    async def reserve(store: Any, who: int) -> None:
        for n in range(10):
            hold = f"{who}-{n}"
            if await store.reserve_budget("b", hold, f"w{who}", 0.3, 60.0):
                granted.append(hold)

    async with anyio.create_task_group() as tg:
        for who, s in enumerate(stores):
            tg.start_soon(reserve, s, who)
    assert len(granted) == 3
    state = await stores[0].reclaim_budget("b")
    assert state is not None
    assert (state.limit, state.spent, state.reserved) == pytest.approx((1.0, 0.0, 0.9))
    for s in stores:
        await s.aclose()


async def test_settling_spends_the_real_cost_and_frees_the_rest(location: str) -> None:
    store = open_store(location)
    await store.open_budget("b", 1.0)
    assert await store.reserve_budget("b", "h1", "w", 0.6, 60.0)
    assert not await store.reserve_budget("b", "h2", "w", 0.6, 60.0)
    await store.settle_budget("h1", 0.25)
    await store.settle_budget("h1", 0.25)  # settling twice changes nothing
    assert await store.reserve_budget("b", "h2", "w", 0.6, 60.0)
    state = await store.reclaim_budget("b")
    assert state is not None
    assert (state.spent, state.reserved) == pytest.approx((0.25, 0.6))
    await store.aclose()


async def test_a_dead_holders_holds_count_as_spent_in_full(location: str) -> None:
    """A holder that stops renewing (killed) leaves holds that, once their lease ran out,
    count as spent at their full amount: the provider may have billed those calls. Its
    late settle changes nothing; a live holder's renewed hold is kept."""
    store = open_store(location)
    await store.open_budget("b", 1.0)
    assert await store.reserve_budget("b", "dead-1", "dead", 0.4, 0.0)
    assert await store.reserve_budget("b", "live-1", "live", 0.3, 0.0)
    await store.renew_budget("b", "live", 60.0)
    await anyio.sleep(0.01)  # the dead holder's zero-second lease runs out
    state = await store.reclaim_budget("b")
    assert state is not None
    assert (state.spent, state.reserved) == pytest.approx((0.4, 0.3))
    await store.settle_budget("dead-1", 0.01)  # too late: counted at its worst case
    await store.settle_budget("live-1", 0.1)
    state = await store.reclaim_budget("b")
    assert state is not None
    assert (state.spent, state.reserved) == pytest.approx((0.5, 0.0))
    await store.aclose()


async def test_reopening_a_budget_sets_its_limit_and_never_lowers_its_spending(
    location: str,
) -> None:
    """A resume with a larger --budget raises the limit; what the ledger knows was spent
    stays, and rises to what the batch's runs cost if the ledger knew less."""
    store = open_store(location)
    await store.open_budget("b", 1.0)
    assert await store.reserve_budget("b", "h", "w", 0.5, 60.0)
    await store.settle_budget("h", 0.5)
    await store.open_budget("b", 2.0, spent=0.2)
    state = await store.reclaim_budget("b")
    assert state is not None
    assert (state.limit, state.spent) == pytest.approx((2.0, 0.5))
    await store.open_budget("b", 2.0, spent=0.7)
    state = await store.reclaim_budget("b")
    assert state is not None and state.spent == pytest.approx(0.7)
    await store.aclose()


async def test_run_budgets_in_two_processes_share_one_store_budget(location: str) -> None:
    """Run budgets drawing on StoreBudgets of one ledger (as two actors' runs do): a call
    that fits only once another holder's call settles waits for it; one that cannot fit
    even with nothing in flight stops the run with the batch's limit named."""
    a_store, b_store = open_store(location), open_store(location)
    await a_store.open_budget("batch", 1.0)
    a = StoreBudget(a_store, "batch", holder="a", poll_s=0.05)
    b = StoreBudget(b_store, "batch", holder="b", poll_s=0.05)
    run_a, run_b = Budget(None, parent=a), Budget(None, parent=b)
    ta = await run_a.reserve(0.7, "n")
    got: list[Any] = []

    async def wait_for_room() -> None:
        got.append(await run_b.reserve(0.5, "n"))

    async with anyio.create_task_group() as tg:
        tg.start_soon(wait_for_room)
        await anyio.sleep(0.2)
        assert got == []  # 0.7 held + 0.5 > 1.0: waits, not exhausted
        settled = run_a.settle(ta, 0.3)
        assert settled is not None
        await settled
    assert run_a.spent == pytest.approx(0.3)
    with pytest.raises(BudgetExhausted, match=r"batch budget \$1\.000000 exhausted"):
        await run_a.reserve(0.8, "n")  # 0.3 spent + 0.8 > 1.0 even with nothing in flight
    assert run_a.exhausted is not None and a.exhausted is not None
    assert run_a.reserved == 0.0  # the refused call holds nothing in the run either
    done = run_b.settle(got[0], 0.5)
    assert done is not None
    await done
    state = await a_store.reclaim_budget("batch")
    assert state is not None
    assert (state.spent, state.reserved) == pytest.approx((0.8, 0.0))
    for s in (a_store, b_store):
        await s.aclose()
