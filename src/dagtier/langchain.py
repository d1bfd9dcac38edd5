"""A LangChain chat model backed by dagtier's tiers (``pip install 'dagtier[langchain]'``).

Inside an ``agent:`` node, swap your framework's model object for
``DagtierChatModel(ctx)``: every call the agent (a LangGraph graph, a LangChain chain)
makes goes to the tier the node's policy chose for this attempt, through dagtier's gateway
(retries, same-tier fallback, the budget), and is counted on the node. A cascade that
rejects the agent's answer runs the agent again with the next tier's model::

    from dagtier.langchain import DagtierChatModel
    from langgraph.prebuilt import create_react_agent

    async def research(ctx: dagtier.AgentContext) -> str:
        graph = create_react_agent(DagtierChatModel(ctx), tools=[search])
        out = await graph.ainvoke({"messages": [("user", ctx.inputs["question"])]})
        return out["messages"][-1].content

Tool binding (``bind_tools``) uses the provider's native tool calling. The model is async:
call it with ``ainvoke``/``astream`` (LangGraph does when the graph is awaited).

Added in issue 13.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import LanguageModelInput
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict

from .agent import AgentContext
from .providers._common import tool_arguments
from .providers.base import Message, ToolCall, ToolOutput, ToolSpec

__all__ = ["DagtierChatModel"]


class DagtierChatModel(BaseChatModel):
    """A LangChain ``BaseChatModel`` whose calls go through an :class:`AgentContext`."""

    context: Any
    """The :class:`~dagtier.AgentContext` of the attempt (its tier, gateway and budget)."""
    max_tokens: int | None = None
    temperature: float | None = None

    model_config = ConfigDict(arbitrary_types_allowed=True)

    def __init__(self, context: AgentContext, **kwargs: Any) -> None:
        super().__init__(context=context, **kwargs)  # type: ignore[call-arg]  # a pydantic field

    @property
    def _llm_type(self) -> str:
        return "dagtier"

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Offer ``tools`` to the model (LangChain tools, functions, pydantic models or
        OpenAI tool dicts), through the provider's native tool calling."""
        specs = []
        for tool in tools:
            fn = convert_to_openai_tool(tool)["function"]
            specs.append(ToolSpec(fn["name"], fn.get("description", ""), fn.get("parameters", {})))
        return self.bind(dagtier_tools=tuple(specs), **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raise NotImplementedError(
            "DagtierChatModel calls the model through the run's event loop: use ainvoke/astream "
            "(await the graph), not invoke"
        )

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        system, transcript = to_dagtier(messages)
        comp = await self.context.complete(
            messages=transcript,
            system=system,
            max_tokens=self.max_tokens,
            temperature=self.temperature,
            tools=kwargs.get("dagtier_tools", ()),
        )
        u = comp.usage
        message = AIMessage(
            content=comp.text,
            tool_calls=[
                {
                    "name": c.name,
                    "args": tool_arguments(c.arguments),
                    "id": c.id,
                    "type": "tool_call",
                }
                for c in comp.tool_calls
            ],
            usage_metadata={
                "input_tokens": u.input_tokens + u.cache_read_tokens + u.cache_write_tokens,
                "output_tokens": u.output_tokens + u.reasoning_tokens,
                "total_tokens": u.total,
            },
            response_metadata={"model_name": comp.model, "tier": self.context.tier},
        )
        return ChatResult(generations=[ChatGeneration(message=message)])


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = [p.get("text", "") if isinstance(p, dict) else str(p) for p in content]
    return "".join(parts)


def to_dagtier(messages: Sequence[BaseMessage]) -> tuple[str | None, tuple[Message, ...]]:
    """LangChain messages as dagtier's: the system prompt apart, tool messages folded into
    one user turn of tool outputs (as both APIs expect them after the calls)."""
    system: list[str] = []
    out: list[Message] = []
    pending: list[ToolOutput] = []

    def flush() -> None:
        if pending:
            out.append(Message("user", "", tool_outputs=tuple(pending)))
            pending.clear()

    for m in messages:
        if isinstance(m, SystemMessage):
            system.append(_text(m.content))
        elif isinstance(m, ToolMessage):
            is_error = getattr(m, "status", "success") == "error"
            pending.append(ToolOutput(m.tool_call_id, m.name or "", _text(m.content), is_error))
        elif isinstance(m, AIMessage):
            flush()
            calls = tuple(
                ToolCall(str(c.get("id") or ""), c["name"], json.dumps(c.get("args") or {}))
                for c in m.tool_calls
            )
            out.append(Message("assistant", _text(m.content), tool_calls=calls))
        else:
            flush()
            out.append(Message("user", _text(m.content)))
    flush()
    return ("\n\n".join(system) or None), tuple(out)
