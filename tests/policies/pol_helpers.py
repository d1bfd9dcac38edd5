"""Helpers for the policy tests: a three-tier catalog of in-process models.

The models are PythonProvider functions: the executor, gateway, policies, checks, judge and
store are the real ones; only the model is a Python function, which is the honest choice
for policy logic (it needs scripted, seeded answers; a network model cannot give them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from _catalog import one_per_tier

import dagtier
from dagtier.catalog import ModelEntry
from dagtier.providers import CompletionRequest, Gateway, ProviderRegistry, PythonProvider
from dagtier.results import RunResult

PRICES = {1: 1.0, 2: 10.0, 3: 100.0}
"""USD per million tokens, input and output alike: tier 3 costs 100x tier 1."""


Answer = Callable[[int, CompletionRequest], Any]


@dataclass
class Models:
    """Scripted models: ``answer(tier, request)`` for node calls, ``judge(prompt)`` for
    judge calls (requests whose metadata purpose is ``judge``). Records every call."""

    answer: Answer
    judge: Callable[[str], str] = lambda prompt: "VERDICT: PASS | REASON: fine"
    calls: list[tuple[int, str]] = field(default_factory=list)
    judge_prompts: list[str] = field(default_factory=list)

    def __call__(self, entry: ModelEntry, request: CompletionRequest) -> Any:
        tier = int(entry.name[1:])
        purpose = request.metadata.get("purpose", "answer")
        self.calls.append((tier, purpose))
        if purpose == "judge":
            self.judge_prompts.append(request.messages[0].content)
            return self.judge(request.messages[0].content)
        return self.answer(tier, request)

    def tiers_called(self, purpose: str = "answer") -> list[int]:
        return [t for t, p in self.calls if p == purpose]


async def _no_sleep(_: float) -> None:
    return None


def gateway(models: Models) -> Gateway:
    """The real gateway over the scripted models, with backoff sleeps skipped."""
    return Gateway(
        one_per_tier("m", model_id="model-{tier}", prices=PRICES),
        ProviderRegistry({"python": PythonProvider(models)}),
        sleep=_no_sleep,
    )


def workflow(node_yaml: str, *, name: str = "wf", output: str = "text") -> Any:
    """A one-node workflow named ``name`` whose node ``n`` has the given YAML settings."""
    body = "\n".join("    " + line for line in node_yaml.strip().splitlines())
    return dagtier.parse_workflow(
        f"name: {name}\nnodes:\n  n:\n    prompt: do the task\n    output: {output}\n{body}\n"
    )


async def run(wf: Any, models: Models, *, store: Any = None, seed: int = 0) -> RunResult:
    from dagtier.executor import run as execute

    # a store of its own per run unless given: adaptive runs would warn that they keep nothing
    store = store if store is not None else dagtier.MemoryStore()
    return await execute(wf, {}, gateway=gateway(models), store=store, seed=seed)
