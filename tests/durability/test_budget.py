"""Budgets: concurrent calls never spend past the budget; an exhausted run resumes."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from _catalog import one_per_tier

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
    assert result.status == "budget_exhausted"  # 32 worst cases never fit 20
    assert "budget" in (result.error or "") and "--resume" in (result.error or "")
    ran = {n for n, r in result.nodes.items() if r.ok}
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


def test_reserve_and_settle_account_exactly() -> None:
    """Reservations hold money until settled to the actual amount."""
    b = Budget(1.0)
    t1 = b.reserve(0.6)
    with pytest.raises(dagtier.BudgetExhausted, match="held by calls in flight"):
        b.reserve(0.5)
    b.settle(t1, 0.1)
    b.settle(t1, 0.1)  # settling twice changes nothing
    t2 = b.reserve(0.5)
    assert (b.spent, b.reserved, b.remaining) == pytest.approx((0.1, 0.5, 0.4))
    b.settle(t2, 0.0)
    assert b.remaining == pytest.approx(0.9)


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
    limits = {f"run-{i:02d}": (1.0 if i % 2 else worst * (1 + i % 5)) for i in range(50)}
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
        else:  # 8 worst cases never fit 5
            assert r.status == "budget_exhausted"


def test_a_parent_budget_bounds_its_runs_together() -> None:
    """Two run budgets drawing on one parent: a call that fits its run but not the parent is
    refused and names the parent; settling frees both."""
    batch = Budget(1.0, scope="batch")
    a, b = Budget(None, parent=batch), Budget(0.8, parent=batch)
    ta = a.reserve(0.6)
    with pytest.raises(dagtier.BudgetExhausted, match=r"^batch budget \$1\.000000 exhausted"):
        b.reserve(0.5)
    assert b.exhausted is not None and b.reserved == 0.0 and batch.reserved == 0.6
    a.settle(ta, 0.1)
    assert batch.spent == 0.1 and batch.reserved == 0.0
    tb = b.reserve(0.5)
    b.settle(tb, 0.5)
    assert (batch.spent, b.spent, a.spent) == (0.6, 0.5, 0.1)
