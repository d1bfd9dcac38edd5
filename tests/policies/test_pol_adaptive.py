"""The adaptive policy on real runs (executor, gateway, checks, MemoryStore; models are
in-process PythonProvider functions whose per-tier success probabilities are known and
seeded, which is what these properties need and what no network model can give)."""

from __future__ import annotations

import random
import warnings
from pathlib import Path

import pytest
from pol_helpers import Models, run, workflow

import dagtier
from dagtier import DagtierUsageError, MemoryStore
from dagtier.policies.adaptive import OUTCOME_WEIGHT, TUNING, choose
from dagtier.store import TierStats

pytestmark = pytest.mark.anyio

GOOD = "checks:\n  - {type: regex, pattern: '^good'}\n"


def adaptive_node(key: str, policy: str = "{kind: adaptive}", checks: str = GOOD) -> str:
    return f"task: {key}\npolicy: {policy}\n{checks}"


def bernoulli(p: dict[int, float], rng: random.Random) -> Models:
    """Answers 'good' on tier t with probability p[t] (p may be changed later)."""
    return Models(lambda t, req: "good" if rng.random() < p[t] else "bad")


def profile(rng: random.Random) -> tuple[dict[int, float], int]:
    """Per-tier success probabilities: tiers below the first good one are clearly below the
    0.9 target (0.2-0.7), the rest clearly above it (0.98-1.0); monotone, as real ladders."""
    first = rng.choice([1, 2, 3])
    return {
        t: rng.uniform(0.98, 1.0) if t >= first else rng.uniform(0.2, 0.7) for t in (1, 2, 3)
    }, first


async def picks(store: MemoryStore, key: str) -> int:
    return choose(await store.tier_stats(key), 1, 3, 0.9).tier


@pytest.mark.parametrize("seed", range(4))
async def test_settles_on_the_cheapest_tier_meeting_the_target(seed: int) -> None:
    """Starting from nothing, within 50 runs adaptive picks the cheapest tier whose true
    success rate meets the target for at least 90% of task keys."""
    rng = random.Random(seed)
    store = MemoryStore()
    right = 0
    keys = 20
    for k in range(keys):
        p, first = profile(rng)
        models = bernoulli(p, random.Random(rng.random()))
        wf = workflow(adaptive_node(f"key{k}"))
        for _ in range(50):
            await run(wf, models, store=store, seed=rng.getrandbits(32))
        right += await picks(store, f"key{k}") == first
    assert right / keys >= 0.9


@pytest.mark.parametrize("seed", range(3))
async def test_re_promotes_within_20_runs_after_the_cheap_tier_drops(seed: int) -> None:
    """Settled on tier 1, when tier 1's success rate silently drops from ~0.99 to 0.3 the
    policy moves the node up within 20 runs."""
    rng = random.Random(seed)
    store = MemoryStore()
    for k in range(6):
        key = f"key{k}"
        p = {1: rng.uniform(0.98, 1.0), 2: rng.uniform(0.98, 1.0), 3: 0.99}
        models = bernoulli(p, random.Random(rng.random()))
        wf = workflow(adaptive_node(key))
        for _ in range(50):
            await run(wf, models, store=store, seed=rng.getrandbits(32))
        assert await picks(store, key) == 1
        p[1] = 0.3
        for _ in range(20):
            await run(wf, models, store=store, seed=rng.getrandbits(32))
            if await picks(store, key) >= 2:
                break
        assert await picks(store, key) >= 2, f"{key} still on tier 1 after 20 runs"


async def test_demotes_to_a_tier_that_keeps_succeeding() -> None:
    """Settled on tier 2 because tier 1 was bad, when tier 1 becomes good the policy's
    exploration notices and the node moves back down to tier 1 (in about 500 runs across
    seeds: demotion is deliberately slower than promotion, which protects quality)."""
    rng = random.Random(7)
    store = MemoryStore()
    p = {1: 0.3, 2: 0.99, 3: 0.99}
    models = bernoulli(p, random.Random(1))
    wf = workflow(adaptive_node("k"))
    for _ in range(50):
        await run(wf, models, store=store, seed=rng.getrandbits(32))
    assert await picks(store, "k") == 2
    p[1] = 1.0
    for _ in range(1500):
        await run(wf, models, store=store, seed=rng.getrandbits(32))
        if await picks(store, "k") == 1:
            break
    assert await picks(store, "k") == 1


