"""Calling a tier: retries, fallback across the tier's models, cost.

Availability failures (rate limits, 5xx, timeouts) are retried and then fall back to the
next model of the same tier. They never escalate the tier: escalation is for quality and
belongs to the policies.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import anyio

from .._exceptions import ModelUnavailable, ProviderError
from .._types import Tier
from ..catalog import Catalog, ModelEntry, Usage
from .base import Completion, CompletionRequest
from .registry import ProviderRegistry


@dataclass(slots=True)
class CallResult:
    completion: Completion
    model: ModelEntry
    cost: float
    errors: list[ProviderError] = field(default_factory=list)
    """Failed tries before the one that served (retries and fallbacks), oldest first."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int = 3
    """Tries per model, the first included."""
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_retry_after_s: float = 60.0

    def delay(self, attempt: int, error: ProviderError, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based) after ``error``."""
        ra: float | None = error.retry_after
        if ra is not None and 0 <= ra <= self.max_retry_after_s:
            return float(ra)
        backoff = min(self.max_delay_s, self.base_delay_s * 2.0 ** (attempt - 1))
        return backoff * (0.5 + rng.random() / 2)


@runtime_checkable
class Budget(Protocol):
    """A spending limit reserved against before each provider call (the same hook as on
    the providers branch: ``reserve`` raises when the amount does not fit and no call is
    made; ``settle`` follows every successful ``reserve`` with the actual cost)."""

    def reserve(self, amount: float) -> Any: ...

    def settle(self, token: Any, actual: float) -> Any: ...


class Gateway:
    """Sends a request to a tier and returns the first successful completion."""

    def __init__(
        self,
        catalog: Catalog,
        registry: ProviderRegistry | None = None,
        *,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] | None = None,
        budget: Budget | None = None,
    ) -> None:
        self.catalog = catalog
        self.registry = registry or ProviderRegistry()
        self.retry = retry or RetryPolicy()
        self._rng = rng or random.Random()
        self._sleep = sleep or anyio.sleep
        self.budget = budget

    async def call(self, tier: Tier, request: CompletionRequest) -> CallResult:
        """Call ``tier``'s models in catalog order until one answers.

        Raises:
            ModelUnavailable: no model of the tier answered; ``__cause__`` is the last error.
        """
        models = self.catalog.usable_models(tier)
        errors: list[ProviderError] = []
        for entry in models:
            provider = self.registry.get(entry)
            for attempt in range(1, self.retry.max_attempts + 1):
                token: Any = None
                reserved = 0.0
                if self.budget is not None:
                    est = Usage(-(-request.prompt_chars // 4), request.max_tokens)
                    reserved = entry.cost(est)
                    token = self.budget.reserve(reserved)
                settle_with = reserved  # unknown outcome (cancelled): assume the worst
                error: ProviderError | None = None
                try:
                    completion = await provider.complete(entry, request)
                    # a cost the provider reports itself (replay) beats the token prices
                    cost = completion.cost_usd
                    if cost is None:
                        cost = entry.cost(completion.usage)
                    settle_with = cost
                except ProviderError as exc:
                    if exc.status_code is not None:
                        settle_with = 0.0  # refused with an error status: not billed
                    error = exc
                finally:
                    if self.budget is not None:
                        self.budget.settle(token, settle_with)
                if error is None:
                    return CallResult(completion, entry, settle_with, errors)
                errors.append(error)
                if not error.retryable or attempt == self.retry.max_attempts:
                    break
                await self._sleep(self.retry.delay(attempt, error, self._rng))
        last = errors[-1] if errors else None
        why = str(last) if last else "no usable model (no API key set and no local model)"
        raise ModelUnavailable(
            f"no model of tier {tier} answered: {why}",
            provider=last.provider if last else "-",
            model=last.model if last else "-",
        ) from last
