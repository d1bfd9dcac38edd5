"""What a judged cascade could reach at best on the routing benchmark's ladders.

    python bench/routing_bounds.py [DATA_DIR] [--far 0.1] [--frr 0.1]

No policy learns anything here: per task, the *expected* quality and cost of a judged
cascade from tier 1 stopping at tier c (c = 1 .. top; the last answer accepted unverified)
are computed from the recorded outcomes, with the judge erring at the given rates and each
judgement costing tier 1's mean cost, as in ``bench/routing.py``. Then, as if every task's
true rates were known in advance, the cheapest per-task mix of those choices that reaches
a quality is found (the lower convex hull over tasks). That is a bound for the policies'
ceilings (``dagtier.policies.escalation``) and for any per-task router that must judge
answers to escalate: a learnt policy pays for learning on top of it.
"""

from __future__ import annotations

import argparse
import itertools
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))

QUALITIES = (1.03, 1.00, 0.98, 0.95)


def expected(
    row: dict[str, tuple[float, float]],
    tiers: list[str],
    c: int,
    judge: float,
    far: float,
    frr: float,
) -> tuple[float, float]:
    """Expected (quality, cost) of a judged cascade from tier 1 up to tier ``c`` (0-based)."""
    q = cost = 0.0
    reach = 1.0
    for k in range(c + 1):
        quality, price = row[tiers[k]]
        cost += reach * (price + judge)
        if k == c:
            q += reach * quality
        else:
            passed = (1 - frr) if quality >= 0.5 else far
            q += reach * passed * quality
            reach *= 1 - passed
    return q, cost


def min_cost(
    options: dict[str, list[tuple[float, float]]], quality: float, scale: float
) -> float | None:
    """The least total cost reaching ``quality`` (a total), mixing choices within tasks:
    sweep the price of quality (in units of ``scale``: the top tier's quality per dollar)
    and interpolate between the hull's vertices."""
    points = []
    for i in range(4001):
        lam = scale * i / 1000
        tq = tc = 0.0
        for opts in options.values():
            best = max(opts, key=lambda o: o[0] - lam * o[1])
            tq += best[0]
            tc += best[1]
        points.append((tc, tq))
    points = sorted(set(points))
    for (c0, q0), (c1, q1) in itertools.pairwise(points):
        if q0 < quality <= q1:
            return c0 + (c1 - c0) * (quality - q0) / (q1 - q0)
    reachable = [c for c, q in points if q >= quality]
    return min(reachable) if reachable else None


def main() -> int:
    from routing import LADDERS  # type: ignore[import-not-found]

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("data", nargs="?", type=Path, default=ROOT.parent / "shared/data/outcomes")
    ap.add_argument("--far", type=float, default=0.1)
    ap.add_argument("--frr", type=float, default=0.1)
    args = ap.parse_args()
    if not args.data.is_dir():
        print(f"skipped: no outcome data at {args.data} (pass its directory as DATA_DIR)")
        return 0
    from dagtier.replay import load_outcomes

    print(
        f"judged cascades from tier 1, per-task best ceiling known in advance "
        f"(judge {args.far:.0%} false accept, {args.frr:.0%} false reject, cost = tier 1's):"
    )
    print(
        "ladder           tier 1 $ = judge $  plain cascade q / $   least % top $ for q >= "
        + "  ".join(f"{q:.0%}" for q in QUALITIES)
    )
    for fname, label, tiers in LADDERS:
        path = args.data / fname
        if not path.is_file():
            print(f"skipped {label}: no {path}")
            continue
        o = load_outcomes(path, models=tiers)
        queries = o.complete_queries(tiers)
        n = len(queries)
        top_q = sum(o.table[q][tiers[-1]][0] for q in queries) / n
        top_c = sum(o.table[q][tiers[-1]][1] for q in queries) / n
        judge = sum(o.table[q][tiers[0]][1] for q in queries) / n
        options: dict[str, list[tuple[float, float]]] = defaultdict(list)
        by_task: dict[str, list[str]] = defaultdict(list)
        for q in queries:
            by_task[o.tasks[q]].append(q)
        for task, qs in by_task.items():
            for c in range(len(tiers)):
                pts = [expected(o.table[q], tiers, c, judge, args.far, args.frr) for q in qs]
                options[task].append((sum(p[0] for p in pts), sum(p[1] for p in pts)))
        plain_q = sum(opts[-1][0] for opts in options.values()) / n / top_q
        plain_c = sum(opts[-1][1] for opts in options.values()) / n / top_c
        bounds = []
        for share in QUALITIES:
            cost = min_cost(options, share * top_q * n, top_q / top_c)
            bounds.append("  n/a" if cost is None else f"{cost / n / top_c:5.1%}")
        print(
            f"{label:16s} {judge / top_c:17.1%}   {plain_q:6.1%} / {plain_c:5.1%}"
            f"          " + "  ".join(bounds)
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
