"""A batch of items through a 10-node workflow on a rate-limited simulated model: dagtier's
``run_batch`` against LangGraph's ``abatch`` of the same graph, in one run.

The simulated model answers after 200 ms. Each of its two models has a requests-per-minute
limit, enforced on the client side in both frameworks (dagtier: the catalog's
``requests_per_minute``, held by the shared gateway; LangGraph: langchain-core's
``InMemoryRateLimiter``, the limiter its chat models take), each starting with an empty
bucket. So no batch can go faster than the rate-limit bound,

    bound = min over models (rpm / 60 / calls of that model per item)  items/s,

and the figure of merit is items/s as a share of it (goal >= 90%). dagtier writes every
item as a durable run to a real SQLite file; LangGraph keeps no checkpoints (its fastest
setting). RSS is read at 10% and 100% of the items (goal: flat within 10%). CPU ms/item is
the process's CPU time over the batch per item: what a framework costs whatever else the
machine runs (items/s on a shared machine reaches the bound only when the process gets the
CPU it needs). Each framework runs in its own child process, so neither's memory counts
against the other.

    python bench/batch.py                       # 2,000 items, bound 100 items/s (~1 min)
    python bench/batch.py --items 10000         # the full size (~4 min)
    python bench/batch.py --only dagtier        # one side

LangGraph is a bench-only dependency: ``pip install -e '.[bench]'``.
"""

from __future__ import annotations

import argparse
import json
import operator
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any, TypedDict

LATENCY_S = 0.2
LAYERS: list[list[str]] = [["n0"], ["n1", "n2", "n3"], ["n4", "n5", "n6"], ["n7", "n8"], ["n9"]]
PARENTS: dict[str, list[str]] = {
    "n0": [],
    "n1": ["n0"],
    "n2": ["n0"],
    "n3": ["n0"],
    "n4": ["n1", "n2"],
    "n5": ["n2", "n3"],
    "n6": ["n1", "n3"],
    "n7": ["n4", "n5"],
    "n8": ["n5", "n6"],
    "n9": ["n7", "n8"],
}
LARGE = ("n4", "n9")
"""Nodes on the large model (tier 2); the other 8 are on the small one (tier 1)."""
CALLS = {"sim-small": 8, "sim-large": 2}


class State(TypedDict):
    """LangGraph's state: the item's text and each node's answer (merged per step)."""

    text: str
    out: Annotated[dict[str, str], operator.or_]


def rpm_for(bound: float) -> dict[str, float]:
    """Per-model requests/minute that make ``bound`` items/s the limit of both models."""
    return {m: bound * n * 60 for m, n in CALLS.items()}


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


