"""The node's own checks, in the order written. The first failure decides the verdict."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .._types import JSON, Tier
from ..results import CheckResult
from .checks import Checked, parse_json_output, schema_errors

if TYPE_CHECKING:
    from .base import NodeContext


def _deterministic(check: Any, text: str, parsed: JSON, ctx: NodeContext) -> CheckResult:
    kind = check.type
    if kind == "non_empty":
        return CheckResult(kind, bool(text.strip()), "" if text.strip() else "empty answer")
    if kind in ("json", "json_schema"):
        try:
            value = parsed if parsed is not None else parse_json_output(text)
        except ValueError as exc:
            return CheckResult(kind, False, str(exc))
        if kind == "json":
            return CheckResult(kind, True)
        schema = check.schema_ or ctx.node.output.schema_
        if schema is None:
            return CheckResult(kind, True, "no schema to check against")
        err = schema_errors(value, schema)
        return CheckResult(kind, err is None, err or "")
    if kind == "regex":
        found = re.search(check.pattern, text) is not None
        ok = found if check.must_match else not found
        reason = (
            ""
            if ok
            else (
                f"does not match /{check.pattern}/"
                if check.must_match
                else f"matches forbidden /{check.pattern}/"
            )
        )
        return CheckResult(kind, ok, reason)
    if kind == "length":
        n = len(text)
        if check.min is not None and n < check.min:
            return CheckResult(kind, False, f"{n} characters, fewer than {check.min}")
        if check.max is not None and n > check.max:
            return CheckResult(kind, False, f"{n} characters, more than {check.max}")
        return CheckResult(kind, True)
    raise NotImplementedError(kind)


async def run_configured(
    ctx: NodeContext,
    text: str,
    parsed: JSON,
    tier: Tier,
    meta: dict[str, Any],
    results: list[CheckResult],
) -> Checked:
    for check in ctx.checks:
        if check.type in ("judge", "python"):
            continue
        r = _deterministic(check, text, parsed, ctx)
        results.append(r)
        if not r.passed:
            return Checked("fail", f"{r.check}: {r.reason}", results, parsed)
    return Checked("pass", "", results, parsed)
