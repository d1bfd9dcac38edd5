"""``dagtier batch --ray`` with 1 and 2 actor processes on a CPU-bound batch: the 10-node
workflow of bench/batch.py on an instant in-process model, every item a durable run in one
SQLite file, so what is measured is dagtier's own work per item (and the store's).

Throughput counts from the first run's start to the last run's end as the store recorded
them (Ray's start-up and the actors' imports are not counted); the best of ``--repeat``
tries, alternating 1 and 2 actors, so a burst of load from other processes on the machine
counts against neither. Goal: 2 actors >= 1.7x 1 actor.

Ray binds the machine's interface address; as root the script re-runs itself in a network
namespace with only loopback (``unshare --net``).

    python bench/batch_ray.py [--items 2000] [--concurrency 32] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from batch import workflow_yaml

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


def items_per_s(db: Path) -> float:
    con = sqlite3.connect(db)
    n, first, last = con.execute(
        "SELECT COUNT(*), MIN(started_at), MAX(finished_at) FROM runs WHERE status = 'succeeded'"
    ).fetchone()
    con.close()
    return float(n / (last - first))


def measure(actors: int, items: int, concurrency: int, tmp: Path, attempt: int) -> float:
    import anyio

    from dagtier.batch_ray import run_batch_on_ray

    wf, models, data = tmp / "wf.yaml", tmp / "models.yaml", tmp / "items.jsonl"
    wf.write_text(workflow_yaml())
    models.write_text(MODELS)
    data.write_text("".join(f'{{"text": "item {i}"}}\n' for i in range(items)))
    db = tmp / f"ray{actors}-{attempt}.db"

    async def go() -> Any:
        return await run_batch_on_ray(
            wf,
            data,
            store=db,
            models=models,
            actors=actors,
            concurrency=concurrency,
            providers=providers,
        )

    summary = anyio.run(go)
    assert summary.succeeded == items, summary
    return items_per_s(db)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=32, help="runs in flight per actor")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
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
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.ERROR)
    rates = {1: 0.0, 2: 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        for attempt in range(args.repeat):
            for actors in (1, 2):
                rate = measure(actors, args.items, args.concurrency, Path(tmp), attempt)
                rates[actors] = max(rates[actors], rate)
    ray.shutdown()
    print(
        f"{args.items} items x 10 nodes, instant model, SQLite store, {os.cpu_count()} CPUs, "
        f"best of {args.repeat}"
    )
    for actors, rate in rates.items():
        print(f"{actors} actor{'s' if actors > 1 else ' '}  {rate:8.1f} items/s")
    print(f"speed-up 1 -> 2 actors: {rates[2] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
