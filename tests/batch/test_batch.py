"""dagtier.run_batch: every item a durable run on one shared gateway, store and budget."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

import dagtier
from dagtier import RunError, SpecError
from dagtier.batch import read_items
from dagtier.catalog import Catalog, catalog_from_dict
from dagtier.providers import CompletionRequest, Gateway, ProviderRegistry, PythonProvider
from dagtier.store import open_store

pytestmark = pytest.mark.anyio

PRICE = {"input": 1.0, "output": 2.0}

WF = """
name: triage
inputs: {ticket: string, priority: {type: integer, default: 3}}
nodes:
  label: {prompt: "label {{ inputs.ticket }}"}
  reply: {prompt: "reply to {{ inputs.ticket }} as {{ label }}", depends_on: [label]}
outputs: {answer: "{{ reply }}"}
"""


def catalog(**limits: Any) -> Catalog:
    models: dict[str, Any] = {
        f"py{t}": {"provider": "python", "model": f"py-{t}", "price": PRICE, **limits}
        for t in (1, 2, 3)
    }
    return catalog_from_dict({"models": models, "tiers": {1: ["py1"], 2: ["py2"], 3: ["py3"]}})


class Model:
    """An in-process model counting the calls it answered, per prompt."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.in_flight = 0
        self.most_in_flight = 0

    async def __call__(self, model: Any, request: CompletionRequest) -> str:
        prompt = request.messages[-1].content
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await anyio.lowlevel.checkpoint()
        finally:
            self.in_flight -= 1
        self.calls[prompt] += 1
        return f"<{prompt}>"


def gateway(model: Model, **limits: Any) -> Gateway:
    return Gateway(catalog(**limits), ProviderRegistry({"python": PythonProvider(model)}))


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


async def test_every_item_is_a_durable_run_with_its_outputs(tmp_path: Path) -> None:
    """Each item becomes a run in the store; results carry index, run id, outputs, tiers."""
    wf = dagtier.parse_workflow(WF)
    items = write_jsonl(tmp_path / "items.jsonl", [{"ticket": f"t{i}"} for i in range(25)])
    store = open_store(tmp_path / "runs.db")
    model = Model()
    got: list[dagtier.ItemResult] = []
    summary = await dagtier.run_batch(
        wf, items, store=store, gateway=gateway(model), concurrency=4, on_result=got.append
    )
    assert summary.status == "finished" and summary.succeeded == 25 and summary.total == 25
    assert sorted(r.index for r in got) == list(range(25))
    for r in got:
        assert r.status == "succeeded"
        assert r.outputs == {"answer": f"<reply to t{r.index} as <label t{r.index}>>"}
        assert r.tiers == {"label": 1, "reply": 1}
        assert r.cost > 0
        record, nodes = (await store.load_run(r.run_id)) or (None, {})
        assert (
            record is not None and record.status == "succeeded" and set(nodes) == {"label", "reply"}
        )
    batch = await store.load_batch(summary.batch_id)
    assert batch is not None
    assert [it.run_id for it in batch[1]] == [r.run_id for r in sorted(got, key=lambda r: r.index)]
    assert summary.cost == pytest.approx(sum(r.cost for r in got))
    await store.aclose()


async def test_concurrency_bounds_the_runs_in_flight(tmp_path: Path) -> None:
    """At most `concurrency` items run at once; each run's nodes still follow its DAG."""
    wf = dagtier.parse_workflow(WF)
    model = Model()
    started: list[str] = []
    running = {"now": 0, "most": 0}

    def watch(event: Any) -> None:
        if isinstance(event, dagtier.events.RunStarted):
            started.append(event.run_id)
            running["now"] += 1
            running["most"] = max(running["most"], running["now"])
        elif isinstance(event, dagtier.events.RunFinished):
            running["now"] -= 1

    summary = await dagtier.run_batch(
        wf,
        [{"ticket": str(i)} for i in range(30)],
        gateway=gateway(model),
        concurrency=3,
        subscribers=[watch],
    )
    assert summary.succeeded == 30 and len(started) == 30
    assert running["most"] == 3


