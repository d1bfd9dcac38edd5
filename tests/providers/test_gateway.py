"""The gateway: retries, Retry-After, fallback, circuit breakers, limits, budget, pricing."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import structlog.testing
from _catalog import make_catalog as python_catalog
from _fault_server import FaultServer
from _helpers import FakeClock, make_catalog

from dagtier._exceptions import (
    AuthError,
    BadRequest,
    BudgetExhausted,
    CatalogError,
    LocalFallbackWarning,
    ModelUnavailable,
    ProviderTimeout,
)
from dagtier.catalog import ModelEntry, catalog_from_dict
from dagtier.providers import (
    BreakerPolicy,
    CallContext,
    CallResult,
    Completion,
    CompletionRequest,
    Gateway,
    ProviderRegistry,
    PythonProvider,
    RetryPolicy,
)

pytestmark = pytest.mark.anyio


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    """dagtier promises trio as well as asyncio: the scheduler and gateway run on both."""
    return str(request.param)


def _req(**kw: Any) -> CompletionRequest:
    return CompletionRequest.from_prompt("hello there", **kw)


async def test_thirty_percent_primary_failures_every_call_completes(
    fault_server: FaultServer, fake_keys: dict[str, str], clock: FakeClock
) -> None:
    """With 30% of primary calls failing in every scripted way, all 50 calls complete."""
    fault_server.slow_s = 2.0
    catalog = make_catalog(fault_server.base_url, {1: ["a-primary", "o-backup"], 2: ["o-backup"]})
    gateway = Gateway(
        catalog,
        clock=clock,
        retry=RetryPolicy(attempt_timeout_s=1.0),
        breaker=BreakerPolicy(min_calls=1000),  # breakers are tested on their own below
    )
    await gateway.call(1, _req())  # warm up: import the SDKs outside the timed attempts
    await gateway.call(2, _req())
    fault_server.reset()
    fault_server.slow_s = 2.0
    fault_server.fail_rate("a-primary", 0.30)
    results: dict[int, CallResult] = {}

    async def node(i: int) -> None:
        results[i] = await gateway.call(1, _req())

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(node, i)
    await gateway.registry.aclose()
    assert sorted(results) == list(range(50))
    faults = [s.fault for s in fault_server.requests_for("a-primary")]
    failed = [f for f in faults if f != "ok"]
    assert len(failed) >= 5, faults  # the run really went through faults
    kinds = {f.split(":")[0] for f in failed}
    assert len(kinds) >= 4, kinds
    errors = [e for r in results.values() for e in r.errors]
    assert len(errors) >= len(failed)  # every fault surfaced (a loaded box may add timeouts)
    assert all(e.retryable for e in errors)
    for r in results.values():
        assert r.completion.text in ("ok from a-primary", "ok from o-backup")
        assert r.cost > 0
        assert r.completion.model == r.model.model


async def test_primary_down_every_call_falls_back_within_the_tier(
    fault_server: FaultServer, fake_keys: dict[str, str], clock: FakeClock
) -> None:
    """When the primary fails every try, the next model of the same tier serves."""
    fault_server.fail_rate("a-primary", 1.0)
    catalog = make_catalog(fault_server.base_url, {1: ["a-primary", "o-backup"], 2: ["a-strong"]})
    gateway = Gateway(
        catalog,
        clock=clock,
        retry=RetryPolicy(attempt_timeout_s=0.4),
        breaker=BreakerPolicy(min_calls=1000),
    )
    fault_server.slow_s = 1.0
    for _ in range(5):
        r = await gateway.call(1, _req())
        assert r.model.name == "o-backup"
        assert len(r.errors) == 3 and r.fell_back
    await gateway.registry.aclose()
    assert fault_server.requests_for("a-strong") == []  # never escalated


@pytest.mark.parametrize(("fault", "cls"), [("400", BadRequest), ("401", AuthError)])
async def test_bad_request_and_auth_errors_are_not_retried(
    fault_server: FaultServer, fake_keys: dict[str, str], clock: FakeClock, fault: str, cls: type
) -> None:
    """A 400 or 401 is tried once, then the next model; alone in its tier it fails at once."""
    fault_server.script("a-one", [fault])
    catalog = make_catalog(fault_server.base_url, {1: ["a-one", "o-two"], 2: ["a-one"]})
    gateway = Gateway(catalog, clock=clock)
    r = await gateway.call(1, _req())
    assert r.model.name == "o-two"
    assert [type(e) for e in r.errors] == [cls]
    assert len(fault_server.requests_for("a-one")) == 1
    fault_server.script("a-one", [fault])
    with pytest.raises(ModelUnavailable) as info:
        await gateway.call(2, _req())
    assert isinstance(info.value.__cause__, cls)
    assert len(fault_server.requests_for("a-one")) == 2
    assert clock.sleeps == []
    await gateway.registry.aclose()


async def test_observed_delays_honour_retry_after_on_every_attempt(
    fault_server: FaultServer, fake_keys: dict[str, str], clock: FakeClock
) -> None:
    """Each retry waits for the Retry-After of the error at hand, else backs off with jitter."""
    fault_server.script("o-model", ["429:ra=7", "429:ra-ms=1500", "503", "429:date=20", "ok"])
    catalog = make_catalog(fault_server.base_url, {1: ["o-model"]})
    gateway = Gateway(catalog, clock=clock, retry=RetryPolicy(max_attempts=5))
    r = await gateway.call(1, _req())
    await gateway.registry.aclose()
    assert r.attempts == 5
    assert clock.sleeps[0] == 7.0
    assert clock.sleeps[1] == 1.5
    assert 1.0 <= clock.sleeps[2] <= 2.0  # third try: 0.5 * 2**2, jitter in [0.5, 1]
    assert 18.0 <= clock.sleeps[3] <= 20.0  # an HTTP date 20 s ahead (seconds resolution)
    assert [e.retry_after for e in r.errors][:2] == [7.0, 1.5]


async def test_a_retry_after_beyond_the_cap_falls_back_at_once(
    fault_server: FaultServer, fake_keys: dict[str, str], clock: FakeClock
) -> None:
    """A server asking for 10 minutes is not waited for: the next model serves now."""
    fault_server.script("a-one", ["429:ra=600"])
    catalog = make_catalog(fault_server.base_url, {1: ["a-one", "o-two"]})
    gateway = Gateway(catalog, clock=clock)
    r = await gateway.call(1, _req())
    await gateway.registry.aclose()
    assert r.model.name == "o-two" and clock.sleeps == []


def _breaker_gateway(catalog: Any, clock: FakeClock) -> Gateway:
    return Gateway(
        catalog,
        clock=clock,
        retry=RetryPolicy(max_attempts=1),
        breaker=BreakerPolicy(window_s=60, min_calls=4, failure_rate=0.5, cooldown_s=10),
    )


async def test_breaker_opens_skips_probes_and_closes(
    fault_server: FaultServer, fake_keys: dict[str, str], clock: FakeClock
) -> None:
    """Over the failure rate it opens and skips the model; after the cool-down a probe closes it."""
    catalog = make_catalog(fault_server.base_url, {1: ["a-flaky", "o-backup"]})
    gateway = _breaker_gateway(catalog, clock)
    breaker = gateway.breaker_for(catalog.model("a-flaky"))
    fault_server.script("a-flaky", ["500", "ok", "500", "500"])
    served = [(await gateway.call(1, _req())).model.name for _ in range(5)]
    # 4 calls: 3 failures of 4 > 50% -> open after the 4th; the 5th skips a-flaky.
    assert served == ["o-backup", "a-flaky", "o-backup", "o-backup", "o-backup"]
    assert breaker.state == "open"
    assert len(fault_server.requests_for("a-flaky")) == 4
    r = await gateway.call(1, _req())
    assert r.skipped == ["a-flaky"] and r.errors == []
    clock.advance(9.9)
    await gateway.call(1, _req())
    assert len(fault_server.requests_for("a-flaky")) == 4  # still cooling down
    clock.advance(0.2)
    r = await gateway.call(1, _req())  # the probe: the script is empty, so it succeeds
    assert r.model.name == "a-flaky"
    assert breaker.state == "closed"
    assert [s for _, s in breaker.transitions] == ["open", "half_open", "closed"]
    await gateway.registry.aclose()


async def test_a_failed_probe_reopens_the_circuit(
    fault_server: FaultServer, fake_keys: dict[str, str], clock: FakeClock
) -> None:
    """A probe that fails opens the circuit for another cool-down."""
    catalog = make_catalog(fault_server.base_url, {1: ["a-flaky", "o-backup"]})
    gateway = _breaker_gateway(catalog, clock)
    breaker = gateway.breaker_for(catalog.model("a-flaky"))
    fault_server.script("a-flaky", ["503"] * 5)
    for _ in range(4):
        await gateway.call(1, _req())
    assert breaker.state == "open"
    clock.advance(10.0)
    r = await gateway.call(1, _req())
    assert r.model.name == "o-backup" and len(r.errors) == 1
    assert breaker.state == "open"
    assert [s for _, s in breaker.transitions] == ["open", "half_open", "open"]
    await gateway.registry.aclose()


async def test_an_open_circuit_never_makes_a_lone_model_unusable(
    fault_server: FaultServer, fake_keys: dict[str, str], clock: FakeClock
) -> None:
    """The only model of a tier is still called while its circuit is open."""
    catalog = make_catalog(fault_server.base_url, {1: ["a-alone"]})
    gateway = _breaker_gateway(catalog, clock)
    fault_server.script("a-alone", ["500"] * 4)
    for _ in range(4):
        with pytest.raises(ModelUnavailable):
            await gateway.call(1, _req())
    assert gateway.breaker_for(catalog.model("a-alone")).state == "open"
    r = await gateway.call(1, _req())  # no cool-down has passed
    assert r.model.name == "a-alone" and r.skipped == ["a-alone"]
    await gateway.registry.aclose()


# ---------------------------------------------------------------- limits, timeouts, budget


def _python_catalog(**limits: Any) -> Any:
    return python_catalog({1: ["py"]}, {"py": limits})


async def test_concurrency_limit_is_honoured() -> None:
    """No more than max_concurrency calls run on a model at once."""
    running = peak = 0

    async def fn(entry: ModelEntry, request: CompletionRequest) -> str:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await anyio.sleep(0.01)
        running -= 1
        return "done"

    gateway = Gateway(
        _python_catalog(max_concurrency=3),
        ProviderRegistry({"python": PythonProvider(fn)}),
    )
    async with anyio.create_task_group() as tg:
        for _ in range(20):
            tg.start_soon(gateway.call, 1, _req())
    assert peak == 3


async def test_requests_per_minute_are_spread_by_a_token_bucket(clock: FakeClock) -> None:
    """Past the bucket's burst, each request waits 60/rpm seconds."""
    gateway = Gateway(
        _python_catalog(requests_per_minute=3),
        ProviderRegistry({"python": PythonProvider(lambda e, r: "ok")}),
        clock=clock,
    )
    for _ in range(5):
        await gateway.call(1, _req())
    assert clock.sleeps == pytest.approx([20.0, 20.0])


