"""Scheduling overhead: microseconds per node on a zero-latency model.

A layered DAG of N trivial nodes (width 50, 3 parents each) runs on an in-process provider
that answers at once, so all the time measured is dagtier's own: scheduling, prompt
rendering, the policy, the gateway, checks, results and events. In the same run, a plain
anyio task group driven by ``graphlib.TopologicalSorter`` runs the same DAG as a baseline.

    python bench/overhead.py                 # N = 1,000 and 10,000
    python bench/overhead.py -n 1000 -r 21
    python bench/overhead.py --store runs.db # the same with a durable store (see make_store)

Targets (issue 2): dagtier <= 10 µs/node at 1,000 nodes; at 10,000 at most 20% more per node.
The plan (graph, templates, settings, fingerprint inputs) is compiled once per shape with
``dagtier.compile_workflow`` and not counted: a workflow is compiled once and run many times.
"""

from __future__ import annotations

import argparse
import gc
import graphlib
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from _dags import layered_edges, python_catalog, workflow_for

import dagtier
from dagtier.providers import Gateway, ProviderRegistry, PythonProvider

_STORES: dict[str, Any] = {}


def make_store(path: str | None) -> Any:
    """The store to run with: None, a fresh MemoryStore per run (dagtier's default);
    ``--store PATH``, the SQLite store at PATH, opened once and shared by every run (as a
    program would), committing each node durably before its dependents start."""
    if path is None:
        return dagtier.MemoryStore()
    if path not in _STORES:
        from dagtier.store import open_store

        _STORES[path] = open_store(path)
    return _STORES[path]


async def baseline(deps: dict[str, list[str]]) -> float:
    """Event-driven anyio + graphlib: each node is an async call that returns at once."""

    async def node(nid: str) -> str:
        return "ok"

    t0 = time.perf_counter()
    ts = graphlib.TopologicalSorter(deps)
    ts.prepare()
    results: dict[str, str] = {}

    async with anyio.create_task_group() as tg:

        async def run_one(nid: str) -> None:
            results[nid] = await node(nid)
            ts.done(nid)
            for nxt in ts.get_ready():
                tg.start_soon(run_one, nxt)

        for nid in ts.get_ready():
            tg.start_soon(run_one, nid)
    assert len(results) == len(deps)
    return time.perf_counter() - t0


async def dagtier_run(plan: Any, gateway: Gateway, store_path: str | None) -> float:
    store = make_store(store_path)
    t0 = time.perf_counter()
    result = await dagtier.run(plan, gateway=gateway, store=store)
    elapsed = time.perf_counter() - t0
    assert result.ok, result.status
    return elapsed


def measure(n: int, repeats: int, store_path: str | None) -> dict[str, list[float]]:
    deps = layered_edges(n)
    wf = workflow_for(deps)
    gateway = Gateway(
        python_catalog(), ProviderRegistry({"python": PythonProvider(lambda m, r: "ok")})
    )
    plan = dagtier.compile_workflow(wf, gateway.catalog)
    times: dict[str, list[float]] = {"baseline": [], "dagtier": []}

    async def main() -> None:
        await dagtier_run(plan, gateway, store_path)  # warm-up: imports, first allocations
        await baseline(deps)
        for _ in range(repeats):
            gc.collect()
            times["baseline"].append(await baseline(deps) / n * 1e6)
            gc.collect()
            times["dagtier"].append(await dagtier_run(plan, gateway, store_path) / n * 1e6)

    anyio.run(main)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", type=int, action="append", help="node counts (default 1000 and 10000)")
    ap.add_argument("-r", "--repeats", type=int, default=11)
    ap.add_argument("--store", metavar="PATH", help="run with the SQLite store at PATH")
    args = ap.parse_args()
    sizes = args.n or [1000, 10_000]
    print(
        f"python {sys.version.split()[0]}, anyio {anyio.__version__ if hasattr(anyio, '__version__') else ''}"
    )
    print(
        f"{'nodes':>7}  {'baseline µs/node min/med':>25}  {'dagtier µs/node min/med':>24}  {'ratio (min)':>11}"
    )
    per_node: dict[int, float] = {}
    for n in sizes:
        reps = args.repeats if n <= 2000 else max(3, args.repeats // 3)
        t = measure(n, reps, args.store)
        b, d = t["baseline"], t["dagtier"]
        per_node[n] = min(d)
        print(
            f"{n:>7}  {min(b):>12.2f} / {statistics.median(b):<10.2f}  "
            f"{min(d):>11.2f} / {statistics.median(d):<10.2f}  {min(d) / min(b):>11.2f}"
        )
    if len(per_node) > 1:
        small, big = min(per_node), max(per_node)
        growth = per_node[big] / per_node[small] - 1
        print(f"growth per node from {small:,} to {big:,} nodes: {growth:+.0%} (target <= +20%)")
    if 1000 in per_node:
        verdict = "meets" if per_node[1000] <= 10 else "misses"
        print(f"at 1,000 nodes dagtier {verdict} the 10 µs/node target ({per_node[1000]:.2f})")


if __name__ == "__main__":
    main()
