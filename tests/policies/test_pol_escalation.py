"""The escalation-yield ceiling of cascade and adaptive, on real runs (executor, gateway,
checks, MemoryStore; models are seeded in-process PythonProvider functions with known
per-tier success rates, which is what these properties need and what no network model can
give)."""

from __future__ import annotations

import math
import random

import pytest
from pol_helpers import Models, run, workflow

from dagtier import MemoryStore
from dagtier.policies.escalation import ESCALATION_SUFFIX, ceiling
from dagtier.policies.tuning import TUNING
from dagtier.store import TierStats

pytestmark = pytest.mark.anyio

GOOD = "checks:\n  - {type: regex, pattern: '^good'}\n"
CASCADE = "task: k\npolicy: {kind: cascade, on_exhausted: accept_unverified}\n" + GOOD
# target 1.0 is out of every tier's reach: adaptive cascades from tier 1, as in replay
ADAPTIVE = (
    "task: k\npolicy: {kind: adaptive, target: 1.0, canary: 0, on_exhausted: accept_unverified}\n"
    + GOOD
)


def ladder(p: dict[int, float], rng: random.Random) -> Models:
    """Tier t answers 'good' (passes the regex) with probability p[t]."""
    return Models(lambda t, req: "good" if rng.random() < p[t] else "bad")


async def stream(node: str, p: dict[int, float], runs: int, seed: int) -> tuple[Models, list]:
    """``runs`` runs of a one-node workflow on one store; the models and each node result."""
    rng = random.Random(seed)
    models = ladder(p, random.Random(rng.random()))
    store = MemoryStore()
    wf = workflow(node)
    results = []
    for _ in range(runs):
        results.append((await run(wf, models, store=store, seed=rng.getrandbits(32)))["n"])
    return models, results


def top_share(results: list) -> float:
    """Of the runs whose tier-2 answer failed, the share that went on to tier 3."""
    reached = [r for r in results if any(a.tier == 2 and a.verdict == "fail" for a in r.attempts)]
    went = [r for r in reached if any(a.tier == 3 for a in r.attempts)]
    return len(went) / len(reached) if reached else 1.0


def test_no_evidence_no_ceiling() -> None:
    """With nothing learnt, both rules escalate to the top (the plain cascade)."""
    assert ceiling({}, {}, 1, 3).top == 3
    assert ceiling({}, {}, 1, 3, rng=random.Random(0)).top == 3


def test_ruled_out_needs_enough_evidence() -> None:
    """One pass in nine escalations caps under sampling only by chance, and not at all
    under the ruled-out rule until there is enough evidence."""
    costs = {
        2: TierStats("k", 2, observations=1, total_cost=0.1),
        3: TierStats("k", 3, observations=1, total_cost=1.0),
    }
    few = {3: TierStats("k#escalated", 3, successes=1, failures=8)}
    assert ceiling(few, costs, 1, 3).top == 3
    many = {3: TierStats("k#escalated", 3, successes=3, failures=27)}
    cap = ceiling(many, costs, 1, 3)
    assert cap.top == 2 and "stop at tier 2" in cap.reason
    assert "more than the 2.00 it is worth" in cap.reason
    # a node that values a fix at 5 max-tier calls keeps paying for the same yield
    assert ceiling(many, costs, 1, 3, worth=5.0).top == 3


@pytest.mark.parametrize("seed", range(3))
async def test_cascade_stops_below_a_tier_that_rarely_fixes(seed: int) -> None:
    """Tier 3 fixes 10% of what reaches it: once that is ruled out below the bar, the
    cascade stops at tier 2 and accepts its answer unverified, saying why; only the
    exploring share still pays tier 3."""
    _, results = await stream(CASCADE, {1: 0.3, 2: 0.3, 3: 0.1}, 400, seed)
    late = results[200:]
    assert top_share(late) <= 4 * TUNING.explore_ceiling + 0.05
    capped = [r for r in late if r.decision and "stop at tier 2" in r.decision]
    assert capped, "the ceiling is logged"
    r = next(r for r in capped if r.attempts[-1].verdict == "fail" and r.tier == 2)
    assert r.status == "unverified"
    assert r.error is not None and "learnt ceiling below max tier 3" in r.error


