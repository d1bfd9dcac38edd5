"""Routing benchmark: replay recorded real outcomes under each policy; print one table.

    python bench/routing.py [DATA_DIR] [--seed 0] [--limit N] [--far 0.1] [--frr 0.1]

DATA_DIR holds the outcome files described in its README (default:
``../shared/data/outcomes`` relative to the repository root). The ladders are the ones that
README names. Everything runs through dagtier's real executor, policies and statistics
store (``dagtier.replay.replay``, the engine of ``dagtier replay``); the judge errs at the
given rates and each judgement costs tier 1's mean cost on the file.

Targets (10% false accept, 10% false reject, judge cost included), checked per ladder:
  cascade   >= 100% of the top tier's quality at <= 35% of its cost
  adaptive  >=  95% of the top tier's quality at <= 25% of its cost
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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("data", nargs="?", type=Path, default=ROOT.parent / "shared/data/outcomes")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--far", type=float, default=0.1)
    ap.add_argument("--frr", type=float, default=0.1)
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
    loaded: dict[str, object] = {}
    for fname, label, tiers in LADDERS:
        path = args.data / fname
        if not path.is_file():
            print(f"skipped {label}: no {path}")
            continue
        top = len(tiers)
        policies = ["static:1", f"static:{top}", "cascade", "adaptive"]
        key = f"{fname}:{','.join(tiers)}"
        if key not in loaded:
            loaded[key] = load_outcomes(path, models=tiers)
        outcomes = loaded[key]

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
    print("targets: all met" if not misses else "targets missed: " + "; ".join(misses))
    return 0


if __name__ == "__main__":
    t0 = time.perf_counter()
    code = main()
    print(f"total {time.perf_counter() - t0:.1f} s")
    raise SystemExit(code)
