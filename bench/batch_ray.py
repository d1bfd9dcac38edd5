"""``dagtier batch --ray`` with 1 and 2 actor processes on a CPU-bound batch: the 10-node
workflow of bench/batch.py on an instant in-process model, every item a durable run in one
store, so what is measured is dagtier's own work per item (and the store's): a SQLite file
(``--store sqlite``, the default), whose single write lock serialises both actors' commits,
or a throwaway PostgreSQL server (``--store postgresql``; or ``--postgres URL``), where
claims and commits of the two actors do not wait for each other.

Throughput counts from the first run's start to the last run's end as the store recorded
them (Ray's start-up and the actors' imports are not counted); the best of ``--repeat``
tries, alternating 1 and 2 actors, so a burst of load from other processes on the machine
counts against neither. Goal: 2 actors >= 1.7x 1 actor.

Ray binds the machine's interface address; as root the script re-runs itself in a network
namespace with only loopback (``unshare --net``).

    python bench/batch_ray.py [--items 2000] [--concurrency 32] [--repeat 3]
        [--store sqlite|postgresql] [--postgres URL] [--profile]

``--profile`` runs one worker instead (:func:`dagtier.batch_ray.drain`, what an actor runs)
in this process, without Ray, and prints its CPU time per item, the PostgreSQL server's
(the throwaway cluster's), and the store calls it made per item.

Prints the load average before and after (the machine may be shared).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
from batch import workflow_yaml
from store_overhead import _postgres

MODELS = """
models:
  sim-small: {provider: python, model: sim-small, price: {input: 0.1, output: 0.4}}
  sim-large: {provider: python, model: sim-large, price: {input: 0.1, output: 0.4}}