async def test_a_missing_input_fails_that_item_and_the_rest_go_on(tmp_path: Path) -> None:
    """An item without a required input is `invalid`, named; the others run."""
    wf = dagtier.parse_workflow(WF)
    rows: list[Any] = [{"ticket": "a"}, {"priority": 1}, {"ticket": "c", "priority": "high"}]
    got: dict[int, dagtier.ItemResult] = {}
    summary = await dagtier.run_batch(
        wf, rows, gateway=gateway(Model()), on_result=lambda r: got.__setitem__(r.index, r)
    )
    assert summary.succeeded == 1 and summary.invalid == 2 and summary.status == "finished"
    assert got[0].status == "succeeded"
    assert got[1].status == "invalid" and got[1].run_id is None
    assert got[1].error == "required input 'ticket' was not given"
    assert got[2].status == "invalid" and "expected integer, got 'high'" in (got[2].error or "")


def test_read_items_names_malformed_lines(tmp_path: Path) -> None:
    """JSON lines: blank lines are not items, malformed ones carry their line number."""
    path = tmp_path / "items.jsonl"
    path.write_text('{"ticket": "a"}\n\n{"ticket": \n[1, 2]\n{"ticket": "e"}\n')
    items = list(read_items(path))
    assert [(i.index, i.line) for i in items] == [(0, 1), (1, 3), (2, 4), (3, 5)]
    assert items[0].values == {"ticket": "a"} and items[3].values == {"ticket": "e"}
    assert items[1].error is not None and items[1].error.startswith("not valid JSON")
    assert items[2].error == "expected a JSON object of input names to values, got list"


def test_read_items_from_csv(tmp_path: Path) -> None:
    """CSV: a header of input names; empty cells are not given; a too-long row is named."""
    path = tmp_path / "items.csv"
    path.write_text('ticket,priority\nhello,2\n"multi\nline",\nx,1,extra\n')
    items = list(read_items(path))
    assert [(i.index, i.line) for i in items] == [(0, 2), (1, 3), (2, 5)]
    assert items[0].values == {"ticket": "hello", "priority": "2"}
    assert items[1].values == {"ticket": "multi\nline"}
    assert items[2].error == "the row has 3 fields, the header only 2"


async def test_a_malformed_line_stops_the_batch_before_anything_runs(tmp_path: Path) -> None:
    """on_bad_item='stop' names every malformed line and runs nothing; 'skip' runs the rest."""
    wf = dagtier.parse_workflow(WF)
    path = tmp_path / "items.jsonl"
    path.write_text('{"ticket": "a"}\nnot json\n{"ticket": "c"}\n"str"\n')
    model = Model()
    with pytest.raises(SpecError) as info:
        await dagtier.run_batch(wf, path, gateway=gateway(model))
    assert [(i.line, i.code) for i in info.value.issues] == [(2, "bad-item"), (4, "bad-item")]
    assert not model.calls
    got: list[dagtier.ItemResult] = []
    summary = await dagtier.run_batch(
        wf, path, gateway=gateway(model), on_bad_item="skip", on_result=got.append
    )
    assert summary.succeeded == 2 and summary.invalid == 2
    assert sorted((r.line, r.status) for r in got) == [
        (1, "succeeded"),
        (2, "invalid"),
        (3, "succeeded"),
        (4, "invalid"),
    ]


async def test_the_budget_is_shared_by_the_whole_batch(tmp_path: Path) -> None:
    """A batch budget holds across runs (each keeping its own workflow budget too): spending
    never passes it, no new item starts, the runs it stopped end budget_exhausted, and a
    resume with a larger budget finishes them."""
    # all 60 items cost about $0.0018 at these prices; a call's worst case (100 output
    # tokens) is about $0.0002, so $0.001 stops the batch part-way
    wf = dagtier.parse_workflow(WF + "budget: 1.0\ndefaults: {max_tokens: 100}\n")
    model = Model()
    store = open_store(tmp_path / "runs.db")
    rows = [{"ticket": str(i)} for i in range(60)]
    got: list[dagtier.ItemResult] = []
    summary = await dagtier.run_batch(
        wf,
        rows,
        store=store,
        gateway=gateway(model),
        concurrency=4,
        budget=0.001,
        batch_id="b-budget",
        on_result=got.append,
    )
    assert summary.status == "budget_exhausted"
    assert summary.error is not None and summary.error.startswith("batch budget $0.001000")
    assert summary.cost <= 0.001
    assert 0 < summary.succeeded < 60
    stopped = [r for r in got if r.status == "budget_exhausted"]
    assert stopped and all(r.error and "batch budget" in r.error for r in stopped)
    summary = await dagtier.run_batch(
        wf, rows, store=store, gateway=gateway(model), budget=1.0, resume="b-budget"
    )
    assert summary.status == "finished" and summary.succeeded == 60
    # every node of every item answered exactly once over both sessions
    assert len(model.calls) == 120 and set(model.calls.values()) == {1}
    await store.aclose()


