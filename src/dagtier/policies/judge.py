"""The LLM judge: a model (tier 1 by default) reads the task and the answer and says PASS
or FAIL, with a short reason and optionally a 0-1 score.

The judge is looked up per answer, so that a provider can supply its own judge for the
completions it returns (the seam the replay provider uses to observe recorded quality
through a judge with known error rates):

* ``Completion.meta["judge"]``, when present, is a callable ``fn(JudgeRequest)`` (sync or
  async) returning a :class:`JudgeVerdict`. It decides and says what it cost.
* otherwise :func:`llm_judge` asks the catalog's judge tier through the same gateway as the
  node (retries, fallback, limits and prices all apply).

Either way the verdict's cost and tokens go on the attempt as ``judge_cost`` /
``judge_usage``: charged to the node, shown apart from the answer's own cost.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._types import Tier
from ..catalog import Usage
from ..providers.base import CompletionRequest, Message
from ..providers.gateway import NO_CONTEXT, CallContext

if TYPE_CHECKING:
    from .._exceptions import ProviderError
    from ..providers.gateway import Gateway
    from ..spec.models import JudgeCheck

DEFAULT_JUDGE_PROMPT = """\
You are a strict reviewer. Decide whether the ANSWER correctly and completely does the TASK.
Judge only the answer; do not do the task yourself.

<task>
{{ task }}
</task>

<answer>
{{ answer }}
</answer>

Reply with one line, in exactly this form:
VERDICT: PASS or FAIL | SCORE: a number from 0 to 1 | REASON: one short sentence
"""

JUDGE_MAX_TOKENS = 200
"""A verdict is one line; a cap keeps a chatty judge from costing more than the answer."""
_REASON_MAX = 300


@dataclass(frozen=True, slots=True)
class JudgeRequest:
    """What a judge is shown."""

    check: JudgeCheck
    task: str
    """The node's rendered prompt (system prompt first, when there is one)."""
    answer: str
    node_id: str
    task_key: str
    tier: Tier
    """The tier that produced the answer (the judge's own tier is ``check.tier``)."""
    meta: Mapping[str, Any]
    """The answer's ``Completion.meta`` (the replay provider's recorded quality lives here)."""
    gateway: Gateway
    request_metadata: Mapping[str, str] = field(default_factory=dict)
    call: CallContext = NO_CONTEXT
    """The judged node's call context: the judge's calls count against its run's budget."""


@dataclass(frozen=True, slots=True)
class JudgeVerdict:
    passed: bool
    reason: str
    score: float | None = None
    cost: float = 0.0
    usage: Usage = field(default_factory=Usage)
    model: str | None = None


JudgeFn = Callable[[JudgeRequest], "JudgeVerdict | Awaitable[JudgeVerdict]"]


class JudgeUnavailable(Exception):
    """No model of the judge's tier answered (availability, not quality): the node fails
    instead of escalating, as for any provider error."""

    def __init__(self, cause: ProviderError) -> None:
        self.cause = cause
        super().__init__(f"the judge could not be reached: {cause}")


# --- parsing -----------------------------------------------------------------------------

_WORD = r"(pass(?:ed|es)?|fail(?:ed|s|ure)?)"
_LABELLED = re.compile(
    r"\b(?:verdict|decision|result|judg(?:e)?ment|grade|answer)\b\s*[:=\-]*\s*[\W_]*"
    + _WORD
    + r"\b",
    re.IGNORECASE,
)
_LEADING = re.compile(r"^[\W_]*" + _WORD + r"\b", re.IGNORECASE)
_BARE = re.compile(r"\b(PASS(?:ED)?|FAIL(?:ED)?)\b")
_SCORE = re.compile(
    r"\bscore\b\s*[:=\-]*\s*\**\s*(\d+(?:\.\d+)?|\.\d+)\s*(%|/\s*(?:1|10|100)\b)?", re.IGNORECASE
)
_REASON = re.compile(
    r"\b(?:reason|explanation|because)\b\s*[:=\-]*\s*(.+)", re.IGNORECASE | re.DOTALL
)
_JSON_OBJ = re.compile(r"\{.*\}", re.DOTALL)


@dataclass(frozen=True, slots=True)
class ParsedVerdict:
    passed: bool | None
    """None: the text says neither PASS nor FAIL clearly."""
    reason: str
    score: float | None


def _is_pass(word: str) -> bool:
    return word.lower().startswith("pass")


def _clean(text: str) -> str:
    text = " ".join(text.split()).strip(" \t-:|*`\"'.,;")
    return text[:_REASON_MAX]


def _score(raw: str, unit: str | None) -> float | None:
    value = float(raw)
    if unit:
        unit = unit.replace(" ", "")
        if unit == "%" or unit == "/100":
            value /= 100
        elif unit == "/10":
            value /= 10
    return value if 0.0 <= value <= 1.0 else None


