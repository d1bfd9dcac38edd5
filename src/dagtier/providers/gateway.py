"""Calling a tier: retries, fallback across the tier's models, circuit breakers, limits, cost.

Availability failures (rate limits, 5xx, timeouts, dropped connections, unusable 200s) are
retried with capped exponential backoff and jitter, honouring the current error's
Retry-After; then the next model of the same tier is tried, in catalog order. They never
escalate the tier: escalation is for quality and belongs to the policies. A 400 or 401 is
not retried (it would hide a bug and waste money); it falls back to the next model, since
another provider may well accept the request.

For each model the gateway keeps, per (provider, base_url, model):

- a circuit breaker (:class:`BreakerPolicy`): an open circuit skips the model; when every
  model of a tier is skipped that way they are called anyway, so a breaker never leaves a
  tier (say, one with a single model) unusable for good;
- limits from the catalog entry: concurrent calls, requests/minute, tokens/minute.

Per-run state never lives on the gateway: each call is handed a :class:`CallContext` (run
id, node id, the run's :class:`Budget`), so any number of concurrent runs share one gateway,
its breakers and its limits. A budget reserves the worst case of each attempt (prompt
characters / 4 input tokens plus ``max_tokens`` output tokens, at the model's prices) before
the call and settles the actual cost after it, so concurrent calls cannot overshoot it.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import anyio

from .._exceptions import (
    ModelUnavailable,
    ProviderError,
    ProviderStatusError,
    ProviderTimeout,
)
from .._logging import get_logger
from .._types import Tier
from ..catalog import Catalog, ModelEntry, Usage
from ._resilience import (
    BreakerPolicy,
    CircuitBreaker,
    Clock,
    ModelLimits,
    RetryPolicy,
    SystemClock,
    counts_as_failure,
    estimate_tokens,
)
from .base import Completion, CompletionRequest
from .registry import ProviderRegistry, check_priced

ModelKey = tuple[str, str | None, str]


@dataclass(slots=True)
class CallResult:
    completion: Completion
    model: ModelEntry
    cost: float
    errors: list[ProviderError] = field(default_factory=list)
    """Failed tries before the one that served (retries and fallbacks), oldest first."""
    skipped: list[str] = field(default_factory=list)
    """Catalog names of models skipped because their circuit was open."""
    local_fallback: bool = False
    """The tier had no usable model of its own and the embedded local model served."""

    @property
    def attempts(self) -> int:
        """Provider calls made, the successful one included."""
        return len(self.errors) + 1

    @property
    def fell_back(self) -> bool:
        """Served by another model than the tier's first usable one."""
        return any(e.model != self.model.model for e in self.errors) or bool(self.skipped)


@runtime_checkable
class Budget(Protocol):
    """A run's spending limit, reserved against before each provider call of that run.

    ``reserve(amount, node_id)`` names the calling node (None outside a node) so per-node
    caps can apply. ``reserve`` raises (e.g. :class:`~dagtier.BudgetExhausted`) when the amount does not fit;
    the gateway lets that error propagate and makes no call. ``settle`` is always called
    once per successful ``reserve``, with the actual cost (0 when the provider refused the
    call with an error status, the reserved amount when the outcome is unknown: a timeout,
    a dropped connection, a cancellation). Either method may be sync or async.
    """

    def reserve(self, amount: float, node_id: str | None) -> Any: ...

    def settle(self, token: Any, actual: float) -> Any: ...


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


@dataclass(frozen=True, slots=True)
class CallContext:
    """Who is calling the gateway: the per-run state a call needs, handed down explicitly.

    One gateway serves any number of concurrent runs; what differs between them travels
    here, never on the gateway. The executor makes one per node.
    """

    run_id: str | None = None
    node_id: str | None = None
    budget: Budget | None = None
    """The run's budget (and per-node caps); None: no limit."""


NO_CONTEXT = CallContext()
"""A call outside any run: no budget, no node."""


