"""The executor: event-driven scheduling, the concurrency limit, failure semantics,
cancellation, inputs and outputs, events.

These tests use ``PythonProvider``: an in-process model function is the honest tool for
scheduling tests, since the test itself decides when each "model" answers (with anyio
Events), which makes interleavings deterministic without sleeps or timing.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any

import anyio
import pytest
from core_helpers import gateway_for

import dagtier
from dagtier import SpecError
from dagtier.catalog import ModelEntry
from dagtier.events import (
    AttemptFinished,
    Event,
    NodeFinished,
    NodeStarted,
    RunFinished,
    RunStarted,
)
from dagtier.providers import CompletionRequest
from dagtier.spec.models import Workflow

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """dagtier promises trio as well as asyncio: the scheduler and gateway run on both."""
    return str(request.param)


def workflow(nodes: dict[str, Any], **extra: Any) -> Workflow:
    return dagtier.parse_workflow(
        __import__("json").dumps({"name": "t", "nodes": nodes, **extra}), "<test>"
    )


def node_of(request: CompletionRequest) -> str:
    return request.metadata["node_id"]


def chain(*deps: str, **fields: Any) -> dict[str, Any]:
    return {"prompt": "go", "depends_on": list(deps), **fields}


async def test_a_slow_node_does_not_hold_back_an_unrelated_branch() -> None:
    """d (after c) starts and finishes while a is still running: no lock-step rounds.

    a's model waits until d's model has been called; a superstep scheduler would deadlock
    here (d could only start once a's round had finished)."""
    d_called = anyio.Event()
    finished: list[str] = []

    async def model(_: ModelEntry, request: CompletionRequest) -> str:
        nid = node_of(request)
        if nid == "a":
            await d_called.wait()
        if nid == "d":
            d_called.set()
        finished.append(nid)
        return nid

    wf = workflow({"a": chain(), "b": chain("a"), "c": chain(), "d": chain("c")})
    with anyio.fail_after(10):  # a deadlock guard, not a timing assertion
        result = await dagtier.run(wf, gateway=gateway_for(model))
    assert result.status == "succeeded"
    assert finished.index("d") < finished.index("a") < finished.index("b")


async def test_a_node_starts_when_its_own_dependencies_succeed() -> None:
    """Every node's model is called only after all its dependencies finished, and each node
    is called exactly once, across random DAGs, latencies and concurrency limits."""
    for seed in range(8):
        rng = random.Random(seed)
        n = rng.randint(5, 40)
        deps = {
            f"n{i}": sorted({f"n{rng.randrange(i)}" for _ in range(rng.randint(0, 3))}) if i else []
            for i in range(n)
        }
        limit = rng.randint(1, 6)
        finished: set[str] = set()
        calls: list[str] = []
        in_flight = peak = 0

        async def model(_: ModelEntry, request: CompletionRequest) -> str:
            nonlocal in_flight, peak
            nid = node_of(request)
            assert all(d in finished for d in deps[nid]), nid  # noqa: B023
            calls.append(nid)  # noqa: B023
            in_flight += 1
            peak = max(peak, in_flight)
            for _ in range(rng.randint(0, 3)):  # noqa: B023
                await anyio.lowlevel.checkpoint()
            in_flight -= 1
            finished.add(nid)  # noqa: B023
            return nid

        wf = workflow({nid: chain(*ds) for nid, ds in deps.items()})
        result = await dagtier.run(wf, gateway=gateway_for(model), concurrency=limit)
        assert result.status == "succeeded", seed
        assert sorted(calls) == sorted(deps), seed
        assert peak <= limit, seed


async def test_the_concurrency_limit_is_reached_and_never_exceeded() -> None:
    """With 20 independent nodes and concurrency 3, at most 3 models are in flight, and 3
    are at some point (the limit is not an accidental serialisation)."""
    in_flight = peak = 0

    async def model(_: ModelEntry, request: CompletionRequest) -> str:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        for _ in range(3):
            await anyio.lowlevel.checkpoint()
        in_flight -= 1
        return "ok"

    wf = workflow({f"n{i}": chain() for i in range(20)}, concurrency=8)
    result = await dagtier.run(wf, gateway=gateway_for(model), concurrency=3)
    assert result.status == "succeeded"
    assert peak == 3
    # without the argument, the workflow's own concurrency applies
    peak = 0
    await dagtier.run(wf, gateway=gateway_for(model))
    assert peak == 8


async def test_children_made_ready_together_all_run_at_once() -> None:
    """When one node unblocks five children, all five are in flight together (each waits
    for the other four): newly ready nodes get workers of their own at once."""
    arrived = 0
    all_in = anyio.Event()

    async def model(_: ModelEntry, request: CompletionRequest) -> str:
        nonlocal arrived
        if node_of(request).startswith("child"):
            arrived += 1
            if arrived == 5:
                all_in.set()
            await all_in.wait()
        return "ok"

    wf = workflow({"root": chain(), **{f"child{i}": chain("root") for i in range(5)}})
    with anyio.fail_after(10):  # a deadlock guard, not a timing assertion
        result = await dagtier.run(wf, gateway=gateway_for(model))
    assert result.status == "succeeded"


def failing_on(*bad: str) -> Callable[[ModelEntry, CompletionRequest], str]:
    def model(_: ModelEntry, request: CompletionRequest) -> str:
        nid = node_of(request)
        if nid in bad:
            raise dagtier.BadRequest(
                "the model refused", provider="python", model="fn", status_code=400
            )
        return f"out-{nid}"

    return model


async def test_a_failed_node_skips_its_descendants_and_independent_branches_go_on() -> None:
    """a fails: b and c below it are skipped; x and y, unrelated, succeed; the run failed."""
    wf = workflow({"a": chain(), "b": chain("a"), "c": chain("b"), "x": chain(), "y": chain("x")})
    result = await dagtier.run(wf, gateway=gateway_for(failing_on("a")))
    assert result.status == "failed"
    assert {n: r.status for n, r in result.nodes.items()} == {
        "a": "failed",
        "x": "succeeded",
        "b": "skipped",
        "y": "succeeded",
        "c": "skipped",
    }
    assert "the model refused" in (result["a"].error or "")
    assert result["b"].error == "an upstream node failed"
    assert result["y"].output == "out-y"


async def test_fail_fast_stops_everything() -> None:
    """With fail_fast, the first failure cancels the nodes in flight and starts no more."""
    started: list[str] = []
    never = anyio.Event()

    async def model(_: ModelEntry, request: CompletionRequest) -> str:
        nid = node_of(request)
        started.append(nid)
        if nid == "bad":
            await anyio.lowlevel.checkpoint()  # let 'slow' get going first
            raise dagtier.BadRequest("no", provider="python", model="fn", status_code=400)
        await never.wait()
        return "unreachable"

    wf = workflow({"bad": chain(), "slow": chain(), "after": chain("slow")})
    store = dagtier.MemoryStore()
    with anyio.fail_after(10):
        result = await dagtier.run(wf, gateway=gateway_for(model), fail_fast=True, store=store)
    assert result.status == "failed"
    assert {n: r.status for n, r in result.nodes.items()} == {
        "bad": "failed",
        "slow": "cancelled",
        "after": "cancelled",
    }
    assert "after" not in started
    assert list(store.nodes[result.run_id]) == ["bad"]
    assert store.runs[result.run_id].status == "failed"


async def test_cancellation_ends_the_run_cleanly_with_a_record_of_what_finished() -> None:
    """Cancelling the caller's scope mid-run re-raises the cancellation; the store keeps the
    finished node and marks the run cancelled; subscribers get RunFinished."""
    events: list[Event] = []
    store = dagtier.MemoryStore()
    scope = anyio.CancelScope()

    async def model(_: ModelEntry, request: CompletionRequest) -> str:
        if node_of(request) == "second":
            scope.cancel()  # like Ctrl-C arriving while 'second' waits for its model
            await anyio.sleep_forever()
        return "done"

    wf = workflow({"first": chain(), "second": chain("first"), "third": chain("second")})
    with scope:
        await dagtier.run(
            wf, gateway=gateway_for(model), store=store, subscribers=[events.append], run_id="r1"
        )
    assert scope.cancelled_caught
    assert store.runs["r1"].status == "cancelled"
    assert list(store.nodes["r1"]) == ["first"]
    final = events[-1]
    assert isinstance(final, RunFinished)
    assert final.result.status == "cancelled"
    assert {n: r.status for n, r in final.result.nodes.items()} == {
        "first": "succeeded",
        "second": "cancelled",
        "third": "cancelled",
    }


def test_run_inside_an_existing_asyncio_loop_alongside_other_tasks() -> None:
    """An application's own asyncio loop keeps running its tasks while dagtier.run works."""

    async def app() -> tuple[dagtier.RunResult, int]:
        ticks = 0
        stop = asyncio.Event()

        async def ticker() -> None:
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0)

        async def model(_: ModelEntry, request: CompletionRequest) -> str:
            for _ in range(5):
                await asyncio.sleep(0)
            return "ok"

        task = asyncio.create_task(ticker())
        result = await dagtier.run(
            workflow({"a": chain(), "b": chain("a")}), gateway=gateway_for(model)
        )
        stop.set()
        await task
        return result, ticks

    result, ticks = asyncio.run(app())
    assert result.status == "succeeded"
    assert ticks >= 5


