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
import warnings
from collections.abc import Awaitable, Callable
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import anyio

from .._exceptions import (
    ContextTooLong,
    LocalFallbackWarning,
    ModelUnavailable,
    ProviderError,
    ProviderResponseError,
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
    """What the call was billed: the answer, plus failed tries that were billed (a 200
    with an unusable body, by its usage)."""
    errors: list[ProviderError] = field(default_factory=list)
    """Failed tries before the one that served (retries and fallbacks), oldest first."""
    skipped: list[str] = field(default_factory=list)
    """Catalog names of models skipped because their circuit was open."""
    local_fallback: bool = False
    """The tier had no usable model of its own and the embedded local model served."""
    tries: int = 1
    """Provider calls made (retries and fallbacks), the successful one included."""

    @property
    def attempts(self) -> int:
        """Provider calls made, the successful one included (same as ``tries``)."""
        return self.tries

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
        self._prepares: dict[ModelKey, Callable[[ModelEntry], Awaitable[None]] | None] = {}

    async def aclose(self) -> None:
        """Close the providers its registry built (their SDK clients' connections).
        Providers passed to the registry as overrides belong to whoever passed them."""
        await self.registry.aclose()

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
        breaker probe claimed; a local-model generation stops.

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
            # a program embedding dagtier has no CLI note: a Python warning reaches it (once
            # per tier under the default filter: the text is the same every time)
            warnings.warn(
                f"tier {tier} has no usable model (no API key set): it runs on the embedded "
                f"local model '{models[0].name if models else '-'}', small and free; set a "
                "key for the tier's models (see `dagtier models`)",
                LocalFallbackWarning,
                stacklevel=2,
            )
        # The common case first, with no bookkeeping: the first model, circuit closed, the
        # prompt fits, one try answers (each µs here is paid per node: bench/overhead.py).
        first_failure: ProviderError | None = None
        if models:
            first = models[0]
            br = self.breaker_for(first)
            if br.state == "closed" and -(-request.prompt_chars // 4) <= first.context_window:
                try:
                    completion, cost = await self._attempt(first, request, context)
                except ProviderError as exc:
                    first_failure = exc
                else:
                    br.record(True, self.clock.monotonic())
                    return CallResult(completion, first, cost, [], local_fallback=local)
        state = _CallState(request, context, tier)
        if models:
            self._check_fits(models, state)
        # Each model gets up to max_attempts tries. A model whose circuit is open (or opens
        # under us) keeps its unused tries: when no model answered, the call waits for the
        # earliest half-open probe, within the node's timeout, rather than failing while a
        # usable model is merely cooling down.
        tries_left = {
            e.name: 0 if e.name in state.too_small else self.retry.max_attempts for e in models
        }
        if first_failure is not None:
            first = models[0]
            tries_left[first.name] -= 1
            state.calls = 1
            delay = self._after_failure(
                first, state, self.breaker_for(first), tries_left, first_failure, probe=False
            )
            if delay is not None:
                await self.clock.sleep(delay)  # then the loop retries it, if its circuit allows
        waited = 0.0
        wait_limit = self._wait_limit(request)
        while True:
            for entry in models:
                if tries_left.get(entry.name, 0) <= 0:
                    continue
                br = self.breaker_for(entry)
                if not br.allow(self.clock.monotonic()):
                    if entry.name not in state.skipped:
                        state.skipped.append(entry.name)
                        _log(context, tier).info(
                            "skipping a model: its circuit is open", model=entry.name
                        )
                    continue
                served = await self._try_model(entry, state, br, tries_left)
                if served is not None:
                    return self._result(served, entry, state, local)
            wake = self._next_reopening(models, tries_left, state)
            if wake is None:
                break
            delay = max(0.0, wake - self.clock.monotonic())
            if waited + delay > wait_limit:
                _log(context, tier).info(
                    "giving up: the next model's circuit half-opens after the node's timeout",
                    wait_s=round(delay, 3),
                    waited_s=round(waited, 3),
                )
                break
            _log(context, tier).info(
                "every usable model's circuit is open: waiting for the next half-open probe",
                sleep_s=round(delay, 3),
            )
            await self.clock.sleep(delay)
            waited += delay
        errors = state.errors
        last = errors[-1] if errors else None
        if last is None:
            why = "no usable model (no API key set and no local model)"
        elif state.calls == 0 and isinstance(last, ContextTooLong):
            why = f"no call made: {last}"
        else:
            why = f"{len(errors)} failed tries over {len(models)} model(s); last: {last}"
        unavailable = ModelUnavailable(
            f"no model of tier {tier} answered: {why}",
            provider=last.provider if last else "-",
            model=last.model if last else "-",
        )
        unavailable.cost, unavailable.failures = state.failed_cost, tuple(errors)
        raise unavailable from last

    def _wait_limit(self, request: CompletionRequest) -> float:
        """How long a call may wait for a circuit to half-open: the node's timeout, else the
        longest Retry-After the retry policy accepts."""
        for limit in (request.timeout_s, self.retry.attempt_timeout_s):
            if limit is not None:
                return limit
        return self.retry.max_retry_after_s

    def _next_reopening(
        self, models: list[ModelEntry], tries_left: dict[str, int], state: _CallState
    ) -> float | None:
        """When the earliest model that still has tries but is shut by its circuit (or
        asked us to wait, Retry-After) may be called again; None when there is none."""
        now = self.clock.monotonic()
        wake: float | None = None
        for entry in models:
            if tries_left.get(entry.name, 0) <= 0:
                continue
            br = self.breaker_for(entry)
            if br.state == "open":
                at = br.reopens_at()
            elif br.state == "half_open":
                at = now + _PROBE_POLL_S  # another call is probing: look again shortly
            else:
                continue
            at = max(at, state.not_before.get(entry.name, 0.0))
            wake = at if wake is None else min(wake, at)
        return wake

    def _check_fits(self, models: list[ModelEntry], state: _CallState) -> None:
        """Models whose context window the prompt cannot fit are never called: the call
        could only fail, after uploading the whole prompt (and, for a huge input, after
        minutes and gigabytes)."""
        est_in, _ = estimate_tokens(state.request.prompt_chars, state.request.max_tokens)
        for entry in models:
            if est_in > entry.context_window:
                state.too_small.add(entry.name)
                state.errors.append(
                    ContextTooLong(
                        f"the prompt is about {est_in:,} tokens "
                        f"({state.request.prompt_chars:,} characters / 4), more than the "
                        f"model's context window of {entry.context_window:,} tokens; "
                        "shorten the input or give this node a tier whose model has a larger "
                        "context window",
                        provider=entry.provider,
                        model=entry.model,
                        retryable=False,
                    )
                )

    def _result(
        self,
        served: tuple[Completion, float],
        entry: ModelEntry,
        state: _CallState,
        local: bool,
    ) -> CallResult:
        completion, cost = served
        return CallResult(
            completion,
            entry,
            cost + state.failed_cost,
            state.errors,
            skipped=state.skipped,
            local_fallback=local,
            tries=state.calls,
        )

    async def _try_model(
        self,
        entry: ModelEntry,
        state: _CallState,
        breaker: CircuitBreaker,
        tries_left: dict[str, int],
    ) -> tuple[Completion, float] | None:
        """Tries of one model while it has tries left and its circuit lets calls through;
        None when it did not answer."""
        context, tier = state.context, state.tier
        probe = breaker.state != "closed"
        outcome_recorded = False
        try:
            while tries_left[entry.name] > 0:
                tries_left[entry.name] -= 1
                state.calls += 1
                try:
                    served = await self._attempt(entry, state.request, context)
                except ProviderError as exc:
                    outcome_recorded = True
                    delay = self._after_failure(entry, state, breaker, tries_left, exc, probe)
                    if delay is None:
                        return None
                    await self.clock.sleep(delay)
                    if breaker.state != "closed":
                        # it opened while we slept (other nodes' failures): do not call it
                        _log(context, tier).info(
                            "not retrying: the model's circuit opened meanwhile",
                            model=entry.name,
                        )
                        return None
                    continue
                before = breaker.state
                breaker.record(True, self.clock.monotonic())
                outcome_recorded = True
                if breaker.state != before:
                    _log(context, tier).info(
                        f"circuit {breaker.state}", model=entry.name, was=before.replace("_", "-")
                    )
                return served
            return None
        finally:
            if probe and not outcome_recorded:
                breaker.release_probe()

    def _after_failure(
        self,
        entry: ModelEntry,
        state: _CallState,
        breaker: CircuitBreaker,
        tries_left: dict[str, int],
        exc: ProviderError,
        probe: bool,
    ) -> float | None:
        """Account a failed try (errors, billed cost, breaker, logs) and decide: the seconds
        to sleep before retrying the same model, or None to move on."""
        context, tier, n = state.context, state.tier, state.calls
        state.errors.append(exc)
        state.failed_cost += exc.cost
        before = breaker.state
        breaker.record(not counts_as_failure(exc), self.clock.monotonic())
        log = _log(context, tier)
        if breaker.state != before:
            log.info(
                f"circuit {breaker.state.replace('_', '-')}",
                model=entry.name,
                was=before.replace("_", "-"),
            )
        if not exc.retryable:
            tries_left[entry.name] = 0
            log.info(
                "try failed, not retryable: falling back", model=entry.name, try_=n, error=str(exc)
            )
            return None
        if exc.retry_after is not None:
            state.not_before[entry.name] = self.clock.monotonic() + exc.retry_after
        if self.retry.gives_up_on(exc):
            # the server asks for a longer wait than we accept
            tries_left[entry.name] = 0
            log.info(
                "try failed, Retry-After too long: falling back",
                model=entry.name,
                try_=n,
                error=str(exc),
                retry_after_s=exc.retry_after,
            )
            return None
        if tries_left[entry.name] <= 0 or probe or breaker.state != "closed":
            # out of tries, a failed probe, or the circuit opened: next model
            log.info(
                "try failed: falling back",
                model=entry.name,
                try_=n,
                error=str(exc),
                tries_left=tries_left[entry.name],
                circuit=breaker.state.replace("_", "-"),
            )
            return None
        used = self.retry.max_attempts - tries_left[entry.name]
        delay = self.retry.delay(used, exc, self._rng)
        log.info(
            "try failed: retrying",
            model=entry.name,
            try_=n,
            error=str(exc),
            sleep_s=round(delay, 3),
        )
        return delay

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
        key = self._key(entry)
        if key in self._prepares:
            prepare = self._prepares[key]
        else:  # a missing attribute costs an exception each time: look once per model
            prepare = self._prepares[key] = getattr(provider, "prepare", None)
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
                    # a provider that serves one call at a time (the local model) makes the
                    # call wait for its turn first: the timeout counts the call's own work
                    turn = getattr(provider, "turn", None)
                    async with turn(entry) if turn is not None else nullcontext():
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
                        # the local model would only spend as long again on the same answer
                        retryable=False if entry.is_local else None,
                    ) from None
                except ProviderStatusError:
                    settle_with, actual_tokens = 0.0, 0  # refused: not billed
                    raise
                except ProviderResponseError as exc:
                    if exc.usage is not None:
                        # a 200 that was unusable (empty): billed as its usage says
                        exc.cost = settle_with = entry.cost(exc.usage)
                        actual_tokens = exc.usage.total
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


_PROBE_POLL_S = 0.25
"""How often a call waiting on another call's half-open probe looks at the circuit again."""


@dataclass(slots=True)
class _CallState:
    """One Gateway.call's bookkeeping across its models and tries."""

    request: CompletionRequest
    context: CallContext
    tier: Tier
    errors: list[ProviderError] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    too_small: set[str] = field(default_factory=set)
    not_before: dict[str, float] = field(default_factory=dict)
    """Per model: the earliest time its last Retry-After allows another call."""
    calls: int = 0
    failed_cost: float = 0.0
    """What failed tries were billed (unusable 200s, by their usage)."""


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
