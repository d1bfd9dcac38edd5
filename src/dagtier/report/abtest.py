"""A/B comparisons: the difference B - A in mean quality and mean cost, with bootstrap
confidence intervals, for two routing configurations (``dagtier replay --compare``) or two
sets of real runs (``dagtier report --compare BATCH_A BATCH_B``).

Paired when both arms saw the same queries (each resample draws query indices once and
takes both arms' values at them, so per-query difficulty cancels out); unpaired otherwise
(each arm is resampled on its own). A difference is significant when its 95% interval
excludes zero. Plain data in, plain data out; rendering is at the bottom.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

RESAMPLES = 2000
LEVEL = 0.95


@dataclass(frozen=True, slots=True)
class Difference:
    """B - A in one metric's mean, with its bootstrap interval."""

    metric: str
    mean_a: float
    mean_b: float
    low: float
    high: float

    @property
    def delta(self) -> float:
        return self.mean_b - self.mean_a

    @property
    def significant(self) -> bool:
        return self.low > 0 or self.high < 0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "delta": self.delta, "significant": self.significant}


@dataclass(frozen=True, slots=True)
class ABReport:
    """Two arms measured on ``n_a`` / ``n_b`` units (queries, items)."""

    label_a: str
    label_b: str
    n_a: int
    n_b: int
    paired: bool
    differences: list[Difference]
    level: float = LEVEL
    resamples: int = RESAMPLES
    source: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "a": self.label_a,
            "b": self.label_b,
            "n_a": self.n_a,
            "n_b": self.n_b,
            "paired": self.paired,
            "level": self.level,
            "resamples": self.resamples,
            "source": self.source,
            "differences": [d.to_dict() for d in self.differences],
        }


def _mean(xs: Sequence[float]) -> float:
    return sum(xs) / len(xs) if xs else 0.0


def _quantiles(values: list[float], level: float) -> tuple[float, float]:
    values.sort()
    tail = (1 - level) / 2
    last = len(values) - 1
    return values[round(tail * last)], values[round((1 - tail) * last)]


def bootstrap_difference(
    metric: str,
    a: Sequence[float],
    b: Sequence[float],
    *,
    paired: bool,
    seed: int = 0,
    resamples: int = RESAMPLES,
    level: float = LEVEL,
) -> Difference:
    """The percentile bootstrap interval of mean(b) - mean(a).

    Raises:
        ValueError: ``paired`` with arms of different lengths, or an empty arm.
    """
    if not a or not b:
        raise ValueError("each arm needs at least one value")
    if paired and len(a) != len(b):
        raise ValueError(f"paired arms must have the same length, got {len(a)} and {len(b)}")
    rng = random.Random(seed)
    deltas: list[float] = []
    if paired:
        diffs = [y - x for x, y in zip(a, b, strict=True)]
        n = len(diffs)
        for _ in range(resamples):
            deltas.append(sum(rng.choices(diffs, k=n)) / n)
    else:
        for _ in range(resamples):
            deltas.append(_mean(rng.choices(b, k=len(b))) - _mean(rng.choices(a, k=len(a))))
    low, high = _quantiles(deltas, level)
    return Difference(metric, _mean(a), _mean(b), low, high)


def compare_arms(
    label_a: str,
    label_b: str,
    a: dict[str, Sequence[float]],
    b: dict[str, Sequence[float]],
    *,
    paired: bool,
    seed: int = 0,
    source: str = "",
) -> ABReport:
    """Every metric of ``a`` (each a list of per-unit values) against the same in ``b``."""
    diffs = [
        bootstrap_difference(m, a[m], b[m], paired=paired, seed=seed + i) for i, m in enumerate(a)
    ]
    n_a = len(next(iter(a.values()))) if a else 0
    n_b = len(next(iter(b.values()))) if b else 0
    return ABReport(label_a, label_b, n_a, n_b, paired, diffs, source=source)


