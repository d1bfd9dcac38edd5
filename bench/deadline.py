"""What a deadline buys and costs: a run's time and money with and without ``deadline_s``.

A four-node workflow: ``outline -> draft -> summary`` (the critical path) and ``tags`` beside
it, every node a cascade with a check. The models are in-process functions that sleep a
known time per tier (``--scale`` x 1.0 / 4.0 / 2.5: the middle tier is the slow one, as a
reasoning model can be) and pass the check with a chance per tier (chain nodes 30% / 60% /
100%, ``tags`` 90% / 100% / 100%), drawn from a seed per run and node, so every variant of
run ``i`` sees the same answers.

First ``--learn`` runs without a deadline fill the statistics (latency and pass rate per
task key and tier are learnt, not given). Then ``--runs`` rounds alternate three variants
on those statistics, each round the same draws:

* ``cascade``: no deadline;
* ``deadline``: ``deadline_s`` = ``--deadline`` (default: three quarters of the median
  time of the learning runs);
* ``top tier``: every node static on tier 3.

Printed per variant: median and 90th-percentile time, the share of runs within the
deadline, mean cost, and ratios to ``cascade`` measured in the same rounds.

    python bench/deadline.py
    python bench/deadline.py --scale 0.05 --runs 40 --deadline 0.3
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "src"))

import dagtier
from dagtier.catalog import catalog_from_dict
from dagtier.providers import Gateway, ProviderRegistry, PythonProvider
from dagtier.store import MemoryStore

LATENCY = {1: 1.0, 2: 4.0, 3: 2.5}
"""Seconds per call per tier, times --scale."""
PASS = {"chain": {1: 0.3, 2: 0.6, 3: 1.0}, "tags": {1: 0.9, 2: 1.0, 3: 1.0}}
PRICES = {1: 1.0, 2: 10.0, 3: 100.0}

FLOW = """\
name: deadline-bench
inputs: {{topic: string}}
defaults:
  checks: [{{type: regex, pattern: "^PASS"}}]
  policy: {policy}
nodes:
  outline: {{prompt: "outline {{{{ inputs.topic }}}}"}}
  draft: {{prompt: "draft {{{{ outline }}}}", depends_on: [outline]}}
  summary: {{prompt: "summary {{{{ draft }}}}", depends_on: [draft]}}
  tags: {{prompt: "tags {{{{ inputs.topic }}}}"}}
"""


def catalog() -> dagtier.Catalog:
    models = {
        f"t{t}": {"provider": "python", "model": f"t{t}", "price": {"input": p, "output": p}}
        for t, p in PRICES.items()
    }
    return catalog_from_dict({"models": models, "tiers": {t: [f"t{t}"] for t in PRICES}})


def gateway(cat: dagtier.Catalog, scale: float, seed: int) -> Gateway:
    async def model(entry: Any, request: Any) -> str:
        tier = int(entry.name[1:])
        node = request.metadata["node_id"]
        # the same draw for the same run, node and tier in every variant
        draw = random.Random(f"{seed}/{request.metadata['run_id'].split(':')[0]}/{node}/{tier}")
        await anyio.sleep(LATENCY[tier] * scale)
        passes = PASS["tags" if node == "tags" else "chain"][tier]
        return ("PASS " if draw.random() < passes else "FAIL ") + "x" * 200

    return Gateway(cat, ProviderRegistry({"python": PythonProvider(model)}))


async def one(
    plan: dagtier.Plan, gw: Gateway, store: MemoryStore, run_id: str, deadline_s: float | None
) -> tuple[float, float, bool]:
    t0 = time.perf_counter()
    r = await dagtier.run(
        plan, {"topic": "t"}, gateway=gw, store=store, run_id=run_id, deadline_s=deadline_s
    )
    elapsed = time.perf_counter() - t0
    changed = any(n.deadline_tier for n in r.nodes.values())
    return elapsed, r.cost, changed


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


async def main_async(args: argparse.Namespace) -> None:
    cat = catalog()
    cascade = dagtier.compile_workflow(
        dagtier.parse_workflow(FLOW.format(policy="{kind: cascade}")), cat
    )
    top = dagtier.compile_workflow(
        dagtier.parse_workflow(FLOW.format(policy="{kind: static, tier: 3}")), cat
    )
    gw = gateway(cat, args.scale, args.seed)
    store = MemoryStore()
    learnt = [(await one(cascade, gw, store, f"L{i}", None))[0] for i in range(args.learn)]
    deadline = args.deadline or 0.75 * statistics.median(learnt)
    variants: dict[str, tuple[dagtier.Plan, float | None]] = {
        "cascade": (cascade, None),
        "deadline": (cascade, deadline),
        "top tier": (top, None),
    }
    times: dict[str, list[float]] = {v: [] for v in variants}
    costs: dict[str, list[float]] = {v: [] for v in variants}
    changed = 0
    for i in range(args.runs):
        order = list(variants) if i % 2 == 0 else list(reversed(variants))
        for v in order:
            plan, d = variants[v]
            # a fresh copy of the learnt statistics: no variant learns from another's runs
            runs_store = MemoryStore()
            runs_store.stats = copy.deepcopy(store.stats)
            elapsed, cost, moved = await one(plan, gw, runs_store, f"R{i}:{v}", d)
            times[v].append(elapsed)
            costs[v].append(cost)
            changed += moved and v == "deadline"
    await gw.aclose()
    base_t = statistics.median(times["cascade"])
    base_c = statistics.mean(costs["cascade"])
    print(
        f"{args.learn} learning runs (median {statistics.median(learnt):.3f} s), then "
        f"{args.runs} rounds; deadline {deadline:.3f} s; scale {args.scale} s"
    )
    print(f"{'variant':<10} {'median s':>9} {'p90 s':>8} {'met':>6} {'cost $':>11} "
          f"{'time/casc':>10} {'cost/casc':>10}")  # fmt: skip
    for v in variants:
        t, c = times[v], costs[v]
        met = sum(x <= deadline for x in t) / len(t)
        print(
            f"{v:<10} {statistics.median(t):>9.3f} {pct(t, 0.9):>8.3f} {met:>6.0%} "
            f"{statistics.mean(c):>11.7f} {statistics.median(t) / base_t:>10.2f} "
            f"{statistics.mean(c) / base_c:>10.2f}"
        )
    print(f"the deadline started a node higher in {changed} of {args.runs} runs")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scale", type=float, default=0.1, help="seconds per latency unit")
    ap.add_argument("--learn", type=int, default=30, help="runs that fill the statistics")
    ap.add_argument("--runs", type=int, default=30, help="rounds of the three variants")
    ap.add_argument("--deadline", type=float, default=None, help="seconds (default: see above)")
    ap.add_argument("--seed", type=int, default=0)
    anyio.run(main_async, ap.parse_args())


if __name__ == "__main__":
    main()