INPUTS_WF = {
    "name": "t",
    "inputs": {
        "text": "string",
        "count": "integer",
        "ratio": {"type": "number", "default": 0.5},
        "flag": {"type": "boolean", "required": False},
        "opts": {"type": "object", "required": False},
        "items": {"type": "array", "required": False},
    },
    "nodes": {"a": {"prompt": "{{ inputs.text }} x{{ inputs.count }} r{{ inputs.ratio }}"}},
    "outputs": {"echo": "{{ a }}", "n": "{{ inputs.count + 1 }}"},
}


async def test_inputs_are_coerced_to_the_declared_types() -> None:
    """Strings from the command line become the declared types; defaults fill gaps."""
    wf = dagtier.parse_workflow(__import__("json").dumps(INPUTS_WF))
    seen: list[str] = []

    def model(_: ModelEntry, request: CompletionRequest) -> str:
        seen.append(request.messages[0].content)
        return "answer"

    result = await dagtier.run(
        wf,
        {"text": "hi", "count": "3", "flag": "true", "opts": '{"k": 1}', "items": "[1, 2]"},
        gateway=gateway_for(model),
    )
    assert seen == ["hi x3 r0.5"]
    assert result.outputs == {"echo": "answer", "n": "4"}


async def test_inputs_errors_list_every_problem() -> None:
    """Unknown, missing and badly typed inputs are reported together as a SpecError."""
    wf = dagtier.parse_workflow(__import__("json").dumps(INPUTS_WF))
    with pytest.raises(SpecError) as info:
        await dagtier.run(wf, {"txt": "x", "flag": "maybe"}, gateway=gateway_for(failing_on()))
    got = [(i.path, i.code, i.message, i.hint) for i in info.value.issues]
    assert got == [
        ("inputs.txt", "unknown-input", "unknown input 'txt'", "did you mean 'text'?"),
        (
            "inputs.text",
            "missing-input",
            "required input 'text' was not given",
            "pass --input text=VALUE",
        ),
        (
            "inputs.count",
            "missing-input",
            "required input 'count' was not given",
            "pass --input count=VALUE",
        ),
        (
            "inputs.flag",
            "invalid-input",
            "expected boolean, got 'maybe'",
            "'flag' is declared as boolean",
        ),
    ]


