"""Makespan against the critical path: does a slow node hold anything else back?

The same layered DAGs as bench/overhead.py (width 50, 3 parents per node) run on an
in-process provider whose every call sleeps a log-normal latency (median ``--scale``
seconds, sigma ``--sigma``), drawn once per node so that every scheduler sees the same
durations. The critical path (the longest chain of latencies) is a lower bound on any
schedule's makespan; the printed ratio is makespan / critical path (target <= 1.02). A
second ratio uses the critical path of the durations the sleeps really took, which removes
the event loop's timer overshoot (up to 1 ms per sleep) and leaves the scheduler's own
delay.

A warm-up run at zero latency comes first: importing dagtier's executor and planning the
workflow happen once per process and workflow, not per run.

For contrast, the same durations run on a lock-step ("superstep") scheduler, which starts a
layer only when every node of the previous one has finished, as LangGraph does: its
makespan is the sum of each layer's slowest node.

    python bench/makespan.py              # 1,000 nodes (scale 30 ms) and 10,000 (10 ms)
    python bench/makespan.py -n 1000 --scale 0.05 --sigma 1.0
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

from _dags import layered_edges, python_catalog, workflow_for

import dagtier
from dagtier.graph import build_graph, critical_path, generations
from dagtier.providers import Gateway, ProviderRegistry, PythonProvider


def latencies(
    deps: dict[str, list[str]], scale: float, sigma: float, seed: int
) -> dict[str, float]:
    rng = random.Random(seed)
    return {nid: scale * rng.lognormvariate(0.0, sigma) for nid in deps}


async def run_dagtier(wf: Any, lat: dict[str, float], took: dict[str, float]) -> float:
    """Run ``wf`` with each node's model sleeping its latency; record how long each sleep
    really took in ``took`` (timers overshoot: asyncio's epoll wait has 1 ms granularity)."""

    async def model(_: Any, request: Any) -> str:
        nid = request.metadata["node_id"]
        t = time.perf_counter()
        await anyio.sleep(lat[nid])
        took[nid] = time.perf_counter() - t
        return "ok"

    gateway = Gateway(python_catalog(), ProviderRegistry({"python": PythonProvider(model)}))
    t0 = time.perf_counter()
    result = await dagtier.run(wf, gateway=gateway)
    elapsed = time.perf_counter() - t0
    assert result.ok, result.status
    return elapsed


async def run_superstep(layers: list[list[str]], lat: dict[str, float]) -> float:
    """Lock-step: each layer starts when the whole previous layer has finished."""
    t0 = time.perf_counter()
    for layer in layers:
        async with anyio.create_task_group() as tg:
            for nid in layer:
                tg.start_soon(anyio.sleep, lat[nid])
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", type=int, action="append", help="node counts (default 1000 and 10000)")
    ap.add_argument("--scale", type=float, help="median latency in seconds (default by size)")
    ap.add_argument("--sigma", type=float, default=0.75, help="log-normal sigma (default 0.75)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-superstep", action="store_true", help="skip the lock-step contrast")
    args = ap.parse_args()
    sizes = args.n or [1000, 10_000]
    print(f"log-normal latencies, sigma {args.sigma}; ratio = makespan / critical path")
    print(
        f"{'nodes':>7} {'median ms':>9} {'critical path s':>15} {'dagtier s':>10} "
        f"{'ratio':>7} {'lock-step s':>11} {'ratio':>7}"
    )
    for n in sizes:
        scale = args.scale or (0.03 if n <= 2000 else 0.01)
        deps = layered_edges(n)
        wf = workflow_for(deps)
        lat = latencies(deps, scale, args.sigma, args.seed)
        g = build_graph(wf)
        _, cp = critical_path(g, lat)
        layers = generations(g)
        took: dict[str, float] = {}

        async def both() -> tuple[float, float | None]:
            # warm-up at zero latency: imports and the workflow's plan are one-time costs
            await run_dagtier(wf, dict.fromkeys(lat, 0.0), {})  # noqa: B023
            made = await run_dagtier(wf, lat, took)  # noqa: B023
            step = None if args.no_superstep else await run_superstep(layers, lat)  # noqa: B023
            return made, step

        made, step = anyio.run(both)
        step_txt = f"{step:>11.3f} {step / cp:>7.3f}" if step is not None else ""
        print(f"{n:>7} {scale * 1000:>9.1f} {cp:>15.3f} {made:>10.3f} {made / cp:>7.3f} {step_txt}")
        _, cp_took = critical_path(g, took)
        analytic = sum(max(lat[x] for x in layer) for layer in layers)
        print(
            f"{'':>7} dagtier against the critical path of the sleeps as they really took "
            f"(timer overshoot removed): {made / cp_took:.3f} x\n"
            f"{'':>7} lock-step by formula (sum of layer maxima): {analytic / cp:.3f} x"
        )


if __name__ == "__main__":
    main()
