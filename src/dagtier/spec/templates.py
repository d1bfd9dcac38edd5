"""Prompt templates: Jinja2's sandboxed environment, strict about unknown names.

``{{ inputs.NAME }}`` is a workflow input; ``{{ NODE_ID }}`` is an upstream node's output
(the parsed object for JSON nodes, so ``{{ classify.category }}`` works). Dicts and lists
render as JSON, not as Python reprs, because that is what a model reads best.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, meta, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment


def _finalize(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return value


_ENV = ImmutableSandboxedEnvironment(
    undefined=StrictUndefined,
    finalize=_finalize,
    keep_trailing_newline=True,
    autoescape=False,
)


@dataclass(frozen=True, slots=True)
class TemplateRefs:
    names: frozenset[str]
    """Top-level names used: node ids, plus ``inputs``."""
    inputs: frozenset[str]
    """Input names used as ``inputs.x`` or ``inputs['x']``."""


class TemplateProblem(ValueError):
    def __init__(self, message: str, line: int | None) -> None:
        self.line = line
        super().__init__(message)


@lru_cache(maxsize=4096)
def analyze(source: str) -> TemplateRefs:
    """The names a template refers to.

    Raises:
        TemplateProblem: a syntax error, with the line inside the template.
    """
    if "{" not in source:
        return TemplateRefs(frozenset(), frozenset())
    try:
        ast = _ENV.parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"template syntax error: {exc.message}", exc.lineno) from None
    names = frozenset(meta.find_undeclared_variables(ast))
    inputs: set[str] = set()
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node  # type: ignore[attr-defined]
        if isinstance(target, nodes.Name) and target.name == "inputs":
            if isinstance(node, nodes.Getattr):
                inputs.add(node.attr)
            elif isinstance(node, nodes.Getitem):
                arg = node.arg
                if isinstance(arg, nodes.Const) and isinstance(arg.value, str):
                    inputs.add(arg.value)
    return TemplateRefs(names, frozenset(inputs))


_Part = tuple[str, str | None, str | None]
"""(literal text, name, attribute): text when name is None, else ``{{ name }}`` or, with an
attribute, ``{{ inputs.attribute }}``."""


def _plain_parts(source: str) -> tuple[_Part, ...] | None:
    """The template as literal text and plain substitutions (``{{ node }}``,
    ``{{ inputs.name }}``), the usual prompt; None when it uses anything else (filters,
    loops, conditions, indexing...), which renders through Jinja."""
    parts: list[_Part] = []
    for node in _ENV.parse(source).body:
        if not isinstance(node, nodes.Output):
            return None
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                parts.append((child.data, None, None))
            elif isinstance(child, nodes.Name):
                parts.append(("", child.name, None))
            elif (
                isinstance(child, nodes.Getattr)
                and isinstance(child.node, nodes.Name)
                and child.node.name == "inputs"
                and not hasattr(dict, child.attr)  # Jinja would find the method first
            ):
                parts.append(("", "inputs", child.attr))
            else:
                return None
    return tuple(parts)


class Template:
    """A compiled prompt template. Plain text (no ``{``) renders without Jinja at all; text
    with plain substitutions renders by joining the values (as Jinja would: ``str`` of the
    finalized value), which costs a fraction of a Jinja render (a context built per
    render) and is done once per node of every run. Anything else, and any name or input
    missing at render time, goes through Jinja, which raises its usual error."""

    __slots__ = ("_compiled", "_parts", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._compiled = _ENV.from_string(source) if "{" in source else None
        self._parts = _plain_parts(source) if self._compiled is not None else None

    def render(self, context: Mapping[str, Any]) -> str:
        if self._compiled is None:
            return self.source
        if self._parts is not None:
            out: list[str] = []
            try:
                for text, name, attr in self._parts:
                    if name is None:
                        out.append(text)
                        continue
                    value = context[name]
                    if attr is not None:
                        if type(value) is not dict:
                            raise KeyError(attr)
                        value = value[attr]
                    out.append(str(_finalize(value)))
            except KeyError:
                pass  # Jinja says what is missing
            else:
                return "".join(out)
        return self._compiled.render(context)