async def test_tokens_per_minute_limit_waits_for_refill(clock: FakeClock) -> None:
    """A tokens-per-minute limit makes a call wait until enough tokens have refilled."""
    gateway = Gateway(
        _python_catalog(tokens_per_minute=600),
        ProviderRegistry({"python": PythonProvider(lambda e, r: "ok")}),
        clock=clock,
    )
    # Each call reserves ceil(11/4)=3 input + 297 output = 300 tokens; usage gives most back.
    await gateway.call(1, _req(max_tokens=297))
    await gateway.call(1, _req(max_tokens=297))
    assert clock.sleeps == []
    gateway.limits_for(gateway.catalog.model("py")).tpm.tokens = 0.0  # type: ignore[union-attr]
    await gateway.call(1, _req(max_tokens=297))
    assert clock.sleeps == pytest.approx([30.0])


async def test_attempt_timeout_turns_a_hung_call_into_a_retryable_timeout(
    clock: FakeClock,
) -> None:
    """A call slower than the attempt timeout is cancelled and retried."""
    calls = 0

    async def fn(entry: ModelEntry, request: CompletionRequest) -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            await anyio.sleep(5)
        return "late but fine"

    gateway = Gateway(
        _python_catalog(),
        ProviderRegistry({"python": PythonProvider(fn)}),
        clock=clock,
        retry=RetryPolicy(attempt_timeout_s=0.05),
    )
    r = await gateway.call(1, _req())
    assert r.completion.text == "late but fine"
    assert [type(e) for e in r.errors] == [ProviderTimeout]


