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

import time
from typing import TYPE_CHECKING, Any

from .._exceptions import ProviderError, ProviderResponseError
from ..catalog import ModelEntry
from ._common import (
    SdkClient,
    finished_completion,
    key_secrets,
    openai_usage,
    read_api_key,
)
from ._errors import translate
from .base import Completion, CompletionRequest

if TYPE_CHECKING:
    from openai import AsyncOpenAI


class OpenAIProvider:
    """Calls Chat Completions. One instance per (base_url, key variable); reuses one client."""

    name = "openai"

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        strict_schema: bool = False,
        default_timeout_s: float = 600.0,
    ) -> None:
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.strict_schema = strict_schema
        self.default_timeout_s = default_timeout_s
        self._client = SdkClient(self._new_client)

    def __repr__(self) -> str:
        return f"OpenAIProvider(base_url={self.base_url!r}, api_key_env={self.api_key_env!r})"

    def _new_client(self, key: str) -> AsyncOpenAI:
        from openai import AsyncOpenAI

        return AsyncOpenAI(
            api_key=key, base_url=self.base_url, max_retries=0, timeout=self.default_timeout_s
        )

    def _get_client(self, model: ModelEntry) -> AsyncOpenAI:
        return self._client.get(read_api_key(self.name, model.model, self.api_key_env))

    def build_params(self, model: ModelEntry, request: CompletionRequest) -> dict[str, Any]:
        """The keyword arguments for ``chat.completions.create``."""
        messages: list[dict[str, str]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.extend({"role": m.role, "content": m.content} for m in request.messages)
        params: dict[str, Any] = {
            "model": model.model,
            "messages": messages,
            "max_completion_tokens" if self.base_url is None else "max_tokens": request.max_tokens,
        }
        if request.temperature is not None:
            params["temperature"] = request.temperature
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

    async def complete(self, model: ModelEntry, request: CompletionRequest) -> Completion:
        """Send one request. Raises a :class:`~dagtier.ProviderError` subclass on failure."""
        secrets = key_secrets(self.api_key_env)
        start = time.perf_counter()
        error: ProviderError | None = None
        try:
            client = self._get_client(model)
            resp = await client.chat.completions.create(**self.build_params(model, request))
        except ProviderError as exc:
            error = exc
        except Exception as exc:
            error = translate(exc, provider=self.name, model=model.model, secrets=secrets)
            if not hasattr(exc, "status_code"):
                error.__cause__ = exc
        if error is not None:
            raise error  # outside the except block: no __context__ holding the SDK error
        latency = time.perf_counter() - start
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
        return finished_completion(
            provider=self.name,
            model=model,
            text=text,
            finish=finish,
            filtered=finish == "content_filter" or bool(getattr(msg, "refusal", None)),
            out_of_tokens=finish == "length",
            served_model=getattr(resp, "model", None),
            usage=openai_usage(getattr(resp, "usage", None)),
            latency_s=latency,
            request_id=request_id,
            response_id=getattr(resp, "id", None),
        )

    async def aclose(self) -> None:
        await self._client.aclose()
