"""What the telemetry subscribers cost a run, as ratios against a run without them.

    PYTHONPATH=src python bench/telemetry_overhead.py [--nodes 1000] [--repeat 7]

One 1,000-node layered DAG (width 50, 3 parents per node) of instant in-process nodes,
so the figures are the subscribers' own cost per node: the log subscriber with INFO
filtered (how the CLI runs without --verbose), the same with INFO on into a JSON file,
the live view's state, and OpenTelemetry spans into an in-memory exporter. Prints the
median microseconds per node and the ratio to the baseline measured in the same run.
"""

from __future__ import annotations

import argparse
import io
import logging
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

import anyio

import dagtier
from dagtier._logging import configure_logging
from dagtier.report.live import ProgressState
from dagtier.telemetry import LogSubscriber


def _workflow(n: int) -> Any:
    from dagtier.spec.models import Workflow

    rng = random.Random(0)
    layers: list[list[str]] = []
    nodes: dict[str, Any] = {}
    for i in range(n):
        layer, pos = divmod(i, 50)
        if pos == 0:
            layers.append([])
        nid = f"n{i}"
        layers[layer].append(nid)
        deps = [] if layer == 0 else rng.sample(layers[layer - 1], 3)
        nodes[nid] = {"prompt": "go", "depends_on": deps}
    return Workflow.model_validate({"name": "bench", "nodes": nodes, "concurrency": n})


def _catalog() -> Any:
    return dagtier.catalog_from_dict(
        {
            "models": {"fn": {"provider": "python", "model": "fn",
                              "price": {"input": 1, "output": 1}}},
            "tiers": {1: ["fn"], 2: ["fn"], 3: ["fn"]},
        }
    )  # fmt: skip


def _otel() -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from dagtier.telemetry.otel import OtelSubscriber

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
    return OtelSubscriber(provider)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    wf, cat = _workflow(args.nodes), _catalog()
    provider = dagtier.PythonProvider(lambda m, r: "ok")
    sink = io.StringIO()

    def quiet() -> None:
        configure_logging(level=logging.WARNING, stream=sink)

    def json_file() -> None:
        configure_logging(level=logging.WARNING, stream=sink, json_file=io.StringIO())

    cases: list[tuple[str, Callable[[], None], Callable[[], list[Any]]]] = [
        ("no subscribers", quiet, lambda: []),
        ("log subscriber, INFO filtered", quiet, lambda: [LogSubscriber()]),
        ("log subscriber, JSON file", json_file, lambda: [LogSubscriber()]),
        ("live view state", quiet, lambda: [ProgressState()]),
    ]
    try:
        _otel()
        cases.append(("OpenTelemetry spans", quiet, lambda: [_otel()]))
    except ImportError:
        pass

    plan = dagtier.compile_workflow(wf, cat)  # compiled once, run many times

    async def once(subs: list[Any]) -> float:
        t0 = time.perf_counter()
        await dagtier.run(plan, providers={"python": provider}, subscribers=subs)
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {name: [] for name, _, _ in cases}
    for _ in range(args.repeat):  # interleaved, so drift hits every case alike
        for name, setup, subs in cases:
            setup()
            times[name].append(anyio.run(once, subs()))
    base = statistics.median(times["no subscribers"])
    print(f"{args.nodes} nodes, median of {args.repeat} runs")
    for name, med in ((n, statistics.median(t)) for n, t in times.items()):
        print(f"  {name:32s} {1e6 * med / args.nodes:8.1f} us/node  x{med / base:.2f}")


if __name__ == "__main__":
    main()
