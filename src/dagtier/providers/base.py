"""The one small interface every provider implements, and the request/response types."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

from ..catalog import ModelEntry, Usage


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool as the model sees it: a name, what it does, and its arguments' JSON Schema."""

    name: str
    description: str
    parameters: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call a model asked for."""

    id: str
    name: str
    arguments: str
    """The arguments as JSON text, as the model wrote them (may be malformed)."""


@dataclass(frozen=True, slots=True)
class ToolOutput:
    """A tool's answer to one call, sent back to the model."""

    call_id: str
    name: str
    content: str
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class Message:
    role: Literal["user", "assistant"]
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    """On an assistant message: the calls the model asked for."""
    tool_outputs: tuple[ToolOutput, ...] = ()
    """On a user message: the answers to the previous assistant message's calls."""


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """What a node asks of a model. Provider-neutral; each provider maps it to its API."""

    messages: tuple[Message, ...]
    system: str | None = None
    max_tokens: int = 1024
    temperature: float | None = None
    json_schema: Mapping[str, Any] | None = None
    """Ask for structured output matching this JSON Schema (where the provider supports it)."""
    timeout_s: float | None = None
    """Per-attempt timeout. None: no timeout beyond the provider's own."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    """Not sent to the model: run id, node id, task key (the replay provider keys on them)."""
    tools: tuple[ToolSpec, ...] = ()
    """Tools the model may call (native tool calling); the answer may then be tool calls."""
    known_chars: int | None = None
    """:attr:`prompt_chars` worked out by the caller (a tool loop grows its transcript a
    turn at a time and keeps the count, instead of the gateway re-summing it every turn)."""

    @classmethod
    def from_prompt(cls, prompt: str, **kwargs: Any) -> CompletionRequest:
        return cls(messages=(Message("user", prompt),), **kwargs)

    @property
    def prompt_chars(self) -> int:
        if self.known_chars is not None:
            return self.known_chars
        msgs = self.messages
        # one message is the common case: no generator per call (asked twice per call)
        n = len(msgs[0].content) if len(msgs) == 1 else sum(message_chars(m) for m in msgs)
        if self.tools:
            n += sum(len(t.description) + len(str(t.parameters)) for t in self.tools)
        return n + len(self.system or "")


def message_chars(m: Message) -> int:
    """A message's size in characters, tool calls and their outputs included (they are
    prompt tokens of the next turn, so the budget's worst case must count them)."""
    n = len(m.content)
    for c in m.tool_calls:
        n += len(c.name) + len(c.arguments)
    for o in m.tool_outputs:
        n += len(o.content)
    return n


@dataclass(slots=True)
class Completion:
    """A model's answer and what it cost to get it."""

    text: str
    model: str
    """The model id that actually served the request (may differ from the one asked for)."""
    usage: Usage
    latency_s: float = 0.0
    request_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    """Provider-specific extras (the replay provider puts the recorded quality here)."""
    cost_usd: float | None = None
    """The call's cost in USD as the provider itself reports it, when it does (the replay
    provider charges recorded costs). The gateway uses it over the catalog's token prices."""
    tool_calls: tuple[ToolCall, ...] = ()
    """Tools the model asked to call (only when the request offered tools)."""


@runtime_checkable
class Provider(Protocol):
    """One provider (an API, an endpoint, the local model). Stateless per call.

    ``complete`` raises a :class:`~dagtier.ProviderError` subclass on failure, never an SDK
    exception: each provider translates at one choke point.

    A provider may also define ``async def prepare(self, model) -> None``: one-off set-up
    (importing an SDK, building a client) that the gateway awaits before the attempt's
    timeout starts. Without it, everything happens inside ``complete``.
    """

    async def complete(self, model: ModelEntry, request: CompletionRequest) -> Completion: ...

    async def aclose(self) -> None: ...