async def batch_arm(store: Any, batch_id: str) -> tuple[str, dict[int, tuple[float, float]]]:
    """A batch's items fingerprint and, per item index that ran, (quality, cost).

    Real runs have no ground truth: an item's quality is the share of its nodes whose
    answer was accepted (succeeded: passed its checks, or had none; a cached answer
    counts as the original did). Items that never became a run are left out.

    Raises:
        StoreError: no such batch.
    """
    from .._exceptions import StoreError

    loaded = await store.load_batch(batch_id)
    if loaded is None:
        raise StoreError(f"no batch '{batch_id}' in the store; `dagtier batches` lists them")
    record, items = loaded
    arm: dict[int, tuple[float, float]] = {}
    for it in items:
        if not it.run_id or it.status in (None, "invalid"):
            continue
        run = await store.load_run(it.run_id)
        nodes = list(run[1].values()) if run is not None else []
        good = sum(n.status in ("succeeded", "cached") for n in nodes)
        arm[it.index] = (good / len(nodes) if nodes else 0.0, it.cost)
    return record.items_fingerprint, arm


async def compare_batches(store: Any, batch_a: str, batch_b: str, *, seed: int = 0) -> ABReport:
    """B - A in per-item quality and cost of two batches, paired by item when both ran the
    same items file (only items both ran), unpaired otherwise.

    Raises:
        StoreError: either batch is missing or has no item that ran.
    """
    from .._exceptions import StoreError

    fp_a, a = await batch_arm(store, batch_a)
    fp_b, b = await batch_arm(store, batch_b)
    paired = fp_a == fp_b
    if paired:
        common = sorted(a.keys() & b.keys())
        a = {i: a[i] for i in common}
        b = {i: b[i] for i in common}
    for bid, arm in ((batch_a, a), (batch_b, b)):
        if not arm:
            raise StoreError(f"batch '{bid}' has no item that ran (in common with the other)")

    def metrics(arm: dict[int, tuple[float, float]]) -> dict[str, Sequence[float]]:
        return {
            "quality": [q for q, _ in arm.values()],
            "cost $/item": [c for _, c in arm.values()],
        }

    note = "same items: paired by item" if paired else "different items files: unpaired"
    return compare_arms(
        batch_a, batch_b, metrics(a), metrics(b), paired=paired, seed=seed, source=note
    )


def _fmt(metric: str, x: float, signed: bool = False) -> str:
    sign = "+" if signed else ""
    return f"{x:{sign}.6f}" if "cost" in metric else f"{x:{sign}.4f}"


def verdict_lines(report: ABReport) -> list[str]:
    """One sentence per metric: which arm is better, or that the data cannot tell."""
    out = []
    pct = f"{100 * report.level:g}%"
    for d in report.differences:
        if not d.significant:
            out.append(
                f"{d.metric}: no significant difference ({pct} interval "
                f"[{_fmt(d.metric, d.low, True)}, {_fmt(d.metric, d.high, True)}] contains 0)"
            )
        else:
            word = "higher" if d.delta > 0 else "lower"
            out.append(
                f"{d.metric}: B ({report.label_b}) is significantly {word} by "
                f"{_fmt(d.metric, abs(d.delta))} ({pct} interval "
                f"[{_fmt(d.metric, d.low, True)}, {_fmt(d.metric, d.high, True)}])"
            )
    return out


def print_ab(report: ABReport, console: Console) -> None:
    from rich.table import Table

    how = "paired" if report.paired else "unpaired"
    table = Table(
        title=f"A: {report.label_a}  vs  B: {report.label_b}",
        caption=f"{report.n_a:,} vs {report.n_b:,} units; {how} bootstrap, "
        f"{report.resamples} resamples, {100 * report.level:g}% intervals"
        + (f"; {report.source}" if report.source else ""),
        title_justify="left",
    )
    for col in ("metric", "A", "B", "B - A", "interval", "significant"):
        table.add_column(col, justify="left" if col in ("metric", "interval") else "right")
    for d in report.differences:
        table.add_row(
            d.metric,
            _fmt(d.metric, d.mean_a),
            _fmt(d.metric, d.mean_b),
            _fmt(d.metric, d.delta, True),
            f"[{_fmt(d.metric, d.low, True)}, {_fmt(d.metric, d.high, True)}]",
            "yes" if d.significant else "no",
        )
    console.print(table)
    for line in verdict_lines(report):
        console.print(line, markup=False, highlight=False)


def render_ab_json(report: ABReport) -> str:
    return json.dumps(report.to_dict(), indent=2) + "\n"


__all__ = [
    "ABReport",
    "Difference",
    "batch_arm",
    "bootstrap_difference",
    "compare_arms",
    "compare_batches",
    "print_ab",
    "render_ab_json",
    "verdict_lines",
]
