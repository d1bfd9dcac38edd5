"""Budgets: concurrent calls never spend past the budget; an exhausted run resumes."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from _catalog import one_per_tier
from anyio import wait_all_tasks_blocked

import dagtier
from dagtier.budget import Budget
from dagtier.catalog import Usage
from dagtier.providers import CompletionRequest, Gateway, ProviderRegistry, PythonProvider
from dagtier.providers.base import Completion
from dagtier.store import MemoryStore, open_store

pytestmark = pytest.mark.anyio


def wide(n: int, max_tokens: int = 1000, extra: str = "") -> dagtier.Workflow:
    nodes = "\n".join(f"  n{i}: {{prompt: 'task {i} {'x' * (i * 7 % 40)}'}}" for i in range(n))
    return dagtier.parse_workflow(
        f"name: wide\nconcurrency: {n}\ndefaults: {{max_tokens: {max_tokens}}}\n{extra}nodes:\n{nodes}\n"
    )


class Billing:
    """A model that bills a random share of max_tokens after a random delay, and keeps the
    true total: what the provider would invoice."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.billed = 0.0
        self.calls: Counter[str] = Counter()

    async def __call__(self, model: Any, request: CompletionRequest) -> Completion:
        self.calls[request.metadata["node_id"]] += 1
        await anyio.sleep(self.rng.random() * 0.003)
        usage = Usage(-(-request.prompt_chars // 4), self.rng.randint(1, request.max_tokens))
        self.billed += (usage.input_tokens * 1.0 + usage.output_tokens * 2.0) / 1e6
        return Completion("ok", model.model, usage)


@pytest.mark.parametrize("seed", range(40))
async def test_concurrent_nodes_never_spend_past_the_budget(seed: int) -> None:
    """32 concurrent nodes against a budget that fits only some: spending stays within it."""
    rng = random.Random(seed)
    worst = (10 + 1000 * 2.0) / 1e6  # about one node's reservation
    limit = worst * rng.uniform(1.0, 20.0)
    model = Billing(rng)
    result = await dagtier.run(
        wide(32),
        catalog=one_per_tier("py"),
        providers={"python": PythonProvider(model)},
        budget=limit,
    )
    assert model.billed <= limit + 1e-12
    assert result.cost == pytest.approx(model.billed)
    ran = {n for n, r in result.nodes.items() if r.ok}
    if result.status == "succeeded":  # the actual costs (not the worst cases) all fitted
        assert len(ran) == 32
    else:  # stopped only when the next call could not fit even with nothing in flight
        assert result.status == "budget_exhausted"
        assert model.billed > limit - (48 / 4 + 1000 * 2.0) / 1e6  # a node's largest worst case
        assert "budget" in (result.error or "") and "--resume" in (result.error or "")
    assert ran == set(model.calls)
    assert all(r.status == "cancelled" for n, r in result.nodes.items() if n not in ran)


async def test_an_exhausted_run_resumes_with_a_larger_budget(tmp_path: Path) -> None:
    """A budget-exhausted run keeps its results; resumed with more money it finishes, calling
    no node twice, and its total spend (both invocations) stays within the larger budget."""
    model = Billing(random.Random(1))
    store = open_store(tmp_path / "runs.db")
    wf = wide(16, max_tokens=100)
    small = 5 * (10 + 200) / 1e6
    r1 = await dagtier.run(
        wf,
        catalog=one_per_tier("py"),
        providers={"python": PythonProvider(model)},
        store=store,
        budget=small,
    )
    assert r1.status == "budget_exhausted"
    first_calls = set(model.calls)
    r2 = await dagtier.run(
        wf,
        catalog=one_per_tier("py"),
        providers={"python": PythonProvider(model)},
        store=store,
        resume=r1.run_id,
        budget=1.0,
    )
    assert r2.status == "succeeded"
    assert all(c == 1 for c in model.calls.values()) and set(model.calls) == set(wf.nodes)
    assert first_calls < set(model.calls)
    runs = await store.list_runs()
    assert runs[0].cost == pytest.approx(model.billed)
    await store.aclose()


async def test_a_node_cap_fails_that_node_only() -> None:
    """A node whose cap cannot cover its call fails with the cap named; the others run."""
    wf = dagtier.parse_workflow(
        "name: caps\nnodes:\n"
        "  cheap: {prompt: hi, max_tokens: 10}\n"
        "  dear: {prompt: hi, max_tokens: 100000, budget: 0.01}\n"
    )
    model = Billing(random.Random(2))
    result = await dagtier.run(
        wf,
        catalog=one_per_tier("py"),
        providers={"python": PythonProvider(model)},
        store=MemoryStore(),
    )
    assert result["cheap"].status == "succeeded"
    assert result["dear"].status == "failed" and "budget cap $0.010000" in (
        result["dear"].error or ""
    )
    assert result.status == "failed" and set(model.calls) == {"cheap"}


async def test_a_reservation_waits_for_calls_in_flight_and_accounts_exactly() -> None:
    """A call that fits once the worst cases in flight settle waits for them instead of
    exhausting the budget; one that cannot fit even then is refused."""
    b = Budget(1.0)
    t1 = await b.reserve(0.6)
    got: list[Any] = []

    async def second() -> None:
        got.append(await b.reserve(0.5))

    async with anyio.create_task_group() as tg:
        tg.start_soon(second)
        await wait_all_tasks_blocked()
        assert got == [] and b.exhausted is None  # waiting: 0.6 is held, not spent
        b.settle(t1, 0.1)
    b.settle(t1, 0.1)  # settling twice changes nothing
    assert (b.spent, b.reserved, b.remaining) == pytest.approx((0.1, 0.5, 0.4))
    b.settle(got[0], 0.0)
    assert b.remaining == pytest.approx(0.9)
    with pytest.raises(dagtier.BudgetExhausted, match="exhausted"):
        await b.reserve(0.95)  # 0.1 spent + 0.95 > 1 whatever settles
    assert b.exhausted is not None


@pytest.mark.parametrize("seed", range(5))
async def test_concurrency_does_not_stop_a_budget_early(seed: int) -> None:
    """64 nodes at concurrency 32, a budget for about 20 worst cases: the run stops only
    when no call could fit even with nothing in flight, so it spends all but at most one
    worst case, and never more than the budget (issue 12 item 6: it stopped at 35%)."""
    rng = random.Random(seed)
    wf = wide(64)
    worst = max((-(-len(n.prompt) // 4) * 1.0 + 1000 * 2.0) / 1e6 for n in wf.nodes.values())
    limit = 20 * worst
    model = Billing(rng)
    result = await dagtier.run(
        wf,
        catalog=one_per_tier("py"),
        providers={"python": PythonProvider(model)},
        budget=limit,
        concurrency=32,
    )
    assert result.status == "budget_exhausted"
    assert limit - worst < model.billed <= limit + 1e-12
    assert result.cost == pytest.approx(model.billed)


async def test_fifty_budgeted_runs_share_one_gateway_each_with_its_own_budget() -> None:
    """50 concurrent runs on one gateway: each run's spend stays within its own budget and
    matches its own calls, and each run's node cap counts that run's calls only."""
    calls: Counter[tuple[str, str]] = Counter()
    billed: Counter[str] = Counter()
    rng = random.Random(50)

    async def model(entry: Any, request: CompletionRequest) -> Completion:
        run_id, node = request.metadata["run_id"], request.metadata["node_id"]
        calls[run_id, node] += 1
        await anyio.sleep(rng.random() * 0.002)
        usage = Usage(-(-request.prompt_chars // 4), rng.randint(1, request.max_tokens))
        billed[run_id] += (usage.input_tokens * 1.0 + usage.output_tokens * 2.0) / 1e6
        return Completion("ok", entry.model, usage)

    # 'once' reserves (1 + 100 * 2) / 1e6: its cap fits one call of one run, not two
    wf = dagtier.parse_workflow(
        "name: shared\nconcurrency: 8\ndefaults: {max_tokens: 1000}\nnodes:\n"
        + "".join(f"  n{i}: {{prompt: 'task {i}'}}\n" for i in range(8))
        + "  once: {prompt: hi, max_tokens: 100, budget: 0.0003}\n"
    )
    gateway = Gateway(one_per_tier("py"), ProviderRegistry({"python": PythonProvider(model)}))
    worst = (2 + 1000 * 2.0) / 1e6  # one wide node's reservation
    limits = {f"run-{i:02d}": (1.0 if i % 2 else worst * (1 + i % 5) / 5) for i in range(50)}
    results: dict[str, dagtier.RunResult] = {}

    async def one(run_id: str) -> None:
        results[run_id] = await dagtier.run(
            wf, gateway=gateway, run_id=run_id, budget=limits[run_id], store=MemoryStore()
        )

    async with anyio.create_task_group() as tg:
        for run_id in limits:
            tg.start_soon(one, run_id)
    await gateway.registry.aclose()

    for run_id, limit in limits.items():
        r = results[run_id]
        assert billed[run_id] <= limit + 1e-12
        assert r.cost == pytest.approx(billed[run_id], abs=1e-12)
        assert calls[run_id, "once"] <= 1
        if limit == 1.0:  # enough for everything: every node ran once, 'once' within its cap
            assert r.status == "succeeded", (run_id, r.error)
            assert all(calls[run_id, n] == 1 for n in wf.nodes)
        else:  # at most one worst case: 8 nodes never fit
            assert r.status == "budget_exhausted"


async def test_a_parent_budget_bounds_its_runs_together() -> None:
    """Two run budgets drawing on one parent: a call that fits its run but not the parent is
    refused and names the parent; one that fits once the other run's call settles waits."""
    batch = Budget(1.0, scope="batch")
    a, b = Budget(None, parent=batch), Budget(0.8, parent=batch)
    ta = await a.reserve(0.6)
    got: list[Any] = []

    async def in_b() -> None:
        got.append(await b.reserve(0.5))

    async with anyio.create_task_group() as tg:
        tg.start_soon(in_b)
        await wait_all_tasks_blocked()
        assert got == []  # waits for a's call: the batch holds 0.6 of 1.0 in flight
        a.settle(ta, 0.3)
    assert batch.spent == 0.3 and batch.reserved == pytest.approx(0.5)
    b.settle(got[0], 0.5)
    with pytest.raises(dagtier.BudgetExhausted, match=r"^batch budget \$1\.000000 exhausted"):
        await b.reserve(0.25)  # fits b (0.8), not the batch
    assert b.exhausted is not None and b.reserved == 0.0 and batch.reserved == 0.0
    assert (batch.spent, b.spent, a.spent) == pytest.approx((0.8, 0.5, 0.3))
