"""Agent nodes: a function that drives its own agent loop (any framework) through dagtier.

``agent: module:function`` names a function (sync or async) that takes an
:class:`AgentContext` and returns the node's answer (text, or anything JSON can hold). The
node's policy picks the tier for each attempt; every model call the function makes through
the context goes through dagtier's gateway on that tier (retries, same-tier fallback, the
budget reserved before each call) and is recorded as a turn of the attempt, so the node's
cost is the sum of its calls. The answer goes through the node's checks and judge, and a
cascade that rejects it runs the function again one tier up::

    async def research(ctx: dagtier.AgentContext) -> str:
        notes = await ctx.chat(f"List what to check about {ctx.inputs['topic']}")
        return await ctx.chat(f"Check these, then answer: {notes}")

A LangChain chat model backed by the context is in :mod:`dagtier.langchain`.

Added in issue 13.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .policies.toolloop import emit_turn, record_turn
from .providers.base import Completion, CompletionRequest, Message, ToolSpec
from .results import Attempt

if TYPE_CHECKING:
    from ._types import Tier
    from .catalog import ModelEntry
    from .policies.base import NodeContext
    from .tools import Tool

__all__ = ["AgentContext"]


class AgentContext:
    """What an agent function gets for one attempt: the tier and model the policy chose,
    the node's inputs and upstream outputs, its tools, and a way to call the model."""

    def __init__(self, node: NodeContext, tier: Tier, attempt: Attempt) -> None:
        self._node = node
        self._attempt = attempt
        self.tier: Tier = tier
        """The tier the node's policy chose for this attempt."""
        self.node_id = node.node_id
        self.values: Mapping[str, Any] = node.values
        """Upstream outputs by node id, and ``inputs``."""
        self.tools: Mapping[str, Tool] = node.tools
        """The node's ``tools:``, by name (their ``spec`` is what a model is shown)."""

    @property
    def inputs(self) -> Mapping[str, Any]:
        """The run's inputs."""
        return self.values.get("inputs") or {}

    @property
    def model(self) -> ModelEntry | None:
        """The catalog model the tier calls first (the gateway may fall back to the next)."""
        models = self._node.gateway.usable_models(self.tier)
        return models[0] if models else None

    @property
    def cost(self) -> float:
        """What this attempt's calls have cost so far (USD)."""
        return self._attempt.cost

    async def complete(
        self,
        prompt: str | None = None,
        *,
        messages: Sequence[Message] = (),
        system: str | None = None,
        max_tokens: int | None = None,
        temperature: float | None = None,
        tools: Sequence[ToolSpec] = (),
        json_schema: Mapping[str, Any] | None = None,
    ) -> Completion:
        """One model call on the attempt's tier through the gateway; recorded as a turn.

        Args:
            prompt: a user message (appended after ``messages``).
            messages: the conversation so far.
            system: the system prompt.
            max_tokens: the answer's limit (default: the node's ``max_tokens``).
            temperature: default: the node's.
            tools: tools the model may call (its answer's ``tool_calls``).
            json_schema: ask for JSON matching this schema.

        Raises:
            ProviderError: no model of the tier answered (the attempt fails; availability
                does not escalate).
            BudgetExhausted: the budget cannot cover the call.
        """
        base = self._node.request
        msgs = tuple(messages) + ((Message("user", prompt),) if prompt is not None else ())
        request = CompletionRequest(
            msgs,
            system,
            max_tokens or base.max_tokens,
            temperature if temperature is not None else base.temperature,
            json_schema,
            base.timeout_s,
            base.metadata,
            tuple(tools),
        )
        t0 = time.perf_counter()
        call = await self._node.gateway.call(self.tier, request, self._node.call)
        turn = record_turn(self._attempt, call, t0)
        emit_turn(self._node, self.tier, len(self._attempt.turns) - 1, turn)
        comp = call.completion
        return comp

    async def chat(self, prompt: str | Sequence[Message], *, system: str | None = None) -> str:
        """The model's text answer to ``prompt`` (a user message, or a whole conversation)."""
        if isinstance(prompt, str):
            comp = await self.complete(prompt, system=system)
        else:
            comp = await self.complete(messages=prompt, system=system)
        return comp.text
