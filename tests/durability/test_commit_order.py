"""A node's result is committed before any node that depends on it starts, also when the
results of many nodes finishing together are committed as one batch."""

from __future__ import annotations

from typing import Any

import pytest
from _catalog import one_per_tier

import dagtier
from dagtier.providers import CompletionRequest, PythonProvider
from dagtier.store import open_store

pytestmark = pytest.mark.anyio

# Three layers of eight: every node of a layer depends on three of the layer before, so a
# layer's nodes finish together and are saved in batches while the next layer waits.
WIDTH = 8
LAYERS = 3


def _workflow() -> Any:
    lines = ["name: layers", f"concurrency: {WIDTH}", "nodes:"]
    for k in range(LAYERS):
        for i in range(WIDTH):
            deps = [f"n{k - 1}_{(i + j) % WIDTH}" for j in range(3)] if k else []
            lines.append(f"  n{k}_{i}: {{prompt: 'p', depends_on: {deps}}}")
    return dagtier.parse_workflow("\n".join(lines) + "\n")


async def test_every_parent_is_committed_when_a_child_is_called(location: str) -> None:
    """When a node's model is called, another connection to the store already reads every
    one of its parents as committed."""
    wf = _workflow()
    observer = open_store(location)  # its own connection: sees committed data only
    unseen: dict[str, list[str]] = {}

    async def model(entry: Any, request: CompletionRequest) -> str:
        nid, run_id = request.metadata["node_id"], request.metadata["run_id"]
        parents = wf.nodes[nid].depends_on
        if parents:
            loaded = await observer.load_run(run_id)
            committed = loaded[1] if loaded is not None else {}
            unseen[nid] = [p for p in parents if p not in committed]
        return "ok"

    store = open_store(location)
    try:
        result = await dagtier.run(
            wf,
            catalog=one_per_tier("py"),
            providers={"python": PythonProvider(model)},
            store=store,
        )
    finally:
        await store.aclose()
        await observer.aclose()
    assert result.ok
    assert unseen == {f"n{k}_{i}": [] for k in range(1, LAYERS) for i in range(WIDTH)}
