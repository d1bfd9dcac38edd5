"""Tool loops through the real anthropic and openai SDKs against a scripted loopback model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import demo_tools
import pytest
from _catalog import loopback_catalog
from _tool_server import USAGE_IN, USAGE_OUT, ToolServer, calls

import dagtier
from dagtier.providers import Gateway

pytestmark = pytest.mark.anyio

MODELS = ["a-tool", "o-tool"]
"""``a-`` models speak the Messages API, the others Chat Completions."""


@pytest.fixture(scope="module")
def _server() -> Iterator[ToolServer]:
    server = ToolServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server(_server: ToolServer, monkeypatch: pytest.MonkeyPatch) -> ToolServer:
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", "sk-ant-test")
    monkeypatch.setenv("TEST_OPENAI_KEY", "sk-test")
    _server.reset()
    demo_tools.MAX_PARALLEL = 0
    return _server


def gateway(server: ToolServer, tiers: dict[int, list[str]]) -> Gateway:
    return Gateway(loopback_catalog(server.base_url, tiers))


def flow(node: str, extra: str = "") -> dagtier.Workflow:
    return dagtier.parse_workflow(
        f"""
name: tools
nodes:
  answer:
    prompt: what colour are apples and bananas?
    tools: ["demo_tools:read_note", "demo_tools:count_words"]
{node}
{extra}
"""
    )


def tool_results(body: dict[str, Any]) -> list[tuple[str, bool]]:
    """(content, is_error) of the tool results a request sent back, in either API's form."""
    out = []
    for m in body["messages"]:
        if m["role"] == "tool":
            out.append((m["content"], m["content"].startswith("error:")))
        elif isinstance(m.get("content"), list):
            for b in m["content"]:
                if b.get("type") == "tool_result":
                    out.append((b["content"], bool(b.get("is_error"))))
    return out


@pytest.mark.parametrize("model", MODELS)
async def test_a_multi_turn_loop_with_parallel_calls(server: ToolServer, model: str) -> None:
    """The model calls two tools at once, then another, then answers: the calls run in
    parallel, each result goes back in the API's own format, and every turn is recorded."""
    server.script(
        model,
        [
            calls(("read_note", {"key": "a"}), ("read_note", {"key": "b"})),
            calls(("count_words", {"text": "apples are red", "minimum": 4})),
            "Apples are red; bananas are yellow.",
        ],
    )
    res = await dagtier.run(
        flow("    policy: {kind: static, tier: 1}"), gateway=gateway(server, {1: [model]})
    )
    node = res["answer"]
    assert res.ok and node.output == "Apples are red; bananas are yellow."
    assert demo_tools.MAX_PARALLEL == 2
    (att,) = node.attempts
    assert [[c.name for c in t.tool_calls] for t in att.turns] == [
        ["read_note", "read_note"],
        ["count_words"],
        [],
    ]
    assert all(not c.error and c.duration_s > 0 for t in att.turns for c in t.tool_calls)
    assert att.usage.input_tokens == 3 * USAGE_IN and att.usage.output_tokens == 3 * USAGE_OUT
    assert att.cost == pytest.approx(sum(t.cost for t in att.turns)) and att.cost > 0
    bodies = server.requests_for(model)
    assert len(bodies) == 3
    names = [t.get("name") or t["function"]["name"] for t in bodies[0]["tools"]]
    assert names == ["read_note", "count_words"]
    assert tool_results(bodies[1]) == [("apples are red", False), ("bananas are yellow", False)]
    assert tool_results(bodies[2])[-1] == (json.dumps({"words": 1}), False)


