"""Per-node cost of the durable stores: the in-memory store, SQLite and PostgreSQL, in one run.

A 1,000-node layered DAG (width 50, 3 parents per node) of trivial nodes answered instantly
by a Python provider: what is measured is dagtier's own cost per node. "memory" keeps
nothing (the default of ``dagtier.run``); "sqlite" commits every node durably to a real
SQLite file (WAL, synchronous=NORMAL, group commit) and "postgresql" to a real PostgreSQL
server (synchronous_commit on, fsync on, group commit in pipeline mode) before its
dependents start.

    python bench/store_overhead.py [--nodes 1000] [--repeat 7] [--postgres URL]

Without ``--postgres`` a throwaway cluster is started for the run (initdb in a temporary
directory, unix socket only; needs Debian's ``postgresql``) and removed afterwards; without
the server binaries or psycopg the PostgreSQL row is left out and says why.

Prints min / median microseconds per node for each store, then each durable store's cost
over the in-memory one (median difference) and the ratio of medians.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio

import dagtier
from dagtier._logging import configure_logging
from dagtier.catalog import catalog_from_dict
from dagtier.providers import PythonProvider
from dagtier.store import MemoryStore, open_store

TESTS = Path(__file__).resolve().parents[1] / "tests"


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


def measure(kind: str, nodes: int = 1000, repeat: int = 7, where: str = "") -> list[float]:
    """Microseconds per node for ``repeat`` runs of the layered DAG on store ``kind``
    (``memory``, ``sqlite``: a new file in ``where``, a directory; ``postgresql``: the URL
    ``where``)."""
    wf = layered_workflow(nodes)
    catalog = _catalog()
    providers = {"python": PythonProvider(lambda model, request: "ok")}
    plan = dagtier.compile_workflow(wf, catalog)  # compiled once, run many times

    async def one(i: int) -> float:
        if kind == "memory":
            store: Any = MemoryStore()
        else:
            store = open_store(where if kind == "postgresql" else str(Path(where) / f"b{i}.db"))
        t0 = time.perf_counter()
        result = await dagtier.run(plan, providers=providers, store=store)
        dt = time.perf_counter() - t0
        assert result.ok
        if kind != "memory":
            await store.aclose()
        return dt / nodes * 1e6

    anyio.run(one, -1)  # warm-up: imports, connection
    return [anyio.run(one, i) for i in range(repeat)]


@contextlib.contextmanager
def _postgres(url: str | None) -> Iterator[str | None]:
    """``url``, or a throwaway cluster's, or None (with the reason on stderr)."""
    if url:
        yield url
        return
    sys.path.insert(0, str(TESTS))
    import pgcluster

    try:
        import psycopg  # noqa: F401
    except ImportError:
        print("postgresql: skipped, psycopg missing (pip install 'dagtier[postgres]')")
        yield None
        return
    if pgcluster.find_bindir() is None:
        print("postgresql: skipped, no server binaries (apt-get install postgresql)")
        yield None
        return
    with pgcluster.cluster(fsync=True) as admin:
        yield pgcluster.create_database(admin, "bench")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--postgres", metavar="URL", help="an existing server (default: throwaway)")
    args = ap.parse_args()
    configure_logging(level=logging.WARNING)
    rows: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp, _postgres(args.postgres) as pg:
        rows["memory"] = measure("memory", args.nodes, args.repeat)
        rows["sqlite"] = measure("sqlite", args.nodes, args.repeat, tmp)
        if pg is not None:
            rows["postgresql"] = measure("postgresql", args.nodes, args.repeat, pg)
    base = statistics.median(rows["memory"])
    for kind, xs in rows.items():
        med = statistics.median(xs)
        extra = (
            f"   store cost {med - base:7.1f} us/node   ratio {med / base:5.2f}x"
            if kind != "memory"
            else ""
        )
        print(f"{kind:11} min {min(xs):7.1f} us/node   median {med:7.1f} us/node{extra}")


if __name__ == "__main__":
    main()
