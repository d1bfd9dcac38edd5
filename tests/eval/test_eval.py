"""`dagtier eval` on an in-process provider whose answers per tier are known in advance."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from _catalog import one_per_tier

import dagtier
from dagtier import SpecError
from dagtier.eval import build_eval_report, evaluate, write_outcomes
from dagtier.providers import CompletionRequest, Gateway, ProviderRegistry, PythonProvider
from dagtier.replay import load_outcomes

pytestmark = pytest.mark.anyio

PRICES = {1: 1.0, 2: 10.0, 3: 100.0}
WF = """
name: qa
inputs: {q: string}
nodes:
  extract:
    prompt: "extract {{ inputs.q }}"
    policy: {kind: static, tier: 3}
  answer:
    prompt: "answer {{ extract }}"
    depends_on: [extract]
    policy: {kind: cascade}
    checks: [{type: regex, pattern: "^A"}]
outputs: {final: "{{ answer }}"}
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Models:
    """Tier 1 fails the check, tier 2 is right on even numbers, tier 3 always; the judge
    (prompts starting 'You are grading') scores 9 the right answer, else 0, and adds 1 to
    whatever it is shown first (a position bias)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.judge_prompts: list[str] = []

    def __call__(self, entry: Any, req: CompletionRequest) -> str:
        text = req.messages[-1].content
        assert isinstance(text, str)
        self.calls.append((entry.model, text))
        if text.startswith("You are grading"):
            self.judge_prompts.append(text)
            answers = re.findall(r'<answer number="(\d+)">\n(.*?)\n</answer>', text, re.S)
            task_n = re.search(r"answer (\d+)", text)
            assert task_n is not None
            lines = []
            for num, ans in answers:
                score = 9 if ans == f"A{task_n.group(1)}" else 0
                lines.append(f"{num}: {score + (1 if num == '1' else 0)}")
            return "\n".join(lines)
        if text.startswith("extract "):
            return text.removeprefix("extract ")
        n = int(text.removeprefix("answer "))
        if entry.model == "m1":
            return "B"
        if entry.model == "m2":
            return f"A{n}" if n % 2 == 0 else "Awrong"
        return f"A{n}"


def _gateway(models: Models) -> Gateway:
    return Gateway(
        one_per_tier("m", prices=PRICES), ProviderRegistry({"python": PythonProvider(models)})
    )


def _cases(tmp_path: Path, n: int = 4) -> Path:
    path = tmp_path / "cases.jsonl"
    path.write_text(
        "".join(
            json.dumps({"inputs": {"q": str(i)}, "expected": {"answer": f"A{i}"}}) + "\n"
            for i in range(n)
        )
    )
    return path


def _cost(tier: int, prompt: str, answer: str) -> float:
    tokens = len(prompt) // 4 + 1 + len(answer) // 4 + 1
    return tokens * PRICES[tier] / 1e6


async def test_table_is_exactly_the_known_answers(tmp_path: Path) -> None:
    """Per tier: quality, checks, expected agreement and mean cost are what the models do."""
    models = Models()
    wf = dagtier.parse_workflow(WF)
    result = await evaluate(wf, _cases(tmp_path), nodes=["answer"], gateway=_gateway(models))
    report = build_eval_report(result)
    (node,) = report.nodes
    got = [(r.tier, r.n, r.quality, r.checks, r.expected) for r in node.tiers]
    assert got == [(1, 4, 0.0, 0.0, 0.0), (2, 4, 0.5, 1.0, 0.5), (3, 4, 1.0, 1.0, 1.0)]
    answers = {1: ["B"] * 4, 2: ["A0", "Awrong", "A2", "Awrong"], 3: ["A0", "A1", "A2", "A3"]}
    for r in node.tiers:
        want = sum(_cost(r.tier, f"answer {i}", a) for i, a in enumerate(answers[r.tier])) / 4
        assert r.mean_cost == pytest.approx(want)
        assert r.models == [f"m{r.tier}"]
    assert node.cheapest_adequate is None  # 4 cases cannot prove a 0.9 target
    assert node.tiers[2].low < 0.9 < node.tiers[2].high
    # every tier answered the reference run's upstream output: extract ran once per case
    extracts = [c for c in models.calls if c[1].startswith("extract")]
    assert len(extracts) == 4 and {m for m, _ in extracts} == {"m3"}
    assert result.reference_cost > 0 and report.status == "finished"


async def test_blind_judge_never_sees_model_names(tmp_path: Path) -> None:
    """The judge gets every tier's answer numbered in both orders and no model name; it
    scores the right answers, and its +1 for the first position is measured as bias."""
    models = Models()
    wf = dagtier.parse_workflow(WF)
    result = await evaluate(
        wf, _cases(tmp_path), nodes=["answer"], judge=3, gateway=_gateway(models), seed=7
    )
    assert len(models.judge_prompts) == 4 * 2  # every case, in both orders
    for prompt in models.judge_prompts:
        for name in ("m1", "m2", "m3", "python", "tier"):
            assert name not in prompt
        assert prompt.count("<answer number=") == 3
    by_case: dict[str, list[list[str]]] = {}
    for p in models.judge_prompts:
        case = re.search(r"answer (\d+)", p)
        assert case is not None
        by_case.setdefault(case.group(1), []).append(
            re.findall(r'<answer number="\d+">\n(.*?)\n', p)
        )
    for first, second in by_case.values():
        assert second == first[::-1]
    judged = {(u.case, u.tier): u.judge for u in result.units}
    for case in range(4):
        # mean of both orders: 9 for a right answer, +1 when shown first (in one order)
        assert judged[(case, 1)] in (0.0, 0.05)
        assert judged[(case, 3)] in (0.9, 0.95)
    assert result.position_bias == pytest.approx(0.1)
    assert result.judge_cost > 0


async def test_outcomes_file_replays_and_stats_are_seeded(tmp_path: Path) -> None:
    """--out writes what `dagtier replay` reads, with the prompts beside it; seeding puts
    the evidence under the node's task key and marks it under TASK#eval."""
    from dagtier.eval import seed_stats

    wf = dagtier.parse_workflow(WF)
    result = await evaluate(wf, _cases(tmp_path), nodes=["answer"], gateway=_gateway(Models()))
    n, queries = write_outcomes(result, tmp_path / "mine.csv.gz")
    assert n == 12 and queries.name == "mine.queries.csv.gz"
    outcomes = load_outcomes(tmp_path / "mine.csv.gz")
    assert outcomes.models == {"m1": 4, "m2": 4, "m3": 4}
    assert outcomes.table["c1/answer/r0"]["m2"][0] == 0.0
    assert outcomes.table["c1/answer/r0"]["m3"][0] == 1.0
    import gzip

    assert "c1/answer/r0,answer 1" in gzip.decompress(queries.read_bytes()).decode()
    store = dagtier.open_store(tmp_path / "runs.db")
    try:
        assert await seed_stats(result, store) == 12
        stats = await store.tier_stats("qa/answer")
        marked = await store.tier_stats("qa/answer#eval")
    finally:
        await store.aclose()
    d = 0.5 ** (1 / 50)  # decayed like any evidence: adaptive's default half-life, 50
    assert stats[3].successes == pytest.approx(1 + d + d**2 + d**3) and stats[3].failures == 0
    assert stats[1].failures == pytest.approx(1 + d + d**2 + d**3) and stats[1].successes == 0
    # tier 2 is right on cases 0 and 2, folded in case order
    assert stats[2].successes == pytest.approx(d**3 + d) and stats[2].failures == pytest.approx(
        d**2 + 1
    )
    assert marked[2].observations == stats[2].observations


