"""The HTML report: one self-contained file (inline CSS and SVG, no script, no network).

Three parts: the cost of each node stacked by tier, a timeline of node execution with the
critical path marked, and every attempt in a table. Drawn in Python so the file opens
anywhere, offline, years later, and can be attached to a ticket as is.
"""

from __future__ import annotations

from html import escape
from typing import TYPE_CHECKING

from .._logging import redact_text
from ._text import savings_lines, usd

if TYPE_CHECKING:
    from .model import NodeRow, RunReport

TIER_COLORS = {1: "#2e9d5b", 2: "#e0a100", 3: "#c43c5c"}
_NO_TIER = "#9aa3ad"
_CRITICAL = "#1f4fd1"

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#1d232a;background:#fff}
h1{font-size:20px;margin:0 0 4px}h2{font-size:16px;margin:28px 0 8px}
.meta{color:#59636e}.cards{display:flex;gap:12px;flex-wrap:wrap;margin:16px 0}
.card{border:1px solid #d8dee4;border-radius:6px;padding:8px 14px;min-width:120px}
.card b{display:block;font-size:18px}.note{color:#59636e;font-size:12px}
table{border-collapse:collapse;font-size:12px;width:100%}
th,td{border-bottom:1px solid #e5e9ee;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f4f6f8}td.n{text-align:right;font-variant-numeric:tabular-nums}
.pass{color:#1a7f37}.fail{color:#b3261e}.error{color:#b3261e;font-weight:600}
.legend span{display:inline-block;margin-right:14px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px}
svg text{font:12px system-ui,sans-serif;fill:#1d232a}
"""

_ROW_H = 22
_LABEL_W = 170
_CHART_W = 640


def _svg_cost_chart(nodes: list[NodeRow]) -> str:
    max_cost = max((n.cost for n in nodes), default=0.0)
    if max_cost <= 0:  # bars of nothing would read as a broken chart
        return (
            '<p class="note">every node cost $0 (local model, cache hits or nothing run): '
            "no cost to chart</p>"
        )
    height = _ROW_H * len(nodes) + 10
    width = _LABEL_W + _CHART_W + 110
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="cost per node by tier">'
    ]
    for i, n in enumerate(nodes):
        y = 5 + i * _ROW_H
        parts.append(
            f'<text x="{_LABEL_W - 8}" y="{y + 15}" text-anchor="end">{escape(n.node_id)}</text>'
        )
        x = float(_LABEL_W)
        for tier, cost in sorted(n.cost_by_tier().items()):
            w = _CHART_W * cost / max_cost
            if w <= 0:
                continue
            parts.append(
                f'<rect x="{x:.2f}" y="{y + 3}" width="{max(w, 1.0):.2f}" height="{_ROW_H - 6}" '
                f'fill="{TIER_COLORS.get(tier, _NO_TIER)}"><title>{escape(n.node_id)} · tier '
                f"{tier}: {usd(cost)}</title></rect>"
            )
            x += w
        label = usd(n.cost) + (" (cache)" if n.cache_hit else "")
        parts.append(f'<text x="{x + 6:.2f}" y="{y + 15}">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _svg_timeline(report: RunReport) -> str:
    nodes = report.nodes
    span = max((n.end_s or 0.0 for n in nodes), default=0.0) or report.duration_s or 1.0
    height = _ROW_H * len(nodes) + 34
    width = _LABEL_W + _CHART_W + 90
    scale = _CHART_W / span
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="timeline of node execution">'
    ]
    # time axis: five ticks
    axis_y = _ROW_H * len(nodes) + 10
    parts.append(
        f'<line x1="{_LABEL_W}" y1="{axis_y}" x2="{_LABEL_W + _CHART_W}" y2="{axis_y}" '
        'stroke="#8c959f"/>'
    )
    for k in range(6):
        t = span * k / 5
        x = _LABEL_W + t * scale
        parts.append(
            f'<line x1="{x:.2f}" y1="4" x2="{x:.2f}" y2="{axis_y}" stroke="#eef1f4"/>'
            f'<text x="{x:.2f}" y="{axis_y + 16}" text-anchor="middle">{t:.2f}s</text>'
        )
    for i, n in enumerate(nodes):
        y = 5 + i * _ROW_H
        weight = ' font-weight="700"' if n.critical else ""
        parts.append(
            f'<text x="{_LABEL_W - 8}" y="{y + 15}" text-anchor="end"{weight}>'
            f"{escape(n.node_id)}</text>"
        )
        if n.start_s is None:
            parts.append(f'<text x="{_LABEL_W + 4}" y="{y + 15}" fill="#8c959f">{n.status}</text>')
            continue
        x = _LABEL_W + n.start_s * scale
        w = max(n.latency_s * scale, 2.0)
        fill = TIER_COLORS.get(n.tier or 0, _NO_TIER)
        stroke = f' stroke="{_CRITICAL}" stroke-width="3"' if n.critical else ""
        tip = f"{n.node_id}: {n.start_s:.2f}s → {n.end_s or 0:.2f}s, {n.status}" + (
            ", critical path" if n.critical else ""
        )
        parts.append(
            f'<rect x="{x:.2f}" y="{y + 3}" width="{w:.2f}" height="{_ROW_H - 6}" rx="3" '
            f'fill="{fill}"{stroke}><title>{escape(tip)}</title></rect>'
            f'<text x="{x + w + 6:.2f}" y="{y + 15}">{n.latency_s:.2f}s</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _legend(critical: bool) -> str:
    items = [f'<span><i style="background:{c}"></i>tier {t}</span>' for t, c in TIER_COLORS.items()]
    if critical:
        items.append(
            f'<span><i style="background:#fff;border:3px solid {_CRITICAL};width:8px;height:8px">'
            "</i>critical path</span>"
        )
    return f'<div class="legend">{"".join(items)}</div>'


def num(value: object) -> str:
    return f'<td class="n">{value}</td>'


def _attempts_table(report: RunReport) -> str:
    head = (
        "node", "#", "purpose", "tier", "model", "provider", "in", "out", "cache read",
        "cache write", "reasoning", "cost $", "judge $", "secs", "verdict", "reason",
    )  # fmt: skip
    rows = ["<table><thead><tr>", *(f"<th>{h}</th>" for h in head), "</tr></thead><tbody>"]
    for n in report.nodes:
        if not n.attempts:
            rows.append(
                f"<tr><td>{escape(n.node_id)}</td><td colspan='15' class='note'>"
                f"{escape(n.status)}: no model call</td></tr>"
            )
        for a in n.attempts:
            rows.append(
                "<tr>"
                f"<td>{escape(n.node_id)}</td>{num(a.index)}<td>{escape(a.purpose)}</td>"
                f"{num(f'T{a.tier}')}<td>{escape(a.model)}</td><td>{escape(a.provider)}</td>"
                f"{num(f'{a.input_tokens:,}')}{num(f'{a.output_tokens:,}')}"
                f"{num(f'{a.cache_read_tokens:,}')}{num(f'{a.cache_write_tokens:,}')}"
                f"{num(f'{a.reasoning_tokens:,}')}{num(f'{a.cost:.6f}')}"
                f"{num(f'{a.judge_cost:.6f}')}{num(f'{a.latency_s:.2f}')}"
                f'<td class="{escape(a.verdict)}">{escape(a.verdict)}</td>'
                f"<td>{escape(redact_text(a.reason))}</td></tr>"
            )
    rows.append("</tbody></table>")
    return "".join(rows)


def _nodes_table(report: RunReport) -> str:
    head = ("node", "policy", "status", "final tier", "model", "attempts", "escalations",
            "tokens", "cost $", "secs", "error")  # fmt: skip
    rows = ["<table><thead><tr>", *(f"<th>{h}</th>" for h in head), "</tr></thead><tbody>"]
    for n in report.nodes:
        status = n.status + (" (cache hit)" if n.cache_hit and n.status != "cached" else "")
        rows.append(
            f"<tr><td>{escape(n.node_id)}{' ★' if n.critical else ''}</td>"
            f"<td>{escape(n.policy or '-')}</td><td>{escape(status)}</td>"
            f'<td class="n">{f"T{n.tier}" if n.tier else "-"}</td><td>{escape(n.model or "-")}</td>'
            f'<td class="n">{sum(a.tries for a in n.attempts)}</td><td class="n">{n.escalations}</td>'
            f'<td class="n">{n.tokens:,}</td><td class="n">{n.cost:.6f}</td>'
            f'<td class="n">{n.latency_s:.2f}</td>'
            f"<td>{escape(redact_text(n.error or ''))}</td></tr>"
        )
    rows.append("</tbody></table>")
    return "".join(rows)


def render_html(report: RunReport) -> str:
    """The whole report as one HTML document."""
    t = report.totals
    s = report.savings
    cards = [
        ("cost", usd(t.cost)),
        ("status", report.status),
        ("duration", f"{report.duration_s:.2f}s"),
        ("model calls", str(t.attempts)),
        ("escalations", str(t.escalations)),
        ("cache hits", str(t.cache_hits)),
    ]
    d = report.deadline
    if d is not None and d.met is not None:
        cards.append(("deadline", f"{d.deadline_s:g}s " + ("met" if d.met else "missed")))
    if s.vs_top_tier is not None:
        pct = s.pct(s.vs_top_tier, s.top_tier_cost)
        cards.append(
            ("saved vs. all tier 3 (est.)", usd(s.vs_top_tier) + (f" · {pct:.0f}%" if pct else ""))
        )
    card_html = "".join(f'<div class="card">{escape(k)}<b>{escape(v)}</b></div>' for k, v in cards)
    savings = "".join(f"<li>{escape(line)}</li>" for line in savings_lines(s))
    crit = ""
    if report.critical_path:
        crit = (
            f'<p class="meta">critical path ({report.critical_path_s:.2f}s): '
            f"{escape(' → '.join(report.critical_path))}</p>"
        )
    if report.deadline is not None:
        crit += f'<p class="meta">{escape(report.deadline.describe())}</p>'
    title = f"dagtier run {report.run_id}"
    return html_page(
        title,
        f"""<div class="meta">workflow <b>{escape(report.workflow)}</b>{f" ({escape(report.source)})" if report.source else ""}</div>
<div class="cards">{card_html}</div>
<h2>Cost per node, by tier</h2>
{_legend(False)}
{_svg_cost_chart(report.nodes)}
<h2>Timeline</h2>
{_legend(bool(report.critical_path))}
{_svg_timeline(report)}
{crit}
<h2>Nodes</h2>
{_nodes_table(report)}
<h2>Attempts</h2>
{_attempts_table(report)}
<h2>Savings</h2>
<ul>{savings}</ul>""",
    )


def html_page(title: str, body: str) -> str:
    """A self-contained page: the title as heading, then ``body`` (HTML), with the report's
    inline style (``dagtier eval --html`` uses it too)."""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title><style>{_CSS}</style></head>
<body>
<h1>{escape(title)}</h1>
{body}
</body></html>
"""
