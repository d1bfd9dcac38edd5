"""Routers read a node's input before any model runs: rules, a trained classifier, a small
model, or all three in turn; the class joins the task key and every decision is logged."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from pol_helpers import Models, gateway

import dagtier
from dagtier import DagtierUsageError, MemoryStore
from dagtier.events import Event, PolicyDecision
from dagtier.executor import run as execute
from dagtier.policies.routers import (
    ClassifierRouter,
    HybridRouter,
    LlmRouter,
    RouteInput,
    Router,
    Rule,
    RulesRouter,
)
from dagtier.providers import CompletionRequest

pytestmark = pytest.mark.anyio

JUDGE_WRONG = "VERDICT: FAIL | REASON: wrong"
JUDGE_OK = "VERDICT: PASS | REASON: fine"


def flow(policy: str, *, judged: bool = True, deps: bool = False) -> Any:
    checks = "\n    checks: [{type: judge}]" if judged else ""
    if deps:
        return dagtier.parse_workflow(
            "name: wf\ninputs: {q: string, lang: string}\nnodes:\n"
            "  meta:\n    prompt: 'meta {{ inputs.lang }}'\n    output: json\n"
            "    policy: {kind: static, tier: 1}\n"
            f"  n:\n    prompt: '{{{{ inputs.q }}}}'\n    depends_on: [meta]\n    task: k\n"
            f"    policy: {policy}{checks}\n"
        )
    return dagtier.parse_workflow(
        "name: wf\ninputs: {q: string}\nnodes:\n"
        f"  n:\n    prompt: '{{{{ inputs.q }}}}'\n    task: k\n    policy: {policy}{checks}\n"
    )


def judged_models(fails_at_1: Any = lambda prompt: False) -> Models:
    """Tier 1 answers 'wrong' where ``fails_at_1(prompt)``; the judge fails 'wrong'."""

    def answer(tier: int, req: CompletionRequest) -> str:
        text = req.messages[-1].content
        if text.startswith("meta"):
            return '{"lang": "python"}' if "python" in text else '{"lang": ""}'
        if text.startswith("Classify"):
            return "code" if "def " in text else "banana"
        return "wrong" if tier == 1 and fails_at_1(text) else "right"

    return Models(answer, judge=lambda p: JUDGE_WRONG if "wrong" in p else JUDGE_OK)


async def run_one(
    wf: Any, models: Models, router: Router, q: str, *, store: Any, seed: int = 0, **inputs: str
) -> tuple[Any, list[Event]]:
    events: list[Event] = []
    res = await execute(
        wf,
        {"q": q, **inputs},
        gateway=gateway(models),
        store=store,
        seed=seed,
        routers={"n": router},
        subscribers=[events.append],
    )
    return res, events


def route_reasons(events: list[Event]) -> list[str]:
    return [e.reason for e in events if isinstance(e, PolicyDecision) and "router" in e.reason]


async def test_rules_first_match_wins_and_the_class_joins_the_task_key() -> None:
    """A long input matches the length rule before the keyword rule below it; its class
    becomes part of the task key and its start tier a floor for the cascade."""
    router = RulesRouter(
        [
            Rule.make("long", start=3, min_chars=60),
            Rule.make("code", start=2, pattern=r"\bdef \w+\(", keywords=("traceback",)),
        ]
    )
    models = judged_models()
    store = MemoryStore()
    wf = flow("{kind: cascade}")
    res, events = await run_one(wf, models, router, "def f(): pass  # traceback", store=store)
    node = res.nodes["n"]
    assert node.task_key == "k[code]" and [a.tier for a in node.attempts] == [2]
    assert route_reasons(events) == [
        "router (rules): class 'code', start at tier 2 or above: rule 2 "
        r"(matches /\bdef \w+\(/, contains 'traceback')"
    ]
    res, _ = await run_one(
        wf, models, router, "def f(): pass  # traceback " + "x" * 40, store=store
    )
    assert res.nodes["n"].task_key == "k[long]" and res.nodes["n"].tier == 3
    res, events = await run_one(wf, models, router, "hello", store=store)
    assert res.nodes["n"].task_key == "k" and res.nodes["n"].tier == 1
    assert route_reasons(events) == ["router (rules) abstains: no rule of 2 matched"]
    # adaptive evidence is kept per class
    keys = {st.task_key for st in await store.all_stats()}
    assert {"k", "k[code]", "k[long]"} <= keys


async def test_rules_read_upstream_fields() -> None:
    """A rule on an upstream node's field routes by what that node produced."""
    router = RulesRouter([Rule.make("py", start=2, field="meta.lang", equals="python")])
    models = judged_models()
    wf = flow("{kind: cascade}", deps=True)
    res, events = await run_one(wf, models, router, "q", store=MemoryStore(), lang="python")
    assert res.nodes["n"].task_key == "k[py]" and res.nodes["n"].tier == 2
    assert "meta.lang == 'python'" in route_reasons(events)[0]
    res, _ = await run_one(wf, models, router, "q", store=MemoryStore(), lang="go")
    assert res.nodes["n"].task_key == "k" and res.nodes["n"].tier == 1


