"""OpenAI's Chat Completions through the official ``openai`` SDK (imported on first use).

The same provider serves every OpenAI-compatible endpoint through ``base_url``: Ollama,
vLLM, llama.cpp's server, OpenRouter, Gemini's OpenAI endpoint, a LiteLLM proxy (catalog
entries for each are in ``docs/providers.md``). The client is built with ``max_retries=0``
so the gateway is the only retry layer.

Structured output uses ``response_format={"type": "json_schema", ...}``, which OpenAI and
the compatible servers above accept. Usage is normalised to disjoint kinds: cached prompt
tokens are cache reads, reasoning tokens are not output tokens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .._exceptions import ProviderResponseError
from ..catalog import ModelEntry
from ._common import DEFAULT_KEY_ENV, KeyEnvDefault, SdkProvider, finished_completion, openai_usage
from .base import Completion, CompletionRequest, Message, ToolCall

if TYPE_CHECKING:
    from openai import AsyncOpenAI


class OpenAIProvider(SdkProvider["AsyncOpenAI"]):
    """Calls Chat Completions. One instance per (base_url, key variable); reuses one client."""

    name = "openai"
    usual_key_env = "OPENAI_API_KEY"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key_env: str | KeyEnvDefault | None = DEFAULT_KEY_ENV,
        strict_schema: bool = False,
        default_timeout_s: float = 600.0,
    ) -> None:
        super().__init__(
            base_url=base_url, api_key_env=api_key_env, default_timeout_s=default_timeout_s
        )
        self.strict_schema = strict_schema

    def _new_client(self, key: str) -> AsyncOpenAI:
        from openai import AsyncOpenAI

        return AsyncOpenAI(
            api_key=key, base_url=self.base_url, max_retries=0, timeout=self.default_timeout_s
        )

    def build_params(self, model: ModelEntry, request: CompletionRequest) -> dict[str, Any]:
        """The keyword arguments for ``chat.completions.create``."""
        messages: list[dict[str, Any]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        for m in request.messages:
            messages.extend(_messages(m))
        params: dict[str, Any] = {
            "model": model.model,
            "messages": messages,
            "max_completion_tokens" if self.base_url is None else "max_tokens": request.max_tokens,
        }
        if request.temperature is not None:
            params["temperature"] = request.temperature
        if request.tools:
            params["tools"] = [
                {
                    "type": "function",
                    "function": {
                        "name": t.name,
                        "description": t.description,
                        "parameters": dict(t.parameters),
                    },
                }
                for t in request.tools
            ]
        if request.json_schema is not None:
            params["response_format"] = {
                "type": "json_schema",
                "json_schema": {
                    "name": "output",
                    "schema": dict(request.json_schema),
                    "strict": self.strict_schema,
                },
            }
        if request.timeout_s is not None:
            params["timeout"] = request.timeout_s
        return params

    async def _send(self, client: AsyncOpenAI, params: dict[str, Any]) -> Any:
        return await client.chat.completions.create(**params)

    def _read(self, model: ModelEntry, resp: Any, latency_s: float) -> Completion:
        request_id = getattr(resp, "_request_id", None)
        choices = getattr(resp, "choices", None) or []
        if not choices:
            raise ProviderResponseError(
                "the response has no choices",
                provider=self.name,
                model=model.model,
                status_code=200,
                request_id=request_id,
            )
        choice = choices[0]
        finish = getattr(choice, "finish_reason", None)
        msg = getattr(choice, "message", None)
        text = getattr(msg, "content", None) or ""
        calls = tuple(
            ToolCall(
                str(c.id),
                str(getattr(c.function, "name", "")),
                str(getattr(c.function, "arguments", "") or ""),
            )
            for c in (getattr(msg, "tool_calls", None) or [])
            if getattr(c, "function", None) is not None
        )
        return finished_completion(
            provider=self.name,
            model=model,
            text=text,
            finish=finish,
            filtered=finish == "content_filter" or bool(getattr(msg, "refusal", None)),
            out_of_tokens=finish == "length",
            served_model=getattr(resp, "model", None),
            usage=openai_usage(getattr(resp, "usage", None)),
            latency_s=latency_s,
            request_id=request_id,
            response_id=getattr(resp, "id", None),
            tool_calls=calls,
        )


def _messages(m: Message) -> list[dict[str, Any]]:
    """A transcript message in Chat Completions form: an assistant turn carries its
    ``tool_calls``; each output is a ``tool`` message of its own."""
    if not m.tool_calls and not m.tool_outputs:
        return [{"role": m.role, "content": m.content}]
    out: list[dict[str, Any]] = [
        {"role": "tool", "tool_call_id": o.call_id, "content": o.content} for o in m.tool_outputs
    ]
    if m.tool_calls:
        out.append(
            {
                "role": "assistant",
                "content": m.content or None,
                "tool_calls": [
                    {
                        "id": c.id,
                        "type": "function",
                        "function": {"name": c.name, "arguments": c.arguments},
                    }
                    for c in m.tool_calls
                ],
            }
        )
    elif m.content:
        out.append({"role": m.role, "content": m.content})
    return out