@pytest.mark.parametrize("model", MODELS)
async def test_tool_errors_and_malformed_calls_go_back_to_the_model(
    server: ToolServer, model: str
) -> None:
    """A tool that raises and a call whose arguments do not fit answer the model with an
    error result; the model recovers and the node succeeds."""
    server.script(
        model,
        [
            calls(("read_note", {"key": "zzz"})),
            calls(("read_note", "{not json")),
            "sorry, I could not read it",
        ],
    )
    res = await dagtier.run(
        flow("    policy: {kind: static, tier: 1}"), gateway=gateway(server, {1: [model]})
    )
    assert res.ok
    bodies = server.requests_for(model)
    raised, malformed = tool_results(bodies[1])[0], tool_results(bodies[2])[-1]
    assert raised == ("error: read_note raised KeyError: \"no note 'zzz'\"", True)
    assert malformed[1] and malformed[0].startswith("error: ")
    assert ("not valid JSON" in malformed[0]) or ("invalid arguments for read_note" in malformed[0])
    assert [c.error for t in res["answer"].attempts[0].turns for c in t.tool_calls] == [True, True]


@pytest.mark.parametrize("model", MODELS)
async def test_an_undeclared_tool_fails_the_node_only(server: ToolServer, model: str) -> None:
    """A model calling a tool the node did not declare fails that node with a clear error,
    its paid turn counted; an independent node of the same run succeeds."""
    server.script(model, [calls(("delete_everything", {}))])
    server.script("o-other", ["fine"])
    wf = flow(
        "    policy: {kind: static, tier: 1}",
        "  other: {prompt: hi, policy: {kind: static, tier: 2}}",
    )
    res = await dagtier.run(wf, gateway=gateway(server, {1: [model], 2: ["o-other"]}))
    assert res.status == "failed" and res["other"].ok
    node = res["answer"]
    assert node.error == (
        "the model called undeclared tool 'delete_everything'; the node declares: "
        "count_words, read_note"
    )
    assert len(node.attempts[0].turns) == 1 and node.cost > 0


async def test_a_result_json_cannot_hold_fails_the_node(server: ToolServer) -> None:
    """A tool returning an object JSON cannot hold is a node error naming the tool."""
    server.script("o-tool", [calls(("leak", {}))])
    wf = dagtier.parse_workflow(
        "name: leaky\nnodes:\n  answer: {prompt: go, tools: ['demo_tools:leak']}\n"
    )
    res = await dagtier.run(wf, gateway=gateway(server, {1: ["o-tool"]}))
    assert res["answer"].status == "failed"
    assert "tool 'leak' returned a object, which is not JSON-serialisable" in str(
        res["answer"].error
    )


async def test_a_slow_tool_times_out_as_an_error_result(server: ToolServer) -> None:
    """A call past tool_timeout_s answers the model with an error result; the loop goes on."""
    server.script("o-tool", [calls(("hang", {"seconds": 5})), "gave up"])
    wf = dagtier.parse_workflow(
        "name: slow\nnodes:\n  answer: {prompt: go, tools: ['demo_tools:hang'], tool_timeout_s: 0.2}\n"
    )
    res = await dagtier.run(wf, gateway=gateway(server, {1: ["o-tool"]}))
    assert res.ok and res["answer"].output == "gave up"
    assert tool_results(server.requests_for("o-tool")[1]) == [
        ("error: hang did not finish within 0.2s", True)
    ]


async def test_a_loop_past_max_turns_fails_at_the_top_tier(server: ToolServer) -> None:
    """A model that keeps calling tools is stopped at max_turns; at its policy's top tier
    that fails the node, naming the limit, with every turn paid for on the attempt."""
    server.script(
        "a-tool", [calls(("read_note", {"key": "a"})), calls(("read_note", {"key": "b"}))]
    )
    res = await dagtier.run(
        flow("    policy: {kind: static, tier: 1}\n    max_turns: 3\n    stall_turns: 5"),
        gateway=gateway(server, {1: ["a-tool"]}),
    )
    node = res["answer"]
    assert node.status == "failed"
    assert "tool loop reached max_turns (3) without a final answer" in str(node.error)
    assert len(node.attempts[0].turns) == 3 and node.cost > 0


