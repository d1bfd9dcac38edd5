"""An eval's result as plain data (per node and tier), then rendered: a terminal table,
JSON and one self-contained HTML page (``report/html.py``'s style and tier colours); and
the evidence as an outcomes file for ``dagtier replay`` or as statistics for adaptive."""

from __future__ import annotations

import csv
import gzip
import io
import json
import math
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._logging import redact_value
from .._types import Tier
from ..fingerprint import digest
from ..policies.adaptive import EVAL_SUFFIX, choose
from ..policies.tuning import Rate
from ..replay._data import OutcomeRow, write_rows
from ..store import TierStats
from ._runner import EvalResult, Unit

if TYPE_CHECKING:
    from rich.console import Console

Z95 = 1.96


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile (p in (0, 1]); None without values."""
    if not values:
        return None
    xs = sorted(values)
    return xs[max(0, math.ceil(p * len(xs)) - 1)]


@dataclass(slots=True)
class TierRow:
    tier: int
    n: int
    """Answers scored (cases x repeats whose upstream succeeded)."""
    quality: float
    low: float
    high: float
    """95% interval of the quality: the Beta posterior (``policies.tuning.Rate``)."""
    mean_cost: float
    p50_s: float | None
    p95_s: float | None
    checks: float | None
    """Share passing the node's checks (None: it has none)."""
    expected: float | None
    judge: float | None
    models: list[str] = field(default_factory=list)
    adequate: bool = False
    """The interval's lower end reaches the node's target."""


@dataclass(slots=True)
class NodeEval:
    node_id: str
    task_key: str
    policy: str
    target: float
    tiers: list[TierRow]
    cheapest_adequate: int | None
    picks: dict[str, int]
    """The tier each policy would start on with this evidence."""
    adaptive_reason: str = ""


@dataclass(slots=True)
class EvalReport:
    eval_id: str
    workflow: str
    status: str
    cases: int
    tiers: list[int]
    repeat: int
    nodes: list[NodeEval]
    cost: float
    reference_cost: float
    judge_cost: float
    judge_tier: int | None
    position_bias: float | None
    skipped: int

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = redact_value(asdict(self))
        return out


def _stats(key: str, tier: int, units: list[Unit]) -> TierStats:
    good = sum(u.quality for u in units)
    return TierStats(
        key,
        tier,  # type: ignore[arg-type]
        successes=good,
        failures=len(units) - good,
        observations=len(units),
        total_cost=sum(u.cost for u in units),
        total_latency_s=sum(u.latency_s for u in units),
    )