async def test_run_rejects_something_that_is_not_a_workflow() -> None:
    """Passing a path instead of a Workflow is a usage error that says what to do."""
    with pytest.raises(dagtier.DagtierUsageError, match="load_workflow"):
        await dagtier.run("flow.yaml")  # type: ignore[arg-type]


async def test_outputs_and_upstream_json_fields_flow_through_templates() -> None:
    """A JSON node's parsed fields are usable downstream; an output that needs a failed node
    is None while the others are rendered."""
    schema = {"type": "object", "properties": {"kind": {"type": "string"}}, "required": ["kind"]}

    def model(_: ModelEntry, request: CompletionRequest) -> str:
        nid = node_of(request)
        if nid == "classify":
            return '```json\n{"kind": "bug"}\n```'
        if nid == "broken":
            raise dagtier.BadRequest("no", provider="python", model="fn", status_code=400)
        return f"reply to {request.messages[0].content}"

    wf = workflow(
        {
            "classify": {"prompt": "classify", "output": {"schema": schema}},
            "reply": {"prompt": "a {{ classify.kind }}", "depends_on": ["classify"]},
            "broken": {"prompt": "x"},
        },
        outputs={"kind": "{{ classify.kind }}", "reply": "{{ reply }}", "lost": "{{ broken }}"},
    )
    result = await dagtier.run(wf, gateway=gateway_for(model))
    assert result["classify"].output == {"kind": "bug"}
    assert result["reply"].output == "reply to a bug"
    assert result.outputs == {"kind": "bug", "reply": "reply to a bug", "lost": None}