class Sim:
    """The simulated model: 200 ms, a short answer; counts calls per model."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    async def answer(self, model: str, prompt: str) -> str:
        import anyio

        self.calls[model] += 1
        await anyio.sleep(LATENCY_S)
        return f"{prompt[:2]}:{len(prompt)}"


class Meter:
    """Items done, RSS at 10% and 100% of them, and the time and CPU time since start()."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0
        self.failed = 0
        self.rss: dict[int, float] = {}
        self.t0 = self.cpu0 = 0.0

    def start(self) -> None:
        self.t0, self.cpu0 = time.perf_counter(), time.process_time()

    def result(self, calls: Counter[str]) -> dict[str, Any]:
        """The figures since start(), as the child prints them."""
        return {
            "elapsed": time.perf_counter() - self.t0,
            "cpu": time.process_time() - self.cpu0,
            "rss": self.rss,
            "failed": self.failed,
            "calls": calls,
        }

    def item(self, ok: bool) -> None:
        self.done += 1
        self.failed += not ok
        if self.done in (max(1, self.total // 10), self.total):
            self.rss[self.done] = rss_mb()


def workflow_yaml() -> str:
    lines = ["name: bench_batch", "inputs: {text: string}", "nodes:"]
    for nid, parents in PARENTS.items():
        refs = " ".join("{{ " + p + " }}" for p in parents) or "{{ inputs.text }}"
        tier = 2 if nid in LARGE else 1
        lines.append(
            f"  {nid}: {{prompt: '{nid} {refs}', depends_on: {parents}, "
            f"policy: {{kind: static, tier: {tier}}}}}"
        )
    return "\n".join(lines) + "\n"


async def run_dagtier(items: int, bound: float, concurrency: int) -> dict[str, Any]:
    import dagtier
    from dagtier.catalog import catalog_from_dict
    from dagtier.providers import Gateway, ProviderRegistry, PythonProvider
    from dagtier.store import open_store

    sim = Sim()
    rpm = rpm_for(bound)
    price = {"input": 0.1, "output": 0.4}
    catalog = catalog_from_dict(
        {
            "models": {
                m: {"provider": "python", "model": m, "price": price, "requests_per_minute": r}
                for m, r in rpm.items()
            },
            "tiers": {1: ["sim-small"], 2: ["sim-large"], 3: ["sim-large"]},
        }
    )

    async def model(entry: Any, request: Any) -> str:
        return await sim.answer(entry.model, request.messages[-1].content)

    gateway = Gateway(catalog, ProviderRegistry({"python": PythonProvider(model)}))
    for name in rpm:
        bucket = gateway.limits_for(catalog.models[name]).rpm
        assert bucket is not None
        bucket.adjust(-bucket.capacity)  # start empty, like LangChain's limiter
    meter = Meter(items)
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(Path(tmp) / "batch.db")
        meter.start()
        summary = await dagtier.run_batch(
            dagtier.parse_workflow(workflow_yaml()),
            [{"text": f"item {i}"} for i in range(items)],
            store=store,
            gateway=gateway,
            concurrency=concurrency,
            on_result=lambda r: meter.item(r.ok),
        )
        result = meter.result(sim.calls)
        await store.aclose()
    assert summary.succeeded == items, summary
    return result


async def run_langgraph(items: int, bound: float, concurrency: int) -> dict[str, Any]:
    from langchain_core.rate_limiters import InMemoryRateLimiter
    from langgraph.graph import END, START, StateGraph

    sim = Sim()
    rpm = rpm_for(bound)
    limiters = {
        m: InMemoryRateLimiter(requests_per_second=r / 60, max_bucket_size=r)
        for m, r in rpm.items()
    }

    def node(nid: str) -> Any:
        model = "sim-large" if nid in LARGE else "sim-small"
        parents = PARENTS[nid]

        async def call(state: State) -> dict[str, Any]:
            refs = " ".join(state["out"][p] for p in parents) or state["text"]
            await limiters[model].aacquire()
            return {"out": {nid: await sim.answer(model, f"{nid} {refs}")}}

        return call

    g = StateGraph(State)
    for nid in PARENTS:
        g.add_node(nid, node(nid))
    for nid, parents in PARENTS.items():
        if not parents:
            g.add_edge(START, nid)
        elif len(parents) == 1:
            g.add_edge(parents[0], nid)
        else:
            g.add_edge(parents, nid)  # waits for all of them
    g.add_edge("n9", END)
    graph = g.compile()
    meter = Meter(items)
    inputs = [{"text": f"item {i}", "out": {}} for i in range(items)]
    meter.start()
    # abatch returns only at the end: stream results to read RSS as items finish
    async for _, _out in graph.abatch_as_completed(inputs, config={"max_concurrency": concurrency}):
        meter.item(True)
    return meter.result(sim.calls)


def child(name: str, items: int, bound: float, concurrency: int) -> None:
    import anyio

    from dagtier._logging import configure_logging

    configure_logging(level=40)
    fn = run_dagtier if name == "dagtier" else run_langgraph
    out = anyio.run(fn, items, bound, concurrency)
    print(json.dumps(out))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--bound", type=float, default=100.0, help="rate-limit bound, items/s")
    ap.add_argument("--concurrency", type=int, default=256, help="items in flight")
    ap.add_argument("--only", choices=("dagtier", "langgraph"))
    ap.add_argument("--child", choices=("dagtier", "langgraph"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.items, args.bound, args.concurrency)
        return
    names = [args.only] if args.only else ["dagtier", "langgraph"]
    rpm = rpm_for(args.bound)
    print(
        f"{args.items} items x 10 nodes, {LATENCY_S * 1000:.0f} ms per call, rpm "
        + ", ".join(f"{m} {r:,.0f}" for m, r in rpm.items())
        + f": bound {args.bound:g} items/s; {args.concurrency} items in flight"
    )
    print(
        f"{'':10} {'secs':>7} {'items/s':>8} {'of bound':>9} {'CPU ms/item':>12} "
        f"{'RSS@10%':>8} {'RSS@100%':>9} {'growth':>7}"
    )
    for name in names:
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                name,
                "--items",
                str(args.items),
                "--bound",
                str(args.bound),
                "--concurrency",
                str(args.concurrency),
            ],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            print(f"{name:10} failed: {proc.stderr.strip().splitlines()[-1:]}")
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        rate = args.items / r["elapsed"]
        rss = {int(k): v for k, v in r["rss"].items()}
        first, last = rss[min(rss)], rss[max(rss)]
        print(
            f"{name:10} {r['elapsed']:7.1f} {rate:8.1f} {rate / args.bound:8.1%} "
            f"{r['cpu'] / args.items * 1e3:12.2f} {first:7.0f}M {last:8.0f}M {last / first - 1:+7.1%}"
        )


if __name__ == "__main__":
    main()