async def test_every_decision_names_the_estimates_compared() -> None:
    """The node's decision (and the PolicyDecision event) says which tier and why, with
    the per-tier estimates."""
    events: list[object] = []
    store = MemoryStore()
    from pol_helpers import gateway

    from dagtier.executor import run as execute

    models = Models(lambda t, req: "good")
    wf = workflow(adaptive_node("k"))
    r = await execute(
        wf, {}, gateway=gateway(models), store=store, subscribers=[events.append], seed=1
    )
    decision = r["n"].decision
    assert decision is not None and decision.startswith("no tier proven to reach target 0.9 yet")
    assert "t1 " in decision and "t3 " in decision and "(n=0.0)" in decision
    from dagtier.events import PolicyDecision

    assert [e.tier for e in events if isinstance(e, PolicyDecision)] == [1]


async def test_proven_tier_is_chosen_directly() -> None:
    """With strong evidence that tier 2 succeeds and tier 1 does not, the node starts on
    tier 2 and never pays for tier 1 (exploration aside)."""
    store = MemoryStore()
    for _ in range(40):
        await store.record_observation("k", 1, success=False)
        await store.record_observation("k", 2, success=True)
    models = Models(lambda t, req: "good")
    TUNING_EXPLORE = TUNING.explore
    assert TUNING_EXPLORE < 0.5
    r = await run(workflow(adaptive_node("k")), models, store=store, seed=3)
    assert models.tiers_called() in ([2], [1])  # [1] only on an exploration draw
    if models.tiers_called() == [2]:
        assert r["n"].decision is not None and r["n"].decision.startswith(
            "tier 2 is the cheapest proven"
        )


def test_estimates_are_monotone_across_tiers() -> None:
    """A higher tier without evidence is assumed as good as a proven lower one; with its
    own evidence against that, it is not lifted."""
    good = TierStats("k", 1, successes=60, failures=0, observations=60)
    assert (
        choose({1: good}, 1, 3, 0.9).estimates[2].lower
        == choose({1: good}, 1, 3, 0.9).estimates[0].lower
    )
    bad3 = TierStats("k", 3, successes=0, failures=30, observations=30)
    ests = choose({1: good, 3: bad3}, 1, 3, 0.9).estimates
    assert ests[2].lower < 0.2 < ests[1].lower


def test_unreachable_target_cascades_from_the_bottom() -> None:
    """When every tier is ruled out, the node cascades from the cheapest tier."""
    stats = {t: TierStats("k", t, successes=20, failures=20, observations=40) for t in (1, 2, 3)}  # type: ignore[misc]
    c = choose(stats, 1, 3, 0.9)  # type: ignore[arg-type]
    assert c.tier == 1 and not c.proven and c.reason.startswith("no tier can reach target 0.9")


async def test_canary_runs_the_top_tier_and_counts_its_cost() -> None:
    """With canary: 1.0 every run also runs the top tier (purpose 'canary'), its cost is
    the node's, and the comparison is in the decision."""
    store = MemoryStore()
    models = Models(lambda t, req: "good")
    r = await run(
        workflow(adaptive_node("k", "{kind: adaptive, canary: 1.0}")), models, store=store, seed=1
    )
    node = r["n"]
    assert [(a.tier, a.purpose) for a in node.attempts] == [(1, "answer"), (3, "canary")]
    assert node.tier == 1 and node.output == "good"
    assert node.cost == pytest.approx(sum(a.total_cost for a in node.attempts))
    assert node.decision is not None and "quality canary: tier 3 also ran (pass)" in node.decision
    assert "answers agree" in node.decision
    stats = await store.tier_stats("k")
    assert stats[1].successes == 1 and stats[3].successes == 1


