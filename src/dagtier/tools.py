"""Tools a model may call: Python functions described to the model by JSON Schemas.

A tool is a plain function (sync or async) with type hints. Its JSON Schema comes from the
hints through pydantic, its descriptions from the Google-style docstring (the summary for
the tool, ``Args:`` entries for the parameters). The model's arguments are validated
against the same pydantic model before the function runs.

How each outcome of a call reaches the model or the node:

- the function raises, times out, or gets arguments that are not JSON or do not fit its
  schema: the model gets an **error result** naming the problem, and may try again;
- the model names a tool the node did not declare, or the function returns something JSON
  cannot hold: a :class:`~dagtier.StepError` fails the node (a model inventing tools, or a
  tool returning a socket, is not something another turn fixes).

Sync tools run in a worker thread, so a slow one neither blocks the run's other nodes nor
escapes its timeout (a timed-out thread is abandoned and runs on in the background).
"""

from __future__ import annotations

import inspect
import json
import re
import time
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio
import anyio.to_thread

from ._callables import CallableError, import_callable
from ._exceptions import StepError
from .providers.base import ToolCall, ToolOutput, ToolSpec

__all__ = [
    "Tool",
    "ToolRun",
    "ToolSchemaError",
    "load_tool",
    "run_tool_calls",
    "tool_from_function",
]

DEFAULT_TOOL_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Tool:
    """A callable tool: what the model is told (``spec``) and how to call it."""

    spec: ToolSpec
    fn: Callable[..., Any]
    args_model: Any
    """The pydantic model of the arguments (validates what the model sends)."""
    is_async: bool

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True, slots=True)
class ToolRun:
    """One executed call: the output sent back to the model and how long the tool took."""

    call: ToolCall
    output: ToolOutput
    duration_s: float


class ToolSchemaError(CallableError):
    """A tool's arguments have no JSON Schema (a missing or unsupported type hint)."""