async def test_results_carry_tier_model_tokens_cost_and_latency() -> None:
    """Each node result records where it ran and what it cost."""
    wf = workflow({"a": {"prompt": "x" * 40, "policy": {"kind": "static", "tier": 2}}})
    result = await dagtier.run(wf, gateway=gateway_for(lambda m, r: "y" * 20))
    a = result["a"]
    assert (a.status, a.tier, a.model, len(a.attempts)) == ("succeeded", 2, "fn2", 1)
    assert (a.usage.input_tokens, a.usage.output_tokens) == (11, 6)
    assert a.cost == pytest.approx((11 * 1.0 + 6 * 2.0) / 1e6)
    assert result.cost == a.cost
    assert a.latency_s >= 0 and a.finished_at is not None


async def test_events_arrive_in_order() -> None:
    """RunStarted first; per node NodeStarted, then AttemptFinished, then NodeFinished;
    RunFinished last."""
    events: list[Event] = []

    async def model(_: ModelEntry, request: CompletionRequest) -> str:
        await anyio.lowlevel.checkpoint()
        return "ok"

    wf = workflow({"a": chain(), "b": chain("a"), "c": chain("a"), "d": chain("b", "c")})
    await dagtier.run(wf, gateway=gateway_for(model), subscribers=[events.append])
    assert isinstance(events[0], RunStarted)
    assert isinstance(events[-1], RunFinished)
    assert sum(isinstance(e, (RunStarted, RunFinished)) for e in events) == 2
    for nid in "abcd":
        kinds = [
            type(e).__name__
            for e in events
            if getattr(e, "node_id", None) == nid
            or (isinstance(e, NodeFinished) and e.result.node_id == nid)
        ]
        assert kinds == ["NodeStarted", "AttemptFinished", "NodeFinished"], nid
    finished = [e.result.node_id for e in events if isinstance(e, NodeFinished)]
    assert finished[0] == "a" and finished[-1] == "d"
    # a dependent starts only after its dependencies finished
    pos = {
        (type(e).__name__, getattr(e, "node_id", None) or e.result.node_id): i  # type: ignore[union-attr]
        for i, e in enumerate(events)
        if isinstance(e, (NodeStarted, NodeFinished))
    }
    assert pos[("NodeFinished", "b")] < pos[("NodeStarted", "d")]
    assert pos[("NodeFinished", "c")] < pos[("NodeStarted", "d")]
    attempts = [e for e in events if isinstance(e, AttemptFinished)]
    assert [a.attempt.verdict for a in attempts] == ["unchecked"] * 4


async def test_a_broken_subscriber_does_not_break_the_run() -> None:
    """An exception in a subscriber is logged; the run still succeeds."""

    def broken(event: Event) -> None:
        raise RuntimeError("subscriber bug")

    result = await dagtier.run(
        workflow({"a": chain()}), gateway=gateway_for(lambda m, r: "ok"), subscribers=[broken]
    )
    assert result.status == "succeeded"


async def test_the_same_workflow_runs_many_times() -> None:
    """The per-workflow plan is reused across runs without leaking state between them."""
    wf = workflow({"a": chain(), "b": chain("a")})
    gw = gateway_for(failing_on())
    first = await dagtier.run(wf, gateway=gw)
    gw_bad = gateway_for(failing_on("a"))
    second = await dagtier.run(wf, gateway=gw_bad)
    third = await dagtier.run(wf, gateway=gw)
    assert [first.status, second.status, third.status] == ["succeeded", "failed", "succeeded"]
    assert third["b"].output == "out-b"


async def test_an_error_escaping_a_node_is_raised_as_itself_and_the_run_recorded_failed() -> None:
    """A bug in a model function propagates as its own exception (not an ExceptionGroup);
    the store records the run as failed with what finished before."""
    store = dagtier.MemoryStore()

    def model(_: ModelEntry, request: CompletionRequest) -> str:
        if node_of(request) == "b":
            raise ZeroDivisionError("bug in the user's model function")
        return "ok"

    wf = workflow({"a": chain(), "b": chain("a")})
    with pytest.raises(ZeroDivisionError, match="bug in the user's model function"):
        await dagtier.run(wf, gateway=gateway_for(model), store=store, run_id="r2")
    assert store.runs["r2"].status == "failed"
    assert list(store.nodes["r2"]) == ["a"]
