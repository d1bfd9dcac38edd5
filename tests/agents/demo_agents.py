"""Agent functions the agent-node tests declare (``demo_agents:NAME``)."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode

import dagtier
from dagtier.langchain import DagtierChatModel

SEEN_TIERS: list[int] = []


async def two_step(ctx: dagtier.AgentContext) -> str:
    """Ask for a plan, then for an answer from it: two calls on the attempt's tier."""
    SEEN_TIERS.append(ctx.tier)
    plan = await ctx.chat(f"plan for {ctx.inputs['topic']}")
    return await ctx.chat(f"answer from: {plan}", system="be brief")


def sync_structured(ctx: dagtier.AgentContext) -> dict[str, Any]:
    """A sync agent may return JSON; it runs in a worker thread (no model call here)."""
    return {"tier": ctx.tier, "upstream": ctx.values["first"]}


async def broken(ctx: dagtier.AgentContext) -> str:
    await ctx.chat("one paid call")
    raise RuntimeError("the agent fell over")


def note_length(text: str) -> int:
    """Count the characters of a text.

    Args:
        text: what to measure.
    """
    return len(text)


async def langgraph_agent(ctx: dagtier.AgentContext) -> str:
    """A real LangGraph graph (model node <-> tool node) over dagtier's chat model."""
    measure = tool(note_length)
    model = DagtierChatModel(ctx).bind_tools([measure])

    async def call_model(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    def route(state: MessagesState) -> str:
        last = state["messages"][-1]
        return "tools" if getattr(last, "tool_calls", None) else END

    graph = StateGraph(MessagesState)
    graph.add_node("model", call_model)
    graph.add_node("tools", ToolNode([measure]))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", route, ["tools", END])
    graph.add_edge("tools", "model")
    app = graph.compile()
    out = await app.ainvoke({"messages": [HumanMessage(f"how long is '{ctx.inputs['topic']}'?")]})
    return str(out["messages"][-1].content)
