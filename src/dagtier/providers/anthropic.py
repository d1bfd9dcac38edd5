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
import time
from typing import TYPE_CHECKING, Any

from .._exceptions import ProviderError
from ..catalog import ModelEntry
from ._common import (
    SdkClient,
    anthropic_usage,
    finished_completion,
    key_secrets,
    read_api_key,
)
from ._errors import translate
from .base import Completion, CompletionRequest

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic


class AnthropicProvider:
    """Calls the Messages API. One instance per (base_url, key variable); reuses one client."""

    name = "anthropic"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key_env: str | None = "ANTHROPIC_API_KEY",
        default_timeout_s: float = 600.0,
    ) -> None:
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.default_timeout_s = default_timeout_s
        self._client = SdkClient(self._new_client)

    def __repr__(self) -> str:
        # The key variable's name only, never its value.
        return f"AnthropicProvider(base_url={self.base_url!r}, api_key_env={self.api_key_env!r})"

    def _new_client(self, key: str) -> AsyncAnthropic:
        from anthropic import AsyncAnthropic

        return AsyncAnthropic(
            api_key=key, base_url=self.base_url, max_retries=0, timeout=self.default_timeout_s
        )

    def _get_client(self, model: ModelEntry) -> AsyncAnthropic:
        return self._client.get(read_api_key(self.name, model.model, self.api_key_env))

    def build_params(self, model: ModelEntry, request: CompletionRequest) -> dict[str, Any]:
        """The keyword arguments for ``messages.create`` (public for tests and debugging)."""
        params: dict[str, Any] = {
            "model": model.model,
            "max_tokens": request.max_tokens,
            "messages": [{"role": m.role, "content": m.content} for m in request.messages],
        }
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

    async def complete(self, model: ModelEntry, request: CompletionRequest) -> Completion:
        """Send one request. Raises a :class:`~dagtier.ProviderError` subclass on failure."""
        secrets = key_secrets(self.api_key_env)
        start = time.perf_counter()
        error: ProviderError | None = None
        try:
            client = self._get_client(model)
            message = await client.messages.create(**self.build_params(model, request))
        except ProviderError as exc:
            error = exc
        except Exception as exc:
            error = translate(exc, provider=self.name, model=model.model, secrets=secrets)
            if not hasattr(exc, "status_code"):
                error.__cause__ = exc  # connection/decoding details help; no body to leak
        if error is not None:
            # Raised outside the except block: no implicit __context__ holding the SDK error.
            raise error
        latency = time.perf_counter() - start
        request_id = getattr(message, "_request_id", None)
        blocks = list(message.content or [])
        parts = [getattr(b, "text", "") for b in blocks if getattr(b, "type", "") == "text"]
        tool_inputs = [getattr(b, "input", None) for b in blocks if b.type == "tool_use"]
        text = "".join(p for p in parts if p)
        if not text and tool_inputs:
            text = json.dumps(tool_inputs[0])
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
            latency_s=latency,
            request_id=request_id,
            response_id=getattr(message, "id", None),
        )

    async def aclose(self) -> None:
        await self._client.aclose()
