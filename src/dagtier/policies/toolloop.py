"""The tool loop of a prompt node with ``tools:``: call the model, run the tools it asks
for (in parallel), send their results back, until it answers without calling a tool.

One loop is one attempt: the policy picked its tier, and its final message goes through
the node's checks and judge like any answer. Each model call is a turn, recorded on the
attempt (tokens, cost, tool calls and their durations) and emitted as a
:class:`~dagtier.events.ToolTurn` event; the gateway reserves the budget before each turn.

A loop **stalls** when its last ``stall_turns`` turns only repeated tool calls it had made
before (same tool, same arguments), or when it reaches ``max_turns``. A stalled attempt
fails its checks with the reason, and keeps its transcript: the policy's next tier
*continues that conversation* instead of starting over (what it learnt from the tools is
paid for already). An answer that fails its checks is different: the next tier starts
afresh, as any escalation does.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from ..events import ToolTurn
from ..providers.base import Message, ToolCall, message_chars
from ..results import Attempt, ToolCallRecord, Turn
from ..tools import run_tool_calls

if TYPE_CHECKING:
    from .._types import Tier
    from ..providers.gateway import CallResult
    from .base import NodeContext


@dataclass(slots=True)
class LoopEnd:
    text: str
    """The final message (empty when the loop stalled)."""
    stalled: str | None = None
    """Why the loop stalled, or None when the model gave a final answer."""
    transcript: tuple[Message, ...] = ()
    """The conversation so far (kept when stalled, for the next tier to continue)."""


def _key(call: ToolCall) -> tuple[str, str]:
    try:
        args = json.dumps(json.loads(call.arguments), sort_keys=True)
    except (json.JSONDecodeError, TypeError):
        args = call.arguments
    return call.name, args


async def tool_loop(ctx: NodeContext, tier: Tier, att: Attempt) -> LoopEnd:
    """Run the loop on ``tier``, adding each turn to ``att`` as it is paid for (so an
    error mid-loop still accounts for the turns before it).

    Raises:
        ProviderError: a turn's model call failed (after the gateway's retries, fallback).
        StepError: the model called an undeclared tool, or a tool returned what JSON cannot
            hold.
        BudgetExhausted: the budget cannot cover the next turn.
    """
    node = ctx.node
    tools = ctx.tools
    messages = ctx.transcript or ctx.request.messages
    ctx.transcript = None
    request = replace(ctx.request, messages=messages, tools=tuple(t.spec for t in tools.values()))
    chars = request.prompt_chars  # then grown by each turn's messages, not re-summed
    seen: set[tuple[str, str]] = set()
    for m in messages:  # a continued loop already made these calls
        seen.update(_key(c) for c in m.tool_calls)
    idle = 0
    index = ctx.turns
    for _ in range(node.max_turns):
        t0 = time.perf_counter()
        call = await ctx.gateway.call(
            tier, replace(request, messages=messages, known_chars=chars), ctx.call
        )
        comp = call.completion
        turn = record_turn(att, call, t0)
        if not comp.tool_calls:
            ctx.turns = index + 1
            emit_turn(ctx, tier, index, turn)
            return LoopEnd(comp.text)
        runs = await run_tool_calls(comp.tool_calls, tools, timeout_s=node.tool_timeout_s)
        turn.tool_calls = [
            ToolCallRecord(r.call.name, r.duration_s, r.output.is_error) for r in runs
        ]
        emit_turn(ctx, tier, index, turn)
        index += 1
        asked = Message("assistant", comp.text, tool_calls=comp.tool_calls)
        answered = Message("user", "", tool_outputs=tuple(r.output for r in runs))
        messages = (*messages, asked, answered)
        chars += message_chars(asked) + message_chars(answered)
        keys = {_key(c) for c in comp.tool_calls}
        idle = 0 if keys - seen else idle + 1
        seen |= keys
        if idle >= node.stall_turns:
            ctx.turns = index
            return LoopEnd(
                "",
                f"tool loop stalled: its last {idle} turns only repeated earlier tool calls",
                messages,
            )
    ctx.turns = index
    return LoopEnd(
        "",
        f"tool loop reached max_turns ({node.max_turns}) without a final answer",
        messages,
    )


def record_turn(att: Attempt, call: CallResult, t0: float) -> Turn:
    """Add one paid model call to ``att`` as a turn (tokens, cost, time, who served it)."""
    comp = call.completion
    turn = Turn(
        call.model.name, comp.usage, call.cost, comp.latency_s or (time.perf_counter() - t0)
    )
    att.turns.append(turn)
    att.model, att.provider, att.response_model = call.model.name, call.model.provider, comp.model
    att.usage = att.usage + comp.usage
    att.cost += call.cost
    att.latency_s += turn.latency_s
    att.request_id = comp.request_id
    return turn


def emit_turn(ctx: NodeContext, tier: Tier, index: int, turn: Turn) -> None:
    if ctx.events:
        ctx.events.emit(ToolTurn(ctx.run_id, ctx.node_id, tier, index, turn))
