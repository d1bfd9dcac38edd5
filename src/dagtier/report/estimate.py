"""``dagtier estimate``: what a workflow will cost before it runs, under several policies.

For each node: tokens in (the prompt's text, the inputs given or an assumed size, the
expected output of every upstream node it reads) and out (``max_tokens``: the forecast is
an upper bound on output, as a budget reservation is); each tier's price for one call;
each tier's chance of passing the node's checks. Where a StatsStore has evidence for the
node's task key, its recorded mean cost per call and its pass rate replace the token
arithmetic and the assumed pass rates.

Scenarios: every node once on tier 1, 2 or 3; each node on its static tier (its policy's
top tier); every node as a cascade; every node adaptive; and each node as configured. What
a cascade or an adaptive node is expected to cost is the policies' own forecast
(:mod:`dagtier.policies.forecast`); nothing here re-models them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .._types import TIERS, Tier
from .model import tier_reference

if TYPE_CHECKING:
    from ..catalog import Catalog
    from ..plan import Plan
    from ..spec.models import Workflow
    from ..store import StatsStore, TierStats

SCENARIOS: tuple[str, ...] = (
    "all-top-tier",
    "all-mid-tier",
    "all-cheap-tier",
    "static-tiers",
    "cascading",
    "adaptive",
    "as-configured",
)
CHARS_PER_TOKEN = 4
ASSUMED_INPUT_TOKENS = 500
ASSUMED_TOOL_TURNS = 3
"""Model calls a tool-using node is priced at without recorded evidence."""
"""Size assumed for an input whose value is not given."""
PRIOR_PASS = {1: 0.6, 2: 0.8, 3: 0.95}
"""Assumed chance that a tier's answer passes a node's checks, before any evidence."""
JUDGE_OUTPUT_TOKENS = 16
_EXPR = re.compile(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", re.DOTALL)


@dataclass(slots=True)
class NodeEstimate:
    node_id: str
    policy: str
    input_tokens: int
    output_tokens: int
    call_cost: dict[int, float]
    """One call's expected cost per tier (answer plus judge checks)."""
    pass_rate: dict[int, float]
    evidence: dict[int, int]
    """Recorded observations per tier (0: the figures are assumptions)."""
    costs: dict[str, float] = field(default_factory=dict)
    """Expected cost per scenario."""


@dataclass(slots=True)
class Estimate:
    workflow: str
    nodes: list[NodeEstimate]
    assumptions: list[str]

    def total(self, scenario: str) -> float:
        return sum(n.costs[scenario] for n in self.nodes)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {
            "workflow": self.workflow,
            "totals": {s: self.total(s) for s in SCENARIOS},
            "nodes": [asdict(n) for n in self.nodes],
            "assumptions": self.assumptions,
        }


def _text_tokens(source: str | None) -> int:
    if not source:
        return 0
    return len(_EXPR.sub("", source)) // CHARS_PER_TOKEN + 1


def _pass_rate(stats: TierStats | None, prior: float) -> float:
    if stats is None or stats.weight <= 0:
        return prior
    return (stats.successes + 1) / (stats.weight + 2)


async def recorded_stats(store: StatsStore, workflow: Workflow) -> dict[str, dict[Tier, TierStats]]:
    """The evidence ``store`` holds for each node's task key, by tier: the ``stats`` of
    :func:`estimate_workflow`."""
    return {
        key: await store.tier_stats(key)
        for key in sorted({workflow.task_key(n) for n in workflow.nodes})
    }