_ARGS_HEADER = re.compile(r"^(Args|Arguments|Parameters):\s*$")
_ARG_LINE = re.compile(r"^\s+(\*{0,2}\w+)\s*(?:\([^)]*\))?:\s*(.*)$")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The summary (text before the first section) and the ``Args:`` descriptions."""
    summary: list[str] = []
    args: dict[str, str] = {}
    lines = doc.splitlines()
    i = 0
    while i < len(lines) and not re.match(r"^\w[\w ]*:\s*$", lines[i]):
        summary.append(lines[i])
        i += 1
    current: str | None = None
    in_args = False
    args_indent = 0
    for line in lines[i:]:
        if re.match(r"^\w[\w ]*:\s*$", line):
            in_args = bool(_ARGS_HEADER.match(line))
            current = None
            continue
        if not in_args:
            continue
        m = _ARG_LINE.match(line)
        indent = len(line) - len(line.lstrip())
        if m and (current is None or indent <= args_indent):
            current = m.group(1).lstrip("*")
            args_indent = indent
            args[current] = m.group(2).strip()
        elif current is not None and line.strip():
            args[current] = f"{args[current]} {line.strip()}".strip()
    return " ".join(s.strip() for s in summary if s.strip()), args


def tool_from_function(fn: Callable[..., Any], name: str | None = None) -> Tool:
    """Describe ``fn`` as a tool.

    Raises:
        ToolSchemaError: a parameter has no type hint, is ``*args``/``**kwargs``, or its type
            has no JSON Schema (the message names the parameter).
    """
    import pydantic

    tool_name: str = name or getattr(fn, "__name__", None) or "tool"
    spec = f"{getattr(fn, '__module__', '?')}:{tool_name}"
    try:
        sig = inspect.signature(fn)
        hints = typing.get_type_hints(fn)
    except Exception as exc:
        raise ToolSchemaError(
            spec, f"cannot read its signature ({type(exc).__name__}: {exc})", what="tool"
        ) from None
    summary, arg_docs = _parse_docstring(inspect.getdoc(fn) or "")
    fields: dict[str, Any] = {}
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise ToolSchemaError(
                spec,
                f"parameter '{p.name}' is *args/**kwargs, which a model cannot fill",
                what="tool",
            )
        if p.name not in hints:
            raise ToolSchemaError(
                spec,
                f"parameter '{p.name}' has no type hint, so its JSON Schema cannot be derived",
                what="tool",
            )
        default = ... if p.default is p.empty else p.default
        fields[p.name] = (hints[p.name], pydantic.Field(default, description=arg_docs.get(p.name)))
    try:
        model = pydantic.create_model(
            f"{tool_name}_arguments",
            __config__=pydantic.ConfigDict(extra="forbid", arbitrary_types_allowed=False),
            **fields,
        )
        schema = model.model_json_schema()
    except Exception as exc:
        raise ToolSchemaError(
            spec, f"its arguments have no JSON Schema ({type(exc).__name__}: {exc})", what="tool"
        ) from None
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    description = summary or f"the function {tool_name}"
    return Tool(
        ToolSpec(tool_name, description, schema), fn, model, inspect.iscoroutinefunction(fn)
    )


_TOOLS: dict[tuple[str, tuple[str, ...]], Tool] = {}


def load_tool(spec: str, *, search: Sequence[str] = ()) -> Tool:
    """Import ``module:function`` and describe it as a tool (cached per process).

    Raises:
        CallableError: it cannot be imported, or its schema cannot be derived.
    """
    key = (spec, tuple(search))
    tool = _TOOLS.get(key)
    if tool is None:
        fn = import_callable(spec, search=search, what="tool")
        try:
            tool = tool_from_function(fn, spec.partition(":")[2])
        except ToolSchemaError as exc:
            raise ToolSchemaError(spec, exc.problem, what="tool") from None
        _TOOLS[key] = tool
    return tool


async def run_tool_calls(
    calls: Sequence[ToolCall],
    tools: Mapping[str, Tool],
    *,
    timeout_s: float | None = DEFAULT_TOOL_TIMEOUT_S,
) -> list[ToolRun]:
    """Run one turn's calls, in parallel, each under ``timeout_s``; results in call order.

    Raises:
        StepError: a call names a tool not in ``tools`` (checked before any runs), or a
            tool returned a value JSON cannot hold.
    """
    unknown = [c.name for c in calls if c.name not in tools]
    if unknown:
        raise StepError(
            f"the model called undeclared tool '{unknown[0]}'; the node declares: "
            f"{', '.join(sorted(tools)) or '(none)'}"
        )
    runs: list[ToolRun | None] = [None] * len(calls)
    errors: list[StepError] = []

    async def one(i: int) -> None:
        try:
            runs[i] = await _run_one(calls[i], tools[calls[i].name], timeout_s)
        except StepError as exc:
            errors.append(exc)

    if len(calls) == 1:
        await one(0)  # the usual case: no task group
    else:
        async with anyio.create_task_group() as tg:
            for i in range(len(calls)):
                tg.start_soon(one, i)
    if errors:
        raise errors[0]
    return [r for r in runs if r is not None]


async def _run_one(call: ToolCall, tool: Tool, timeout_s: float | None) -> ToolRun:
    t0 = time.perf_counter()

    def error(message: str) -> ToolRun:
        out = ToolOutput(call.id, call.name, message, is_error=True)
        return ToolRun(call, out, time.perf_counter() - t0)

    try:
        raw = json.loads(call.arguments) if call.arguments.strip() else {}
    except json.JSONDecodeError as exc:
        return error(f"error: the arguments are not valid JSON ({exc.msg}); send a JSON object")
    if not isinstance(raw, dict):
        return error("error: the arguments must be a JSON object of named parameters")
    try:
        args = tool.args_model.model_validate(raw)
    except Exception as exc:  # pydantic.ValidationError
        return error(f"error: invalid arguments for {tool.name}: {_brief(exc)}")
    kwargs = {k: getattr(args, k) for k in type(args).model_fields}
    try:
        with anyio.fail_after(timeout_s):
            if tool.is_async:
                value = await tool.fn(**kwargs)
            else:
                value = await anyio.to_thread.run_sync(
                    partial(tool.fn, **kwargs), abandon_on_cancel=True
                )
    except TimeoutError:
        return error(f"error: {tool.name} did not finish within {timeout_s:g}s")
    except Exception as exc:
        return error(f"error: {tool.name} raised {type(exc).__name__}: {exc}")
    try:
        content = value if isinstance(value, str) else _to_json(value)
    except (TypeError, ValueError) as exc:
        raise StepError(
            f"tool '{tool.name}' returned a {type(value).__name__}, which is not "
            f"JSON-serialisable ({exc}); return str, numbers, lists, dicts or a pydantic model"
        ) from None
    return ToolRun(call, ToolOutput(call.id, call.name, content), time.perf_counter() - t0)


def _to_json(value: Any) -> str:
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        value = dump(mode="json")
    return json.dumps(value, ensure_ascii=False)


def _brief(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc)
    parts = []
    for e in errors()[:3]:
        loc = ".".join(str(x) for x in e.get("loc", ())) or "(arguments)"
        parts.append(f"{loc}: {e.get('msg', '')}")
    return "; ".join(parts)
