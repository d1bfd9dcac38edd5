"""A cascade does not pay twice for the same model when two tiers are served by it."""

from __future__ import annotations

import pytest
from _catalog import make_catalog

import dagtier

pytestmark = pytest.mark.anyio

WF = """
name: same_model
nodes:
  n:
    prompt: answer
    output: json
    policy: {kind: cascade, start: 1, max: 3}
"""


def _catalog(tiers: dict[int, list[str]]) -> dagtier.Catalog:
    return make_catalog(
        tiers, {m: {"price": {"input": 1, "output": 1}} for t in tiers.values() for m in t}
    )


async def test_a_tier_sharing_the_previous_tiers_model_is_not_paid_again() -> None:
    """Tier 2 serves the same model as tier 1 (as when both fall back to the local model):
    after tier 1 fails, tier 2 counts as tried and tier 3's own model answers next."""
    calls: list[str] = []

    def model(entry: dagtier.ModelEntry, request: dagtier.CompletionRequest) -> str:
        calls.append(entry.model)
        return "not json"

    wf = dagtier.parse_workflow(WF)
    result = await dagtier.run(
        wf,
        catalog=_catalog({1: ["a"], 2: ["a"], 3: ["b"]}),
        providers={"python": dagtier.PythonProvider(model)},
    )
    node = result["n"]
    assert calls == ["a", "b"]
    assert node.status == "failed"
    assert [a.tier for a in node.attempts] == [1, 3]
    assert node.decision is not None and "same model(s) as tier 1" in node.decision


async def test_every_tier_on_one_model_makes_one_call() -> None:
    """No API key at all: all tiers share one model, so a failing answer is final."""
    calls: list[str] = []

    def model(entry: dagtier.ModelEntry, request: dagtier.CompletionRequest) -> str:
        calls.append(entry.model)
        return "not json"

    cat = _catalog({1: ["a"], 2: ["a"], 3: ["a"]})
    result = await dagtier.run(
        dagtier.parse_workflow(WF), catalog=cat, providers={"python": dagtier.PythonProvider(model)}
    )
    assert calls == ["a"]
    assert result["n"].status == "failed"


async def test_distinct_models_still_escalate_one_tier_at_a_time() -> None:
    """With a different model on each tier, every failing tier escalates to the next."""
    calls: list[str] = []

    def model(entry: dagtier.ModelEntry, request: dagtier.CompletionRequest) -> str:
        calls.append(entry.model)
        return '{"ok": true}' if entry.model == "b" and len(calls) == 3 else "not json"

    cat = _catalog({1: ["a"], 2: ["m"], 3: ["b"]})
    result = await dagtier.run(
        dagtier.parse_workflow(WF), catalog=cat, providers={"python": dagtier.PythonProvider(model)}
    )
    assert calls == ["a", "m", "b"]
    assert result["n"].status == "succeeded" and result["n"].tier == 3
