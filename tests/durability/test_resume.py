"""Resume: finished nodes are never paid for twice; an edit under them is refused or forced."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from _catalog import one_per_tier

import dagtier
from dagtier import RunError
from dagtier.providers import CompletionRequest, PythonProvider
from dagtier.store import open_store

pytestmark = pytest.mark.anyio


WF = """
name: chain
inputs: {topic: string}
nodes:
  a: {prompt: "facts about {{ inputs.topic }}"}
  b: {prompt: "B from {{ a }}", depends_on: [a]}
  c: {prompt: "C from {{ b }}", depends_on: [b]}
  side: {prompt: "side"}
outputs: {final: "{{ c }}"}
"""


class Model:
    """Answers with a deterministic text; fails the nodes listed in ``broken``."""

    def __init__(self, broken: set[str] = frozenset()) -> None:  # type: ignore[assignment]
        self.calls: Counter[str] = Counter()
        self.broken = set(broken)

    def __call__(self, model: Any, request: CompletionRequest) -> str:
        nid = request.metadata["node_id"]
        self.calls[nid] += 1
        if nid in self.broken:
            raise dagtier.BadRequest(
                "scripted failure", provider="python", model=model.model, status_code=400
            )
        return f"<{nid}:{request.messages[0].content}>"


async def _run(wf: Any, store_path: str, model: Model, **kw: Any) -> dagtier.RunResult:
    store = open_store(store_path)
    try:
        return await dagtier.run(
            wf,
            kw.pop("inputs", None),
            catalog=one_per_tier("py"),
            providers={"python": PythonProvider(model)},
            store=store,
            **kw,
        )
    finally:
        await store.aclose()


async def test_resume_runs_only_what_failed_and_reads_the_rest_from_the_file(location: str) -> None:
    """After a failure at c, resuming from a reopened file calls only c, and outputs are whole."""
    wf = dagtier.parse_workflow(WF)
    db = location
    first = Model(broken={"c"})
    r1 = await _run(wf, db, first, inputs={"topic": "owls"})
    assert r1.status == "failed" and r1["c"].status == "failed"
    second = Model()
    r2 = await _run(wf, db, second, resume=r1.run_id)
    assert r2.run_id == r1.run_id and r2.status == "succeeded"
    assert second.calls == Counter({"c": 1})
    assert r2.outputs == {"final": "<c:C from <b:B from <a:facts about owls>>>"}
    assert r2["a"].to_dict() == r1["a"].to_dict()


async def test_resume_after_an_edit_is_refused_naming_the_nodes(location: str) -> None:
    """Editing b's prompt under a finished b refuses the resume and names b (edited) and c."""
    db = location
    r1 = await _run(
        dagtier.parse_workflow(WF), db, Model(broken={"side"}), inputs={"topic": "owls"}
    )
    edited = dagtier.parse_workflow(WF.replace("B from", "Bee from"))
    with pytest.raises(RunError) as info:
        await _run(edited, db, Model(), resume=r1.run_id)
    msg = str(info.value)
    assert "edited b;" in msg and "finished nodes b, c were run" in msg and "--force" in msg


async def test_force_reruns_exactly_the_edited_nodes_and_descendants(location: str) -> None:
    """With force, b and c run again; a is kept; the failed side node runs too."""
    db = location
    r1 = await _run(
        dagtier.parse_workflow(WF), db, Model(broken={"side"}), inputs={"topic": "owls"}
    )
    edited = dagtier.parse_workflow(WF.replace("B from", "Bee from"))
    again = Model()
    r2 = await _run(edited, db, again, resume=r1.run_id, force=True)
    assert r2.status == "succeeded"
    assert again.calls == Counter({"b": 1, "c": 1, "side": 1})


async def test_changing_an_input_a_finished_node_read_is_an_edit(location: str) -> None:
    """Resuming with another value for an input a finished node used is refused."""
    db = location
    r1 = await _run(
        dagtier.parse_workflow(WF), db, Model(broken={"side"}), inputs={"topic": "owls"}
    )
    with pytest.raises(RunError, match="edited a;"):
        await _run(
            dagtier.parse_workflow(WF), db, Model(), resume=r1.run_id, inputs={"topic": "cats"}
        )


async def test_resuming_an_unknown_run_says_where_to_look(location: str) -> None:
    """An unknown run id points at `dagtier runs`."""
    with pytest.raises(RunError, match="dagtier runs"):
        await _run(dagtier.parse_workflow(WF), location, Model(), resume="nope")


async def test_cache_hits_reuse_answers_for_free(location: str) -> None:
    """A cache: true node with the same rendered request is served from the cache at no cost."""
    wf = dagtier.parse_workflow(WF.replace("name: chain", "name: chain\ndefaults: {cache: true}"))
    db = location
    await _run(wf, db, Model(), inputs={"topic": "owls"})
    second = Model()
    r2 = await _run(wf, db, second, inputs={"topic": "owls"})
    assert second.calls == Counter()
    assert {r.status for r in r2.nodes.values()} == {"cached"}
    assert all(r.cache_hit for r in r2.nodes.values()) and r2.cost == 0
    assert r2.outputs == {"final": "<c:C from <b:B from <a:facts about owls>>>"}
    third = Model()
    r3 = await _run(wf, db, third, inputs={"topic": "cats"})  # a's prompt differs, so all differ
    assert third.calls == Counter({"a": 1, "b": 1, "c": 1}) and r3["side"].status == "cached"
    fourth = Model()
    await _run(wf, db, fourth, inputs={"topic": "owls"}, cache_ttl_s=0.0)
    assert sum(fourth.calls.values()) == 4  # expired


async def test_cache_is_off_unless_asked(location: str) -> None:
    """Without cache: true every run calls the model."""
    db = location
    await _run(dagtier.parse_workflow(WF), db, Model(), inputs={"topic": "owls"})
    again = Model()
    await _run(dagtier.parse_workflow(WF), db, again, inputs={"topic": "owls"})
    assert sum(again.calls.values()) == 4