async def test_canary_disagreement_counts_against_the_cheap_tier() -> None:
    """When the canary passes and gives a different (comparable) answer, the cheap
    answer's pass is counted as a failure: the checks let a wrong answer through."""
    store = MemoryStore()
    models = Models(lambda t, req: '{"label": "spam"}' if t == 1 else '{"label": "ham"}')
    wf = workflow(adaptive_node("k", "{kind: adaptive, canary: 1.0}", checks=""), output="json")
    r = await run(wf, models, store=store, seed=1)
    assert r["n"].output == {"label": "spam"}
    assert "answers differ" in (r["n"].decision or "")
    stats = await store.tier_stats("k")
    assert (stats[1].successes, stats[1].failures) == (0, 1)


async def test_canary_fraction_is_respected() -> None:
    """The default 1% canary runs on about 1% of runs (seeded)."""
    store = MemoryStore()
    models = Models(lambda t, req: "good")
    wf = workflow(adaptive_node("k"))
    rng = random.Random(5)
    for _ in range(1000):
        await run(wf, models, store=store, seed=rng.getrandbits(32))
    canaries = models.tiers_called().count(3)
    assert 2 <= canaries <= 25


async def test_hopeless_input_counts_less_against_cheaper_tiers() -> None:
    """When even the top tier fails an input, the cheaper tiers' failures on it weigh
    less (AutoMix): it says little about them."""
    store = MemoryStore()
    models = Models(lambda t, req: "bad")
    r = await run(workflow(adaptive_node("k")), models, store=store, seed=1)
    assert r["n"].status == "failed" and len(r["n"].attempts) == 3
    stats = await store.tier_stats("k")
    assert (
        stats[1].failures == TUNING.hopeless_weight and stats[2].failures == TUNING.hopeless_weight
    )
    assert stats[3].failures == 1


# --- outcomes reported later ---------------------------------------------------------------


async def test_record_outcome_counts_more_than_a_check() -> None:
    """A reported outcome is evidence for the node's task key and answering tier, weighing
    more than a check; the judge's agreement with it is kept too."""
    store = MemoryStore()
    models = Models(lambda t, req: "good", judge=lambda p: "PASS")
    wf = workflow(adaptive_node("k", checks="checks:\n  - {type: judge}\n"))
    r = await run(wf, models, store=store, seed=1)
    assert r["n"].tier == 1
    await dagtier.record_outcome(r.run_id, "n", False, store=store)
    st = (await store.tier_stats("k"))[1]
    assert st.successes == pytest.approx(1 * 0.5 ** (OUTCOME_WEIGHT / 50))
    assert st.failures == OUTCOME_WEIGHT
    judge = (await store.tier_stats("k#judge"))[1]
    assert (judge.successes, judge.failures) == (0, 1)  # the judge said PASS; it was wrong


async def test_record_outcome_errors_are_clear() -> None:
    """Unknown runs and nodes, and nodes without an answer, are refused with what exists."""
    store = MemoryStore()
    r = await run(workflow(adaptive_node("k")), Models(lambda t, req: "bad"), store=store, seed=1)
    with pytest.raises(DagtierUsageError, match=r"no run 'nope' in the store; recent runs: "):
        await dagtier.record_outcome("nope", "n", True, store=store)
    with pytest.raises(DagtierUsageError, match=r"has no finished node 'x'; its nodes: n"):
        await dagtier.record_outcome(r.run_id, "x", True, store=store)
    with pytest.raises(DagtierUsageError, match=r"ended failed without an answer"):
        await dagtier.record_outcome(r.run_id, "n", True, store=store)
    with pytest.raises(DagtierUsageError, match=r"needs the store the run was recorded in"):
        await dagtier.record_outcome(r.run_id, "n", True, store=object())


# --- trusting the judge ----------------------------------------------------------------------

JUDGED = "checks:\n  - {type: judge}\n"
# no tier reaches 0.95 through this judge: adaptive cascades from tier 1, as in replay
POLICY = "{kind: adaptive, target: 0.95, canary: 0.3, on_exhausted: accept_unverified}"


