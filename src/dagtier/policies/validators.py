"""Deterministic validators: each takes an answer and returns a :class:`CheckResult` with
a reason a person can act on. No model calls here (the judge lives in :mod:`.judge`).

User callables (``type: python``, ``function: module:function``) are imported on first use
and cached for the process. They are not imported when a workflow is loaded or validated:
``dagtier validate`` must not run user code, and a module may only be importable where the
workflow runs. Instead each policy resolves a node's callables before the node's first
model call (:func:`callable_problem`), so a missing module fails the node at once, naming
the callable, without paying for an answer nobody can check.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .._callables import CallableError, import_callable
from .._types import JSON
from ..results import CheckResult

_FENCE = re.compile(r"^\s*```(?:json|JSON)?\s*\n?(.*?)\n?```\s*$", re.DOTALL)


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


def schema_validator(schema: dict[str, Any]) -> Any:
    """A validator for ``schema``: build it once and keep it (a node's check plan does)."""
    from jsonschema import Draft202012Validator

    return Draft202012Validator(schema)


def schema_errors(value: JSON, schema: Any) -> str | None:
    """The first schema violation (deepest path first is not guaranteed), or None.
    ``schema`` is a JSON Schema or a validator from :func:`schema_validator`."""
    validator = schema_validator(schema) if isinstance(schema, dict) else schema
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.path))
    if not errors:
        return None
    e = errors[0]
    where = "/".join(str(p) for p in e.path) or "(root)"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"schema violation at {where}: {e.message}{more}"


def non_empty(text: str) -> CheckResult:
    ok = bool(text.strip())
    return CheckResult("non_empty", ok, "" if ok else "empty answer")


def valid_json(text: str) -> tuple[CheckResult, JSON]:
    try:
        value = parse_json_output(text)
    except ValueError as exc:
        return CheckResult("json", False, str(exc)), None
    return CheckResult("json", True), value


def json_schema(value: JSON, schema: Any) -> CheckResult:
    """``schema``: a JSON Schema, or better a validator from :func:`schema_validator`."""
    err = schema_errors(value, schema)
    return CheckResult("json_schema", err is None, err or "")


_PATTERNS: dict[str, re.Pattern[str]] = {}


def regex(text: str, pattern: str, must_match: bool) -> CheckResult:
    rx = _PATTERNS.get(pattern)
    if rx is None:
        rx = _PATTERNS[pattern] = re.compile(pattern)
    found = rx.search(text) is not None
    if found == must_match:
        return CheckResult("regex", True)
    why = f"does not match /{pattern}/" if must_match else f"matches forbidden /{pattern}/"
    return CheckResult("regex", False, why)


def length(text: str, lo: int | None, hi: int | None) -> CheckResult:
    n = len(text)
    if lo is not None and n < lo:
        return CheckResult("length", False, f"{n} characters, fewer than the minimum {lo}")
    if hi is not None and n > hi:
        return CheckResult("length", False, f"{n} characters, more than the maximum {hi}")
    return CheckResult("length", True)


# --- user callables -------------------------------------------------------------------------

_EXTRA_ARGS = frozenset({"text", "node_id", "task_key", "tier", "meta"})


@dataclass(frozen=True, slots=True)
class UserCheck:
    """A resolved ``module:function`` and how to call it."""

    spec: str
    fn: Callable[..., Any]
    extra: tuple[str, ...]
    """Keyword arguments it asks for, among text, node_id, task_key, tier, meta."""
    is_async: bool


_CALLABLES: dict[str, UserCheck | CallableError] = {}


def load_callable(spec: str) -> UserCheck:
    """Import ``module:function`` once per process.

    The function is called with the answer as its first argument (the parsed object for
    JSON nodes, the text otherwise), plus whichever of ``text``, ``node_id``, ``task_key``,
    ``tier`` and ``meta`` it names as parameters. It returns ``bool`` or ``(bool, reason)``
    and may be ``async``. It runs in the event loop: keep it fast or make it async.

    Raises:
        CallableError: the module or function cannot be found, or it is not callable.
    """
    cached = _CALLABLES.get(spec)
    if cached is None:
        cached = _CALLABLES[spec] = _resolve(spec)
    if isinstance(cached, CallableError):
        raise cached
    return cached


def _resolve(spec: str) -> UserCheck | CallableError:
    try:
        fn = import_callable(spec)
    except CallableError as exc:
        return exc
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: pass the answer only
        params = []  # type: ignore[assignment]
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        extra = tuple(sorted(_EXTRA_ARGS))
    else:
        extra = tuple(p.name for p in params if p.name in _EXTRA_ARGS)
    return UserCheck(spec, fn, extra, inspect.iscoroutinefunction(fn))


async def call_user_check(uc: UserCheck, value: JSON, context: dict[str, Any]) -> CheckResult:
    """Run a user check. Never raises: an exception or a wrong return type is a failing
    verdict that names the function, so a buggy check cannot crash a paid-for run."""
    try:
        out = uc.fn(value, **{k: context[k] for k in uc.extra})
        if uc.is_async or inspect.isawaitable(out):
            out = await out
    except Exception as exc:
        return CheckResult("python", False, f"{uc.spec} raised {type(exc).__name__}: {exc}")
    if isinstance(out, bool):
        return CheckResult("python", out, "" if out else f"{uc.spec} returned False")
    if (
        isinstance(out, tuple)
        and len(out) == 2
        and isinstance(out[0], bool)
        and isinstance(out[1], str)
    ):
        ok, reason = out
        return CheckResult("python", ok, reason or ("" if ok else f"{uc.spec} returned False"))
    return CheckResult(
        "python",
        False,
        f"{uc.spec} returned {type(out).__name__} {out!r:.60}; "
        "a check must return True/False or (bool, reason)",
    )
