"""Routing benchmark: replay recorded real outcomes under each policy; print one table.

    python bench/routing.py [DATA_DIR] [--seed 0] [--limit N] [--far 0.1] [--frr 0.1]
                            [--skip-worth 0.01] [--sweep] [--no-routers]

DATA_DIR holds the outcome files described in its README (default:
``../shared/data/outcomes`` relative to the repository root). The ladders are the ones that
README names. Everything runs through dagtier's real executor, policies and statistics
store (``dagtier.replay.replay``, the engine of ``dagtier replay``); the judge errs at the
given rates and each judgement costs tier 1's mean cost on the file.

Targets (10% false accept, 10% false reject, judge cost included), checked per ladder:
  cascade   >= 100% of the top tier's quality at <= 35% of its cost
  adaptive  >=  95% of the top tier's quality at <= 25% of its cost

Routers (a second table; needs NAME.queries.csv.gz beside each file). Each stream's first
half only trains, both policies are scored on the second half (no peeking). Two automatic
router+cascade thresholds: break-even (route where skipping tier 1 pays in money) and
``skip_worth=W`` (each avoided escalation is also worth W calls of the top tier: a little
cost and quality traded for fewer wasted attempts):
  router+cascade skip_worth=W vs cascade, MMLU-Pro Llama: >= 15% fewer wasted cheap
      attempts (tier-1 answers escalated past: tier 1 is the cheap tier; "wasted" counts
      every answer escalated past, tier 2's too), quality within 1 point (of the top
      tier's quality), cost within +1 point of the top tier's cost
  both router+cascade rows vs cascade, every ladder: quality within 1 point, cost within +1
  router-only (no judge), RouteLLM MMLU: >= 95% of GPT-4's quality at <= 55% of its cost
--sweep adds router+cascade at fixed thresholds and at other skip_worth values (the
trade-off the automatic ones pick from).

An inverted ladder (MMLU-Pro Llama 3.1 8B / 70B / Jamba 1.5 Large, whose top tier answers
worse than its middle one at twice its price): adaptive within 5 points of the best static
tier on quality and cost (points of the top tier's figures), on the whole stream.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

LADDERS: list[tuple[str, str, list[str]]] = [
    (
        "mmlu_pro.csv.gz",
        "mmlu_pro gemini",
        ["gemini-1.5-flash-002", "gemini-1.5-pro-002", "gpt-4o-2024-05-13"],
    ),
    (
        "mmlu_pro.csv.gz",
        "mmlu_pro llama",
        ["Meta-Llama-3_1-8B-Instruct", "Meta-Llama-3_1-70B-Instruct", "gpt-4o-2024-05-13"],
    ),
    (
        "routellm_mmlu.csv.gz",
        "routellm mmlu",
        ["mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"],
    ),
    (
        "routellm_gsm8k.csv.gz",
        "routellm gsm8k",
        ["mistralai/Mixtral-8x7B-Instruct-v0.1", "gpt-4-1106-preview"],
    ),
]
TARGETS = {"cascade": (1.00, 0.35), "adaptive": (0.95, 0.25)}
INVERTED = ["Meta-Llama-3_1-8B-Instruct", "Meta-Llama-3_1-70B-Instruct", "jamba-1.5-large"]
SWEEP = (0.5, 0.6, 0.7, 0.8)
SWEEP_WORTH = (0.005, 0.02, 0.03)
SKIP_WORTH = 0.01


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("data", nargs="?", type=Path, default=ROOT.parent / "shared/data/outcomes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--far", type=float, default=0.1)
    ap.add_argument("--frr", type=float, default=0.1)
    ap.add_argument(
        "--skip-worth",
        type=float,
        default=SKIP_WORTH,
        help="router+cascade's worth of an avoided escalation, in top-tier calls",
    )
    ap.add_argument("--sweep", action="store_true", help="router+cascade at fixed thresholds")
    ap.add_argument("--no-routers", action="store_true", help="only the policies table")
    args = ap.parse_args()
    if not args.data.is_dir():
        print(f"skipped: no outcome data at {args.data} (pass its directory as DATA_DIR)")
        return 0

    import anyio
    from rich.console import Console
    from rich.table import Table

    from dagtier._logging import configure_logging
    from dagtier.replay import load_outcomes, replay

    configure_logging(level=logging.WARNING)
    table = Table(
        title=f"routing on recorded outcomes (judge {args.far:.0%} false accept, "
        f"{args.frr:.0%} false reject, judge cost = tier 1 mean cost; seed {args.seed})"
    )
    for col in (
        "ladder",
        "policy",
        "quality",
        "% top q",
        "$/query",
        "% top $",
        "PGR",
        "escalated",
        "calls t1/t2/t3",
        "judge % of $",
        "target",
    ):
        table.add_column(col, justify="left" if col in ("ladder", "policy", "target") else "right")
    misses: list[str] = []
    runs = 0
    replay_s = 0.0
    # each file is read once, with every model any ladder of it uses (reading is the cost)
    wanted: dict[str, set[str]] = {}
    for fname, _, tiers in [*LADDERS, ("mmlu_pro.csv.gz", "inverted", INVERTED)]:
        wanted.setdefault(fname, set()).update(tiers)
    loaded: dict[str, object] = {}
    for fname, label, tiers in LADDERS:
        path = args.data / fname
        if not path.is_file():
            print(f"skipped {label}: no {path}")
            continue
        top = len(tiers)
        policies = ["static:1", f"static:{top}", "cascade", "adaptive"]
        if fname not in loaded:
            loaded[fname] = load_outcomes(path, models=sorted(wanted[fname]))
        outcomes = loaded[fname]

        async def go(o: object = outcomes, t: list[str] = tiers, p: list[str] = policies) -> object:
            return await replay(
                o,  # type: ignore[arg-type]
                t,
                p,
                false_accept=args.far,
                false_reject=args.frr,
                seed=args.seed,
                limit=args.limit,
            )

        report = anyio.run(go)
        runs += report.queries * len(report.policies)  # type: ignore[attr-defined]
        replay_s += report.seconds  # type: ignore[attr-defined]
        for st in report.policies:  # type: ignore[attr-defined]
            target = TARGETS.get(st.label)
            verdict = ""
            if target is not None:
                ok = st.quality_pct >= target[0] and st.cost_pct <= target[1]
                verdict = (
                    f"{'met' if ok else 'MISSED'} (>= {target[0]:.0%} q, <= {target[1]:.0%} $)"
                )
                if not ok:
                    misses.append(f"{label} {st.label}")
            shares = st.call_shares()
            table.add_row(
                f"{label} ({report.queries:,} q)",  # type: ignore[attr-defined]
                st.label,
                f"{st.mean_quality:.4f}",
                f"{st.quality_pct:.1%}",
                f"{st.mean_cost:.6f}",
                f"{st.cost_pct:.1%}",
                f"{st.pgr:.2f}" if st.pgr is not None else "-",
                f"{st.escalation_rate:.1%}",
                "/".join(f"{100 * shares[t]:.0f}" for t in range(1, top + 1)),
                f"{st.mean_judge_cost / st.mean_cost:.1%}" if st.mean_cost else "-",
                verdict,
            )
        o = report.oracle  # type: ignore[attr-defined]
        t = report.top  # type: ignore[attr-defined]
        table.add_row(
            "",
            "oracle",
            f"{o.mean_quality:.4f}",
            f"{o.mean_quality / t.mean_quality:.1%}",
            f"{o.mean_cost:.6f}",
            f"{o.mean_cost / t.mean_cost:.1%}",
            "",
            "",
            "",
            "",
            f"AIQ tiers {report.aiq_tiers:.4f} -> policies {report.aiq_policies:.4f}",  # type: ignore[attr-defined]
        )
        table.add_section()
    Console(width=200).print(table)
    if runs:
        print(
            f"{runs:,} replayed runs through the real executor in {replay_s:.1f} s "
            f"({1e6 * replay_s / runs:.0f} us per run)"
        )
    if not args.no_routers:
        misses += routers_table(args, loaded)
        misses += inverted_ladder(args, loaded)
    print("targets: all met" if not misses else "targets missed: " + "; ".join(misses))
    return 0


def _replay(
    args: argparse.Namespace,
    outcomes: object,
    tiers: list[str],
    policies: list[str],
    texts: object = None,
    train: float | None = None,
) -> object:
    import anyio

    from dagtier.replay import replay

    async def go() -> object:
        return await replay(
            outcomes,  # type: ignore[arg-type]
            tiers,
            policies,
            false_accept=args.far,
            false_reject=args.frr,
            seed=args.seed,
            limit=args.limit,
            texts=texts,  # type: ignore[arg-type]
            train=train,
        )

    return anyio.run(go)


def routers_table(args: argparse.Namespace, loaded: dict[str, object]) -> list[str]:
    """router+cascade against cascade on each ladder's second half; route-only where set."""
    from rich.console import Console
    from rich.table import Table

    from dagtier.replay import load_outcomes, load_queries

    table = Table(
        title=f"routers on the second half of each stream (first half trains; seed {args.seed})"
    )
    for col in (
        "ladder",
        "policy",
        "% top q",
        "% top $",
        "wasted /100",
        "t1 wasted /100",
        "routed",
        "vs cascade",
        "router",
        "target",
    ):
        table.add_column(
            col, justify="left" if col in ("ladder", "policy", "router", "target") else "right"
        )
    misses: list[str] = []
    for fname, label, tiers in LADDERS:
        path = args.data / fname
        qpath = args.data / fname.replace(".csv.gz", ".queries.csv.gz")
        if not path.is_file() or not qpath.is_file():
            print(f"skipped routers on {label}: no {qpath}")
            continue
        outcomes = loaded.get(fname) or load_outcomes(path, models=tiers)
        texts = load_queries(qpath, outcomes, outcomes.complete_queries(tiers))  # type: ignore[attr-defined]
        worth = f"router+cascade skip_worth={args.skip_worth:g}"
        policies = ["cascade", "router+cascade", worth]
        if args.sweep:
            policies += [f"router+cascade:{t:g}" for t in SWEEP]
            policies += [f"router+cascade skip_worth={w:g}" for w in SWEEP_WORTH]
        route_only = label == "routellm mmlu"
        if route_only:
            policies.append("router-only")
        report = _replay(args, outcomes, tiers, policies, texts, 0.5)
        base = report.policies[0]  # type: ignore[attr-defined]
        for st in report.policies:  # type: ignore[attr-defined]
            dq = 100 * (st.quality_pct - base.quality_pct)
            dc = 100 * (st.cost_pct - base.cost_pct)
            cheap, base_cheap = st.wasted_cheap_per_100, base.wasted_cheap_per_100
            fewer = 1 - cheap / base_cheap if base_cheap else 0.0
            versus = "" if st is base else f"{fewer:.0%} fewer t1 wasted, {dq:+.1f} q, {dc:+.1f} $"
            verdict = ""
            if st.label in ("router+cascade", worth):
                need = 0.15 if label == "mmlu_pro llama" and st.label == worth else None
                ok = dq >= -1.0 and dc <= 1.0 and (need is None or fewer >= need)
                verdict = (
                    ("met" if ok else "MISSED")
                    + (f" (>= {need:.0%} fewer, " if need else " (")
                    + ">= -1 q, <= +1 $)"
                )
                if not ok:
                    misses.append(f"{label} {st.label}")
            elif st.label == "router-only":
                ok = st.quality_pct >= 0.95 and st.cost_pct <= 0.55
                verdict = f"{'met' if ok else 'MISSED'} (>= 95% q, <= 55% $)"
                if not ok:
                    misses.append(f"{label} router-only")
            state = (st.router or {}).get("state", "")
            table.add_row(
                f"{label} ({report.queries:,} q)",  # type: ignore[attr-defined]
                st.label,
                f"{st.quality_pct:.1%}",
                f"{st.cost_pct:.1%}",
                f"{st.wasted_per_100:.1f}",
                f"{st.wasted_cheap_per_100:.1f}",
                f"{st.routed / st.queries:.1%}" if st.queries else "-",
                versus,
                state,
                verdict,
            )
        table.add_section()
    Console(width=220).print(table)
    return misses