def test_an_invalid_regex_is_a_usage_error() -> None:
    with pytest.raises(DagtierUsageError, match=r"invalid regex '\(unclosed'"):
        Rule.make("x", pattern="(unclosed")


async def test_a_classifier_without_outcomes_abstains_and_says_so() -> None:
    router = ClassifierRouter()
    route = await router.route(RouteInput("anything", {}, "k", MemoryStore()))
    assert route.abstained and route.reason == "abstains: 0 recorded outcomes, needs 200"
    assert router.status()["state"] == "abstaining: 0 of 200 outcomes"


def _question(rng: random.Random, hard: bool) -> str:
    subjects = ["triple integral over the region", "contour integral of the residue", "eigen"]
    easy = ["capital city of the country", "colour of the sky", "author of the novel"]
    pick = rng.choice(subjects if hard else easy)
    return f"{pick} number {rng.randrange(1000)} {rng.choice(['please', 'now', 'today'])}"


async def test_the_classifier_learns_which_inputs_fail_the_cheap_tier() -> None:
    """Trained online on the judge's verdicts, the classifier starts the inputs tier 1
    fails on at tier 2 and leaves the others to the cascade."""
    rng = random.Random(0)
    router = ClassifierRouter(min_examples=60, threshold=0.7, explore=0.0)
    models = judged_models(lambda text: "integral" in text)
    wf = flow("{kind: cascade}")
    store = MemoryStore()
    for i in range(80):
        await run_one(wf, models, router, _question(rng, rng.random() < 0.5), store=store, seed=i)
    assert router.status()["state"].startswith("routing: cross-validated AUC")
    hard, _ = await run_one(wf, models, router, _question(rng, True), store=store)
    easy, _ = await run_one(wf, models, router, _question(rng, False), store=store)
    assert [a.tier for a in hard.nodes["n"].attempts] == [2]
    assert hard.nodes["n"].task_key == "k[hard]"
    assert [a.tier for a in easy.nodes["n"].attempts] == [1]


async def test_the_classifier_abstains_where_the_text_does_not_predict_failure() -> None:
    """Failures at random, whatever the text: the cross-validated ranking is no better than
    chance and the classifier keeps out of the way."""
    rng = random.Random(1)
    fails = {}

    def coin(text: str) -> bool:
        return fails.setdefault(text, rng.random() < 0.5)

    router = ClassifierRouter(min_examples=60, threshold=0.5)
    models = judged_models(coin)
    wf = flow("{kind: cascade}")
    store = MemoryStore()
    for i in range(100):
        await run_one(wf, models, router, _question(rng, rng.random() < 0.5), store=store, seed=i)
    state = router.status()["state"]
    assert state.startswith("abstaining: cross-validated AUC"), state
    res, events = await run_one(wf, models, router, _question(rng, True), store=store)
    assert res.nodes["n"].task_key == "k"
    assert "does not predict failure" in route_reasons(events)[0]


async def test_llm_router_is_charged_to_the_node_and_falls_back_outside_its_classes() -> None:
    """The router model's class is used when declared; any other answer leaves the node
    to its policy, logged; its call is an attempt of the node either way."""
    router = LlmRouter({"code": 2, "prose": None})
    models = judged_models()
    wf = flow("{kind: cascade}")
    res, events = await run_one(wf, models, router, "def f(): pass", store=MemoryStore())
    node = res.nodes["n"]
    assert [(a.purpose, a.tier) for a in node.attempts] == [("route", 1), ("answer", 2)]
    assert node.task_key == "k[code]" and node.cost == sum(a.total_cost for a in node.attempts)
    assert node.attempts[0].cost > 0
    res, events = await run_one(wf, models, router, "tell me a story", store=MemoryStore())
    node = res.nodes["n"]
    assert node.task_key == "k" and [a.tier for a in node.attempts] == [1, 1]
    assert route_reasons(events) == [
        "router (llm) abstains: the router model answered 'banana', not one of code, prose: "
        "the node's policy decides"
    ]