def _from_json(text: str) -> ParsedVerdict | None:
    m = _JSON_OBJ.search(text)
    if not m:
        return None
    try:
        obj = json.loads(m.group(0))
    except json.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    low = {str(k).lower(): v for k, v in obj.items()}
    passed: bool | None = None
    for key in ("verdict", "decision", "result", "judgment", "judgement", "grade"):
        v = low.get(key)
        if isinstance(v, str):
            w = _LEADING.match(v)
            if w:
                passed = _is_pass(w.group(1))
                break
        elif isinstance(v, bool):
            passed = v
            break
    if passed is None:
        for key in ("pass", "passed", "ok", "correct"):
            if isinstance(low.get(key), bool):
                passed = bool(low[key])
                break
    if passed is None:
        return None
    reason = ""
    for key in ("reason", "explanation", "rationale", "why"):
        if isinstance(low.get(key), str):
            reason = _clean(low[key])
            break
    score = None
    raw = low.get("score")
    if isinstance(raw, (int, float)) and not isinstance(raw, bool) and 0 <= raw <= 1:
        score = float(raw)
    elif isinstance(raw, str):
        sm = re.fullmatch(r"\s*(\d+(?:\.\d+)?|\.\d+)\s*(%)?\s*", raw)
        score = _score(sm.group(1), sm.group(2)) if sm else None
    return ParsedVerdict(passed, reason, score)


def parse_verdict(text: str) -> ParsedVerdict:
    """Read a judge's answer. Tolerates case, punctuation and Markdown (``**PASS**``),
    labels (``Verdict: pass``), JSON (``{"verdict": "FAIL", "reason": ...}``, in a code
    fence or not) and ``PASSED``/``FAILED``. An answer that says both PASS and FAIL without
    a label, or neither, is unparseable (``passed`` is None)."""
    text = text.strip()
    if not text:
        return ParsedVerdict(None, "the judge gave an empty answer", None)
    if "{" in text:
        parsed = _from_json(text)
        if parsed is not None:
            return parsed
    passed: bool | None = None
    rest = text
    labelled = list(_LABELLED.finditer(text))
    if labelled:
        # the last labelled verdict wins: judges that reason first conclude last
        m = labelled[-1]
        passed, rest = _is_pass(m.group(1)), text[: m.start()] + " " + text[m.end() :]
    else:
        m2 = _LEADING.match(text)
        if m2:
            passed, rest = _is_pass(m2.group(1)), text[m2.end() :]
        else:
            words = {w.upper().startswith("PASS") for w in _BARE.findall(text)}
            if len(words) == 1:
                passed, rest = words.pop(), _BARE.sub(" ", text)
    score = None
    sm = _SCORE.search(text)
    if sm:
        score = _score(sm.group(1), sm.group(2))
        rest = rest.replace(sm.group(0), " ")
    rm = _REASON.search(rest)
    reason = _clean(rm.group(1) if rm else rest)
    if passed is None:
        return ParsedVerdict(None, f"unparseable verdict: {_clean(text)[:120]!r}", score)
    return ParsedVerdict(passed, reason, score)


def apply_min_score(parsed: ParsedVerdict, min_score: float | None) -> tuple[bool, str]:
    """Final pass/fail and reason, with ``min_score`` applied. With a minimum set, a missing
    score fails: the node asked for one and cannot be shown it was met."""
    if parsed.passed is None:
        return False, parsed.reason
    reason = parsed.reason or ("the judge said PASS" if parsed.passed else "the judge said FAIL")
    if not parsed.passed or min_score is None:
        return parsed.passed, reason
    if parsed.score is None:
        return False, f"the judge gave no score, and min_score is {min_score:g}"
    if parsed.score < min_score:
        return False, f"score {parsed.score:g} is below min_score {min_score:g}: {reason}"
    return True, reason


# --- the default judge: a model call through the gateway ----------------------------------


def render_judge_prompt(check: JudgeCheck, task: str, answer: str) -> str:
    text: str = _template(check.prompt or DEFAULT_JUDGE_PROMPT).render(
        {"task": task, "answer": answer}
    )
    return text


_TEMPLATES: dict[str, Any] = {}


def _template(source: str) -> Any:
    t = _TEMPLATES.get(source)
    if t is None:
        from ..spec.templates import Template

        if len(_TEMPLATES) > 256:
            _TEMPLATES.clear()
        t = _TEMPLATES[source] = Template(source)
    return t


async def llm_judge(req: JudgeRequest) -> JudgeVerdict:
    """Ask the judge tier. An unparseable answer is a FAIL that says so.

    Raises:
        JudgeUnavailable: no model of the judge's tier answered.
    """
    from .._exceptions import ProviderError

    prompt = render_judge_prompt(req.check, req.task, req.answer)
    request = CompletionRequest(
        messages=(Message("user", prompt),),
        max_tokens=JUDGE_MAX_TOKENS,
        temperature=0.0,
        metadata={**req.request_metadata, "purpose": "judge"},
    )
    try:
        call = await req.gateway.call(req.check.tier, request, req.call)
    except ProviderError as exc:
        raise JudgeUnavailable(exc) from exc
    parsed = parse_verdict(call.completion.text)
    passed, reason = apply_min_score(parsed, req.check.min_score)
    return JudgeVerdict(
        passed, reason, parsed.score, call.cost, call.completion.usage, call.model.name
    )


async def judge(req: JudgeRequest) -> JudgeVerdict:
    """Run the judge that applies to this answer (see the module docstring)."""
    fn = req.meta.get("judge") if req.meta else None
    if fn is None:
        return await llm_judge(req)
    out = fn(req)
    if inspect.isawaitable(out):
        out = await out
    if not isinstance(out, JudgeVerdict):
        raise TypeError(f"Completion.meta['judge'] returned {type(out).__name__}, not JudgeVerdict")
    return out
