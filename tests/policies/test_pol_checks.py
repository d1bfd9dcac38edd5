"""Quality checks on real runs: validators, user callables and the judge (models are
in-process PythonProvider functions; see pol_helpers)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest
from pol_helpers import Models, run, workflow

from dagtier.catalog import Usage
from dagtier.policies.judge import JudgeRequest, JudgeVerdict
from dagtier.providers import Completion

pytestmark = pytest.mark.anyio


def static(checks: str = "", **kw: str) -> str:
    return "policy: {kind: static, tier: 1}\n" + (
        f"checks:\n{textwrap.indent(checks, '  ')}" if checks else ""
    )


def const(text: str) -> Models:
    return Models(lambda tier, req: text)


async def test_empty_answer_fails_non_empty() -> None:
    """A blank answer fails the implicit non-empty check, with that reason."""
    r = await run(workflow(static()), const("   "))
    node = r["n"]
    assert node.status == "failed"
    assert [(c.check, c.passed, c.reason) for c in node.attempts[0].checks] == [
        ("non_empty", False, "empty answer")
    ]


async def test_unchecked_text_answer_is_accepted() -> None:
    """A text node without checks accepts any non-blank answer, marked unchecked."""
    r = await run(workflow(static()), const("hello"))
    assert r["n"].status == "succeeded"
    assert r["n"].attempts[0].verdict == "unchecked"


async def test_malformed_json_fails_with_parser_reason() -> None:
    """A JSON node's answer that does not parse fails, saying where the parser stopped."""
    r = await run(workflow(static(), output="json"), const('{"a": 1,'))
    att = r["n"].attempts[0]
    assert r["n"].status == "failed"
    assert att.checks[-1].check == "json" and not att.checks[-1].passed
    assert att.reason.startswith("json: not valid JSON: ") and "line 1 column" in att.reason


async def test_fenced_json_is_parsed() -> None:
    """A JSON answer inside a Markdown code fence is accepted and its object is the output."""
    r = await run(workflow(static(), output="json"), const('```json\n{"a": 1}\n```'))
    assert r["n"].status == "succeeded" and r["n"].output == {"a": 1}


async def test_output_schema_violation() -> None:
    """An answer violating the node's output schema fails, naming the path and the rule."""
    wf = workflow(
        static(),
        output="{schema: {type: object, required: [name], properties: {age: {type: integer}}}}",
    )
    r = await run(wf, const('{"age": "three"}'))
    reason = r["n"].attempts[0].reason
    assert r["n"].status == "failed"
    assert reason.startswith("json_schema: schema violation at ")
    assert "(and 1 more)" in reason


async def test_check_with_its_own_schema_on_a_text_node() -> None:
    """A json_schema check with its own schema parses a text node's answer and validates it."""
    checks = "- {type: json_schema, schema: {type: array, maxItems: 2}}\n"
    bad = await run(workflow(static(checks)), const("[1, 2, 3]"))
    good = await run(workflow(static(checks)), const("[1, 2]"))
    assert (
        bad["n"].status == "failed" and "schema violation at (root)" in bad["n"].attempts[0].reason
    )
    assert good["n"].status == "succeeded" and good["n"].output == "[1, 2]"


@pytest.mark.parametrize(
    ("check", "answer", "ok", "reason"),
    [
        ("{type: regex, pattern: '^yes'}", "yes it is", True, ""),
        ("{type: regex, pattern: '^yes'}", "no", False, "regex: does not match /^yes/"),
        ("{type: regex, pattern: 'TODO', must_match: false}", "done", True, ""),
        (
            "{type: regex, pattern: 'TODO', must_match: false}",
            "a TODO",
            False,
            "regex: matches forbidden /TODO/",
        ),
        ("{type: length, min: 3, max: 5}", "abcd", True, ""),
        ("{type: length, min: 3}", "ab", False, "length: 2 characters, fewer than the minimum 3"),
        (
            "{type: length, max: 5}",
            "abcdefg",
            False,
            "length: 7 characters, more than the maximum 5",
        ),
        ("{type: json}", "[1]", True, ""),
        ("{type: json}", "nope", False, "json: not valid JSON: Expecting value at line 1 column 1"),
    ],
)
async def test_deterministic_validators(check: str, answer: str, ok: bool, reason: str) -> None:
    """Each validator passes or fails with a reason a person can act on."""
    r = await run(workflow(static(f"- {check}\n")), const(answer))
    att = r["n"].attempts[0]
    assert (att.verdict == "pass", att.reason) == (ok, reason)


async def test_cheapest_checks_run_first_and_judge_only_after_they_pass() -> None:
    """Validators run cheapest first whatever the written order; a failure stops before the judge."""
    checks = "- {type: judge}\n- {type: json}\n- {type: regex, pattern: '^\\['}\n- {type: length, max: 100}\n"
    models = const("not json")
    r = await run(workflow(static(checks)), models)
    att = r["n"].attempts[0]
    assert [c.check for c in att.checks] == ["non_empty", "length", "regex"]
    assert models.tiers_called("judge") == []
    assert att.judge_cost == 0


