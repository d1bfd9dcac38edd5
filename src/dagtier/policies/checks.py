"""Quality checks on an answer: deterministic validators first, cheapest first, then the
judge, only when every validator passed (a judge call costs money; a regex does not).

Order: non-empty, length, regex, JSON, JSON Schema, user callables, commands, judge. Implicit checks
join in their place: every answer must be non-empty, and a JSON node's answer must parse
as JSON and match the node's output schema when it has one. The first failing check
decides; each check that ran is recorded on the attempt with its verdict and reason.

A node's checks are sorted once per workflow, in its plan (:mod:`dagtier.plan`), so a node
without checks pays an attribute lookup and a ``strip()``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._callables import CallableError
from .._types import JSON, Tier, Verdict
from ..catalog import Usage
from ..results import CheckResult
from . import validators as v
from .validators import parse_json_output, schema_errors

if TYPE_CHECKING:
    from ..spec.models import CommandCheck, JudgeCheck, Workflow
    from .base import NodeContext

__all__ = [
    "CheckPlan",
    "Checked",
    "build_check_plan",
    "callable_problem",
    "parse_json_output",
    "run_checks",
    "schema_errors",
]

_RANK = {"non_empty": 0, "length": 1, "regex": 2, "json": 3, "json_schema": 4, "python": 5}


@dataclass(slots=True)
class Checked:
    verdict: Verdict
    reason: str
    results: list[CheckResult] = field(default_factory=list)
    parsed: JSON = None
    judge_cost: float = 0.0
    judge_usage: Usage = field(default_factory=Usage)
    judge_skipped: bool = False


@dataclass(frozen=True, slots=True)
class CheckPlan:
    """A node's checks in the order they run."""

    json_output: bool
    output_schema: dict[str, Any] | None
    output_validator: Any
    """The output schema's validator, built once (None: no schema)."""
    deterministic: tuple[Any, ...]
    """The node's own validators (not python, not judge), cheapest first, duplicates of
    the implicit checks removed."""
    python: tuple[str, ...]
    commands: tuple[CommandCheck, ...]
    """Subprocesses that must exit 0 (after the python checks: slower, but free)."""
    judges: tuple[JudgeCheck, ...]

    @property
    def bare(self) -> bool:
        """Text output and no checks: only the implicit non-empty check runs."""
        return not (
            self.json_output or self.deterministic or self.python or self.commands or self.judges
        )


def build_check_plan(workflow: Workflow, node_id: str) -> CheckPlan:
    """A node's checks in the order they run; built once per workflow, by the plan
    (:mod:`dagtier.plan`), and read from the node's context."""
    node = workflow.nodes[node_id]
    out = node.output
    is_json = out.format == "json"
    det: list[Any] = []
    python: list[str] = []
    commands: list[CommandCheck] = []
    judges: list[JudgeCheck] = []
    for check in workflow.node_checks(node_id):
        kind = check.type
        if kind == "judge":
            judges.append(check)
        elif kind == "command":
            commands.append(check)
        elif kind == "python":
            python.append(check.function)
        elif kind == "non_empty" or (kind == "json" and is_json):
            continue  # implied
        elif kind == "json_schema" and check.schema_ is None and (is_json or out.schema_ is None):
            # the node's own schema is checked implicitly; with no schema at all it is JSON only
            if not is_json:
                det.append(_JSON_ONLY)
            continue
        elif kind == "json_schema":
            schema = check.schema_ or out.schema_
            assert schema is not None  # a schema-less json_schema check became a json check
            det.append(_SchemaCheck(v.schema_validator(schema)))
        else:
            det.append(check)
    det.sort(key=lambda c: _RANK[c.type])
    output_validator = v.schema_validator(out.schema_) if out.schema_ is not None else None
    return CheckPlan(
        is_json,
        out.schema_,
        output_validator,
        tuple(det),
        tuple(python),
        tuple(commands),
        tuple(judges),
    )


class _JsonOnly:
    type = "json"


_JSON_ONLY = _JsonOnly()


@dataclass(frozen=True, slots=True)
class _SchemaCheck:
    """A ``json_schema`` check with its validator built (building one costs more than
    validating a small answer)."""

    validator: Any
    type: str = "json_schema"


def callable_problem(ctx: NodeContext) -> str | None:
    """Resolve the node's user callables before any model is paid; the reason the node
    cannot run, or None. Cached, so only the first node using a callable pays the import."""
    plan = ctx.check_plan
    for spec in plan.python:
        try:
            v.load_callable(spec)
        except CallableError as exc:
            return str(exc)
    return None