class RecordingBudget:
    def __init__(self, limit: float) -> None:
        self.limit = limit
        self.reserved = 0.0
        self.spent = 0.0
        self.log: list[tuple[str, float]] = []

    def reserve(self, amount: float, node_id: str | None) -> float:
        if self.spent + self.reserved + amount > self.limit:
            raise BudgetExhausted(f"would exceed ${self.limit}")
        self.reserved += amount
        self.log.append(("reserve", amount))
        return amount

    async def settle(self, token: float, actual: float) -> None:
        self.reserved -= token
        self.spent += actual
        self.log.append(("settle", actual))


async def test_budget_reserves_the_worst_case_and_settles_the_actual_cost(
    fault_server: FaultServer, fake_keys: dict[str, str], clock: FakeClock
) -> None:
    """Each attempt reserves (chars/4 + max_tokens) at the model's prices and settles after."""
    catalog = make_catalog(fault_server.base_url, {1: ["a-model"]})
    budget = RecordingBudget(limit=1.0)
    gateway = Gateway(catalog, clock=clock)
    fault_server.script("a-model", ["500", "ok"])
    r = await gateway.call(1, _req(max_tokens=1000), CallContext(budget=budget))
    await gateway.registry.aclose()
    worst = (3 * 1.0 + 1000 * 5.0) / 1e6  # ceil(11/4)=3 input tokens, 1000 output tokens
    assert budget.log == [
        ("reserve", pytest.approx(worst)),
        ("settle", 0.0),  # a 500 is not billed
        ("reserve", pytest.approx(worst)),
        ("settle", pytest.approx(r.cost)),
    ]
    assert budget.reserved == pytest.approx(0.0)
    assert budget.spent == pytest.approx(r.cost) and r.cost == pytest.approx((10 + 25) / 1e6)
    with pytest.raises(BudgetExhausted):
        await gateway.call(
            1, _req(max_tokens=1000), CallContext(budget=RecordingBudget(limit=worst / 2))
        )
    assert len(fault_server.requests_for("a-model")) == 2  # no call without a reservation