async def test_a_stalled_loop_continues_on_the_next_tier(server: ToolServer) -> None:
    """A cheap model repeating the same call stalls; the next tier (another provider)
    continues the same conversation, tool results included, instead of starting over."""
    server.script("o-cheap", [calls(("read_note", {"key": "a"}))])  # repeated forever
    server.script("a-top", ["Apples are red."])
    res = await dagtier.run(
        flow("    policy: {kind: cascade, start: 1, max: 2}\n    stall_turns: 2"),
        gateway=gateway(server, {1: ["o-cheap"], 2: ["a-top"]}),
    )
    node = res["answer"]
    assert res.ok and node.tier == 2 and node.output == "Apples are red."
    first, second = node.attempts
    assert first.verdict == "fail" and "stalled" in first.reason and len(first.turns) == 3
    assert len(second.turns) == 1
    (top,) = server.requests_for("a-top")
    # the transcript so far: the prompt, then three calls and their results
    assert [r for r, _ in tool_results(top)] == ["apples are red"] * 3
    assert top["messages"][0] == {"role": "user", "content": "what colour are apples and bananas?"}


async def test_the_budget_is_checked_before_every_turn(server: ToolServer) -> None:
    """A run whose budget covers one turn's worst case but not two stops before the
    second turn; the paid turn stays on the node's attempt."""
    server.script("a-tool", [calls(("read_note", {"key": "a"})), "done"])
    wf = flow("    policy: {kind: static, tier: 1}\n    max_tokens: 1000", "budget: 0.0052")
    res = await dagtier.run(wf, gateway=gateway(server, {1: ["a-tool"]}))
    assert res.status == "budget_exhausted"
    node = res["answer"]
    assert len(server.requests_for("a-tool")) == 1
    assert len(node.attempts[0].turns) == 1 and node.cost > 0


async def test_turns_reach_the_store_the_report_and_the_log(
    server: ToolServer, tmp_path: Any
) -> None:
    """Each turn is stored with the attempt (read back from SQLite), drawn in the report's
    attempts table with its tool calls, and logged as one 'tool turn' line."""
    from rich.console import Console
    from structlog.testing import capture_logs

    from dagtier.report.model import report_from_result
    from dagtier.report.render import print_table
    from dagtier.store import open_store
    from dagtier.telemetry.logs import LogSubscriber

    server.script("o-tool", [calls(("read_note", {"key": "b"})), "Bananas are yellow."])
    gw = gateway(server, {1: ["o-tool"]})
    store = open_store(tmp_path / "runs.db")
    with capture_logs() as logs:
        res = await dagtier.run(flow(""), gateway=gw, store=store, subscribers=[LogSubscriber()])
    turns = [e for e in logs if e["event"] == "tool turn"]
    assert [(e["turn"], [c["name"] for c in e["tool_calls"]]) for e in turns] == [
        (0, ["read_note"]),
        (1, []),
    ]
    loaded = await open_store(tmp_path / "runs.db").load_run(res.run_id)
    assert loaded is not None
    stored = loaded[1]["answer"].attempts[0].turns
    assert stored == res["answer"].attempts[0].turns and len(stored) == 2
    console = Console(record=True, width=200)
    print_table(report_from_result(res, catalog=gw.catalog), console)
    text = console.export_text()
    assert "read_note" in text and "final answer" in text


async def test_the_local_model_says_it_cannot_call_tools() -> None:
    """The embedded model refuses a request with tools up front (no generation), with a
    non-retryable error that says where tools can run."""
    from dagtier import BadRequest
    from dagtier.catalog import default_catalog
    from dagtier.providers.base import CompletionRequest, ToolSpec
    from dagtier.providers.local import LocalProvider

    entry = next(m for m in default_catalog().models.values() if m.provider == "local")
    request = CompletionRequest.from_prompt("hi", tools=(ToolSpec("t", "a tool", {}),))
    with pytest.raises(BadRequest, match="cannot call tools") as info:
        await LocalProvider().complete(entry, request)
    assert not info.value.retryable
