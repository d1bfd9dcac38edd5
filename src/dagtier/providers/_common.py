"""Small helpers the HTTP providers share: reading keys, timing, usage normalisation."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from .._exceptions import AuthError, ContentFiltered, ProviderResponseError
from ..catalog import ModelEntry, Usage
from .base import Completion

PLACEHOLDER_KEY = "dagtier-no-key"
"""Sent when a catalog entry has no ``api_key_env`` (local servers): the SDKs insist on a key."""


def read_api_key(provider: str, model: str, api_key_env: str | None) -> str:
    """The key from the environment variable the catalog names, or a placeholder if none.

    Raises:
        AuthError: the catalog names a variable and it is unset or empty (not retryable).
    """
    if api_key_env is None:
        return PLACEHOLDER_KEY
    value = os.environ.get(api_key_env, "")
    if not value:
        raise AuthError(
            f"${api_key_env} is not set", provider=provider, model=model, retryable=False
        )
    return value


class _Closable(Protocol):
    async def close(self) -> None: ...


ClientT = TypeVar("ClientT", bound=_Closable)


class SdkClient(Generic[ClientT]):
    """A provider's SDK client: made on first use (the SDK is imported only then) and made
    again when the API key changes, so a rotated key takes effect without a restart. The
    old client may still carry calls of other nodes: it is closed with the provider, not
    at the rotation."""

    def __init__(self, make: Callable[[str], ClientT]) -> None:
        self._make = make
        self._client: ClientT | None = None
        self._key: str | None = None
        self._retired: list[ClientT] = []

    def get(self, key: str) -> ClientT:
        if self._client is None or self._key != key:
            if self._client is not None:
                self._retired.append(self._client)
            self._client, self._key = self._make(key), key
        return self._client

    async def aclose(self) -> None:
        clients = [*self._retired, *([self._client] if self._client is not None else [])]
        self._client, self._retired = None, []
        for client in clients:
            await client.close()


def key_secrets(api_key_env: str | None) -> tuple[str, ...]:
    """The secret values to scrub from any message about this provider."""
    if api_key_env is None:
        return ()
    value = os.environ.get(api_key_env, "")
    return (value,) if value else ()


def _get(obj: Any, name: str) -> Any:
    if obj is None:
        return None
    if isinstance(obj, dict):
        return obj.get(name)
    return getattr(obj, name, None)


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and value > 0 else 0


def openai_usage(usage: Any) -> Usage:
    """Normalise a Chat Completions ``usage`` block (object or dict) to disjoint kinds.

    ``prompt_tokens`` includes cached (read) and cache-write tokens; ``completion_tokens``
    includes reasoning tokens. dagtier's :class:`Usage` counts each token once.
    """
    prompt = _int(_get(usage, "prompt_tokens"))
    completion = _int(_get(usage, "completion_tokens"))
    pdet = _get(usage, "prompt_tokens_details")
    cdet = _get(usage, "completion_tokens_details")
    cached = min(_int(_get(pdet, "cached_tokens")), prompt)
    written = min(_int(_get(pdet, "cache_write_tokens")), prompt - cached)
    reasoning = min(_int(_get(cdet, "reasoning_tokens")), completion)
    return Usage(
        input_tokens=prompt - cached - written,
        output_tokens=completion - reasoning,
        cache_read_tokens=cached,
        cache_write_tokens=written,
        reasoning_tokens=reasoning,
    )


def anthropic_usage(usage: Any) -> Usage:
    """Normalise a Messages API ``usage`` block to disjoint kinds.

    Anthropic's ``input_tokens`` already excludes cache reads and writes; ``output_tokens``
    includes thinking, reported separately in ``output_tokens_details.thinking_tokens``.
    """
    output = _int(_get(usage, "output_tokens"))
    thinking = min(_int(_get(_get(usage, "output_tokens_details"), "thinking_tokens")), output)
    return Usage(
        input_tokens=_int(_get(usage, "input_tokens")),
        output_tokens=output - thinking,
        cache_read_tokens=_int(_get(usage, "cache_read_input_tokens")),
        cache_write_tokens=_int(_get(usage, "cache_creation_input_tokens")),
        reasoning_tokens=thinking,
    )


def finished_completion(
    *,
    provider: str,
    model: ModelEntry,
    text: str,
    finish: str | None,
    filtered: bool,
    out_of_tokens: bool,
    served_model: str | None,
    usage: Usage,
    latency_s: float,
    request_id: str | None,
    response_id: str | None,
) -> Completion:
    """The Completion of a 200 answer, or the error it really is: a refusal or filter
    (not retryable), or an empty answer (retryable, unless the token limit cut it: the
    same request would end the same way, so it is not paid for again)."""
    if filtered:
        raise ContentFiltered(
            f"the model refused or the answer was filtered (finish reason {finish})",
            provider=provider,
            model=model.model,
            request_id=request_id,
            retryable=False,
        )
    if not text.strip():
        raise ProviderResponseError(
            f"empty completion (finish reason {finish})",
            provider=provider,
            model=model.model,
            status_code=200,
            request_id=request_id,
            retryable=not out_of_tokens,
        )
    return Completion(
        text=text,
        model=str(served_model or model.model),
        usage=usage,
        latency_s=latency_s,
        request_id=request_id,
        meta={"finish_reason": finish, "response_id": response_id},
    )