async def test_seeding_the_same_evidence_again_counts_it_once(tmp_path: Path) -> None:
    """Seeding an eval twice, or a second eval of the same cases on the same models, adds
    nothing; `dagtier stats` counts the seeded observations beside each tier's."""
    from dagtier.eval import seed_stats
    from dagtier.policies.stats_view import collect

    wf = dagtier.parse_workflow(WF)
    first = await evaluate(wf, _cases(tmp_path), nodes=["answer"], gateway=_gateway(Models()))
    second = await evaluate(wf, _cases(tmp_path), nodes=["answer"], gateway=_gateway(Models()))
    assert first.eval_id != second.eval_id
    store = dagtier.open_store(tmp_path / "runs.db")
    try:
        assert await seed_stats(first, store) == 12
        seeded = await store.all_stats()
        assert await seed_stats(first, store) == 0
        assert await seed_stats(second, store) == 0
        assert await store.all_stats() == seeded
        await store.record_observation("qa/answer", 1, success=True)  # traffic, not eval
        (key,) = await collect(store)
    finally:
        await store.aclose()
    assert key.task_key == "qa/answer"
    counts = [(r.tier, r.observations, r.eval_observations) for r in key.tiers]
    assert counts == [(1, 5, 4), (2, 4, 4), (3, 4, 4)]


