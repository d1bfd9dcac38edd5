"""The gateway's resilience parts: backoff, circuit breakers, per-model limits, the clock.

Everything that waits or reads the time goes through a :class:`Clock`, so tests inject a
fake one and assert the exact delays instead of sleeping (openai's tests have to patch a
private method for this).
"""

from __future__ import annotations

import math
import random
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Literal, Protocol

import anyio

from .._exceptions import AuthError, ProviderError

# --------------------------------------------------------------------------- clock


class Clock(Protocol):
    """Where the gateway reads the time and waits. Monotonic seconds."""

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """``time.monotonic`` and ``anyio.sleep``."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


# --------------------------------------------------------------------------- retries


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry one model before falling back to the next.

    The delay before retry *n* is the current error's Retry-After when the server sent one
    between 0 and ``max_retry_after_s`` (read from the error at hand on every attempt),
    otherwise ``base_delay_s * 2**(n-1)`` capped at ``max_delay_s``, times a jitter factor
    in [0.5, 1]. A Retry-After above ``max_retry_after_s`` makes the gateway fall back at
    once instead of waiting.
    """

    max_attempts: int = 3
    """Tries per model, the first included."""
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_retry_after_s: float = 60.0
    attempt_timeout_s: float | None = None
    """Per-attempt timeout when the request sets none (``CompletionRequest.timeout_s``)."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {self.max_attempts}")
        if self.base_delay_s < 0 or self.max_delay_s < 0 or self.max_retry_after_s < 0:
            raise ValueError("delays must be >= 0")

    def delay(self, attempt: int, error: ProviderError, rng: random.Random) -> float:
        """Seconds to wait before retry number ``attempt`` (1-based) after ``error``."""
        ra = error.retry_after
        if ra is not None and 0 <= ra <= self.max_retry_after_s:
            return float(ra)
        backoff = min(self.max_delay_s, self.base_delay_s * 2.0 ** max(0, attempt - 1))
        return float(backoff * (0.5 + rng.random() / 2))

    def gives_up_on(self, error: ProviderError) -> bool:
        """True when the server asks for a wait longer than we accept: fall back at once."""
        ra = error.retry_after
        return ra is not None and ra > self.max_retry_after_s


# --------------------------------------------------------------------------- circuit breaker


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When a model's circuit opens and how long it stays open (LiteLLM's cooldown defaults).

    The circuit opens when, within the last ``window_s`` seconds, at least ``min_calls``
    calls were made and more than ``failure_rate`` of them failed. While open the model is
    skipped; after ``cooldown_s`` one probe call is let through (half-open): success closes
    the circuit, failure opens it for another cool-down.
    """

    window_s: float = 60.0
    min_calls: int = 5
    failure_rate: float = 0.5
    cooldown_s: float = 5.0


BreakerState = Literal["closed", "open", "half_open"]


def counts_as_failure(error: ProviderError) -> bool:
    """Availability failures count against a model; a 400 says nothing about its health."""
    return error.retryable or isinstance(error, AuthError)


class CircuitBreaker:
    """One model's circuit. Not thread-safe; used from one event loop."""

    def __init__(self, policy: BreakerPolicy) -> None:
        self.policy = policy
        self.state: BreakerState = "closed"
        self.opened_at = 0.0
        self._calls: deque[tuple[float, bool]] = deque()
        self._failures = 0
        """Failures among ``_calls``, kept as they come and go: summing the window on every
        call made a burst of fast calls quadratic (a 10,000-node run spent 90% here)."""
        self._probe_in_flight = False
        self.transitions: list[tuple[float, BreakerState]] = []
        """(time, new state) for every change: for tests and reports."""

    def _set(self, state: BreakerState, now: float) -> None:
        if state != self.state:
            self.state = state
            self.transitions.append((now, state))

    def reopens_at(self) -> float:
        return self.opened_at + self.policy.cooldown_s if self.state == "open" else 0.0

    def allow(self, now: float) -> bool:
        """May a call go to this model now? Claims the probe slot when half-opening."""
        if self.state == "closed":
            return True
        if self.state == "open":
            if now < self.opened_at + self.policy.cooldown_s:
                return False
            self._set("half_open", now)
            self._probe_in_flight = False
        if self._probe_in_flight:
            return False
        self._probe_in_flight = True
        return True

    def release_probe(self) -> None:
        """The probe ended without an outcome (cancelled): let the next call probe."""
        self._probe_in_flight = False

    def record(self, ok: bool, now: float) -> None:
        """Record the outcome of one call."""
        if self.state == "half_open":
            self._probe_in_flight = False
            self._calls.clear()
            self._failures = 0
            if ok:
                self._set("closed", now)
            else:
                self.opened_at = now
                self._set("open", now)
            return
        if self.state == "open":
            return  # a call that started before the circuit opened
        self._calls.append((now, ok))
        if not ok:
            self._failures += 1
        horizon = now - self.policy.window_s
        while self._calls and self._calls[0][0] < horizon:
            if not self._calls.popleft()[1]:
                self._failures -= 1
        n = len(self._calls)
        if n >= self.policy.min_calls and self._failures / n > self.policy.failure_rate:
            self.opened_at = now
            self._calls.clear()
            self._failures = 0
            self._set("open", now)