def _mean(xs: list[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


def build_eval_report(result: EvalResult) -> EvalReport:
    wf = result.plan.workflow
    nodes = []
    for nid in result.nodes:
        policy = wf.node_policy(nid)
        adaptive = policy.as_adaptive()
        key = wf.task_key(nid)
        rows: list[TierRow] = []
        evidence: dict[Tier, TierStats] = {}
        for tier in result.tiers:
            units = [u for u in result.units if u.node_id == nid and u.tier == tier and u.scored]
            q = [u.quality for u in units]
            mean = _mean(q) or 0.0
            rate = Rate.of(sum(q), len(q) - sum(q))
            low = max(0.0, rate.mean - Z95 * rate.sd)
            high = min(1.0, rate.upper(Z95))
            checks = [float(u.checks) for u in units if u.checks is not None]
            expected = [u.expected for u in units if u.expected is not None]
            judged = [u.judge for u in units if u.judge is not None]
            rows.append(
                TierRow(
                    tier,
                    len(units),
                    mean,
                    low,
                    high,
                    _mean([u.cost for u in units]) or 0.0,
                    percentile([u.latency_s for u in units], 0.5),
                    percentile([u.latency_s for u in units], 0.95),
                    _mean(checks),
                    _mean(expected),
                    _mean(judged),
                    sorted({u.model for u in units if u.model}),
                    adequate=bool(units) and low >= adaptive.target,
                )
            )
            if units:
                evidence[tier] = _stats(key, tier, units)  # type: ignore[index]
        adequate = next((r.tier for r in rows if r.adequate), None)
        choice = choose(evidence, adaptive.min_tier, adaptive.max_tier, adaptive.target)
        picks = {f"adaptive (target {adaptive.target:g})": int(choice.tier)}
        if policy.kind == "adaptive":
            picks[policy.label] = int(choice.tier)
        else:
            picks[policy.label] = int(policy.start_tier)
        nodes.append(
            NodeEval(nid, key, policy.label, adaptive.target, rows, adequate, picks, choice.reason)
        )
    return EvalReport(
        result.eval_id,
        wf.name,
        result.status,
        len(result.cases),
        result.tiers,
        result.repeat,
        nodes,
        result.cost,
        result.reference_cost,
        result.judge_cost,
        result.judge_tier,
        result.position_bias,
        sum(u.status == "skipped" for u in result.units),
    )


# --- rendering ----------------------------------------------------------------------------


def _opt(x: float | None, fmt: str = ".2f") -> str:
    return "-" if x is None else format(x, fmt)


def print_eval(report: EvalReport, console: Console) -> None:
    from rich.table import Table

    table = Table(
        title=f"eval {report.eval_id} of {report.workflow}: {report.cases} cases x "
        f"{report.repeat} repeat(s), tiers {', '.join(map(str, report.tiers))} ({report.status})",
        title_justify="left",
        caption="quality: checks gate, then the expected output where given, else the blind "
        "judge; interval: 95% Beta posterior; * = cheapest tier whose interval reaches the "
        "node's target",
    )
    for col in ("node", "tier", "n", "quality", "95% interval", "checks", "expected", "judge",
                "mean $", "p50 s", "p95 s", "picks"):  # fmt: skip
        table.add_column(col, justify="left" if col in ("node", "picks") else "right")
    for node in report.nodes:
        picks = "; ".join(f"{k}: T{v}" for k, v in node.picks.items())
        for i, r in enumerate(node.tiers):
            mark = "*" if r.tier == node.cheapest_adequate else ""
            table.add_row(
                node.node_id if i == 0 else "",
                f"{r.tier}{mark}",
                str(r.n),
                f"{r.quality:.3f}",
                f"[{r.low:.3f}, {r.high:.3f}]",
                _opt(r.checks),
                _opt(r.expected),
                _opt(r.judge),
                f"{r.mean_cost:.6f}",
                _opt(r.p50_s),
                _opt(r.p95_s),
                picks if i == 0 else "",
            )
        table.add_section()
    console.print(table)
    for line in summary_lines(report):
        console.print(line, markup=False, highlight=False)


def summary_lines(report: EvalReport) -> list[str]:
    lines = [
        f"cost ${report.cost:.6f}: reference runs ${report.reference_cost:.6f}, judge "
        f"${report.judge_cost:.6f}, the rest the nodes' answers on each tier"
    ]
    if report.judge_tier is not None:
        bias = report.position_bias
        lines.append(
            f"blind judge on tier {report.judge_tier}; position bias (score shown first minus "
            f"shown last): {'-' if bias is None else f'{bias:+.3f}'}"
        )
    if report.skipped:
        lines.append(
            f"{report.skipped} answers skipped: their upstream failed in the reference run"
        )
    return lines


def render_eval_json(report: EvalReport) -> str:
    return json.dumps(report.to_dict(), indent=2, default=str) + "\n"


_W, _H, _PAD = 360, 220, 40


def _svg_node(node: NodeEval) -> str:
    from ..report.html import TIER_COLORS

    rows = [r for r in node.tiers if r.n]
    if not rows:
        return '<p class="note">no answers</p>'
    top = max(r.mean_cost for r in rows) or 1.0

    def x(c: float) -> float:
        return _PAD + (_W - 2 * _PAD) * c / top

    def y(q: float) -> float:
        return _H - _PAD - (_H - 2 * _PAD) * q

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {_H}" width="{_W}" '
        f'height="{_H}" role="img" aria-label="quality against cost, {escape(node.node_id)}">',
        f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" stroke="#59636e"/>',
        f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{_H - _PAD}" stroke="#59636e"/>',
        f'<text x="{_W / 2}" y="{_H - 8}" text-anchor="middle">mean cost $ (max {top:.6f})</text>',
        f'<text x="12" y="{_H / 2}" transform="rotate(-90 12 {_H / 2})" '
        'text-anchor="middle">quality</text>',
        f'<line x1="{_PAD}" y1="{y(node.target):.1f}" x2="{_W - _PAD}" y2="{y(node.target):.1f}" '
        'stroke="#9aa3ad" stroke-dasharray="4 3"/>',
    ]
    for r in rows:
        cx, color = x(r.mean_cost), TIER_COLORS.get(r.tier, "#9aa3ad")
        parts.append(
            f'<line x1="{cx:.1f}" y1="{y(r.low):.1f}" x2="{cx:.1f}" y2="{y(r.high):.1f}" '
            f'stroke="{color}"/>'
        )
        parts.append(f'<circle cx="{cx:.1f}" cy="{y(r.quality):.1f}" r="5" fill="{color}"/>')
        label = f"T{r.tier}" + (" cheapest adequate" if r.tier == node.cheapest_adequate else "")
        if r.tier == node.cheapest_adequate:
            parts.append(
                f'<circle cx="{cx:.1f}" cy="{y(r.quality):.1f}" r="9" fill="none" '
                f'stroke="#1f4fd1" stroke-width="2"/>'
            )
        parts.append(f'<text x="{cx + 10:.1f}" y="{y(r.quality) + 4:.1f}">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def render_eval_html(report: EvalReport) -> str:
    """One self-contained page: per node a quality-against-cost chart and its table."""
    from ..report.html import html_page

    sections = []
    for node in report.nodes:
        rows = "".join(
            f"<tr><td>T{r.tier}{' ✓' if r.tier == node.cheapest_adequate else ''}</td>"
            f'<td class="n">{r.n}</td><td class="n">{r.quality:.3f}</td>'
            f'<td class="n">[{r.low:.3f}, {r.high:.3f}]</td><td class="n">{r.mean_cost:.6f}</td>'
            f'<td class="n">{_opt(r.p50_s)}</td><td class="n">{_opt(r.p95_s)}</td>'
            f"<td>{escape(', '.join(r.models))}</td></tr>"
            for r in node.tiers
        )
        picks = "; ".join(f"{k}: tier {v}" for k, v in node.picks.items())
        sections.append(
            f'<h2>{escape(node.node_id)} <span class="meta">({escape(node.policy)}, target '
            f"{node.target:g})</span></h2>{_svg_node(node)}"
            "<table><tr><th>tier</th><th>n</th><th>quality</th><th>95% interval</th>"
            "<th>mean $</th><th>p50 s</th><th>p95 s</th><th>models</th></tr>"
            f'{rows}</table><p class="meta">{escape(picks)}</p>'
        )
    lines = "".join(f"<li>{escape(x)}</li>" for x in summary_lines(report))
    title = f"dagtier eval {report.eval_id}"
    return html_page(
        title,
        f"""<div class="meta">workflow <b>{escape(report.workflow)}</b>: {report.cases} cases,
tiers {escape(", ".join(map(str, report.tiers)))}, {report.status}; dashed line: the node's
target; ✓ / ring: the cheapest tier whose interval reaches it</div>
{"".join(sections)}
<ul>{lines}</ul>""",
    )


# --- evidence out -------------------------------------------------------------------------


def query_id(u: Unit) -> str:
    return f"c{u.case}/{u.node_id}/r{u.repeat}"


def outcome_rows(result: EvalResult) -> Iterator[OutcomeRow]:
    """One row per scored answer: the query is (case, node, repeat), so replay pairs the
    tiers' answers to the same prompt."""
    wf = result.plan.workflow
    for u in result.units:
        if u.scored and u.model:
            yield OutcomeRow(query_id(u), wf.task_key(u.node_id), u.model, u.quality, u.cost)


def write_outcomes(result: EvalResult, path: Path) -> tuple[int, Path]:
    """The outcomes file ``dagtier replay`` reads (gzipped when the name ends in .gz), and
    beside it ``NAME.queries.csv(.gz)`` with each query's prompt text.

    Returns:
        the row count and the queries file's path.
    """
    gz = path.name.endswith(".gz")
    with path.open("wb") as fh:
        n = write_rows(outcome_rows(result), fh, compress=gz)
    stem = path.name.removesuffix(".gz").removesuffix(".csv")
    qpath = path.with_name(stem + ".queries.csv" + (".gz" if gz else ""))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(("query_id", "text"))
    seen: set[str] = set()
    for u in result.units:
        q = query_id(u)
        if u.scored and q not in seen:
            seen.add(q)
            w.writerow((q, result.prompts.get((u.case, u.node_id), "")))
    data = buf.getvalue().encode()
    qpath.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return n, qpath


def evidence_id(result: EvalResult, unit: Unit) -> str:
    """What one scored answer is evidence of: its node, its case's inputs, the model that
    answered and which repeat it was. The same case evaluated again, in this eval or a
    later one, is the same evidence."""
    inputs = result.cases[unit.case].inputs
    model = unit.model or f"tier {unit.tier}"
    return digest(["eval", unit.node_id, inputs, model, unit.repeat])


async def seed_stats(result: EvalResult, store: Any) -> int:
    """Fold every scored answer into the statistics adaptive reads (decayed with the
    node's half-life like any observation), and count it under ``TASK#eval`` too, so
    ``dagtier stats`` can tell eval evidence from traffic.

    Idempotent: an answer whose :func:`evidence_id` was seeded before (the same case,
    node, model and repeat, from this eval or another one) is not counted again.

    Returns:
        The answers folded in now.
    """
    wf = result.plan.workflow
    n = 0
    for u in result.units:
        if not u.scored:
            continue
        key = wf.task_key(u.node_id)
        half_life = wf.node_policy(u.node_id).as_adaptive().half_life
        q = u.quality
        seen = evidence_id(result, u)
        new = False
        for k in (key, key + EVAL_SUFFIX):
            # a fractional quality counts as that share of a success and the rest a failure
            for success, weight in ((True, q), (False, 1.0 - q)):
                if weight > 0:
                    new |= await store.record_observation(
                        k,
                        u.tier,
                        success=success,
                        weight=weight,
                        cost=u.cost if success or q == 0 else 0.0,
                        latency_s=u.latency_s if success or q == 0 else 0.0,
                        half_life=half_life,
                        evidence_id=f"{seen}:{'pass' if success else 'fail'}",
                    )
        n += new
    return n
