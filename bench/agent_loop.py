"""Tool loops: escalating a stalled loop by continuing it, vs restarting it, vs the top tier.

A scripted task needs ``--calls`` distinct tool calls (read notes 0..N-1), then an answer.
The cheap tier (tier 1) makes the first ``--cheap-progress`` calls, then repeats its last
call forever: it is stuck. The top tier (tier 3) makes whichever calls the conversation
has not made yet, then answers. Both are instant in-process models billed per token at
list prices (tier 1 gpt-4o-mini-like, tier 3 Opus-like); a turn's input tokens are the
whole conversation so far (characters / 4), as with a real API.

Strategies, each a real dagtier run of the same node:

- ``continue``: cascade 1->3 (tier 2 serves the top model), ``on_stall: continue`` (the default): tier 3 picks up the
  stalled conversation;
- ``restart``: cascade 1->3, ``on_stall: restart``: tier 3 starts the task over;
- ``top``: static tier 3 throughout.

Then the overhead: microseconds dagtier adds per tool turn with an instant model and an
instant tool, against the same turns driven by a bare loop in the same run (provider call
plus tool call, no dagtier).

    python bench/agent_loop.py
    python bench/agent_loop.py --calls 8 --cheap-progress 5 --turns 200 -r 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import dagtier
from dagtier.catalog import ModelEntry, Usage
from dagtier.providers import Gateway, ProviderRegistry, PythonProvider
from dagtier.providers.base import Completion, CompletionRequest, ToolCall

PRICES = {1: (0.15, 0.60), 3: (5.0, 25.0)}
"""USD per million tokens (input, output) per tier."""
OUTPUT_TOKENS = 40


def note(key: int) -> str:
    """Read note number ``key``.

    Args:
        key: which note.
    """
    return f"note {key}: " + "lorem ipsum " * 20


sys.modules.setdefault("agent_loop_tools", sys.modules[__name__])


def _made(request: CompletionRequest) -> list[int]:
    keys = []
    for m in request.messages:
        for c in m.tool_calls:
            keys.append(json.loads(c.arguments)["key"])
    return keys


def scripted(calls: int, cheap_progress: int) -> Any:
    def model(entry: ModelEntry, request: CompletionRequest) -> Completion:
        made = _made(request)
        if entry.model == "cheap":
            key = len(made) if len(made) < cheap_progress else cheap_progress - 1
        else:
            missing = [k for k in range(calls) if k not in made]
            key = missing[0] if missing else None
        usage = Usage(request.prompt_chars // 4 + 1, OUTPUT_TOKENS)
        if key is None:
            return Completion("all notes read: done", entry.model, usage)
        call = ToolCall(f"c{len(made)}", "note", json.dumps({"key": key}))
        return Completion("", entry.model, usage, tool_calls=(call,))

    return model


def catalog() -> dagtier.Catalog:
    models = {
        name: {
            "provider": "python",
            "model": name,
            "price": {"input": PRICES[t][0], "output": PRICES[t][1]},
        }
        for t, name in ((1, "cheap"), (3, "top"))
    }
    # tier 2 serves the top model too: a stuck tier 1 escalates one step, straight to it
    return dagtier.catalog_from_dict(
        {"models": models, "tiers": {1: ["cheap"], 2: ["top"], 3: ["top"]}}
    )


def flow(policy: str, on_stall: str, max_turns: int) -> dagtier.Workflow:
    return dagtier.parse_workflow(
        f"""
name: loop
nodes:
  task:
    prompt: read every note, then say done
    tools: ["agent_loop_tools:note"]
    policy: {policy}
    max_turns: {max_turns}
    stall_turns: 2
    on_stall: {on_stall}
