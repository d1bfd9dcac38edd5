"""The gateway under faults: open circuits are waited out, not given up on; a prompt that
fits no context window costs nothing; every try, retry and breaker change is logged."""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import structlog.testing
from _fault_server import FaultServer
from _helpers import FakeClock, make_catalog

import dagtier
from dagtier._exceptions import ModelUnavailable
from dagtier.providers import (
    BreakerPolicy,
    CallContext,
    CompletionRequest,
    Gateway,
    RetryPolicy,
)

pytestmark = pytest.mark.anyio


def _req(**kw: Any) -> CompletionRequest:
    return CompletionRequest.from_prompt("hello there", **kw)


async def test_runs_succeed_with_the_primary_down_and_the_backup_flaky(
    fault_server: FaultServer, fake_keys: dict[str, str]
) -> None:
    """Primary always 503, the second model of the tier at 22% random faults: its circuit
    opens and closes again and again, and every node of three runs still gets its answer
    (issue 12 item 3: nodes used to fail as soon as the last usable model's circuit opened)."""
    fault_server.slow_s = 0.05
    fault_server.script("o-down", ["503"] * 10_000)
    fault_server.fail_rate("o-flaky", 0.22)
    catalog = make_catalog(fault_server.base_url, {1: ["o-down", "o-flaky"]})
    gateway = Gateway(
        catalog,
        retry=RetryPolicy(max_attempts=8, base_delay_s=0.01, max_delay_s=0.05),
        # opens after 2 failures in 4 calls: at 22% faults it opens over and over
        breaker=BreakerPolicy(window_s=60, min_calls=4, failure_rate=0.25, cooldown_s=0.2),
    )
    nodes = "".join(f"  n{i}: {{prompt: 'task {i}'}}\n" for i in range(12))
    wf = dagtier.parse_workflow(
        f"name: flaky\nconcurrency: 6\ndefaults: {{timeout_s: 20}}\nnodes:\n{nodes}"
    )
    for _ in range(3):
        result = await dagtier.run(wf, gateway=gateway)
        assert result.status == "succeeded", {n: r.error for n, r in result.nodes.items()}
        assert {r.model for r in result.nodes.values()} == {"o-flaky"}
    opened = [s for _, s in gateway.breaker_for(catalog.model("o-flaky")).transitions]
    assert "open" in opened  # the case under test did happen
    await gateway.registry.aclose()


class _OpeningClock(FakeClock):
    """A fake clock that lets the test act while a retry sleeps."""

    def __init__(self) -> None:
        super().__init__()
        self.during_sleep: Any = None

    async def sleep(self, seconds: float) -> None:
        await super().sleep(seconds)
        if self.during_sleep is not None:
            self.during_sleep()
            self.during_sleep = None


async def test_a_sleeping_retry_does_not_call_a_model_whose_circuit_opened_meanwhile(
    fault_server: FaultServer, fake_keys: dict[str, str]
) -> None:
    """Other calls' failures open the circuit while a retry waits: the retry goes to the
    next model instead of calling the open one."""
    clock = _OpeningClock()
    catalog = make_catalog(fault_server.base_url, {1: ["o-one", "o-two"]})
    gateway = Gateway(
        catalog,
        clock=clock,
        retry=RetryPolicy(max_attempts=3),
        breaker=BreakerPolicy(min_calls=2, failure_rate=0.5, cooldown_s=30),
    )
    breaker = gateway.breaker_for(catalog.model("o-one"))
    clock.during_sleep = lambda: breaker.record(False, clock.now)  # another node's failure
    fault_server.script("o-one", ["500", "ok"])
    r = await gateway.call(1, _req())
    assert breaker.state == "open"
    assert len(fault_server.requests_for("o-one")) == 1
    assert r.model.name == "o-two"
    await gateway.registry.aclose()


