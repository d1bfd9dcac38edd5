"""Per-node cost of the policies and checks: microseconds per node on a zero-latency model.

A flat workflow of N independent nodes runs on an in-process provider that answers at
once, so the time is dagtier's own. In the same run it measures, per node:

* static, no checks (the hot path: the policy must add nothing here; the baseline);
* static with a regex and a length check;
* cascade with the same checks, passing at tier 1;
* adaptive with the same checks (reads and writes the in-memory statistics per node).

and prints each as µs/node and as a ratio to the static baseline.

    python bench/policies.py            # N = 1,000, best and median of 11 runs
    python bench/policies.py -n 2000 -r 21
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import dagtier
from dagtier.providers import Gateway, ProviderRegistry, PythonProvider
from dagtier.spec.models import Workflow

CHECKS = [{"type": "regex", "pattern": "^ok"}, {"type": "length", "max": 100}]
SHAPES: dict[str, dict[str, Any]] = {
    "static, no checks": {"policy": {"kind": "static", "tier": 1}},
    "static + 2 checks": {"policy": {"kind": "static", "tier": 1}, "checks": CHECKS},
    "cascade + 2 checks": {"policy": {"kind": "cascade"}, "checks": CHECKS},
    "adaptive + 2 checks": {"policy": {"kind": "adaptive", "canary": 0}, "checks": CHECKS},
}


def build(n: int, settings: dict[str, Any]) -> Workflow:
    nodes = {f"n{i}": {"prompt": "go", "task": "t", **settings} for i in range(n)}
    return Workflow.model_validate({"name": "bench", "nodes": nodes, "concurrency": n})


def catalog() -> Any:
    price = {"input": 1.0, "output": 1.0}
    return dagtier.catalog_from_dict(
        {
            "models": {
                f"m{t}": {"provider": "python", "model": f"m{t}", "price": price} for t in (1, 2, 3)
            },
            "tiers": {1: ["m1"], 2: ["m2"], 3: ["m3"]},
        }
    )


async def time_once(wf: Workflow, gw: Gateway) -> float:
    store = dagtier.MemoryStore()
    gc.collect()
    t0 = time.perf_counter()
    r = await dagtier.run(wf, {}, gateway=gw, store=store, seed=0)
    dt = time.perf_counter() - t0
    assert r.ok, r.error
    return dt


async def main(n: int, repeats: int) -> None:
    import logging

    from dagtier._logging import configure_logging

    configure_logging(level=logging.WARNING)  # the info line per attempt is not the subject
    gw = Gateway(catalog(), ProviderRegistry({"python": PythonProvider(lambda m, r: "ok")}))
    results: dict[str, tuple[float, float]] = {}
    for name, settings in SHAPES.items():
        wf = build(n, settings)
        await time_once(wf, gw)  # warm-up: builds the plan and the check plans
        times = [await time_once(wf, gw) for _ in range(repeats)]
        results[name] = (min(times) / n * 1e6, statistics.median(times) / n * 1e6)
    base = results["static, no checks"][0]
    print(
        f"{n} independent nodes, {repeats} runs each; µs/node (min / median), ratio of min to static"
    )
    for name, (best, med) in results.items():
        print(f"  {name:22s} {best:7.1f} / {med:7.1f}   x{best / base:.2f}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("-r", "--repeats", type=int, default=11)
    args = ap.parse_args()
    anyio.run(main, args.n, args.repeats)
