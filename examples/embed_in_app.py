"""Embedding dagtier in an application's own asyncio event loop.

The application below keeps doing its own work (a heartbeat task standing in for a web
server or a queue consumer) while ``await dagtier.run(...)`` executes a workflow in the
same loop. It subscribes to dagtier's events for live progress and prints what each node
cost at the end.

Runs offline as is: the "models" are a small Python function behind ``PythonProvider``,
priced like a cheap and a mid-tier model so the cost figures mean something. To use real
models, drop the ``gateway=`` argument: dagtier then uses its model catalog (API keys from
the environment, or the embedded local model when no key is set).

    python examples/embed_in_app.py
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import dagtier
from dagtier.catalog import ModelEntry
from dagtier.events import Event, NodeFinished, NodeStarted
from dagtier.providers import CompletionRequest, Gateway, ProviderRegistry, PythonProvider

HERE = Path(__file__).resolve().parent

TICKET = (
    "Hi, I was charged twice for my March invoice (INV-2291) and need the duplicate "
    "refunded before Friday, when my card statement closes. Account: ana@example.com"
)


async def stand_in_model(model: ModelEntry, request: CompletionRequest) -> str:
    """A deterministic stand-in for a language model (so the example runs offline)."""
    await asyncio.sleep(0.05 if model.name == "small" else 0.1)  # a model takes a while
    prompt = request.messages[0].content
    if request.json_schema is not None:
        return json.dumps({"category": "billing", "urgent": "Friday" in prompt})
    if prompt.startswith("List the facts"):
        return "- charged twice for INV-2291 (March)\n- wants the duplicate refunded\n- deadline: Friday"
    if prompt.startswith("Write a reply"):
        if model.name == "small":
            return "We'll look into it."  # too short: fails the length check, escalates
        return (
            "Hello, thank you for flagging the duplicate charge on invoice INV-2291. "
            "We have refunded the second payment; it will reach your card before Friday."
        )
    return "OK"


def offline_gateway() -> Gateway:
    catalog = dagtier.catalog_from_dict(
        {
            "models": {
                "small": {
                    "provider": "python",
                    "model": "stand-in-small",
                    "price": {"input": 0.15, "output": 0.60},
                },
                "mid": {
                    "provider": "python",
                    "model": "stand-in-mid",
                    "price": {"input": 3.0, "output": 15.0},
                },
            },
            "tiers": {1: ["small"], 2: ["mid"], 3: ["mid"]},
        }
    )
    return Gateway(catalog, ProviderRegistry({"python": PythonProvider(stand_in_model)}))


async def heartbeat(stop: asyncio.Event) -> int:
    """The application's own concurrent work: it keeps ticking during the run."""
    beats = 0
    while not stop.is_set():
        beats += 1
        await asyncio.sleep(0.02)
    return beats


def progress(event: Event) -> None:
    """An event subscriber: called synchronously for every event, so it stays cheap."""
    if isinstance(event, NodeStarted):
        print(f"  started  {event.node_id}")
    elif isinstance(event, NodeFinished):
        r = event.result
        print(f"  finished {r.node_id:<9} {r.status:<10} tier {r.tier} ({r.model})")


async def main() -> None:
    workflow = dagtier.load_workflow(HERE / "ticket_triage.yaml")
    stop = asyncio.Event()
    beats = asyncio.create_task(heartbeat(stop))

    print(f"running '{workflow.name}' inside the application's event loop")
    result = await dagtier.run(
        workflow,
        {"ticket": TICKET, "customer": "Ana"},
        gateway=offline_gateway(),
        subscribers=[progress],
    )
    stop.set()

    print(f"\nrun {result.status}; the app's heartbeat ticked {await beats} times meanwhile")
    print(f"\n{'node':<10}{'tier':>5}  {'model':<8}{'attempts':>9}{'tokens':>8}{'cost $':>12}")
    for r in result.nodes.values():
        print(
            f"{r.node_id:<10}{r.tier or '-':>5}  {r.model or '-':<8}{len(r.attempts):>9}"
            f"{r.usage.total:>8}{r.cost:>12.6f}"
        )
    print(f"{'total':<40}{result.cost:>12.6f}")
    print(f"\ncategory: {result.outputs['category']}")
    print(f"reply: {result.outputs['reply']}")


if __name__ == "__main__":
    asyncio.run(main())