async def test_when_every_circuit_is_open_the_call_waits_for_the_half_open_probe(
    fault_server: FaultServer, fake_keys: dict[str, str], clock: FakeClock
) -> None:
    """Both models open: the call sleeps until the earliest one half-opens and probes it;
    with a node timeout shorter than that wait it fails without calling."""
    catalog = make_catalog(fault_server.base_url, {1: ["o-one", "o-two"]})
    gateway = Gateway(
        catalog, clock=clock, breaker=BreakerPolicy(min_calls=1, failure_rate=0.5, cooldown_s=30)
    )
    one, two = (gateway.breaker_for(catalog.model(n)) for n in ("o-one", "o-two"))
    one.record(False, clock.now)
    clock.advance(10)
    two.record(False, clock.now)
    with pytest.raises(ModelUnavailable):
        await gateway.call(1, _req(timeout_s=5))  # o-one half-opens in 20 s
    assert fault_server.seen == []
    r = await gateway.call(1, _req(timeout_s=25))
    assert r.model.name == "o-one" and clock.sleeps == [pytest.approx(20)]
    assert one.state == "closed" and two.state == "open"
    await gateway.registry.aclose()


async def test_retry_after_is_honoured_before_probing_again(
    fault_server: FaultServer, fake_keys: dict[str, str], clock: FakeClock
) -> None:
    """A 429 with Retry-After that opens the lone model's circuit: the call waits the
    longer of the cool-down and the Retry-After, then succeeds."""
    catalog = make_catalog(fault_server.base_url, {1: ["o-alone"]})
    gateway = Gateway(
        catalog, clock=clock, breaker=BreakerPolicy(min_calls=1, failure_rate=0.5, cooldown_s=2)
    )
    fault_server.script("o-alone", ["429:ra=7"])
    r = await gateway.call(1, _req())
    assert r.model.name == "o-alone" and r.tries == 2
    assert clock.sleeps == [pytest.approx(7)]
    await gateway.registry.aclose()


async def test_a_prompt_too_long_for_every_model_makes_no_call(
    fault_server: FaultServer, fake_keys: dict[str, str]
) -> None:
    """A prompt whose estimated tokens exceed the context window fails at once, saying so,
    with no request sent and nothing spent (issue 12 item 9)."""
    catalog = make_catalog(
        fault_server.base_url,
        {1: ["o-small", "o-big"]},
        models={"o-small": {"context_window": 1_000}, "o-big": {"context_window": 4_000}},
    )
    gateway = Gateway(catalog)
    wf = dagtier.parse_workflow(
        "name: big\ninputs: {doc: {type: string}}\nnodes:\n  read: {prompt: '{{ inputs.doc }}'}\n"
    )
    result = await dagtier.run(wf, {"doc": "x" * 40_000}, gateway=gateway, budget=1.0)
    node = result["read"]
    assert node.status == "failed" and result.cost == 0.0
    assert "no call made" in (node.error or "")
    assert "context window of 4,000 tokens" in (node.error or "")
    assert fault_server.seen == []
    mid = await gateway.call(1, CompletionRequest.from_prompt("y" * 8_000))  # fits o-big only
    assert mid.model.name == "o-big" and len(fault_server.seen) == 1
    await gateway.registry.aclose()


async def test_every_try_retry_and_circuit_change_is_logged(
    fault_server: FaultServer, fake_keys: dict[str, str], clock: FakeClock
) -> None:
    """Each failed try is logged with its error, the retry with its sleep, the fallback and
    the circuit opening: what `-v` and `--log-json` show (issue 12 item 13)."""
    catalog = make_catalog(fault_server.base_url, {1: ["o-one", "o-two"]})
    gateway = Gateway(
        catalog,
        clock=clock,
        retry=RetryPolicy(max_attempts=2),
        breaker=BreakerPolicy(min_calls=2, failure_rate=0.5, cooldown_s=30),
    )
    fault_server.script("o-one", ["500", "503"])
    with structlog.testing.capture_logs() as logs:
        r = await gateway.call(1, _req(), CallContext("run-1", "node-a"))
    assert r.model.name == "o-two" and r.tries == 3
    mine = [e for e in logs if e.get("node_id") == "node-a" and e.get("run_id") == "run-1"]
    events = [e["event"] for e in mine]
    assert events == ["try failed: retrying", "circuit open", "try failed: falling back"]
    assert mine[0]["sleep_s"] == pytest.approx(clock.sleeps[0], abs=1e-3)
    assert "500" in mine[0]["error"] and "503" in mine[2]["error"]
    assert all(e["log_level"] == "info" for e in mine)
    await gateway.registry.aclose()


