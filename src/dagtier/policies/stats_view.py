"""What ``dagtier stats`` shows: per task key and tier, the evidence, the estimates the
adaptive policy compares, mean cost and latency, and the tier it would pick now.

Plain data first (:func:`collect`), rendered last (:func:`render`), so the JSON output and
the table cannot disagree.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .._types import TIERS, Tier
from .adaptive import EVAL_SUFFIX, JUDGE_SUFFIX, choose, trusted_start

if TYPE_CHECKING:
    from ..spec.models import Workflow
    from ..store import StatsStore, TierStats


@dataclass(slots=True)
class TierRow:
    tier: int
    observations: int
    successes: float
    """Decayed weight of successes (reported outcomes count several times)."""
    failures: float
    estimate: float
    """Estimated success rate (posterior mean, monotone across tiers)."""
    lower: float
    """The conservative estimate adaptive compares with its target."""
    mean_cost: float
    mean_latency_s: float
    eval_observations: int = 0
    """Of ``observations``, how many an eval seeded (``dagtier eval --seed-stats``)."""


@dataclass(slots=True)
class KeyStats:
    task_key: str
    target: float
    pick: int
    pick_reason: str
    tiers: list[TierRow] = field(default_factory=list)
    judge: list[TierRow] = field(default_factory=list)
    """The judge's agreement with the truth (reported outcomes, the canary), per answering
    tier."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(slots=True)
class RouterState:
    """A routed node's router as its last recorded decision shows it: a router's model lives
    in the process that ran the node, its decisions in the store."""

    node_id: str
    kind: str
    run_id: str | None
    """The run of the last decision (None: no recorded run of the workflow routed it)."""
    decision: str
    """Why it routed or abstained; a classifier's says how much evidence it has (or lacks)
    and its cross-validated AUC."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class _Settings:
    target: float = 0.9
    lo: Tier = 1
    hi: Tier = 3


def _settings_by_key(workflow: Workflow) -> dict[str, _Settings]:
    out: dict[str, _Settings] = {}
    for nid in workflow.nodes:
        key = workflow.task_key(nid)
        own = workflow.node_policy(nid)
        p = own.as_adaptive()
        # an adaptive node's own settings win over the defaults another node of the task has
        if p is own or key not in out:
            out[key] = _Settings(p.target, p.min_tier, p.max_tier)
    return out


def _rows(
    by_tier: dict[Tier, TierStats], lo: Tier, hi: Tier, *, monotone: bool = True
) -> list[TierRow]:
    from .adaptive import estimates

    est = {e.tier: e for e in estimates(by_tier, lo, hi)}
    rows = []
    for t in TIERS:
        st = by_tier.get(t)
        if st is None or t not in est:
            continue
        e = est[t]
        rows.append(
            TierRow(
                t,
                st.observations,
                st.successes,
                st.failures,
                e.mean if monotone else e.own_mean,
                e.lower,
                st.mean_cost,
                st.mean_latency_s,
            )
        )
    return rows


async def collect(
    store: StatsStore,
    *,
    workflow: Workflow | None = None,
    workflow_name: str | None = None,
    task: str | None = None,
) -> list[KeyStats]:
    """Statistics per task key, filtered to a workflow (its nodes' task keys, with their
    adaptive settings), a workflow name (keys ``NAME/node``) and/or one task key."""
    grouped: dict[str, dict[Tier, TierStats]] = {}
    for st in await store.all_stats():
        grouped.setdefault(st.task_key, {})[st.tier] = st
    settings = _settings_by_key(workflow) if workflow is not None else {}
    out: list[KeyStats] = []
    # keys with a '#' are derived evidence (KEY#judge, ...) shown beside their task key
    for key in sorted(k for k in grouped if "#" not in k):
        if task is not None and key != task:
            continue
        if workflow is not None and key not in settings:
            continue
        if workflow_name is not None and not key.startswith(workflow_name + "/"):
            continue
        s = settings.get(key, _Settings())
        choice = choose(grouped[key], s.lo, s.hi, s.target)
        pick, reason = choice.tier, choice.reason
        judged = grouped.get(key + JUDGE_SUFFIX, {})
        trusted, why = trusted_start(judged, choice.estimates, pick, s.lo, s.hi)
        if trusted != pick:
            pick, reason = trusted, f"{reason}; {why}"
        ks = KeyStats(key, s.target, pick, reason)
        ks.tiers = _rows(grouped[key], s.lo, s.hi)
        seeded = grouped.get(key + EVAL_SUFFIX, {})
        for row in ks.tiers:
            row.eval_observations = seeded[row.tier].observations if row.tier in seeded else 0
        if judged:
            ks.judge = _rows(judged, 1, 3, monotone=False)
        out.append(ks)
    return out


async def router_states(store: Any, workflow: Workflow, *, runs: int = 200) -> list[RouterState]:
    """The last routing decision of each node of ``workflow`` that has a ``router:``, from
    the newest ``runs`` runs in the store (a store without runs: none found)."""
    from ..store import RunStore

    routed = {nid: n.router.kind for nid, n in workflow.nodes.items() if n.router is not None}
    found: dict[str, RouterState] = {}
    if routed and isinstance(store, RunStore):
        for rec in await store.list_runs(runs):
            if rec.workflow != workflow.name:
                continue
            loaded = await store.load_run(rec.run_id)
            nodes = loaded[1] if loaded is not None else {}
            for nid in routed.keys() - found.keys():
                decision = nodes[nid].decision if nid in nodes else None
                if decision is not None and decision.startswith("router ("):
                    found[nid] = RouterState(nid, routed[nid], rec.run_id, decision)
            if len(found) == len(routed):
                break
    return [
        found.get(nid, RouterState(nid, kind, None, "no recorded run routed it yet"))
        for nid, kind in sorted(routed.items())
    ]


def render_routers(states: list[RouterState]) -> Any:
    """A rich renderable: one row per routed node."""
    from rich.table import Table

    table = Table(title="routers (the last recorded decision)")
    for col in ("node", "router", "run", "decision"):
        table.add_column(col)
    for r in states:
        table.add_row(r.node_id, r.kind, r.run_id or "-", r.decision)
    return table


def render(keys: list[KeyStats]) -> Any:
    """A rich renderable: one table, a row per (task key, tier)."""
    from rich.table import Table

    table = Table(title="adaptive routing statistics (decayed evidence)")
    for col, right in (
        ("task key", False),
        ("tier", True),
        ("obs", True),
        ("from eval", True),
        ("successes", True),
        ("est. success", True),
        ("lower bound", True),
        ("mean cost $", True),
        ("mean secs", True),
        ("judge agrees", True),
        ("adaptive picks", False),
    ):
        table.add_column(col, justify="right" if right else "left")
    for ks in keys:
        judge = {r.tier: r for r in ks.judge}
        for i, r in enumerate(ks.tiers):
            j = judge.get(r.tier)
            table.add_row(
                ks.task_key if i == 0 else "",
                str(r.tier),
                str(r.observations),
                str(r.eval_observations) if r.eval_observations else "-",
                f"{r.successes:.1f}",
                f"{r.estimate:.3f}",
                f"{r.lower:.3f}",
                f"{r.mean_cost:.6f}",
                f"{r.mean_latency_s:.2f}",
                f"{j.estimate:.2f} (n={j.observations})" if j else "-",
                (f"tier {ks.pick} (target {ks.target:g})" if i == 0 else ""),
            )
    return table