async def test_resume_finishes_a_cancelled_batch_without_paying_twice(tmp_path: Path) -> None:
    """Cancelled mid-way, the batch resumes: finished items are reported, not rerun; every
    node the store committed is never called again."""
    wf = dagtier.parse_workflow(WF)
    items = write_jsonl(tmp_path / "items.jsonl", [{"ticket": f"t{i}"} for i in range(40)])
    store = open_store(tmp_path / "runs.db")
    model = Model()
    first: list[dagtier.ItemResult] = []
    batch_id = "b-test"
    with anyio.move_on_after(10) as scope:

        async def collect(r: dagtier.ItemResult) -> None:
            first.append(r)
            if len(first) == 10:
                scope.cancel()

        await dagtier.run_batch(
            wf,
            items,
            store=store,
            gateway=gateway(model),
            concurrency=4,
            batch_id=batch_id,
            on_result=collect,
        )
    assert len(first) >= 10
    loaded = await store.load_batch(batch_id)
    assert loaded is not None and loaded[0].status == "cancelled"
    assert "cancelled" in {it.status for it in loaded[1]}  # runs stopped mid-way resume
    calls_before = Counter(model.calls)
    second: list[dagtier.ItemResult] = []
    summary = await dagtier.run_batch(
        wf, items, store=store, gateway=gateway(model), resume=batch_id, on_result=second.append
    )
    assert summary.status == "finished" and summary.succeeded == 40
    assert sorted(r.index for r in second) == list(range(40))
    assert {r.index for r in second if r.resumed} >= {r.index for r in first}
    for prompt, n in model.calls.items():
        assert n == 1, f"{prompt!r} was called {n} times"
    assert sum(calls_before.values()) < sum(model.calls.values())
    await store.aclose()


async def test_resume_refuses_a_changed_items_file(tmp_path: Path) -> None:
    """Item numbers must keep meaning the same items: a changed file is refused."""
    wf = dagtier.parse_workflow(WF)
    items = write_jsonl(tmp_path / "items.jsonl", [{"ticket": "a"}])
    store = open_store(tmp_path / "runs.db")
    summary = await dagtier.run_batch(wf, items, store=store, gateway=gateway(Model()))
    write_jsonl(items, [{"ticket": "b"}])
    with pytest.raises(RunError, match="changed since it started"):
        await dagtier.run_batch(
            wf, items, store=store, gateway=gateway(Model()), resume=summary.batch_id
        )
    await store.aclose()


async def test_batch_results_iterates_as_items_finish() -> None:
    """The async iterator yields every item's result."""
    wf = dagtier.parse_workflow(WF)
    seen = []
    async with dagtier.batch_results(
        wf, [{"ticket": str(i)} for i in range(12)], gateway=gateway(Model()), concurrency=3
    ) as results:
        async for r in results:
            seen.append(r.index)
    assert sorted(seen) == list(range(12))


async def test_adaptive_nodes_learn_as_the_batch_goes(tmp_path: Path) -> None:
    """Every run writes the batch's one store: an adaptive node whose tier 1 keeps failing
    its check stops starting there after the first items."""
    wf = dagtier.parse_workflow(
        """
name: learn
inputs: {ticket: string}
nodes:
  label:
    prompt: "label {{ inputs.ticket }}"
    policy: {kind: adaptive}
    checks:
      - {type: regex, pattern: "^ok"}
"""
    )
    tier1_by_item: Counter[int] = Counter()

    def answer(model: Any, request: CompletionRequest) -> str:
        if model.model == "py-1":
            tier1_by_item[int(request.messages[-1].content.split("t")[-1])] += 1
            return "unsure"
        return "ok"

    gw = Gateway(catalog(), ProviderRegistry({"python": PythonProvider(answer)}))
    store = open_store(tmp_path / "runs.db")
    summary = await dagtier.run_batch(
        wf, [{"ticket": f"t{i}"} for i in range(40)], store=store, gateway=gw, concurrency=1
    )
    assert summary.succeeded == 40
    first = sum(tier1_by_item[i] for i in range(5))
    last = sum(tier1_by_item[i] for i in range(30, 40))
    assert first == 5  # nothing learnt yet: every item tries tier 1 first
    assert last <= 5  # tier 1 ruled out: only exploration (5% of runs) still tries it
    stats = await store.tier_stats("learn/label")
    assert stats[1].observations >= 5 and stats[2].observations >= 30
    await store.aclose()
