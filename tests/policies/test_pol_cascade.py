"""The cascade policy on real runs (executor, gateway, checks, judge; models are in-process
PythonProvider functions, see pol_helpers)."""

from __future__ import annotations

import pytest
from pol_helpers import PRICES, Models, run, workflow

from dagtier import BadRequest, ServerError

pytestmark = pytest.mark.anyio

JUDGED = "checks:\n  - {type: judge}\n"


def good_from(tier: int) -> Models:
    """Tiers below ``tier`` answer 'bad', the judge says FAIL to 'bad' answers."""

    def judge(prompt: str) -> str:
        return (
            "VERDICT: FAIL | REASON: bad answer" if "<answer>\nbad" in prompt else "VERDICT: PASS"
        )

    return Models(lambda t, req: "good" if t >= tier else "bad", judge=judge)


async def test_escalates_one_tier_at_a_time_and_records_every_attempt() -> None:
    """Tier 1 fails, tier 2 fails, tier 3 passes: three attempts in order, with model,
    tokens, cost, latency, verdict and reason, and a judge charged on each."""
    models = good_from(3)
    r = await run(workflow("policy: {kind: cascade}\n" + JUDGED), models)
    node = r["n"]
    assert node.status == "succeeded" and node.tier == 3 and node.output == "good"
    assert models.calls == [
        (1, "answer"),
        (1, "judge"),
        (2, "answer"),
        (1, "judge"),
        (3, "answer"),
        (1, "judge"),
    ]
    assert [(a.index, a.tier, a.model, a.verdict) for a in node.attempts] == [
        (0, 1, "m1", "fail"),
        (1, 2, "m2", "fail"),
        (2, 3, "m3", "pass"),
    ]
    assert [a.reason for a in node.attempts] == ["judge: bad answer", "judge: bad answer", ""]
    for a in node.attempts:
        assert a.usage.total > 0 and a.latency_s >= 0
        assert a.cost == pytest.approx(a.usage.total * PRICES[a.tier] / 1e6)
        # the judge runs on tier 1 and is charged at tier-1 prices
        assert (
            a.judge_cost == pytest.approx(a.judge_usage.total * PRICES[1] / 1e6)
            and a.judge_cost > 0
        )
    assert node.cost == pytest.approx(sum(a.cost + a.judge_cost for a in node.attempts))
    assert node.decision is not None and "escalating to tier 2" in node.decision
    assert "escalating to tier 3" in node.decision


async def test_stops_at_the_first_pass() -> None:
    """When tier 2 passes, tier 3 is never called."""
    models = good_from(2)
    r = await run(workflow("policy: {kind: cascade}\n" + JUDGED), models)
    assert r["n"].tier == 2 and models.tiers_called() == [1, 2]


async def test_starts_at_the_start_tier() -> None:
    """``start: 2`` never calls tier 1."""
    models = good_from(1)
    r = await run(workflow("policy: {kind: cascade, start: 2}\n" + JUDGED), models)
    assert models.tiers_called() == [2] and r["n"].tier == 2


async def test_respects_max_tier_and_fails_by_default() -> None:
    """With max 2 and no tier good enough, tier 3 is never called and the node fails, saying why."""
    models = good_from(3)
    r = await run(workflow("policy: {kind: cascade, max: 2}\n" + JUDGED), models)
    node = r["n"]
    assert models.tiers_called() == [1, 2]
    assert node.status == "failed" and node.output is None
    assert node.error == "the answer at max tier 2 failed its checks: judge: bad answer"
    assert not r.ok


async def test_accept_unverified_keeps_the_last_answer_and_says_so() -> None:
    """on_exhausted: accept_unverified returns the max tier's answer as 'unverified'."""
    models = good_from(4)
    r = await run(
        workflow("policy: {kind: cascade, on_exhausted: accept_unverified}\n" + JUDGED), models
    )
    node = r["n"]
    assert node.status == "unverified" and node.tier == 3 and node.output == "bad"
    assert node.error is not None and "accepted unverified" in node.error
    assert len(node.attempts) == 3


async def test_deterministic_failure_escalates() -> None:
    """An answer that fails a validator (not only the judge) escalates."""
    models = Models(lambda t, req: "{}" if t == 1 else '{"a": 1}')
    r = await run(
        workflow("policy: {kind: cascade}\n", output="{schema: {type: object, required: [a]}}"),
        models,
    )
    assert models.tiers_called() == [1, 2] and r["n"].output == {"a": 1}


async def test_provider_error_does_not_escalate() -> None:
    """A tier whose model keeps failing (after the gateway's retries) fails the node; the
    cascade does not pay a higher tier for an availability problem."""

    def answer(tier: int, req: object) -> str:
        raise ServerError("unavailable", provider="python", model=f"model-{tier}", status_code=503)

    models = Models(answer)
    r = await run(workflow("policy: {kind: cascade}\n" + JUDGED), models)
    node = r["n"]
    assert node.status == "failed"
    assert set(models.tiers_called()) == {1}  # retried within tier 1 only
    assert [(a.tier, a.verdict) for a in node.attempts] == [(1, "error")]
    assert node.error is not None and "503" in node.error


async def test_transient_error_is_retried_within_the_tier() -> None:
    """A 500 then an answer: same tier, one attempt that lists the error survived."""
    seen: list[int] = []

    def answer(tier: int, req: object) -> str:
        seen.append(tier)
        if len(seen) == 1:
            raise ServerError("blip", provider="python", model="model-1", status_code=500)
        return "fine"

    r = await run(workflow("policy: {kind: cascade}\n"), Models(answer))
    node = r["n"]
    assert seen == [1, 1] and node.tier == 1 and node.status == "succeeded"
    assert len(node.attempts) == 1 and len(node.attempts[0].fallbacks) == 1


async def test_bad_request_is_not_retried_nor_escalated() -> None:
    """A 400 is a bug, not bad luck: one call, node failed."""

    def answer(tier: int, req: object) -> str:
        raise BadRequest("bad", provider="python", model="model-1", status_code=400)

    models = Models(answer)
    r = await run(workflow("policy: {kind: cascade}\n"), models)
    assert models.tiers_called() == [1] and r["n"].status == "failed"
