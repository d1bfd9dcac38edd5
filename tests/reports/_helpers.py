"""Shared set-up for the report and telemetry tests: a small workflow and a catalog whose
models are served by an in-process Python function (a test double for the providers: these
tests are about what is done with the attempts, not about how a model is called)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from _catalog import make_catalog

from dagtier.catalog import Catalog
from dagtier.spec import parse_workflow

WORKFLOW = """
name: review
inputs: {code: string}
nodes:
  summarize:
    prompt: "Summarize {{ inputs.code }}"
    policy: {kind: static, tier: 1}
  critique:
    prompt: "Critique {{ summarize }}"
    depends_on: [summarize]
    policy: {kind: cascade, start: 1, max: 3}
    checks: [{type: regex, pattern: "GOOD"}]
  tests:
    prompt: "Write tests for {{ inputs.code }}"
    policy: {kind: static, tier: 2}
  final:
    prompt: "Merge {{ critique }} and {{ tests }}"
    depends_on: [critique, tests]
    policy: {kind: static, tier: 3}
outputs:
  answer: "{{ final }}"
"""


_TIERS = {1: ["cheap"], 2: ["mid"], 3: ["top"]}
_MODELS = {
    "cheap": {"model": "cheap-1", "price": {"input": 1.0, "output": 2.0}},
    "mid": {"model": "mid-1", "price": {"input": 3.0, "output": 6.0}},
    "top": {"model": "top-1", "price": {"input": 10.0, "output": 30.0}},
}


def catalog() -> Catalog:
    return make_catalog(_TIERS, _MODELS)


CATALOG_YAML = (
    "models:\n"
    + "".join(
        f"  {name}: {{provider: python, model: {m['model']}, price: {m['price']}}}\n".replace(
            "'", ""
        )
        for name, m in _MODELS.items()
    )
    + "tiers:\n"
    + "".join(f"  {t}: [{names[0]}]\n" for t, names in _TIERS.items())
)
"""The same catalog as a ``--models`` file, for the command run in a subprocess."""

SRC = Path(__file__).resolve().parents[2] / "src"


def subprocess_env() -> dict[str, str]:
    """The environment for ``python -m dagtier`` in a subprocess: this checkout's package,
    no API keys, no colour."""
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_TOKEN"))}
    return env | {"PYTHONPATH": str(SRC), "NO_COLOR": "1"}


def workflow(text: str = WORKFLOW) -> Any:
    return parse_workflow(text, "review.yaml")


def answer(model: Any, request: Any) -> str:
    """Tier 1 writes a poor critique (escalates once), tier 2 a good one."""
    prompt = request.messages[0].content
    if prompt.startswith("Critique"):
        return "GOOD critique" if model.model != "cheap-1" else "meh"
    return f"{model.model} says: " + prompt[:40]


async def run_review(**kwargs: Any) -> Any:
    from dagtier import PythonProvider, run

    return await run(
        workflow(),
        {"code": "def f(): pass"},
        catalog=catalog(),
        providers={"python": PythonProvider(kwargs.pop("fn", answer))},
        seed=1,
        **kwargs,
    )
