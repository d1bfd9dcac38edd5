"""Reading a judge's answer: case, punctuation, labels, JSON; unclear answers are FAIL."""

from __future__ import annotations

import pytest

from dagtier.policies.judge import ParsedVerdict, apply_min_score, parse_verdict


@pytest.mark.parametrize(
    ("text", "passed", "reason", "score"),
    [
        ("PASS", True, "", None),
        ("pass.", True, "", None),
        ("Pass - the answer is right", True, "the answer is right", None),
        ("**FAIL**: misses the date", False, "misses the date", None),
        ("Verdict: pass", True, "", None),
        ("verdict = FAIL\nreason: wrong total", False, "wrong total", None),
        (
            "VERDICT: PASS | SCORE: 0.8 | REASON: complete and correct",
            True,
            "complete and correct",
            0.8,
        ),
        ("The answer lists all items.\nVerdict: PASSED", True, "The answer lists all items", None),
        (
            "I first thought it fails, but on reflection... Verdict: PASS",
            True,
            "I first thought it fails, but on reflection",
            None,
        ),
        ('{"verdict": "FAIL", "reason": "no JSON", "score": 0.1}', False, "no JSON", 0.1),
        ('```json\n{"verdict": "pass", "reason": "ok"}\n```', True, "ok", None),
        ('{"pass": true, "explanation": "fine"}', True, "fine", None),
        ("FAILED. Score: 30%", False, "", 0.3),
        ("PASS score 7/10", True, "", 0.7),
        ("PASS score: 1.7", True, "", None),
        ("The answer is good. PASS", True, "The answer is good", None),
    ],
)
def test_parse_table(text: str, passed: bool, reason: str, score: float | None) -> None:
    """Each answer form gives the verdict, reason and score a person would read."""
    assert parse_verdict(text) == ParsedVerdict(passed, reason, score)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Hmm, hard to say.",
        "It could PASS or FAIL depending on taste",
        "passable",
        '{"verdict": "maybe"}',
    ],
)
def test_unparseable_is_fail_with_reason(text: str) -> None:
    """An answer that is empty, ambiguous or off-format yields no verdict, hence FAIL."""
    parsed = parse_verdict(text)
    assert parsed.passed is None
    ok, reason = apply_min_score(parsed, None)
    assert not ok
    assert reason.startswith(("unparseable verdict", "the judge gave an empty answer"))