@pytest.fixture
def user_checks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    mod = "pol_user_checks"
    (tmp_path / f"{mod}.py").write_text(
        textwrap.dedent(
            """
            def short(answer):
                return len(answer) < 10

            def with_reason(answer):
                return (False, "mentions no price")

            def boom(answer):
                raise ValueError("boom")

            def wrong_type(answer):
                return "yes"

            async def is_async(answer, node_id, tier):
                return (answer == "ok" and node_id == "n" and tier == 1, "checked async")

            def leaks_key(answer):
                return (False, "rejected under key sk-proj-leak0123456789abcdef")

            def on_json(answer, text):
                return answer["a"] == 1 and text.startswith("{")

            NOT_CALLABLE = 3
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, mod, raising=False)
    return mod


@pytest.mark.parametrize(
    ("fn", "answer", "ok", "reason"),
    [
        ("short", "ok", True, ""),
        ("short", "far too long an answer", False, "python: {m}:short returned False"),
        ("with_reason", "ok", False, "python: mentions no price"),
        ("boom", "ok", False, "python: {m}:boom raised ValueError: boom"),
        (
            "wrong_type",
            "ok",
            False,
            "python: {m}:wrong_type returned str 'yes'; a check must return True/False or (bool, reason)",
        ),
        ("is_async", "ok", True, "checked async"),
    ],
)
async def test_python_callable(
    user_checks: str, fn: str, answer: str, ok: bool, reason: str
) -> None:
    """A user callable's verdict and reason are recorded; one that raises fails the answer,
    naming the callable, and does not crash the run."""
    r = await run(
        workflow(static(f"- {{type: python, function: '{user_checks}:{fn}'}}\n")), const(answer)
    )
    att = r["n"].attempts[0]
    assert att.verdict == ("pass" if ok else "fail")
    if ok:
        assert att.checks[-1].reason == reason
    else:
        assert att.reason == reason.format(m=user_checks)


async def test_a_check_reason_quoting_a_key_is_stored_redacted(
    user_checks: str, tmp_path: Path
) -> None:
    """A python check whose reason quotes a key leaves no trace of it in the store's file."""
    from dagtier.store import open_store

    store = open_store(tmp_path / "runs.db")
    wf = workflow(static(f"- {{type: python, function: '{user_checks}:leaks_key'}}\n"))
    result = await run(wf, const("ok"), store=store)
    loaded = await store.load_run(result.run_id)
    assert loaded is not None
    att = loaded[1]["n"].attempts[0]
    assert att.reason == "python: rejected under key [REDACTED]"
    assert [(c.check, c.reason) for c in att.checks][-1] == (
        "python",
        "rejected under key [REDACTED]",
    )
    await store.aclose()
    assert not _files_quoting(tmp_path, b"sk-proj-leak")  # the store and its WAL


def _files_quoting(directory: Path, needle: bytes) -> list[Path]:
    return [p for p in directory.glob("runs.db*") if needle in p.read_bytes()]


async def test_python_callable_gets_the_parsed_object_of_a_json_node(user_checks: str) -> None:
    """On a JSON node the callable receives the parsed object, and the text when it asks."""
    wf = workflow(static(f"- {{type: python, function: '{user_checks}:on_json'}}\n"), output="json")
    r = await run(wf, const('{"a": 1}'))
    assert r["n"].status == "succeeded"


@pytest.mark.parametrize(
    ("function", "problem"),
    [
        (
            "no_such_module_xyz:check",
            "cannot import module 'no_such_module_xyz' (ModuleNotFoundError",
        ),
        ("{m}:missing", "module '{m}' has no attribute 'missing' (it defines: NOT_CALLABLE, boom,"),
        ("{m}:NOT_CALLABLE", "'NOT_CALLABLE' is a int, not a function"),
    ],
)
async def test_unusable_callable_fails_the_node_before_any_model_call(
    user_checks: str, function: str, problem: str
) -> None:
    """A callable that cannot be imported fails the node with an error naming it, and no
    model is paid for an answer nobody could check."""
    function = function.format(m=user_checks)
    for policy in ("{kind: static, tier: 1}", "{kind: cascade}", "{kind: adaptive}"):
        models = const("ok")
        wf = workflow(f"policy: {policy}\nchecks:\n  - {{type: python, function: '{function}'}}\n")
        r = await run(wf, models)
        assert r["n"].status == "failed"
        assert r["n"].error is not None
        assert r["n"].error.startswith(
            f"python check '{function}': " + problem.format(m=user_checks)
        )
        assert models.calls == [] and r["n"].attempts == []


# --- the judge --------------------------------------------------------------------------


async def test_judge_is_charged_to_the_node_and_shown_apart() -> None:
    """The judge's call goes through the gateway on tier 1; its tokens and cost are on the
    attempt as judge_cost/judge_usage and in the node's total."""
    models = Models(
        lambda t, req: "Paris", judge=lambda p: "VERDICT: PASS | SCORE: 0.9 | REASON: correct"
    )
    r = await run(workflow(static("- {type: judge}\n")), models)
    att = r["n"].attempts[0]
    assert models.calls == [(1, "answer"), (1, "judge")]
    assert att.verdict == "pass"
    assert att.checks[-1].check == "judge" and att.checks[-1].score == 0.9
    assert att.checks[-1].reason == "correct"
    assert att.judge_cost > 0 and att.judge_usage.total > 0
    assert r["n"].judge_cost == att.judge_cost
    assert r["n"].cost == pytest.approx(att.cost + att.judge_cost)


async def test_judge_sees_task_and_answer_in_default_and_custom_prompts() -> None:
    """The default prompt shows the rendered task and the answer; a node may override it."""
    models = Models(lambda t, req: "the answer", judge=lambda p: "FAIL: wrong")
    r = await run(workflow(static("- {type: judge}\n")), models)
    assert "do the task" in models.judge_prompts[0] and "the answer" in models.judge_prompts[0]
    assert "PASS or FAIL" in models.judge_prompts[0]
    assert r["n"].attempts[0].reason == "judge: wrong"
    custom = "- {type: judge, prompt: 'Q={{ task }} A={{ answer }} say PASS or FAIL'}\n"
    await run(workflow(static(custom)), models)
    assert models.judge_prompts[1] == "Q=do the task A=the answer say PASS or FAIL"


async def test_judge_min_score() -> None:
    """With min_score, a PASS whose score is below it, or missing, fails."""
    check = "- {type: judge, min_score: 0.8}\n"
    low = await run(
        workflow(static(check)),
        Models(lambda t, r: "x", judge=lambda p: "PASS score: 0.5 reason: meh"),
    )
    none = await run(workflow(static(check)), Models(lambda t, r: "x", judge=lambda p: "PASS"))
    ok = await run(
        workflow(static(check)), Models(lambda t, r: "x", judge=lambda p: "PASS score=0.85")
    )
    assert low["n"].attempts[0].reason == "judge: score 0.5 is below min_score 0.8: meh"
    assert none["n"].attempts[0].reason == "judge: the judge gave no score, and min_score is 0.8"
    assert ok["n"].status == "succeeded"


async def test_unparseable_judge_answer_fails() -> None:
    """A judge answer that says neither PASS nor FAIL is a FAIL that says so."""
    r = await run(
        workflow(static("- {type: judge}\n")),
        Models(lambda t, r: "x", judge=lambda p: "Hmm, hard to say."),
    )
    assert r["n"].status == "failed"
    assert r["n"].attempts[0].reason == "judge: unparseable verdict: 'Hmm, hard to say'"


async def test_provider_supplied_judge_replaces_the_model_judge() -> None:
    """A callable in Completion.meta['judge'] decides instead of the judge model, and what
    it says it cost is charged to the node (the replay provider's seam)."""
    seen: list[JudgeRequest] = []

    def recorded(req: JudgeRequest) -> JudgeVerdict:
        seen.append(req)
        ok = req.meta["quality"] >= 0.5
        return JudgeVerdict(ok, "recorded quality", None, 0.002, Usage(10, 2))

    def answer(tier: int, req: object) -> Completion:
        return Completion(
            "x", "m", Usage(5, 5), meta={"quality": 0.0 if tier == 1 else 1.0, "judge": recorded}
        )

    models = Models(answer, judge=lambda p: pytest.fail("the model judge must not be called"))
    r = await run(workflow("policy: {kind: cascade}\nchecks:\n  - {type: judge}\n"), models)
    assert [a.tier for a in r["n"].attempts] == [1, 2]
    assert [a.verdict for a in r["n"].attempts] == ["fail", "pass"]
    assert [a.judge_cost for a in r["n"].attempts] == [0.002, 0.002]
    assert seen[0].task == "do the task" and seen[0].tier == 1 and seen[0].node_id == "n"


async def test_unreachable_judge_fails_the_node_without_escalating() -> None:
    """When the judge's tier cannot be reached the node fails as for any provider error:
    availability never escalates."""
    from dagtier import ServerError

    def judge(prompt: str) -> str:
        raise ServerError("down", provider="python", model="model-1", status_code=500)

    models = Models(lambda t, r: "x", judge=judge)
    r = await run(workflow("policy: {kind: cascade}\nchecks:\n  - {type: judge}\n"), models)
    assert r["n"].status == "failed"
    assert models.tiers_called() == [1]
    assert r["n"].attempts[0].verdict == "error"
    assert "the judge could not be reached" in r["n"].attempts[0].reason