async def test_hybrid_asks_rules_then_classifier_then_llm() -> None:
    router = HybridRouter(
        RulesRouter([Rule.make("short", max_chars=5)]),
        ClassifierRouter(),
        LlmRouter({"code": 2}),
    )
    models = judged_models()
    wf = flow("{kind: cascade}")
    res, _ = await run_one(wf, models, router, "hi", store=MemoryStore())
    assert res.nodes["n"].task_key == "k[short]"
    assert not [a for a in res.nodes["n"].attempts if a.purpose == "route"]
    res, events = await run_one(wf, models, router, "def f(): pass", store=MemoryStore())
    assert res.nodes["n"].task_key == "k[code]"
    (reason,) = route_reasons(events)
    assert "rules: no rule of 1 matched" in reason
    # the first run's judged tier-1 answer is the classifier's one outcome so far
    assert "classifier: abstains: 1 recorded outcomes, needs 200" in reason


async def test_route_only_runs_the_routed_tier_without_a_judge() -> None:
    router = RulesRouter([Rule.make("code", start=2, keywords=("def",))])
    models = judged_models()
    wf = flow("{kind: static, tier: 1}", judged=False)
    res, _ = await run_one(wf, models, router, "def f(): pass", store=MemoryStore())
    assert res.nodes["n"].tier == 2 and models.tiers_called("judge") == []


async def test_reported_outcomes_train_the_classifier_of_a_node_without_a_judge() -> None:
    """A node with no check can only learn from what the application reports: each
    record_outcome reaches the router that routed the input, which then starts the inputs
    tier 1 gets wrong at tier 2."""
    rng = random.Random(3)
    router = ClassifierRouter(min_examples=60, threshold=0.7, explore=0.0)
    models = judged_models(lambda text: "integral" in text)
    wf = flow("{kind: static, tier: 1}", judged=False)
    store = MemoryStore()
    for i in range(80):
        q = _question(rng, rng.random() < 0.5)
        res, _ = await run_one(wf, models, router, q, store=store, seed=i)
        if i < 60:  # no model yet: every input is answered at tier 1
            assert [a.tier for a in res.nodes["n"].attempts] == [1]
        await dagtier.record_outcome(res.run_id, "n", "integral" not in q, store=store)
    assert router.status()["outcomes"] >= 60
    assert router.status()["state"].startswith("routing: cross-validated AUC")
    hard, _ = await run_one(wf, models, router, "contour integral number 5 now", store=store)
    easy, _ = await run_one(wf, models, router, "colour of the sky number 5 now", store=store)
    assert [a.tier for a in hard.nodes["n"].attempts] == [2]
    assert [a.tier for a in easy.nodes["n"].attempts] == [1]
    # each decision carries the model's evidence (what `dagtier stats` shows from the store)
    assert "[cross-validated AUC 1.00 on 60 outcomes]" in (hard.nodes["n"].decision or "")


async def test_per_cost_ranks_a_dear_input_below_an_equally_risky_cheap_one() -> None:
    """Where an answer's cost grows with the input's length, ``per_cost`` weighs the chance
    of failure by what sending the input up would cost: of two inputs the text says fail
    alike, the long one scores lower; without it they score alike."""
    rng = random.Random(4)
    router = ClassifierRouter(min_examples=60, per_cost=True)
    for _ in range(120):
        hard = rng.random() < 0.5
        text = _question(rng, hard) + " pad" * rng.randrange(0, 200)
        await router.learn(text, "k", 1, passed=not hard, cost=1e-6 * len(text))
    await router.refit()
    short = "triple integral over the region number 7 now"
    long = short + " pad" * 300
    plain_short, plain_long = router.probability(short, "k"), router.probability(long, "k")
    scored_short, scored_long = router.score(short, "k"), router.score(long, "k")
    assert plain_short is not None and plain_long is not None
    assert scored_short is not None and scored_long is not None
    assert scored_long < 0.5 * scored_short
    assert scored_long < plain_long and scored_short > plain_short
    assert len(router.cross_validated_scores()) == 120