async def run_checks(
    ctx: NodeContext, text: str, tier: Tier, meta: dict[str, Any], *, judge: bool = True
) -> Checked:
    """Check one answer; ``judge=False`` runs every check but the LLM judge (the answer is
    then ``unchecked`` when it passes the others).

    Raises:
        JudgeUnavailable: the judge's tier could not be reached (the caller turns it into a
            provider failure of the attempt: availability never escalates).
    """
    plan = ctx.check_plan
    if plan.bare:
        if text.strip():
            return Checked("unchecked", "")
        return Checked("fail", "non_empty: empty answer", [v.non_empty(text)])
    results: list[CheckResult] = []
    parsed: JSON = None

    def failed(r: CheckResult) -> Checked:
        return Checked("fail", f"{r.check}: {r.reason}", results, parsed)

    r = v.non_empty(text)
    results.append(r)
    if not r.passed:
        return failed(r)
    # length and regex are cheaper than parsing JSON: they go first
    det = plan.deterministic
    i = 0
    while i < len(det) and _RANK[det[i].type] < _RANK["json"]:
        c = det[i]
        r = (
            v.length(text, c.min, c.max)
            if c.type == "length"
            else v.regex(text, c.pattern, c.must_match)
        )
        results.append(r)
        if not r.passed:
            return failed(r)
        i += 1
    if plan.json_output:
        r, parsed = v.valid_json(text)
        results.append(r)
        if not r.passed:
            return failed(r)
        if plan.output_validator is not None:
            r = v.json_schema(parsed, plan.output_validator)
            results.append(r)
            if not r.passed:
                return failed(r)
    value: JSON = parsed
    have_value = plan.json_output
    for c in det[i:]:
        if not have_value:  # a text node with its own JSON checks: parse once, here
            r, value = v.valid_json(text)
            results.append(r)
            if not r.passed:
                return failed(r)
            have_value = True
        if c.type == "json_schema":
            r = v.json_schema(value, c.validator)
            results.append(r)
            if not r.passed:
                return failed(r)
    answer: JSON = parsed if plan.json_output else text
    if plan.python:
        context = {
            "text": text,
            "node_id": ctx.node_id,
            "task_key": ctx.task_key,
            "tier": tier,
            "meta": meta,
        }
        for spec in plan.python:
            try:
                uc = v.load_callable(spec)
            except CallableError as exc:
                r = CheckResult("python", False, str(exc))
            else:
                r = await v.call_user_check(uc, answer, context)
            results.append(r)
            if not r.passed:
                if ctx.log is not None:
                    ctx.log.info("python check failed", check=spec, reason=r.reason)
                return failed(r)
    for cc in plan.commands:
        r = await _run_command_check(ctx, cc, text)
        results.append(r)
        if not r.passed:
            return failed(r)
    if plan.judges and not judge:
        return Checked(
            "unchecked",
            "judge skipped: its verdict could not change the action",
            results,
            parsed,
            judge_skipped=True,
        )
    checked = Checked("pass", "", results, parsed)
    for jc in plan.judges:
        await _run_judge(ctx, jc, text, tier, meta, checked)
        if checked.verdict == "fail":
            break
    return checked


async def _run_command_check(ctx: NodeContext, check: CommandCheck, text: str) -> CheckResult:
    from ..spec.templates import Template
    from ..steps import run_command_check

    values = ctx.values

    def render(source: str, answer_file: str) -> str:
        return Template(source).render({**values, "answer_file": answer_file})

    ok, reason = await run_command_check(
        check.command, text, cwd=check.cwd, env=check.env, timeout_s=check.timeout_s, render=render
    )
    if not ok and ctx.log is not None:
        ctx.log.info("command check failed", reason=reason[-500:])
    return CheckResult("command", ok, reason)


async def _run_judge(
    ctx: NodeContext, check: JudgeCheck, text: str, tier: Tier, meta: dict[str, Any], out: Checked
) -> None:
    from .judge import JudgeRequest, judge

    req = ctx.request
    task = "\n".join(m.content for m in req.messages)
    if req.system:
        task = f"{req.system}\n\n{task}"
    jreq = JudgeRequest(
        check,
        task,
        text,
        ctx.node_id,
        ctx.task_key,
        tier,
        meta,
        ctx.gateway,
        req.metadata,
        ctx.call,
    )
    try:
        verdict = await judge(jreq)
    except Exception as exc:
        from .judge import JudgeUnavailable

        if isinstance(exc, JudgeUnavailable):
            raise
        # a provider-supplied judge with a bug: a failing verdict that names it, not a crash
        r = CheckResult("judge", False, f"the judge raised {type(exc).__name__}: {exc}")
        out.results.append(r)
        out.verdict, out.reason = "fail", f"judge: {r.reason}"
        return
    out.judge_cost += verdict.cost
    out.judge_usage = out.judge_usage + verdict.usage
    r = CheckResult("judge", verdict.passed, verdict.reason, verdict.score)
    out.results.append(r)
    if not verdict.passed:
        out.verdict, out.reason = "fail", f"judge: {verdict.reason}"
