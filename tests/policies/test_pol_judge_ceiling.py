"""The judge is paid only where its verdict can change the action: not at the escalation
ceiling of a node that accepts its last answer anyway."""

from __future__ import annotations

import pytest
from pol_helpers import Models, run, workflow

from dagtier import MemoryStore
from dagtier.policies.tuning import TUNING

pytestmark = pytest.mark.anyio

JUDGED = "checks:\n  - {type: judge}\n"


def good_from(tier: int) -> Models:
    def judge(prompt: str) -> str:
        return "VERDICT: FAIL | REASON: bad" if "<answer>\nbad" in prompt else "VERDICT: PASS"

    return Models(lambda t, req: "good" if t >= tier else "bad", judge=judge)


def bad_below_3() -> Models:
    def judge(prompt: str) -> str:
        return "VERDICT: FAIL | REASON: bad" if "<answer>\nbad" in prompt else "VERDICT: PASS"

    return Models(lambda t, req: "good" if t >= 3 else "bad", judge=judge)


async def test_the_top_tier_of_an_accepting_cascade_is_not_judged_once_settled() -> None:
    """Tier 1 is always judged (a fail escalates). The max tier's verdicts are evidence of
    its yield until that is settled (here: it fixes everything); from then on its answer
    is accepted unverified without a judge call, but for a sampled share, and says why."""
    wf = workflow(
        "task: k\npolicy: {kind: cascade, max: 2, on_exhausted: accept_unverified}\n" + JUDGED
    )
    store = MemoryStore()
    top_judged = []
    for seed in range(100):
        models = good_from(2)
        node = (await run(wf, models, seed=seed, store=store))["n"]
        assert [a.tier for a in node.attempts] == [1, 2]
        judge_calls = len(models.tiers_called("judge"))
        assert judge_calls in (1, 2)
        top_judged.append(judge_calls == 2)
        if judge_calls == 2:
            assert node.status == "succeeded" and node.attempts[-1].verdict == "pass"
        else:
            assert node.status == "unverified" and node.attempts[-1].verdict == "unchecked"
            assert node.attempts[-1].judge_cost == 0
            assert node.error is not None and "without the judge" in node.error
    learning = int(TUNING.min_ruled_out_yield_weight)
    assert all(top_judged[:learning])
    late = top_judged[50:]
    # a share is still judged so the ceiling tier's yield stays measured
    assert 0 < sum(late) <= len(late) * TUNING.judge_at_ceiling * 2


async def test_a_cascade_that_must_fail_judges_its_top_tier() -> None:
    """With on_exhausted: fail the top tier's verdict decides success or failure."""
    wf = workflow("policy: {kind: cascade}\n" + JUDGED)
    for seed in range(10):
        models = bad_below_3()
        node = (await run(wf, models, seed=seed))["n"]
        assert len(models.tiers_called("judge")) == 3 and node.status == "succeeded"


async def test_unjudged_answers_are_no_evidence_for_adaptive() -> None:
    """Adaptive counts only judged answers: an unjudged top-tier answer is neither a
    success nor a failure of tier 3."""
    wf = workflow(
        "task: k\npolicy: {kind: adaptive, canary: 0, on_exhausted: accept_unverified}\n" + JUDGED
    )
    store = MemoryStore()
    judged = unjudged = 0
    for seed in range(30):
        node = (await run(wf, bad_below_3(), seed=seed, store=store))["n"]
        for a in node.attempts:
            if a.tier == 3:
                judged += a.verdict == "pass"
                unjudged += a.verdict == "unchecked"
    top = (await store.tier_stats("k"))[3]
    assert unjudged > 0 and top.observations == judged