tiers: {1: [sim-small], 2: [sim-large], 3: [sim-large]}
"""


def providers() -> dict[str, Any]:
    """Made in each actor: the instant model."""
    from dagtier.providers import PythonProvider

    return {"python": PythonProvider(lambda model, request: f"ok:{request.prompt_chars}")}


_SPAN = "SELECT COUNT(*), MIN(started_at), MAX(finished_at) FROM runs WHERE status = 'succeeded'"


def items_per_s(store: str) -> float:
    if store.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(store) as pg:
            n, first, last = pg.execute(_SPAN).fetchone()
    else:
        con = sqlite3.connect(store)
        n, first, last = con.execute(_SPAN).fetchone()
        con.close()
    return float(n / (last - first))


@contextlib.contextmanager
def fresh_store(kind: str, server: str | None, tmp: Path, name: str) -> Iterator[str]:
    """A new, empty store for one measurement: a SQLite file, or a database on ``server``."""
    if kind == "sqlite":
        yield str(tmp / f"{name}.db")
        return
    assert server is not None
    import psycopg

    with psycopg.connect(server, autocommit=True) as con:
        con.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlsplit(server)._replace(path=f"/{name}").geturl()
    finally:
        with psycopg.connect(server, autocommit=True) as con:
            con.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def measure(actors: int, items: int, concurrency: int, tmp: Path, store: str) -> float:
    import anyio

    from dagtier.batch_ray import run_batch_on_ray

    wf, models, data = tmp / "wf.yaml", tmp / "models.yaml", tmp / "items.jsonl"
    wf.write_text(workflow_yaml())
    models.write_text(MODELS)
    data.write_text("".join(f'{{"text": "item {i}"}}\n' for i in range(items)))

    async def go() -> Any:
        return await run_batch_on_ray(
            wf,
            data,
            store=store,
            models=models,
            actors=actors,
            concurrency=concurrency,
            providers=providers,
        )

    summary = anyio.run(go)
    assert summary.succeeded == items, summary
    return items_per_s(store)


STORE_CALLS = (
    "claim_items",
    "load_run",
    "begin_run",
    "commit_nodes",
    "finish_run",
    "finish_item",
    "items_left",
)


def _server_cpu_s(url: str) -> float:
    """CPU seconds of the throwaway cluster's server processes so far (the postmaster, its
    children alive and those it reaped)."""
    data = Path(url.rsplit("host=", 1)[1]) / "data"
    postmaster = int((data / "postmaster.pid").read_text().split()[0])
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid, ppid = int(stat.parent.name), int(fields[1])
        if pid == postmaster:
            total += sum(int(x) for x in fields[11:15])  # its own and its reaped children's
        elif ppid == postmaster:
            total += sum(int(x) for x in fields[11:13])
    return total / os.sysconf("SC_CLK_TCK")


def profile(items: int, concurrency: int, tmp: Path, store: str, server: str | None) -> None:
    import resource
    import time
    from collections import Counter

    import anyio

    from dagtier.batch_ray import WorkerConfig, drain
    from dagtier.store import BatchRecord, QueuedItem, open_store

    wf, models = tmp / "wf.yaml", tmp / "models.yaml"
    wf.write_text(workflow_yaml())
    models.write_text(MODELS)
    calls: Counter[str] = Counter()
    st: Any = open_store(store)
    for name in STORE_CALLS:  # count the calls a worker makes (one class per store kind)
        method = getattr(type(st), name)

        async def counted(self: Any, *a: Any, _m: Any = method, _n: str = name, **k: Any) -> Any:
            calls[_n] += 1
            return await _m(self, *a, **k)

        setattr(type(st), name, counted)

    async def queue() -> None:
        await st.claim_batch(BatchRecord("b", "bench_batch", "running", 0.0, "-", "-", items))
        rows = [QueuedItem(i, i + 1, f"b-{i}", {"text": f"item {i}"}) for i in range(items)]
        await st.enqueue_items("b", rows)
        await st.aclose()

    anyio.run(queue)
    config = WorkerConfig("b", str(wf), store, str(models), 1, concurrency, providers=providers)
    server_before = _server_cpu_s(server) if server else 0.0
    before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    done = anyio.run(drain, config)
    elapsed, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    print(
        f"1 worker, no Ray: {done.ran} items in {elapsed:.1f} s, {done.ran / elapsed:.0f} items/s"
    )
    print(f"worker CPU      {cpu * 1000 / done.ran:6.2f} ms per item")
    if server:
        server_cpu = _server_cpu_s(server) - server_before
        print(f"PostgreSQL CPU  {server_cpu * 1000 / done.ran:6.2f} ms per item")
    per_item = ", ".join(f"{n} {calls[n] / done.ran:.2f}" for n in STORE_CALLS)
    print(f"store calls per item: {per_item}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=32, help="runs in flight per actor")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--store", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--postgres", metavar="URL", help="an existing server (default: throwaway)")
    ap.add_argument("--profile", action="store_true", help="one worker, no Ray (see above)")
    args = ap.parse_args()
    if args.profile:
        server_cm = (
            _postgres(args.postgres) if args.store == "postgresql" else contextlib.nullcontext()
        )
        with tempfile.TemporaryDirectory() as tmp, server_cm as server:
            print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
            with fresh_store(args.store, server, Path(tmp), "profile") as store:
                own = server if args.store == "postgresql" and not args.postgres else None
                profile(args.items, args.concurrency, Path(tmp), store, own)
            print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
        return
    if os.geteuid() == 0 and not os.environ.get("DAGTIER_BENCH_NETNS"):
        cmd = f'ip link set lo up && exec "{sys.executable}" "{__file__}" ' + " ".join(
            f'"{a}"' for a in sys.argv[1:]
        )
        env = {**os.environ, "DAGTIER_BENCH_NETNS": "1", "RAY_USAGE_STATS_ENABLED": "0"}
        sys.exit(subprocess.run(["unshare", "--net", "sh", "-c", cmd], env=env).returncode)
    import logging

    import ray

    from dagtier._logging import configure_logging

    configure_logging(level=logging.ERROR)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)
    rates = {1: 0.0, 2: 0.0}
    tries: dict[int, list[float]] = {1: [], 2: []}
    server_cm = _postgres(args.postgres) if args.store == "postgresql" else contextlib.nullcontext()
    with tempfile.TemporaryDirectory() as tmp, server_cm as server:
        for attempt in range(args.repeat):
            for actors in (1, 2):
                name = f"ray{actors}_{attempt}"
                with fresh_store(args.store, server, Path(tmp), name) as store:
                    rate = measure(actors, args.items, args.concurrency, Path(tmp), store)
                tries[actors].append(rate)
                rates[actors] = max(rates[actors], rate)
    ray.shutdown()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(
        f"{args.items} items x 10 nodes, instant model, {args.store} store, "
        f"{os.cpu_count()} CPUs, best of {args.repeat} "
        f"(1 actor: {', '.join(f'{r:.0f}' for r in tries[1])}; "
        f"2 actors: {', '.join(f'{r:.0f}' for r in tries[2])} items/s)"
    )
    for actors, rate in rates.items():
        print(f"{actors} actor{'s' if actors > 1 else ' '}  {rate:8.1f} items/s")
    print(f"speed-up 1 -> 2 actors: {rates[2] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