def inverted_ladder(args: argparse.Namespace, loaded: dict[str, object]) -> list[str]:
    """A ladder whose top tier is worse than its middle one: adaptive must not pay for it."""
    from dagtier.replay import load_outcomes

    path = args.data / "mmlu_pro.csv.gz"
    if not path.is_file():
        return []
    outcomes = loaded.get("mmlu_pro.csv.gz") or load_outcomes(path, models=INVERTED)
    policies = ["static:1", "static:2", "static:3", "cascade", "adaptive"]
    report = _replay(args, outcomes, INVERTED, policies)
    by = {st.label: st for st in report.policies}  # type: ignore[attr-defined]
    best = max((by[f"static:{t}"] for t in (1, 2, 3)), key=lambda st: st.mean_quality)
    print(
        f"inverted ladder {' / '.join(INVERTED)} ({report.queries:,} q; % of the top tier's "  # type: ignore[attr-defined]
        f"figures; best static tier: {best.label}):"
    )
    for st in report.policies:  # type: ignore[attr-defined]
        print(
            f"  {st.label:10} quality {st.quality_pct:6.1%}  cost {st.cost_pct:6.1%}  "
            f"wasted/100 {st.wasted_per_100:5.1f}  judge {st.mean_judge_cost / st.mean_cost:5.1%} of $"
            if st.mean_cost
            else f"  {st.label}"
        )
    ad = by["adaptive"]
    dq, dc = 100 * (ad.quality_pct - best.quality_pct), 100 * (ad.cost_pct - best.cost_pct)
    ok = dq >= -5 and dc <= 5
    print(
        f"  adaptive vs {best.label}: {dq:+.1f} points of quality, {dc:+.1f} points of cost: "
        f"{'met' if ok else 'MISSED'} (>= -5, <= +5)"
    )
    return [] if ok else ["inverted ladder adaptive"]


if __name__ == "__main__":
    t0 = time.perf_counter()
    code = main()
    print(f"total {time.perf_counter() - t0:.1f} s")
    raise SystemExit(code)
