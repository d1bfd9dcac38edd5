"""What the SDK providers share: their base class, reading keys, usage normalisation."""

from __future__ import annotations

import enum
import json
import os
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import anyio
import anyio.to_thread

from .._exceptions import AuthError, ContentFiltered, ProviderError, ProviderResponseError
from ..catalog import ModelEntry, Usage
from ._errors import translate
from .base import Completion, CompletionRequest, ToolCall

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
    """A provider's SDK client: made on first use and made again when the API key changes,
    so a rotated key takes effect without a restart. The old client may still carry calls
    of other nodes: it is closed with the provider, not at the rotation.

    The first make imports the SDK (seconds on a busy machine): it runs in a worker thread,
    so the event loop, and every other node, carries on meanwhile.
    """

    def __init__(self, make: Callable[[str], ClientT]) -> None:
        self._make = make
        self._client: ClientT | None = None
        self._key: str | None = None
        self._retired: list[ClientT] = []
        self._lock: anyio.Lock | None = None

    async def get(self, key: str) -> ClientT:
        client = self._client
        if client is not None and self._key == key:
            return client
        if self._lock is None:
            self._lock = anyio.Lock()
        async with self._lock:  # one build, however many nodes ask at once
            if self._client is None or self._key != key:
                made = await anyio.to_thread.run_sync(self._make, key)
                if self._client is not None:
                    self._retired.append(self._client)
                self._client, self._key = made, key
            return self._client

    async def aclose(self) -> None:
        clients = [*self._retired, *([self._client] if self._client is not None else [])]
        self._client, self._retired = None, []
        for client in clients:
            await client.close()


class KeyEnvDefault(enum.Enum):
    KEY_ENV = "the provider's usual variable"


DEFAULT_KEY_ENV = KeyEnvDefault.KEY_ENV
"""``api_key_env`` left out: the provider's usual variable (None means: no key at all)."""


class SdkProvider(ABC, Generic[ClientT]):
    """What the SDK-backed providers share: construction, the client, the error choke point.

    A subclass says how to make its SDK client, the request's parameters, how to send them
    and how to read the response; :meth:`complete` does the rest the same way for all.
    """

    name: ClassVar[str]
    usual_key_env: ClassVar[str]

    def __init__(
        self,
        *,
        base_url: str | None = None,
        api_key_env: str | KeyEnvDefault | None = DEFAULT_KEY_ENV,
        default_timeout_s: float = 600.0,
    ) -> None:
        self.base_url = base_url
        self.api_key_env = self.usual_key_env if api_key_env is DEFAULT_KEY_ENV else api_key_env
        self.default_timeout_s = default_timeout_s
        self._client: SdkClient[ClientT] = SdkClient(self._new_client)

    def __repr__(self) -> str:
        # The key variable's name only, never its value.
        return (
            f"{type(self).__name__}(base_url={self.base_url!r}, api_key_env={self.api_key_env!r})"
        )

    @abstractmethod
    def _new_client(self, key: str) -> ClientT:
        """Import the SDK and build a client with ``max_retries=0`` (runs in a thread)."""

    @abstractmethod
    def build_params(self, model: ModelEntry, request: CompletionRequest) -> dict[str, Any]:
        """The keyword arguments of the SDK call (public for tests and debugging)."""

    @abstractmethod
    async def _send(self, client: ClientT, params: dict[str, Any]) -> Any:
        """Make the SDK call."""

    @abstractmethod
    def _read(self, model: ModelEntry, response: Any, latency_s: float) -> Completion:
        """The Completion of a 200 response, or the ProviderError it really is."""

    async def prepare(self, model: ModelEntry) -> None:
        """Get the client ready (import the SDK, build it) before the attempt's clock runs.

        Raises:
            AuthError: the key variable is unset.
        """
        await self._client.get(read_api_key(self.name, model.model, self.api_key_env))

    async def complete(self, model: ModelEntry, request: CompletionRequest) -> Completion:
        """Send one request. Raises a :class:`~dagtier.ProviderError` subclass on failure."""
        start = time.perf_counter()
        error: ProviderError | None = None
        try:
            client = await self._client.get(read_api_key(self.name, model.model, self.api_key_env))
            response = await self._send(client, self.build_params(model, request))
        except ProviderError as exc:
            error = exc
        except Exception as exc:
            secrets = key_secrets(self.api_key_env)
            error = translate(exc, provider=self.name, model=model.model, secrets=secrets)
            if not hasattr(exc, "status_code"):
                error.__cause__ = exc  # connection/decoding details help; no body to leak
        if error is not None:
            # Raised outside the except block: no implicit __context__ holding the SDK error.
            raise error
        return self._read(model, response, time.perf_counter() - start)

    async def aclose(self) -> None:
        await self._client.aclose()


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
    tool_calls: tuple[ToolCall, ...] = (),
) -> Completion:
    """The Completion of a 200 answer, or the error it really is: a refusal or filter
    (not retryable), or an empty answer (retryable, unless the token limit cut it: the
    same request would end the same way, so it is not paid for again). An answer of tool
    calls alone is not empty."""
    if filtered:
        raise ContentFiltered(
            f"the model refused or the answer was filtered (finish reason {finish})",
            provider=provider,
            model=model.model,
            request_id=request_id,
            retryable=False,
        )
    if not text.strip() and not tool_calls:
        empty = ProviderResponseError(
            f"empty completion (finish reason {finish})",
            provider=provider,
            model=model.model,
            status_code=200,
            request_id=request_id,
            retryable=not out_of_tokens,
        )
        empty.usage = usage  # billed all the same: the budget charges what it says
        raise empty
    return Completion(
        text=text,
        model=str(served_model or model.model),
        usage=usage,
        latency_s=latency_s,
        request_id=request_id,
        meta={"finish_reason": finish, "response_id": response_id},
        tool_calls=tool_calls,
    )


def tool_arguments(arguments: str) -> dict[str, Any]:
    """A call's arguments as the object an API that wants parsed arguments needs; malformed
    text (a model's mistake, answered with an error result) becomes ``{}``."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