def ladder(tier1_right: bool, seed: int) -> Models:
    """Tiers 2 and 3 answer RIGHT 80% of the time (else OTHER); tier 1 always answers
    RIGHT or always WRONG. The judge passes RIGHT 90% of the time and OTHER 10%, and passes
    WRONG always: it cannot tell tier 1's mistake."""
    answers, verdicts = random.Random(seed), random.Random(seed + 1)

    def answer(tier: int, req: object) -> str:
        if tier == 1:
            return "RIGHT" if tier1_right else "WRONG"
        return "RIGHT" if answers.random() < 0.8 else "OTHER"

    def judge(prompt: str) -> str:
        body = prompt.rsplit("do the task", 1)[-1]
        p = 1.0 if "WRONG" in body else 0.9 if "RIGHT" in body else 0.1
        return "PASS" if verdicts.random() < p else "FAIL"

    return Models(answer, judge=judge)


async def judged_stream(models: Models, runs: int, seed: int) -> tuple[MemoryStore, list]:
    rng = random.Random(seed)
    store = MemoryStore()
    wf = workflow(adaptive_node("k", POLICY, checks=JUDGED))
    results = [
        (await run(wf, models, store=store, seed=rng.getrandbits(32)))["n"] for _ in range(runs)
    ]
    return store, results


@pytest.mark.parametrize("seed", range(3))
async def test_a_judge_the_canary_shows_wrong_is_not_trusted(seed: int) -> None:
    """Tier 1 is always wrong and the judge always passes it. The canary's answers differ
    from tier 1's, so the judge's agreement at tier 1 is ruled out below the rate at which
    tier 2's answers pass: the node stops accepting tier 1's passes and starts on tier 2,
    saying why, except for the small share of runs that keeps measuring."""
    store, results = await judged_stream(ladder(False, seed), 200, seed)
    trust = (await store.tier_stats("k#judge"))[1]
    assert trust.failures >= TUNING.min_ruled_out_weight and trust.successes == 0
    late = results[100:]
    assert sum(r.output == "RIGHT" for r in late) / len(late) >= 0.6
    moved = [r for r in late if r.decision and "passes are not trusted" in r.decision]
    assert len(moved) >= 0.8 * len(late)
    assert all(r.attempts[0].tier == 2 for r in moved)


@pytest.mark.parametrize("seed", range(3))
async def test_a_judge_that_agrees_with_the_canary_keeps_the_cheap_start(seed: int) -> None:
    """Tier 1 is right and the judge mostly says so: its agreement is counted, and its
    passes are never distrusted."""
    store, results = await judged_stream(ladder(True, seed), 200, seed)
    trust = (await store.tier_stats("k#judge"))[1]
    assert trust.successes >= TUNING.min_ruled_out_weight > trust.failures
    assert not any(r.decision and "not trusted" in r.decision for r in results)


async def test_stats_show_the_start_the_judge_allows() -> None:
    """`dagtier stats` shows the tier adaptive would start on: past a distrusted judge."""
    from dagtier.policies.stats_view import collect

    store, _ = await judged_stream(ladder(False, 0), 200, 0)
    [key] = await collect(store, task="k")
    assert key.pick == 2 and "passes are not trusted" in key.pick_reason
    assert key.judge and key.judge[0].tier == 1 and key.judge[0].estimate < 0.5


async def test_an_adaptive_run_with_nowhere_to_learn_into_warns(tmp_path: Path) -> None:
    """dagtier.run() of an adaptive workflow without a store warns that what it learns is
    lost; given a store (the SQLite file, or a MemoryStore kept by the caller) it does not."""
    from pol_helpers import gateway

    wf = workflow(adaptive_node("wf/n"))
    models = Models(lambda t, req: "good")
    with pytest.warns(dagtier.NoStatsStoreWarning, match="adaptive node\\(s\\) n learn"):
        r = await dagtier.run(wf, {}, gateway=gateway(models))
    assert r.ok
    store = dagtier.open_store(tmp_path / "runs.db")
    for kept in (store, MemoryStore()):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert (await dagtier.run(wf, {}, gateway=gateway(models), store=kept)).ok
    await store.aclose()
