"""Prompt templates render as Jinja renders them, whichever way they are rendered."""

from __future__ import annotations

from typing import Any

import jinja2
import pytest

from dagtier.spec.templates import _ENV, Template

CONTEXT: dict[str, Any] = {
    "inputs": {"topic": "owls", "n": 3, "listed": ["a", "b"], "none": None},
    "text": "plain answer",
    "number": 2.5,
    "flag": True,
    "nothing": None,
    "parsed": {"category": "bug", "tags": ["ui", "é"]},
    "listed": [1, {"x": "y"}],
}

TEMPLATES = [
    "no substitution",
    "{{ text }}",
    "Summarise {{ text }} about {{ inputs.topic }}.\n",
    "{{ number }} {{ flag }} {{ nothing }} {{ inputs.n }} {{ inputs.none }}",
    "{{ parsed }} / {{ listed }} / {{ inputs.listed }}",
    "  {{- text -}}  \n{{ text }}\n",
    "{# a comment #}{{ text }}{% raw %}{{ kept }}{% endraw %}",
    "{{ parsed.category }} {{ inputs['topic'] }} {{ text | upper }}",
    "{% for t in parsed.tags %}{{ t }},{% endfor %}",
    "{{ inputs.listed }} {{ inputs.keys }}",
]


@pytest.mark.parametrize("source", TEMPLATES)
def test_a_template_renders_exactly_as_jinja_does(source: str) -> None:
    """Every template gives the text Jinja's sandbox gives for the same context."""
    assert Template(source).render(CONTEXT) == _ENV.from_string(source).render(CONTEXT)


@pytest.mark.parametrize("source", ["{{ missing }}", "about {{ inputs.missing }}"])
def test_a_missing_name_or_input_raises_jinjas_error(source: str) -> None:
    """A name or input the context lacks raises Jinja's UndefinedError naming it."""
    with pytest.raises(jinja2.UndefinedError, match="missing"):
        Template(source).render(CONTEXT)