async def test_unpriced_paid_model_fails_loudly_before_any_call(
    fault_server: FaultServer, fake_keys: dict[str, str]
) -> None:
    """A hosted paid API priced at 0, or a model without a price, raises before calling."""
    catalog = catalog_from_dict(
        {
            "models": {
                "free?": {
                    "provider": "openai",
                    "model": "o-x",
                    "api_key_env": "TEST_OPENAI_KEY",
                    "price": {"input": 0, "output": 0},
                },
            },
            "tiers": {1: ["free?"]},
        }
    )
    with pytest.raises(CatalogError, match="priced at 0"):
        await Gateway(catalog).call(1, _req())
    broken = ModelEntry.model_construct(provider="openai", model="o-x", name="noprice")
    from dagtier.providers.gateway import check_priced

    with pytest.raises(CatalogError, match="has no price"):
        check_priced(broken)
    assert fault_server.seen == []


async def test_local_fallback_is_announced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A tier served by the local fallback says so: in the result, once in the log, and
    once as a LocalFallbackWarning."""
    for var in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    from dagtier.catalog import default_catalog

    catalog = default_catalog()
    if not ProviderRegistry.usable(catalog, 1)[1]:
        pytest.skip("the local model is not installed")

    async def fake_local(entry: ModelEntry, request: CompletionRequest) -> Completion:
        from dagtier.catalog import Usage

        return Completion("{}", entry.model, Usage(5, 5), meta={"local": True})

    gateway = Gateway(catalog, ProviderRegistry({"local": PythonProvider(fake_local)}))
    with (
        structlog.testing.capture_logs() as logs,  # the pipeline every dagtier log goes through
        pytest.warns(LocalFallbackWarning) as warned,  # what a program embedding dagtier sees
    ):
        r1 = await gateway.call(1, _req())
        r2 = await gateway.call(1, _req())
    assert r1.local_fallback and r2.local_fallback
    assert r1.cost == 0.0 and r1.model.is_local
    assert sum("embedded local model" in e["event"] for e in logs) == 1
    assert [str(w.message) for w in warned] == [
        "tier 1 has no usable model (no API key set): it runs on the embedded local model "
        "'local-smollm2', small and free; set a key for the tier's models (see `dagtier models`)"
    ]


async def test_a_cost_reported_by_the_provider_beats_the_token_prices() -> None:
    """Completion.cost_usd (the replay provider's recorded cost) is the call's cost."""
    from dagtier.catalog import Usage

    def fn(entry: ModelEntry, request: CompletionRequest) -> Completion:
        return Completion("x", entry.model, Usage(1000, 1000), cost_usd=0.25)

    gateway = Gateway(_python_catalog(), ProviderRegistry({"python": PythonProvider(fn)}))
    r = await gateway.call(1, _req())
    assert r.cost == 0.25