async def test_interrupted_eval_resumes_without_paying_twice(tmp_path: Path) -> None:
    """Cancelled mid-way, the eval resumes by id: no committed run calls a model again and
    the table is the uninterrupted one."""
    import anyio

    models = Models()
    wf = dagtier.parse_workflow(WF)
    cases = _cases(tmp_path, 6)
    gateway = _gateway(models)
    db = tmp_path / "runs.db"
    store = dagtier.open_store(db)
    try:
        with anyio.CancelScope() as scope:

            def cancel_after(u: Any) -> None:
                scope.cancel()  # the first case finished: stop like Ctrl-C does

            await evaluate(
                wf, cases, nodes=["answer"], gateway=gateway, store=store, eval_id="e1",
                on_unit=cancel_after, concurrency=2,
            )  # fmt: skip
        first = list(models.calls)
        assert 0 < len(first) < 6 * 4
    finally:
        await store.aclose()
    store = dagtier.open_store(db)
    try:
        committed = {
            r.run_id for r in await store.list_runs(1000) if r.status in ("succeeded", "failed")
        }
        models.calls.clear()
        result = await evaluate(
            wf, cases, nodes=["answer"], gateway=gateway, store=store, resume="e1"
        )
    finally:
        await store.aclose()
    assert committed
    again = {(m, p) for m, p in models.calls}
    for rid in committed:
        _, case, *rest = rid.split(":")
        if rest == ["ref"]:
            assert ("m3", f"extract {case[1:]}") not in again
        else:
            _node, tier, _ = rest
            assert (f"m{tier[1:]}", f"answer {case[1:]}") not in again
    report = build_eval_report(result)
    assert [r.quality for r in report.nodes[0].tiers] == [0.0, 0.5, 1.0]
    assert report.status == "finished"


async def test_bad_selection_is_a_located_error(tmp_path: Path) -> None:
    """A tier outside 1..3 and an unknown node name the option, the value and the choices."""
    wf = dagtier.parse_workflow(WF)
    gw = _gateway(Models())
    with pytest.raises(SpecError) as err:
        await evaluate(wf, _cases(tmp_path), tiers=[1, 4], gateway=gw)
    assert err.value.source == "--tiers" and "there is no tier 4" in str(err.value)
    with pytest.raises(SpecError) as err:
        await evaluate(wf, _cases(tmp_path), nodes=["answr"], gateway=gw)
    assert "no node 'answr'" in str(err.value) and "answer" in (err.value.issues[0].hint or "")


async def test_bad_cases_are_each_located(tmp_path: Path) -> None:
    """A malformed line, a missing input and an expected output for no such node are all
    reported at once, each by line and field, before anything is paid for."""
    models = Models()
    path = tmp_path / "cases.jsonl"
    path.write_text(
        '{"inputs": {"q": "1"}}\n'
        '{"inputs": {"q": "2"\n'
        '{"inputs": {}}\n'
        '{"inputs": {"q": "3"}, "expected": {"summary": "x"}}\n'
    )
    with pytest.raises(SpecError) as err:
        await evaluate(dagtier.parse_workflow(WF), path, gateway=_gateway(models))
    got = [(i.line, i.path, i.code) for i in err.value.issues]
    assert got == [
        (2, "", "bad-case"),
        (3, "inputs.q", "missing-input"),
        (4, "expected.summary", "unknown-node"),
    ]
    assert err.value.source == str(path)
    assert models.calls == []