# --------------------------------------------------------------------------- limits


class TokenBucket:
    """``capacity`` tokens, refilled at ``rate_per_s``. ``take`` waits (on the clock) for tokens.

    A request larger than the capacity waits for a full bucket and then takes it all, so a
    big prompt is slowed down, never deadlocked. The balance may go negative after
    :meth:`adjust` (a call used more than estimated): later calls then wait longer.
    """

    def __init__(self, capacity: float, rate_per_s: float, clock: Clock) -> None:
        self.capacity = float(capacity)
        self.rate = float(rate_per_s)
        self.tokens = float(capacity)
        self._clock = clock
        self._last = clock.monotonic()

    def _refill(self) -> None:
        now = self._clock.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self._last) * self.rate)
        self._last = now

    async def take(self, amount: float) -> float:
        """Take ``amount`` (clamped to the capacity); return the seconds waited."""
        amount = min(float(amount), self.capacity)
        waited = 0.0
        while True:
            self._refill()
            if self.tokens >= amount:
                self.tokens -= amount
                return waited
            wait = (amount - self.tokens) / self.rate
            waited += wait
            await self._clock.sleep(wait)

    def adjust(self, delta: float) -> None:
        """Give back (positive) or charge (negative) tokens after the fact."""
        self._refill()
        self.tokens = min(self.capacity, self.tokens + delta)


class ModelLimits:
    """A model's concurrency, requests-per-minute and tokens-per-minute limits."""

    def __init__(
        self,
        clock: Clock,
        *,
        max_concurrency: int | None = None,
        requests_per_minute: float | None = None,
        tokens_per_minute: float | None = None,
    ) -> None:
        self.concurrency = anyio.CapacityLimiter(max_concurrency) if max_concurrency else None
        self.rpm = (
            TokenBucket(requests_per_minute, requests_per_minute / 60.0, clock)
            if requests_per_minute
            else None
        )
        self.tpm = (
            TokenBucket(tokens_per_minute, tokens_per_minute / 60.0, clock)
            if tokens_per_minute
            else None
        )

    def acquire(self, estimated_tokens: int) -> AbstractAsyncContextManager[None]:
        """Hold a concurrency slot for the call, after taking its request and token quota.

        A model without limits (the common case) gets a shared no-op context: the generator
        based one costs a few µs per call for nothing (bench/overhead.py)."""
        if self.concurrency is None and self.rpm is None and self.tpm is None:
            return _UNLIMITED
        return self._acquire(estimated_tokens)

    @asynccontextmanager
    async def _acquire(self, estimated_tokens: int) -> AsyncIterator[None]:
        if self.rpm is not None:
            await self.rpm.take(1)
        if self.tpm is not None:
            await self.tpm.take(estimated_tokens)
        if self.concurrency is None:
            yield
        else:
            async with self.concurrency:
                yield

    def settle_tokens(self, estimated: int, actual: int) -> None:
        if self.tpm is not None:
            self.tpm.adjust(estimated - actual)


class _Unlimited:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


_UNLIMITED = _Unlimited()


def estimate_tokens(prompt_chars: int, max_tokens: int) -> tuple[int, int]:
    """(input, output) tokens to reserve: 4 characters a token, and the whole ``max_tokens``."""
    return math.ceil(prompt_chars / 4), max_tokens


__all__ = [
    "BreakerPolicy",
    "CircuitBreaker",
    "Clock",
    "ModelLimits",
    "RetryPolicy",
    "SystemClock",
    "TokenBucket",
    "counts_as_failure",
    "estimate_tokens",
]