@pytest.mark.parametrize("seed", range(3))
async def test_cascade_keeps_escalating_to_a_tier_that_pays(seed: int) -> None:
    """Tier 3 fixes 60% of what reaches it: the cascade keeps escalating every time."""
    _, results = await stream(CASCADE, {1: 0.3, 2: 0.3, 3: 0.6}, 300, seed)
    assert top_share(results) == 1.0
    assert not any(r.decision and "stop at tier" in r.decision for r in results)


async def test_cascade_that_must_fail_always_tries_the_top() -> None:
    """With on_exhausted: fail the max tier must be tried: no ceiling, whatever the yield."""
    node = CASCADE.replace("accept_unverified", "fail")
    _, results = await stream(node, {1: 0.3, 2: 0.3, 3: 0.1}, 300, 0)
    assert top_share(results) == 1.0


async def test_cascade_without_a_store_is_the_plain_cascade() -> None:
    rng = random.Random(0)
    models = ladder({1: 0.3, 2: 0.3, 3: 0.1}, rng)
    wf = workflow(CASCADE)
    results = [(await run(wf, models, seed=i))["n"] for i in range(200)]
    assert top_share(results) == 1.0


def pays_share(yield_: float, low: float = 1.0, high: float = 3.0) -> float:
    """The chance that a fix costing 1/yield max-tier calls is worth it, when its worth is
    log-uniform over [low, high] (adaptive's default belief)."""
    price = 1 / yield_
    return min(1.0, max(0.0, math.log(high / price) / math.log(high / low)))


@pytest.mark.parametrize("seed", range(3))
async def test_adaptive_escalates_in_proportion_to_the_chance_a_fix_pays(seed: int) -> None:
    """With the default fix_worth [1, 3]: almost never to a tier that fixes 10% (a fix
    costs 10 top-tier calls), about 80% of the time to one that fixes 80% (a fix costs 1.25
    calls, worth it on 80% of the belief); with one number, all or nothing."""
    _, bad = await stream(ADAPTIVE, {1: 0.3, 2: 0.3, 3: 0.1}, 300, seed)
    _, good = await stream(ADAPTIVE, {1: 0.3, 2: 0.3, 3: 0.8}, 300, seed)
    fixed = ADAPTIVE.replace("canary: 0,", "canary: 0, fix_worth: 2,")
    _, good_fixed = await stream(fixed, {1: 0.3, 2: 0.3, 3: 0.8}, 300, seed)
    assert top_share(bad[150:]) <= 0.15
    assert abs(top_share(good[150:]) - pays_share(0.8)) <= 0.12
    assert top_share(good_fixed[150:]) >= 0.95


@pytest.mark.parametrize("seed", range(4))
async def test_adaptive_recovers_from_an_unlucky_start(seed: int) -> None:
    """Tier 3 truly fixes 65% of what reaches it, but its first escalations went badly (3
    passes in 9, which happens one time in twenty). Comparing the mean with a bar locked it
    out, paid only by the exploring share; sampling the yield keeps escalating to it in
    proportion to its chance, so within a few hundred runs it is back to the share its
    true yield earns, far above what exploration alone would give."""
    rng = random.Random(seed)
    store = MemoryStore()
    for i in range(9):
        await store.record_observation("k" + ESCALATION_SUFFIX, 3, success=i < 3)
    models = ladder({1: 0.3, 2: 0.3, 3: 0.65}, random.Random(rng.random()))
    wf = workflow(ADAPTIVE)
    results = [
        (await run(wf, models, store=store, seed=rng.getrandbits(32)))["n"] for _ in range(500)
    ]
    late = top_share(results[300:])
    # the unlucky start fades slowly (yields have a long half-life), so the share is still
    # on its way up to what 65% earns
    assert 10 * TUNING.explore_ceiling <= pays_share(0.65) / 2 <= late
    assert late <= pays_share(0.65) + 0.15