class Gateway:
    """Sends a request to a tier and returns the first successful completion."""

    def __init__(
        self,
        catalog: Catalog,
        registry: ProviderRegistry | None = None,
        *,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[object]] | None = None,
        clock: Clock | None = None,
        breaker: BreakerPolicy | None = None,
    ) -> None:
        """
        Args:
            catalog: tiers and models.
            registry: builds providers; default builds the built-in ones.
            retry: retry policy per model.
            rng: the random source for jitter (inject a seeded one in tests).
            sleep: kept for compatibility; ``clock`` supersedes it.
            clock: reads the time and waits (backoff, breakers, rate limits).
            breaker: circuit breaker policy, one breaker per model.
        """
        self.catalog = catalog
        self.registry = registry or ProviderRegistry()
        self.retry = retry or RetryPolicy()
        self.breaker_policy = breaker or BreakerPolicy()
        self._rng = rng or random.Random()
        if clock is None:
            clock = SystemClock() if sleep is None else _SleepClock(sleep)
        self.clock = clock
        self._breakers: dict[ModelKey, CircuitBreaker] = {}
        self._limits: dict[ModelKey, ModelLimits] = {}
        self._announced_local: set[Tier] = set()
        self._usable: dict[Tier, tuple[list[ModelEntry], bool]] = {}

    def _usable_of(self, tier: Tier) -> tuple[list[ModelEntry], bool]:
        usable = self._usable.get(tier)
        if usable is None:
            usable = self._usable[tier] = self.registry.usable(self.catalog, tier)
        return usable

    def usable_models(self, tier: Tier) -> list[ModelEntry]:
        """The models this gateway calls for ``tier``, in order: the tier's models that can
        be called here, else the catalog's local fallback (see :meth:`uses_local_fallback`)."""
        return self._usable_of(tier)[0]

    def uses_local_fallback(self, tier: Tier) -> bool:
        """None of ``tier``'s own models is usable and the local fallback model serves it."""
        return self._usable_of(tier)[1]

    @staticmethod
    def _key(entry: ModelEntry) -> ModelKey:
        return (entry.provider, entry.base_url, entry.model)

    def breaker_for(self, entry: ModelEntry) -> CircuitBreaker:
        key = self._key(entry)
        br = self._breakers.get(key)
        if br is None:
            br = self._breakers[key] = CircuitBreaker(self.breaker_policy)
        return br

    def limits_for(self, entry: ModelEntry) -> ModelLimits:
        key = self._key(entry)
        lim = self._limits.get(key)
        if lim is None:
            lim = self._limits[key] = ModelLimits(
                self.clock,
                max_concurrency=entry.max_concurrency,
                requests_per_minute=entry.requests_per_minute,
                tokens_per_minute=entry.tokens_per_minute,
            )
        return lim

    async def call(
        self, tier: Tier, request: CompletionRequest, context: CallContext = NO_CONTEXT
    ) -> CallResult:
        """Call ``tier``'s models in catalog order until one answers.

        ``context`` names the run and node making the call and carries the run's budget.

        Cancellation: a cancelled call leaves no reservation open on the budget and no
        breaker probe claimed; a local-model generation in a worker thread runs on to its
        ``max_tokens`` in the background.

        Raises:
            CatalogError: a model of the tier is not priced (before any call).
            ModelUnavailable: no model of the tier answered; ``__cause__`` is the last error.
            Whatever ``context.budget.reserve`` raises when the budget is exhausted.
        """
        models, local = self._usable_of(tier)
        for entry in models:
            check_priced(entry)
        if local and tier not in self._announced_local:
            self._announced_local.add(tier)
            # INFO, not WARNING: the CLI announces it to the user; this is for the log file.
            _log(context, tier).info(
                "none of the tier's models is usable (no API key set); using the embedded "
                "local model",
                model=models[0].name if models else "-",
            )
        errors: list[ProviderError] = []
        skipped: list[ModelEntry] = []
        for entry in models:
            br = self.breaker_for(entry)
            if not br.allow(self.clock.monotonic()):
                skipped.append(entry)
                _log(context, tier).info("skipping a model: circuit open", model=entry.name)
                continue
            served = await self._try_model(
                entry, tier, request, context, errors, br, probe=br.state != "closed"
            )
            if served is not None:
                return self._result(served, entry, errors, skipped, local)
        for entry in skipped:
            # Every other model failed too: an open circuit must not make the tier unusable.
            _log(context, tier).info(
                "calling a model although its circuit is open: no other model answered",
                model=entry.name,
            )
            served = await self._try_model(entry, tier, request, context, errors, None, probe=False)
            if served is not None:
                return self._result(served, entry, errors, skipped, local)
        last = errors[-1] if errors else None
        if last is None:
            why = "no usable model (no API key set and no local model)"
        else:
            why = f"{len(errors)} failed tries over {len(models)} model(s); last: {last}"
        raise ModelUnavailable(
            f"no model of tier {tier} answered: {why}",
            provider=last.provider if last else "-",
            model=last.model if last else "-",
        ) from last

    def _result(
        self,
        served: tuple[Completion, float],
        entry: ModelEntry,
        errors: list[ProviderError],
        skipped: list[ModelEntry],
        local: bool,
    ) -> CallResult:
        completion, cost = served
        return CallResult(
            completion,
            entry,
            cost,
            errors,
            skipped=[e.name for e in skipped] if skipped else [],
            local_fallback=local,
        )

    async def _try_model(
        self,
        entry: ModelEntry,
        tier: Tier,
        request: CompletionRequest,
        context: CallContext,
        errors: list[ProviderError],
        breaker: CircuitBreaker | None,
        *,
        probe: bool,
    ) -> tuple[Completion, float] | None:
        """Up to ``max_attempts`` tries of one model; None when it did not answer."""
        outcome_recorded = False
        try:
            for attempt in range(1, self.retry.max_attempts + 1):
                try:
                    served = await self._attempt(entry, request, context)
                except ProviderError as exc:
                    errors.append(exc)
                    if breaker is not None:
                        breaker.record(not counts_as_failure(exc), self.clock.monotonic())
                        outcome_recorded = True
                    _log(context, tier).info(
                        "provider call failed",
                        model=entry.name,
                        try_=attempt,
                        error=str(exc),
                        retryable=exc.retryable,
                    )
                    if not exc.retryable or attempt == self.retry.max_attempts:
                        return None
                    if self.retry.gives_up_on(exc):
                        return None  # the server asks for a longer wait than we accept
                    if probe or (breaker is not None and breaker.state == "open"):
                        return None  # a failed probe, or the circuit opened: fall back now
                    await self.clock.sleep(self.retry.delay(attempt, exc, self._rng))
                    continue
                if breaker is not None:
                    breaker.record(True, self.clock.monotonic())
                    outcome_recorded = True
                return served
            return None
        finally:
            if breaker is not None and probe and not outcome_recorded:
                breaker.release_probe()

    async def _attempt(
        self, entry: ModelEntry, request: CompletionRequest, context: CallContext
    ) -> tuple[Completion, float]:
        """One provider call under the model's limits, the budget and the attempt timeout."""
        provider = self.registry.get(entry)
        est_in, est_out = estimate_tokens(request.prompt_chars, request.max_tokens)
        est_tokens = est_in + est_out
        limits = self.limits_for(entry)
        timeout = request.timeout_s
        if timeout is None:
            timeout = self.retry.attempt_timeout_s
        budget = context.budget
        prepare = getattr(provider, "prepare", None)
        if prepare is not None:
            # building an SDK client imports the SDK (seconds): before the attempt's clock
            # starts, and in a thread, so neither this attempt nor other nodes pay for it
            await prepare(entry)
        async with limits.acquire(est_tokens):
            token: Any = None
            reserved = 0.0
            if budget is not None:
                reserved = entry.cost(Usage(input_tokens=est_in, output_tokens=est_out))
                token = await _maybe_await(budget.reserve(reserved, context.node_id))
            settle_with = reserved  # unknown outcome (cancelled): assume the worst
            actual_tokens = est_tokens
            try:
                try:
                    if timeout is None:
                        completion = await provider.complete(entry, request)
                    else:
                        with anyio.fail_after(timeout):
                            completion = await provider.complete(entry, request)
                except TimeoutError:
                    raise ProviderTimeout(
                        f"no answer within the {timeout:g}s attempt timeout",
                        provider=entry.provider,
                        model=entry.model,
                    ) from None
                except ProviderStatusError:
                    settle_with, actual_tokens = 0.0, 0  # refused: not billed
                    raise
                # A cost the provider reports itself (replay) beats the token prices.
                cost = completion.cost_usd
                if cost is None:
                    cost = entry.cost(completion.usage)
                settle_with, actual_tokens = cost, completion.usage.total
                return completion, cost
            finally:
                limits.settle_tokens(est_tokens, actual_tokens)
                if budget is not None:
                    with anyio.CancelScope(shield=True):
                        await _maybe_await(budget.settle(token, settle_with))


def _log(context: CallContext, tier: Tier) -> Any:
    """The logger for a call, bound to who made it (built only when something is logged:
    the happy path logs nothing)."""
    return get_logger().bind(run_id=context.run_id, node_id=context.node_id, tier=tier)


class _SleepClock:
    """A clock from a bare ``sleep`` function (the pre-clock Gateway signature)."""

    def __init__(self, sleep: Callable[[float], Awaitable[object]]) -> None:
        self._sleep = sleep
        self._system = SystemClock()

    def monotonic(self) -> float:
        return self._system.monotonic()

    async def sleep(self, seconds: float) -> None:
        await self._sleep(seconds)


__all__ = [
    "BreakerPolicy",
    "Budget",
    "CallContext",
    "CallResult",
    "Gateway",
    "RetryPolicy",
    "check_priced",
]