def _ladder_models(seed: int) -> Models:
    """Tier t answers 'right' with probability 0.3, 0.3, 0.1: tier 3 rarely fixes what
    reaches it, which a cascade that accepts its last answer unverified learns to skip."""
    rng = random.Random(seed)
    rate = {1: 0.3, 2: 0.3, 3: 0.1}
    return Models(
        lambda tier, req: "right" if rng.random() < rate[tier] else "wrong",
        judge=lambda p: JUDGE_WRONG if "wrong" in p else JUDGE_OK,
    )


@pytest.mark.parametrize("seed", range(2))
async def test_a_routed_input_keeps_the_ceiling_its_key_learnt(seed: int) -> None:
    """A router's class moves where a cascade starts, not which tiers pay for the key: once
    the key learnt that tier 3 rarely fixes its answers, a routed input whose tier-2 answer
    fails stops there too. (A class of its own has no evidence and would pay tier 3 on each
    of its first failures.)"""
    models = _ladder_models(seed)
    wf = flow("{kind: cascade, on_exhausted: accept_unverified}")
    router = RulesRouter([Rule.make("hard", start=2, keywords=("hard",))])
    store = MemoryStore()
    for i in range(250):
        await run_one(wf, models, router, f"plain question {i}", store=store, seed=i)
    failed_at_2 = went_to_3 = 0
    for i in range(40):
        res, _ = await run_one(wf, models, router, f"hard question {i}", store=store, seed=i)
        node = res.nodes["n"]
        assert node.task_key == "k[hard]" and node.attempts[0].tier == 2
        if node.attempts[0].verdict == "fail" or node.status == "unverified":
            failed_at_2 += 1
            went_to_3 += any(a.tier == 3 for a in node.attempts)
    assert failed_at_2 >= 15
    # only the cascade's exploring share (2%) and the ceiling's judged sample go past it
    assert went_to_3 <= 3, (went_to_3, failed_at_2)


async def test_skip_worth_trades_a_little_cost_for_fewer_wasted_attempts() -> None:
    """Tier 1 fails 'integral' questions half the time. Skipping it there does not pay in
    money (tier 2 fails half of them too, and tier 3 costs a hundred times tier 1), so the
    break-even router leaves them to the cascade; valuing each avoided escalation at half a
    tier-3 call, it starts them at tier 2 and says what it weighed."""
    rng = random.Random(3)
    fails: dict[str, bool] = {}

    def fails_at_1(text: str) -> bool:
        return fails.setdefault(text, rng.random() < (0.5 if "integral" in text else 0.05))

    def answer(tier: int, req: CompletionRequest) -> str:
        text = req.messages[-1].content
        if tier == 1 and fails_at_1(text):
            return "wrong"
        return "wrong" if tier == 2 and "integral" in text and rng.random() < 0.5 else "right"

    models = Models(answer, judge=lambda p: JUDGE_WRONG if "wrong" in p else JUDGE_OK)
    wf = flow("{kind: cascade}")
    thresholds = {}
    for worth in (0.0, 0.5):
        router = ClassifierRouter(min_examples=100, explore=0.0, skip_worth=worth)
        store = MemoryStore()
        qrng = random.Random(4)
        for i in range(160):
            q = _question(qrng, qrng.random() < 0.5)
            await run_one(wf, models, router, q, store=store, seed=i)
        res, events = await run_one(
            wf, models, router, "triple integral over the region 7", store=store
        )
        reason = route_reasons(events)[0]
        thresholds[worth] = float(reason.split(") = ")[1].split(":")[0])
        if worth == 0.0:
            assert "abstains" in reason and "break-even" in reason, reason
            assert res.nodes["n"].attempts[0].tier == 1
        else:
            assert "skip worth 0.5 max-tier calls" in reason, reason
            assert res.nodes["n"].attempts[0].tier == 2
    assert thresholds[0.5] < thresholds[0.0]


def test_text_shape_counts_list_items_prose_and_numbers() -> None:
    """What words miss: options or steps, how long the prose is, how numeric each is."""
    from dagtier.policies.routers import text_shape

    mcq = "What is 12 times 7?\nA. 84\nB. 74\nC. ninety\n- a note\n3) 19"
    items, prose, numeric_items, numbers = text_shape(mcq)
    assert items == 5 / 10
    assert prose == pytest.approx(math.log1p(len("What is 12 times 7?")) / 8)
    assert numeric_items == 3 / 5
    assert numbers == 2 / 20
    assert text_shape("tell me a story") == [0.0, pytest.approx(math.log1p(15) / 8), 0.0, 0.0]
