"""Per-node overhead of the executor with the SQLite store off and on.

A 1,000-node layered DAG (width 50, 3 parents per node) of trivial nodes answered instantly
by a Python provider: what is measured is dagtier's own cost per node. "off" uses the
in-memory store (the default of ``dagtier.run``); "on" commits every node durably to a real
SQLite file (WAL, synchronous=NORMAL, group commit) before its dependents start.

    python bench/store_overhead.py [--nodes 1000] [--repeat 7]

Prints min / median microseconds per node for each, and the difference (the store's cost).
``bench/overhead.py`` (the core engineer's) can import :func:`measure` to add the same rows.
"""

from __future__ import annotations

import argparse
import logging
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

import dagtier
from dagtier._logging import configure_logging
from dagtier.catalog import catalog_from_dict
from dagtier.providers import PythonProvider
from dagtier.store import MemoryStore, open_store


def layered_workflow(nodes: int, width: int = 50, parents: int = 3, seed: int = 0) -> Any:
    rng = random.Random(seed)
    lines = ["name: bench", f"concurrency: {width}", "nodes:"]
    layers = [[f"n{i}" for i in range(s, min(s + width, nodes))] for s in range(0, nodes, width)]
    for k, layer in enumerate(layers):
        for nid in layer:
            deps = rng.sample(layers[k - 1], min(parents, len(layers[k - 1]))) if k else []
            lines.append(f"  {nid}: {{prompt: 'p', depends_on: {deps}}}")
    return dagtier.parse_workflow("\n".join(lines) + "\n")


def _catalog() -> Any:
    price = {"input": 0.0, "output": 0.0}
    models = {f"py{t}": {"provider": "python", "model": "py", "price": price} for t in (1, 2, 3)}
    return catalog_from_dict({"models": models, "tiers": {1: ["py1"], 2: ["py2"], 3: ["py3"]}})


def measure(store_on: bool, nodes: int = 1000, repeat: int = 7) -> list[float]:
    """Microseconds per node for ``repeat`` runs of the layered DAG."""
    wf = layered_workflow(nodes)
    catalog = _catalog()
    providers = {"python": PythonProvider(lambda model, request: "ok")}
    plan = dagtier.compile_workflow(wf, catalog)  # compiled once, run many times
    out: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:

        async def one(i: int) -> float:
            store: Any = open_store(Path(tmp) / f"b{i}.db") if store_on else MemoryStore()
            t0 = time.perf_counter()
            result = await dagtier.run(plan, providers=providers, store=store)
            dt = time.perf_counter() - t0
            assert result.ok
            if store_on:
                await store.aclose()
            return dt / nodes * 1e6

        anyio.run(one, -1)  # warm-up: imports
        for i in range(repeat):
            out.append(anyio.run(one, i))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args()
    configure_logging(level=logging.WARNING)
    rows = {}
    for on in (False, True):
        rows[on] = measure(on, args.nodes, args.repeat)
    for on, xs in rows.items():
        print(
            f"store {'on (SQLite)' if on else 'off (memory)':13}  "
            f"min {min(xs):7.1f} us/node   median {statistics.median(xs):7.1f} us/node"
        )
    d_min = min(rows[True]) - min(rows[False])
    d_med = statistics.median(rows[True]) - statistics.median(rows[False])
    ratio = statistics.median(rows[True]) / statistics.median(rows[False])
    print(
        f"store cost      min {d_min:7.1f} us/node   median {d_med:7.1f} us/node   ratio {ratio:.2f}x"
    )


if __name__ == "__main__":
    main()