"""
    )


async def strategies(calls: int, cheap_progress: int) -> None:
    gw = Gateway(
        catalog(), ProviderRegistry({"python": PythonProvider(scripted(calls, cheap_progress))})
    )
    cascade = "{kind: cascade, start: 1, max: 3}"
    rows = []
    for name, policy, on_stall in (
        ("continue", cascade, "continue"),
        ("restart", cascade, "restart"),
        ("top", "{kind: static, tier: 3}", "continue"),
    ):
        res = await dagtier.run(flow(policy, on_stall, calls + 4), gateway=gw)
        node = res["task"]
        assert res.ok, node.error
        cheap = sum(len(a.turns) for a in node.attempts if a.model == "cheap")
        top = sum(len(a.turns) for a in node.attempts if a.model == "top")
        rows.append((name, cheap, top, node.cost))
    top_cost = rows[-1][3]
    print(f"task: {calls} tool calls; the cheap tier is stuck after {cheap_progress}")
    print(f"{'strategy':10} {'cheap turns':>11} {'top turns':>9} {'cost $':>10} {'vs top':>8}")
    for name, t1, t3, cost in rows:
        print(f"{name:10} {t1:>11} {t3:>9} {cost:>10.6f} {cost / top_cost:>8.2f}")


async def overhead(turns: int, repeats: int) -> None:
    """µs per tool turn: dagtier's loop vs a bare loop doing the same provider + tool calls."""

    def model(entry: ModelEntry, request: CompletionRequest) -> Completion:
        n = len(request.messages) // 2
        usage = Usage(1, 1)
        if n >= turns:
            return Completion("done", entry.model, usage)
        return Completion(
            "", entry.model, usage, tool_calls=(ToolCall(f"c{n}", "tick", json.dumps({"i": n})),)
        )

    gw = Gateway(catalog(), ProviderRegistry({"python": PythonProvider(model)}))
    wf = dagtier.parse_workflow(
        f"""
name: overhead
nodes:
  task:
    prompt: tick
    tools: ["agent_loop_tools:tick"]
    max_turns: {turns + 1}
    stall_turns: {turns + 1}
"""
    )
    plan = dagtier.compile_workflow(wf, gw.catalog)
    provider = PythonProvider(model)
    entry = gw.catalog.model("cheap")
    from dagtier.providers.base import Message, ToolOutput

    async def bare() -> None:
        # the same provider calls and tool calls, with the transcript grown the same way
        messages: tuple[Message, ...] = (Message("user", "tick"),)
        req = CompletionRequest(messages)
        while True:
            comp = await provider.complete(entry, req)
            if not comp.tool_calls:
                return
            outs = []
            for c in comp.tool_calls:
                outs.append(
                    ToolOutput(c.id, c.name, json.dumps(await tick(**json.loads(c.arguments))))
                )
            messages = (
                *messages,
                Message("assistant", "", comp.tool_calls),
                Message("user", "", tool_outputs=tuple(outs)),
            )
            req = CompletionRequest(messages)

    dag, base = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = await dagtier.run(plan, gateway=gw)
        dag.append((time.perf_counter() - t0) / (turns + 1))
        assert res.ok and len(res["task"].attempts[0].turns) == turns + 1
        t0 = time.perf_counter()
        await bare()
        base.append((time.perf_counter() - t0) / (turns + 1))
    d, b = statistics.median(dag) * 1e6, statistics.median(base) * 1e6
    print(
        f"per tool turn ({turns} turns a run, median of {repeats}): dagtier {d:.1f} µs, "
        f"bare loop {b:.1f} µs, ratio {d / b:.1f}x, dagtier's own {d - b:.1f} µs"
    )


async def tick(i: int) -> int:
    """Count one.

    Args:
        i: the turn.
    """
    return i + 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--calls", type=int, default=6, help="distinct tool calls the task needs")
    ap.add_argument("--cheap-progress", type=int, default=3, help="calls the cheap tier makes")
    ap.add_argument("--turns", type=int, default=100, help="turns per run for the overhead")
    ap.add_argument("-r", "--repeats", type=int, default=5)
    args = ap.parse_args()

    async def both() -> None:
        await strategies(args.calls, args.cheap_progress)
        await overhead(args.turns, args.repeats)

    anyio.run(both)


if __name__ == "__main__":
    main()
