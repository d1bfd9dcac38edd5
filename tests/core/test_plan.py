"""The compiled plan: worked out once per (workflow, catalog), shared by any number of runs,
and what the policy models know about themselves."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest
from core_helpers import gateway_for, python_catalog

import dagtier
from dagtier import DagtierUsageError
from dagtier.events import Event, RunStarted
from dagtier.providers import CompletionRequest
from dagtier.spec.models import AdaptivePolicy, CascadePolicy, StaticPolicy

pytestmark = pytest.mark.anyio

WF = """
name: review
inputs:
  code: string
nodes:
  critique:
    prompt: "Critique {{ inputs.code }}"
    policy: {kind: cascade, start: 1, max: 2}
  fix:
    prompt: "Fix {{ inputs.code }} given {{ critique }}"
    depends_on: [critique]
    output: {schema: {type: object, required: [code]}}
  title:
    prompt: "A title"
    policy: {kind: static, tier: 3}
outputs:
  fixed: "{{ fix.code }}"
"""


def echo(_: Any, request: CompletionRequest) -> str:
    """The model answers with what it was asked: a run's outputs show its inputs."""
    text = request.messages[-1].content
    if request.metadata["node_id"] == "fix":
        return json.dumps({"code": text})
    return text


def test_a_plan_holds_order_children_settings_and_references() -> None:
    plan = dagtier.compile_workflow(dagtier.parse_workflow(WF), python_catalog())
    assert plan.order == ("critique", "title", "fix")
    assert plan.children == {"critique": ("fix",), "title": (), "fix": ()}
    assert plan.indegree == {"critique": 0, "title": 0, "fix": 1}
    fix = plan.nodes["fix"]
    assert fix.refs == ("critique",) and fix.inputs_read == ("code",)
    assert fix.task_key == "review/fix"
    assert fix.json_schema == {"type": "object", "required": ["code"]}
    assert fix.checks.json_output and fix.tiers_used == (1,)
    assert plan.nodes["critique"].tiers_used == (1, 2)
    assert plan.nodes["title"].static is not None  # no template: one message for every run
    assert plan.outputs["fixed"][1] == frozenset({"fix"})


async def test_one_plan_serves_concurrent_runs_with_different_inputs_as_separate_runs_would() -> (
    None
):
    wf = dagtier.parse_workflow(WF)
    gateway = gateway_for(echo)
    plan = dagtier.compile_workflow(wf, gateway.catalog)
    codes = [f"x = {i}" for i in range(30)]
    shared: dict[str, dagtier.RunResult] = {}

    async def one(code: str) -> None:
        shared[code] = await dagtier.run(plan, {"code": code}, gateway=gateway)

    async with anyio.create_task_group() as tg:
        for code in codes:
            tg.start_soon(one, code)
    for code in codes[:3]:  # each compiled on its own, one after another
        alone = await dagtier.run(wf, {"code": code}, gateway=gateway)
        assert alone.outputs == shared[code].outputs
        assert {n: r.output for n, r in alone.nodes.items()} == {
            n: r.output for n, r in shared[code].nodes.items()
        }
    for code in codes:
        r = shared[code]
        assert r.ok
        assert r.outputs == {"fixed": f"Fix {code} given Critique {code}"}
    assert len({r.run_id for r in shared.values()}) == len(codes)


async def test_a_run_announces_the_plan_it_executes() -> None:
    seen: list[Event] = []
    gateway = gateway_for(echo)
    plan = dagtier.compile_workflow(dagtier.parse_workflow(WF), gateway.catalog)
    await dagtier.run(plan, {"code": "y"}, gateway=gateway, subscribers=[seen.append])
    started = [e for e in seen if isinstance(e, RunStarted)]
    assert started[0].plan is plan


async def test_a_plan_compiled_for_another_catalog_is_refused() -> None:
    plan = dagtier.compile_workflow(dagtier.parse_workflow(WF), python_catalog())
    with pytest.raises(DagtierUsageError, match="another catalog"):
        await dagtier.run(plan, {"code": "y"}, gateway=gateway_for(echo))


async def test_run_names_both_things_it_takes() -> None:
    with pytest.raises(DagtierUsageError, match=r"Workflow .* or a Plan"):
        await dagtier.run("review.yaml", {})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("policy", "tiers", "label"),
    [
        (StaticPolicy(kind="static", tier=2), (2,), "static T2"),
        (CascadePolicy(kind="cascade", start=1, max=2), (1, 2), "cascade T1→T2"),
        (AdaptivePolicy(kind="adaptive", min_tier=2), (2, 3), "adaptive T2–T3 ≥0.9"),
    ],
)
def test_a_policy_knows_its_tiers_and_label(
    policy: Any, tiers: tuple[int, ...], label: str
) -> None:
    assert policy.tiers == tiers
    assert (policy.start_tier, policy.top_tier) == (tiers[0], tiers[-1])
    assert [t for t in (1, 2, 3) if policy.may_use(t)] == list(tiers)
    assert policy.label == label
