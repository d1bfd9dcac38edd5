"""Quality checks: deterministic validators first (cheapest first), then an optional judge.

Implicit checks come before the node's own: every answer must be non-empty, and a JSON
node's answer must parse as JSON (and match its output schema when it has one).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._types import JSON, Tier, Verdict
from ..catalog import Usage
from ..results import CheckResult

if TYPE_CHECKING:
    from .base import NodeContext

_FENCE = re.compile(r"^\s*```(?:json|JSON)?\s*\n?(.*?)\n?```\s*$", re.DOTALL)


@dataclass(slots=True)
class Checked:
    verdict: Verdict
    reason: str
    results: list[CheckResult] = field(default_factory=list)
    parsed: JSON = None
    judge_cost: float = 0.0
    judge_usage: Usage = field(default_factory=Usage)


def parse_json_output(text: str) -> JSON:
    """Parse a model's JSON answer, tolerating a Markdown code fence around it.

    Raises:
        ValueError: not JSON, with the parser's reason.
    """
    m = _FENCE.match(text)
    body = m.group(1) if m else text
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None


def schema_errors(value: JSON, schema: dict[str, Any]) -> str | None:
    from jsonschema import Draft202012Validator

    errors = sorted(Draft202012Validator(schema).iter_errors(value), key=lambda e: list(e.path))
    if not errors:
        return None
    e = errors[0]
    where = "/".join(str(p) for p in e.path) or "(root)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"schema violation at {where}: {e.message}{more}"


async def run_checks(ctx: NodeContext, text: str, tier: Tier, meta: dict[str, Any]) -> Checked:
    results: list[CheckResult] = []
    out = ctx.node.output
    if not text.strip():
        results.append(CheckResult("non_empty", False, "empty answer"))
        return Checked("fail", "empty answer", results)
    parsed: JSON = None
    if out.format == "json":
        try:
            parsed = parse_json_output(text)
        except ValueError as exc:
            results.append(CheckResult("json", False, str(exc)))
            return Checked("fail", str(exc), results)
        if out.schema_ is not None:
            err = schema_errors(parsed, out.schema_)
            if err:
                results.append(CheckResult("json_schema", False, err))
                return Checked("fail", err, results, parsed)
    if not ctx.checks:
        return Checked("unchecked" if out.format == "text" else "pass", "", results, parsed)
    from . import validators

    return await validators.run_configured(ctx, text, parsed, tier, meta, results)
