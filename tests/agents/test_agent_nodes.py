"""Agent nodes: a function (any framework) calls the model through dagtier on the tier the
node's policy chose; cascades rerun it a tier up; a LangGraph graph runs on dagtier's tiers."""

from __future__ import annotations

import json
from typing import Any

import demo_agents
import pytest
from _catalog import one_per_tier

import dagtier
from dagtier.providers import CompletionRequest, Gateway, ProviderRegistry, PythonProvider
from dagtier.providers.base import Completion, ToolCall

pytestmark = pytest.mark.anyio


def gateway(fn: Any) -> Gateway:
    return Gateway(one_per_tier("m"), ProviderRegistry({"python": PythonProvider(fn)}))


async def test_a_cascade_reruns_the_agent_one_tier_up() -> None:
    """The tier-1 run of the agent fails the node's check; the cascade runs the function
    again on tier 2. Each call it made is a turn of its attempt, and the node's cost is
    theirs."""
    demo_agents.SEEN_TIERS.clear()
    seen: list[tuple[str, str | None, str]] = []

    def model(m: Any, req: CompletionRequest) -> str:
        seen.append((m.model, req.system, req.messages[-1].content))
        return f"{m.model} says {req.messages[-1].content}"

    wf = dagtier.parse_workflow(
        """
name: agentic
inputs: {topic: string}
nodes:
  research:
    agent: demo_agents:two_step
    policy: {kind: cascade, start: 1, max: 3}
    checks: [{type: regex, pattern: "^m2 "}]
"""
    )
    res = await dagtier.run(wf, {"topic": "owls"}, gateway=gateway(model))
    node = res["research"]
    assert res.ok and node.tier == 2
    assert node.output == "m2 says answer from: m2 says plan for owls"
    assert demo_agents.SEEN_TIERS == [1, 2]
    assert [len(a.turns) for a in node.attempts] == [2, 2]
    assert [a.verdict for a in node.attempts] == ["fail", "pass"]
    assert node.cost == pytest.approx(sum(t.cost for a in node.attempts for t in a.turns))
    assert seen[1] == ("m1", "be brief", "answer from: m1 says plan for owls")


async def test_agent_failures_fail_the_node_with_paid_calls_kept() -> None:
    """An agent that raises fails its node naming the function, its paid call kept; a sync
    agent returning JSON in the same run succeeds and reads an upstream output."""
    wf = dagtier.parse_workflow(
        """
name: agentic
nodes:
  first: {prompt: hello}
  shaped: {agent: "demo_agents:sync_structured", depends_on: [first]}
  broken: {agent: "demo_agents:broken"}
"""
    )
    res = await dagtier.run(wf, gateway=gateway(lambda m, r: "hi"))
    assert res["shaped"].ok and res["shaped"].output == {"tier": 1, "upstream": "hi"}
    broken = res["broken"]
    assert broken.status == "failed"
    assert broken.error == "agent 'demo_agents:broken' raised RuntimeError: the agent fell over"
    assert len(broken.attempts[0].turns) == 1 and broken.cost > 0


async def test_a_langgraph_graph_runs_on_the_nodes_tier() -> None:
    """A real LangGraph graph calls a tool through DagtierChatModel.bind_tools: the model
    asks for the tool, LangGraph's ToolNode runs it, the result goes back, and the final
    answer is the node's; both model calls are on the node's tier and cost."""
    requests: list[CompletionRequest] = []

    def model(m: Any, req: CompletionRequest) -> Any:
        requests.append(req)
        if len(requests) == 1:
            call = ToolCall("call_1", "note_length", json.dumps({"text": "owls"}))
            return Completion("", m.model, dagtier.Usage(10, 5), tool_calls=(call,))
        (output,) = req.messages[-1].tool_outputs
        return f"it is {output.content} characters long"

    wf = dagtier.parse_workflow(
        """
name: graph
inputs: {topic: string}
nodes:
  ask: {agent: "demo_agents:langgraph_agent", policy: {kind: static, tier: 3}}
"""
    )
    res = await dagtier.run(wf, {"topic": "owls"}, gateway=gateway(model))
    node = res["ask"]
    assert res.ok, node.error
    assert node.output == "it is 4 characters long" and node.tier == 3
    assert [t.name for t in requests[0].tools] == ["note_length"]
    assert requests[0].tools[0].parameters["properties"]["text"]["type"] == "string"
    assert requests[1].messages[1].tool_calls[0].name == "note_length"
    assert [t.model for t in node.attempts[0].turns] == ["m3", "m3"]
    assert node.cost > 0
