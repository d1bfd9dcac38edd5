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


class Template:
    """A compiled prompt template. Plain text (no ``{``) renders without Jinja at all."""

    __slots__ = ("_compiled", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self._compiled = _ENV.from_string(source) if "{" in source else None

    def render(self, context: Mapping[str, Any]) -> str:
        if self._compiled is None:
            return self.source
        return self._compiled.render(context)
