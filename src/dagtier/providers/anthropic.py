"""Anthropic's Messages API through the official ``anthropic`` SDK (imported on first use).

The client is built with ``max_retries=0``: the gateway is the only retry layer, so the SDK's
own retries do not multiply with ours. ``base_url`` comes from the catalog entry, which is
how tests (and Anthropic-compatible servers such as llama.cpp's ``/v1/messages``) are reached.

Structured output: Anthropic's ``output_config.format`` (a JSON Schema), the mechanism the
SDK supports. Anthropic-compatible servers may ignore it: llama.cpp's ``/v1/messages``
converts the request to Chat Completions and drops ``output_config`` (and tools do not
constrain a model whose chat template has no tool format), so for structured output from a
llama.cpp server use its ``/v1/chat/completions`` through the ``openai`` provider.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..catalog import ModelEntry
from ._common import SdkProvider, anthropic_usage, finished_completion, tool_arguments
from .base import Completion, CompletionRequest, Message, ToolCall

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic


class AnthropicProvider(SdkProvider["AsyncAnthropic"]):
    """Calls the Messages API. One instance per (base_url, key variable); reuses one client."""

    name = "anthropic"
    usual_key_env = "ANTHROPIC_API_KEY"

    def _new_client(self, key: str) -> AsyncAnthropic:
        from anthropic import AsyncAnthropic

        return AsyncAnthropic(
            api_key=key, base_url=self.base_url, max_retries=0, timeout=self.default_timeout_s
        )

    def build_params(self, model: ModelEntry, request: CompletionRequest) -> dict[str, Any]:
        """The keyword arguments for ``messages.create`` (public for tests and debugging)."""
        params: dict[str, Any] = {
            "model": model.model,
            "max_tokens": request.max_tokens,
            "messages": [_message(m) for m in request.messages],
        }
        if request.tools:
            params["tools"] = [
                {"name": t.name, "description": t.description, "input_schema": dict(t.parameters)}
                for t in request.tools
            ]
        if request.system:
            params["system"] = request.system
        extra: dict[str, Any] = {}
        if request.temperature is not None:
            # Not a named argument of anthropic 2.x's create(); the API still accepts it.
            extra["temperature"] = request.temperature
        if request.json_schema is not None:
            schema = dict(request.json_schema)
            params["output_config"] = {"format": {"type": "json_schema", "schema": schema}}
        if extra:
            params["extra_body"] = extra
        if request.timeout_s is not None:
            params["timeout"] = request.timeout_s
        return params

    async def _send(self, client: AsyncAnthropic, params: dict[str, Any]) -> Any:
        return await client.messages.create(**params)

    def _read(self, model: ModelEntry, message: Any, latency_s: float) -> Completion:
        blocks = list(message.content or [])
        parts = [getattr(b, "text", "") for b in blocks if getattr(b, "type", "") == "text"]
        calls = tuple(
            ToolCall(str(b.id), str(b.name), json.dumps(getattr(b, "input", None) or {}))
            for b in blocks
            if getattr(b, "type", "") == "tool_use"
        )
        text = "".join(p for p in parts if p)
        stop = getattr(message, "stop_reason", None)
        return finished_completion(
            provider=self.name,
            model=model,
            text=text,
            finish=stop,
            filtered=stop == "refusal",
            out_of_tokens=stop == "max_tokens",
            served_model=getattr(message, "model", None),
            usage=anthropic_usage(getattr(message, "usage", None)),
            latency_s=latency_s,
            request_id=getattr(message, "_request_id", None),
            response_id=getattr(message, "id", None),
            tool_calls=calls,
        )


def _message(m: Message) -> dict[str, Any]:
    """A transcript message in Messages API form: tool calls are ``tool_use`` blocks of the
    assistant's turn, their outputs ``tool_result`` blocks of the next user turn."""
    if not m.tool_calls and not m.tool_outputs:
        return {"role": m.role, "content": m.content}
    blocks: list[dict[str, Any]] = [
        {
            "type": "tool_result",
            "tool_use_id": o.call_id,
            "content": o.content,
            **({"is_error": True} if o.is_error else {}),
        }
        for o in m.tool_outputs
    ]
    if m.content:
        blocks.append({"type": "text", "text": m.content})
    blocks += [
        {"type": "tool_use", "id": c.id, "name": c.name, "input": tool_arguments(c.arguments)}
        for c in m.tool_calls
    ]
    return {"role": m.role, "content": blocks}