def estimate_workflow(
    workflow: Workflow | Plan,
    catalog: Catalog | None = None,
    *,
    inputs: Mapping[str, Any] | None = None,
    stats: Mapping[str, Mapping[Tier, TierStats]] | None = None,
) -> Estimate:
    """Forecast ``workflow``'s cost per node and scenario.

    Args:
        workflow: the workflow to price, or its compiled plan.
        catalog: prices (each tier's first catalog model stands for the tier); default:
            the plan's catalog.
        inputs: input values, when known, to size the prompts.
        stats: recorded evidence by task key and tier (from a StatsStore).
    """
    from ..catalog import Usage
    from ..plan import Plan, compile_workflow
    from ..policies.forecast import forecast

    plan = workflow if isinstance(workflow, Plan) else compile_workflow(workflow, catalog)
    wf, catalog = plan.workflow, catalog or plan.catalog
    inputs = dict(inputs or {})
    stats = stats or {}
    ref = {t: tier_reference(catalog, t) for t in TIERS}
    missing = [t for t, m in ref.items() if m is None]
    out_tokens: dict[str, int] = {}
    nodes: list[NodeEstimate] = []
    for nid in plan.order:
        np = plan.nodes[nid]
        node = wf.nodes[nid]
        if not node.uses_model:
            # code: free; what it outputs is sized like an input for the nodes reading it
            out_tokens[nid] = ASSUMED_INPUT_TOKENS
            est = NodeEstimate(nid, wf.node_label(nid), 0, 0, {}, {}, {})
            est.costs.update(dict.fromkeys(SCENARIOS, 0.0))
            nodes.append(est)
            continue
        tokens_in = _text_tokens(node.prompt) + _text_tokens(node.system)
        for name in np.inputs_read or ():
            value = inputs.get(name)
            tokens_in += (
                len(str(value)) // CHARS_PER_TOKEN + 1
                if value is not None
                else ASSUMED_INPUT_TOKENS
            )
        tokens_in += sum(out_tokens.get(n, 0) for n in np.refs)
        tokens_out = np.max_tokens
        out_tokens[nid] = tokens_out
        recorded = stats.get(np.task_key, {})
        has_checks = bool(wf.node_checks(nid)) or node.output.format == "json"
        call: dict[int, float] = {}
        p: dict[int, float] = {}
        evidence: dict[int, int] = {}
        for t in TIERS:
            st = recorded.get(t)
            evidence[t] = st.observations if st is not None else 0
            if st is not None and st.observations:
                call[t] = st.mean_cost
            else:
                m = ref[t]
                cost = m.cost(Usage(tokens_in, tokens_out)) if m is not None else 0.0
                for j in np.checks.judges:
                    jm = ref[j.tier]
                    if jm is not None:
                        cost += jm.cost(Usage(tokens_in + tokens_out, JUDGE_OUTPUT_TOKENS))
                call[t] = cost
                if node.tools:
                    # a tool loop's turns each resend the conversation: priced as that many calls
                    call[t] *= min(ASSUMED_TOOL_TURNS, node.max_turns)
            p[t] = _pass_rate(st, PRIOR_PASS[t] if has_checks else 1.0)
        policy = np.policy
        est = NodeEstimate(nid, wf.node_label(nid), tokens_in, tokens_out, call, p, evidence)
        c = est.costs
        c["all-top-tier"], c["all-mid-tier"], c["all-cheap-tier"] = call[3], call[2], call[1]
        c["static-tiers"] = call[policy.top_tier]
        c["cascading"] = forecast(policy.as_cascade(), call, p, evidence)
        c["adaptive"] = forecast(policy.as_adaptive(), call, p, evidence)
        c["as-configured"] = forecast(policy, call, p, evidence)
        nodes.append(est)
    assumptions = [
        f"output tokens = max_tokens (an upper bound); {CHARS_PER_TOKEN} characters a token",
        f"inputs not given, and code nodes' outputs, are assumed to be {ASSUMED_INPUT_TOKENS} "
        "tokens",
        f"a tool-using node makes {ASSUMED_TOOL_TURNS} model calls (at most its max_turns)",
        "without recorded evidence, a tier's answer passes checks with probability "
        + ", ".join(f"T{t} {v:.0%}" for t, v in PRIOR_PASS.items())
        + " (1.0 for nodes without checks)",
        "each tier is priced at its first catalog model: "
        + ", ".join(f"T{t} {m.name if m else '(none)'}" for t, m in ref.items()),
        "cascading/adaptive apply to every node (a node's own range and target when it has "
        "one, else tiers 1-3 and target 0.9 with a 1% canary)",
    ]
    if missing:
        assumptions.append(f"tiers without models cost 0: {missing}")
    return Estimate(wf.name, nodes, assumptions)


def print_estimate(est: Estimate, console: Any) -> None:
    from rich.table import Table

    from .tables import print_uncut

    table = Table(
        title=f"estimated cost of one run of '{est.workflow}' (USD)", title_justify="left"
    )
    table.add_column("node")
    table.add_column("policy")
    table.add_column("tokens in/out", justify="right")
    for s in SCENARIOS:
        table.add_column(s, justify="right")
    table.add_column("evidence", justify="right")
    for n in est.nodes:
        ev = sum(n.evidence.values())
        table.add_row(
            n.node_id,
            n.policy,
            f"{n.input_tokens:,}/{n.output_tokens:,}",
            *(f"{n.costs[s]:.6f}" for s in SCENARIOS),
            f"{ev} runs" if ev else "assumed",
        )
    table.add_section()
    table.add_row("total", "", "", *(f"{est.total(s):.6f}" for s in SCENARIOS), "")
    print_uncut(table, console)

    summary = Table(title="per scenario", title_justify="left")
    for col in ("scenario", "cost $", "vs all-top-tier"):
        summary.add_column(col, justify="left" if col == "scenario" else "right")
    top = est.total("all-top-tier")
    for s in SCENARIOS:
        total = est.total(s)
        rel = f"{100 * (total - top) / top:+.1f}%" if top else "-"
        summary.add_row(s, f"{total:.6f}", rel)
    print_uncut(summary, console)
    for a in est.assumptions:
        console.print(f"assumption: {a}", markup=False)
