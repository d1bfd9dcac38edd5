"""Adaptive shares what a node learnt about a tier's yield across its task keys (a
router's input classes, a replay's categories), and judges the answer at its ceiling only
while that tier's yield is being learnt. Real runs (executor, gateway, checks, judge,
MemoryStore) of seeded in-process models with known per-tier rates."""

from __future__ import annotations

import random

import pytest
from pol_helpers import Models, run, workflow

from dagtier import MemoryStore
from dagtier.policies.escalation import node_yields_key, pooled_prior
from dagtier.policies.tuning import TUNING
from dagtier.store import TierStats

pytestmark = pytest.mark.anyio

GOOD = "checks:\n  - {type: regex, pattern: '^good'}\n"


def adaptive(key: str, extra: str = "", checks: str = GOOD) -> str:
    # target 1.0 is out of every tier's reach: adaptive cascades from tier 1, as in replay
    return (
        f"task: {key}\npolicy: {{kind: adaptive, target: 1.0, canary: 0, "
        f"on_exhausted: accept_unverified{extra}}}\n" + checks
    )


def ladder(p: dict[int, float], rng: random.Random) -> Models:
    """Tier t answers 'good' with probability p[t]."""
    return Models(lambda t, req: "good" if rng.random() < p[t] else "bad")


def escalations_to_3(results: list) -> int:
    """Runs that paid tier 3 after tier 2's answer failed (not the runs that started at
    tier 3 to measure it, which the start-tier rule decides)."""
    return sum(
        any(a.tier == 2 and a.verdict == "fail" for a in r.attempts)
        and any(a.tier == 3 for a in r.attempts)
        for r in results
    )


def test_a_node_with_one_key_has_no_prior_and_the_prior_is_shrunk() -> None:
    """The prior is the node's evidence from its other keys: none when the node's evidence
    is the key's own; scaled down to pooled_yield_weight, at the node's rate."""
    own = TierStats("k#escalated", 3, successes=2.0, failures=18.0)
    assert pooled_prior(own, own) == (0.0, 0.0)
    assert pooled_prior(own, None) == (0.0, 0.0)
    node = TierStats("wf/n#escalated@node", 3, successes=12.0, failures=98.0)
    s, f = pooled_prior(own, node)
    assert s + f == pytest.approx(TUNING.pooled_yield_weight)
    assert s / (s + f) == pytest.approx(10 / 90)
    few = TierStats("wf/n#escalated@node", 3, successes=3.0, failures=20.0)
    assert pooled_prior(own, few) == (1.0, 2.0)


async def train_classes(store: MemoryStore, p: dict[int, float], seed: int) -> None:
    """Five input classes of node wf/n, 120 runs each, interleaved."""
    rng = random.Random(seed)
    models = ladder(p, random.Random(rng.random()))
    flows = [workflow(adaptive(f"k{i}")) for i in range(5)]
    for _ in range(120):
        for wf in flows:
            await run(wf, models, store=store, seed=rng.getrandbits(32))


async def first_runs(store: MemoryStore, key: str, p: dict[int, float], seed: int) -> list:
    rng = random.Random(seed + 1000)
    models = ladder(p, random.Random(rng.random()))
    wf = workflow(adaptive(key))
    return [(await run(wf, models, store=store, seed=rng.getrandbits(32)))["n"] for _ in range(60)]


@pytest.mark.parametrize("seed", range(3))
async def test_a_new_class_starts_from_what_the_node_learnt(seed: int) -> None:
    """Tier 3 fixes 10% of what reaches it in every class. A new class of a node that has
    learnt that pays tier 3 on a few of its first runs; the same class of a node that
    learnt nothing pays it until it has seen it fail on its own (min_yield_weight times),
    and says where its ceiling's evidence came from."""
    p = {1: 0.3, 2: 0.3, 3: 0.1}
    pooled = MemoryStore()
    await train_classes(pooled, p, seed)
    assert (await pooled.tier_stats(node_yields_key("wf", "n")))[
        3
    ].weight >= TUNING.pooled_yield_weight
    learnt = await first_runs(pooled, "new", p, seed)
    fresh = await first_runs(MemoryStore(), "new", p, seed)
    assert escalations_to_3(fresh) >= TUNING.min_yield_weight
    assert escalations_to_3(learnt) <= escalations_to_3(fresh) / 2
    capped = [r for r in learnt if r.decision and "stop at tier 2" in r.decision]
    assert capped and "from the node's other keys" in capped[0].decision


@pytest.mark.parametrize("seed", range(3))
async def test_a_class_unlike_the_others_outweighs_the_prior(seed: int) -> None:
    """Tier 3 fixes 10% elsewhere but 90% in one class: that class's own answers overturn
    the prior, and it ends up escalating to tier 3 most of the time."""
    pooled = MemoryStore()
    await train_classes(pooled, {1: 0.3, 2: 0.3, 3: 0.1}, seed)
    rng = random.Random(seed + 2000)
    models = ladder({1: 0.3, 2: 0.3, 3: 0.9}, random.Random(rng.random()))
    wf = workflow(adaptive("unlike"))
    results = [
        (await run(wf, models, store=pooled, seed=rng.getrandbits(32)))["n"] for _ in range(300)
    ]
    late = results[200:]
    reached = [r for r in late if any(a.tier == 2 and a.verdict == "fail" for a in r.attempts)]
    went = [r for r in reached if any(a.tier == 3 for a in r.attempts)]
    assert len(went) >= 0.7 * len(reached)


JUDGED = "checks:\n  - {type: judge}\n"


async def test_the_ceiling_is_judged_while_its_yield_is_learnt_then_a_share() -> None:
    """Tier 3 fixes nothing, so tier 2 becomes the ceiling; tier 2's yield sits at its bar
    (a fix is worth the price on part of fix_worth's range), so it would never count as
    settled. Its answers are judged while its yield is learnt, then only a share is."""
    rng = random.Random(7)

    def answer(t: int, req: object) -> str:
        return "good" if t == 2 and rng.random() < 0.5 else "bad"

    def judge(prompt: str) -> str:
        return "VERDICT: FAIL | REASON: bad" if "<answer>\nbad" in prompt else "VERDICT: PASS"

    wf = workflow(adaptive("k", ", fix_worth: [0.3, 3]", JUDGED))
    store = MemoryStore()
    at_ceiling: list[bool] = []  # per run that stopped at tier 2: was its answer judged?
    for seed in range(400):
        models = Models(answer, judge=judge)
        node = (await run(wf, models, store=store, seed=seed))["n"]
        tiers = [a.tier for a in node.attempts if a.purpose == "answer"]
        if tiers == [1, 2] and node.decision and "stop at tier 2" in node.decision:
            at_ceiling.append(node.attempts[-1].verdict != "unchecked")
    yields = await store.tier_stats("k#escalated")
    assert yields[2].weight >= TUNING.min_ruled_out_yield_weight
    late = at_ceiling[len(at_ceiling) // 2 :]
    assert len(late) >= 40
    assert sum(late) <= len(late) * TUNING.judge_at_ceiling * 2
    assert sum(late) > 0  # a share is still judged: the yield stays measured