async def test_the_tries_column_counts_every_provider_call(
    fault_server: FaultServer, fake_keys: dict[str, str]
) -> None:
    """A node whose one attempt took a retry shows 2 tries, in the result and the report."""
    from dagtier.report.model import report_from_result

    catalog = make_catalog(fault_server.base_url, {1: ["o-one"]})
    gateway = Gateway(catalog, retry=RetryPolicy(base_delay_s=0.001, max_delay_s=0.001))
    fault_server.script("o-one", ["500"])
    wf = dagtier.parse_workflow("name: t\nnodes:\n  a: {prompt: hi}\n")
    result = await dagtier.run(wf, gateway=gateway)
    assert result["a"].tries == 2 and len(result["a"].attempts) == 1
    report = report_from_result(result, catalog=catalog, workflow=wf)
    assert sum(a.tries for a in report.nodes[0].attempts) == 2
    await gateway.registry.aclose()


async def test_an_empty_200_is_charged_by_its_usage_not_its_reservation(
    fault_server: FaultServer, fake_keys: dict[str, str], clock: FakeClock
) -> None:
    """An empty answer (a 200 with usage) then a good one: the budget is charged both
    answers' usage, exactly the call's reported cost (issue 12 item 6: the empty answer was
    charged its whole worst-case reservation)."""
    from dagtier.budget import Budget

    catalog = make_catalog(fault_server.base_url, {1: ["o-one"]})
    gateway = Gateway(catalog, clock=clock)
    fault_server.script("o-one", ["empty", "ok"])
    budget = Budget(1.0)
    r = await gateway.call(1, _req(max_tokens=1000), CallContext(budget=budget))
    one_answer = catalog.model("o-one").cost(r.completion.usage)
    assert r.tries == 2 and r.cost == pytest.approx(2 * one_answer)  # same usage both times
    assert budget.spent == pytest.approx(r.cost) and budget.reserved == 0.0
    await gateway.registry.aclose()


async def test_the_sdk_client_is_built_off_the_loop_and_outside_the_timeout(
    fault_server: FaultServer, fake_keys: dict[str, str]
) -> None:
    """Building the SDK client (the first SDK import: seconds on a busy machine) runs in a
    thread while other tasks carry on, and does not count against the attempt's timeout
    (issue 12 item 2: a 4 s timeout expired with no request sent, every node frozen)."""
    import threading
    import time

    from dagtier.providers import ProviderRegistry
    from dagtier.providers.openai import OpenAIProvider

    loop_ran = threading.Event()
    seen_by_make: list[bool] = []

    class SlowToBuild(OpenAIProvider):
        def _new_client(self, key: str) -> Any:
            # stands in for a slow `import openai`: blocks until the event loop has run
            # another task (it never can if this runs on the loop), then past the timeout
            seen_by_make.append(loop_ran.wait(timeout=5))
            time.sleep(0.6)
            return super()._new_client(key)

    catalog = make_catalog(fault_server.base_url, {1: ["o-one"]})
    entry = catalog.model("o-one")
    provider = SlowToBuild(base_url=entry.base_url, api_key_env=entry.api_key_env)
    gateway = Gateway(
        catalog, ProviderRegistry({"openai": provider}), retry=RetryPolicy(max_attempts=1)
    )

    async def other_node() -> None:
        await anyio.sleep(0.05)
        loop_ran.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(other_node)
        r = await gateway.call(1, _req(timeout_s=0.5))
    await provider.aclose()  # passed in: the registry does not own it
    assert seen_by_make == [True]
    assert r.model.name == "o-one" and r.tries == 1
