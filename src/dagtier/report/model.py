"""Reports as plain data: built from a run's recorded results, rendered last (render.py).

Everything here is computed from what the run actually used: the attempts, their token
counts by kind and their costs. The savings are counterfactual estimates, and say so:
the same tokens priced as if each node had answered once on another tier.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..results import deadline_late_s, deadline_met
from ..telemetry.logs import count_escalations

if TYPE_CHECKING:
    from ..catalog import Catalog, ModelEntry
    from ..results import Attempt, NodeResult, RunResult, Turn
    from ..spec.models import Workflow
    from ..store import RunRecord, RunStore
    from .abtest import ABReport

SAVINGS_NOTE = (
    "counterfactual estimates: each node's final answer (same tokens) priced as one call on "
    "the named tier's first catalog model; judge costs are kept as they were. Not measured."
)


@dataclass(slots=True)
class AttemptRow:
    index: int
    purpose: str
    tier: int
    model: str
    provider: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost: float
    judge_cost: float
    latency_s: float
    verdict: str
    reason: str
    fallbacks: int
    """Failed provider tries (retries and same-tier fallbacks) of this attempt."""
    tries: int
    """Provider calls this attempt made (its failed tries, plus the one that answered)."""
    turns: list[Turn] = field(default_factory=list)
    """A tool loop's model calls and the tools each ran (empty for a single call)."""

    @property
    def tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
            + self.reasoning_tokens
        )


@dataclass(slots=True)
class NodeRow:
    node_id: str
    status: str
    policy: str | None
    """``static T2``, ``cascade T1→T3``... (None when the workflow file is not available)."""
    tier: int | None
    model: str | None
    attempts: list[AttemptRow]
    escalations: int
    cache_hit: bool
    cost: float
    judge_cost: float
    tokens: int
    start_s: float | None
    """Seconds after the run started; None for a node that never ran."""
    end_s: float | None
    error: str | None
    decision: str | None
    deadline_tier: int | None = None
    """The tier the run's deadline started the node at (None: it changed nothing)."""
    critical: bool = False
    """On the run's critical path (the longest chain of dependent nodes by duration)."""
    top_tier_cost: float | None = None
    static_tier: int | None = None
    static_cost: float | None = None

    @property
    def latency_s(self) -> float:
        if self.start_s is None or self.end_s is None:
            return 0.0
        return self.end_s - self.start_s

    def cost_by_tier(self) -> dict[int, float]:
        out: dict[int, float] = {}
        for a in self.attempts:
            out[a.tier] = out.get(a.tier, 0.0) + a.cost + a.judge_cost
        return out


@dataclass(slots=True)
class Savings:
    actual: float
    top_tier_model: str | None
    top_tier_cost: float | None
    """The run's final answers priced on the top tier (None: the catalog has no tier 3)."""
    static_cost: float | None
    """The run's final answers priced on each node's static tier (None: no workflow)."""
    note: str = SAVINGS_NOTE
    stand_ins: dict[int, str] = field(default_factory=dict)
    """Tiers served by a stand-in (the local model, for lack of a key) -> its name. Their
    $0 says nothing of what the tier costs, so no saving is claimed against them."""

    @property
    def vs_top_tier(self) -> float | None:
        if self.top_tier_cost is None or self.stand_ins:
            return None
        return self.top_tier_cost - self.actual

    @property
    def vs_static(self) -> float | None:
        if self.static_cost is None or self.stand_ins:
            return None
        return self.static_cost - self.actual

    @staticmethod
    def pct(saved: float | None, baseline: float | None) -> float | None:
        if saved is None or not baseline:
            return None
        return 100.0 * saved / baseline


@dataclass(slots=True)
class Totals:
    cost: float
    judge_cost: float
    attempts: int
    escalations: int
    cache_hits: int
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    reasoning_tokens: int
    cost_by_tier: dict[int, float]
    calls_by_tier: dict[int, int]
    nodes_by_status: dict[str, int]


@dataclass(slots=True)
class DeadlineOutcome:
    """A run's deadline and what became of it. *Added in issue 16.*"""

    deadline_s: float
    elapsed_s: float | None
    """From the deadline's start (a resume's own start) to the run's end; None: not ended."""
    changed: dict[str, int] = field(default_factory=dict)
    """Nodes the deadline started higher -> the tier it started them at."""

    @property
    def met(self) -> bool | None:
        if self.elapsed_s is None:
            return None
        return deadline_met(self.deadline_s, self.elapsed_s)

    @property
    def late_s(self) -> float | None:
        """By how much the run missed its deadline (None: met, or not ended)."""
        if self.elapsed_s is None:
            return None
        return deadline_late_s(self.deadline_s, self.elapsed_s)

    @classmethod
    def of(cls, result: RunResult) -> DeadlineOutcome | None:
        if result.deadline_s is None:
            return None
        changed = {n: r.deadline_tier for n, r in result.nodes.items() if r.deadline_tier}
        return cls(result.deadline_s, result.elapsed_s, changed)  # type: ignore[arg-type]

    @classmethod
    def recorded(
        cls, record: RunRecord, nodes: Iterable[NodeRow | NodeResult]
    ) -> DeadlineOutcome | None:
        """The outcome of a stored run (None: it had no deadline)."""
        if record.deadline_s is None:
            return None
        since = record.started_at
        if record.deadline_at is not None:
            since = record.deadline_at - record.deadline_s  # a resume's deadline began later
        elapsed = record.finished_at - since if record.finished_at is not None else None
        changed = {n.node_id: n.deadline_tier for n in nodes if n.deadline_tier}
        return cls(record.deadline_s, elapsed, changed)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "met": self.met, "late_s": self.late_s}

    def describe(self) -> str:
        """One line: met or missed, and which decisions the deadline changed."""
        if self.elapsed_s is None:
            head = f"deadline {self.deadline_s:g} s: the run has not ended"
        elif self.met:
            head = f"deadline {self.deadline_s:g} s: met ({self.elapsed_s:.2f} s)"
        else:
            head = (
                f"deadline {self.deadline_s:g} s: missed by {self.late_s:.2f} s "
                f"({self.elapsed_s:.2f} s)"
            )
        if not self.changed:
            return f"{head}; it changed no node's start tier"
        starts = ", ".join(f"{n} at T{t}" for n, t in self.changed.items())
        return f"{head}; it started {len(self.changed)} node(s) higher: {starts}"


@dataclass(slots=True)
class RunReport:
    run_id: str
    workflow: str
    status: str
    source: str | None
    started_at: float
    finished_at: float | None
    nodes: list[NodeRow]
    totals: Totals
    savings: Savings
    critical_path: list[str] = field(default_factory=list)
    critical_path_s: float = 0.0
    deadline: DeadlineOutcome | None = None

    @property
    def duration_s(self) -> float:
        return (self.finished_at - self.started_at) if self.finished_at else 0.0

    def node(self, node_id: str) -> NodeRow:
        for n in self.nodes:
            if n.node_id == node_id:
                return n
        raise KeyError(node_id)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["duration_s"] = self.duration_s
        d["savings"]["vs_top_tier"] = self.savings.vs_top_tier
        d["savings"]["vs_static"] = self.savings.vs_static
        if self.deadline is not None:
            d["deadline"] = self.deadline.to_dict()
        return d


def _attempt_row(a: Attempt) -> AttemptRow:
    u = a.usage
    return AttemptRow(
        a.index,
        a.purpose,
        a.tier,
        a.model,
        a.provider,
        u.input_tokens,
        u.output_tokens,
        u.cache_read_tokens,
        u.cache_write_tokens,
        u.reasoning_tokens,
        a.cost,
        a.judge_cost,
        a.latency_s,
        a.verdict,
        a.reason,
        len(a.fallbacks),
        a.tries,
        a.turns,
    )


def final_answer(r: NodeResult) -> Attempt | None:
    """The attempt whose tokens stand for the node's answer: the last answer that arrived
    (accepted, or the last rejected one for a node that failed its checks)."""
    for a in reversed(r.attempts):
        if a.purpose == "answer" and a.verdict != "error":
            return a
    return None


def _stand_ins(catalog: Catalog, attempts: list[AttemptRow]) -> dict[int, str]:
    """Tiers an attempt of which the catalog's local fallback served, not one of its own."""
    fallback = catalog.local_fallback
    return {
        a.tier: a.model
        for a in attempts
        if a.model == fallback and fallback not in {m.name for m in catalog.tier_models(a.tier)}  # type: ignore[arg-type]
    }


def tier_reference(catalog: Catalog, tier: int) -> ModelEntry | None:
    """The model whose prices stand for a tier in estimates: the tier's first catalog model."""
    models = catalog.tier_models(tier)  # type: ignore[arg-type]
    return models[0] if models else None


def _never_ran(
    record: RunRecord, nodes: Mapping[str, NodeResult], workflow: Workflow | None
) -> dict[str, NodeResult]:
    """The run's nodes the store has no result for: a store keeps what ran, so the nodes
    skipped below a failure (or not reached before the run stopped) would vanish from the
    report. The record names every node of the run (its fingerprints); so does the workflow."""
    from ..results import NodeResult

    every = [*record.node_fingerprints, *(workflow.nodes if workflow is not None else ())]
    why = "not run: a node it depends on failed, or the run stopped first"
    return {nid: NodeResult(nid, "skipped", error=why) for nid in every if nid not in nodes}


def recorded_workflow(source: str | None, override: Path | None = None) -> Workflow | None:
    """The workflow a recorded run ran, for policies, static tiers and the critical path:
    ``override`` if given and a file (its spec errors raised), else the file the run
    recorded, if it still exists and still loads.

    Raises:
        SpecError: ``override`` does not load.
    """
    from .._exceptions import DagtierError
    from ..spec import load_workflow

    path = override or (Path(source) if source else None)
    if path is None or not path.is_file():
        return None
    if override is not None:
        return load_workflow(path)
    try:
        return load_workflow(path)
    except DagtierError:
        return None


async def load_run_report(
    store: RunStore,
    run_id: str | None = None,
    *,
    catalog: Catalog,
    workflow: Path | None = None,
) -> RunReport:
    """The report of run ``run_id`` in ``store`` (None: the latest run), with the
    workflow from :func:`recorded_workflow`. *Added in issue 11* (from the CLI).

    Raises:
        StoreError: the store holds no runs, or no run ``run_id`` (the recent ones named).
        SpecError: ``workflow`` does not load.
    """
    from .._exceptions import StoreError

    if run_id is None:
        latest = await store.list_runs(1)
        if not latest:
            raise StoreError("the store holds no runs yet; run a workflow first")
        run_id = latest[0].run_id
    loaded = await store.load_run(run_id)
    if loaded is None:
        recent = ", ".join(r.run_id for r in await store.list_runs(5)) or "(none)"
        raise StoreError(f"no run '{run_id}' in the store (recent runs: {recent})")
    record, nodes = loaded
    wf = recorded_workflow(record.source, workflow)
    return build_report(record, nodes, catalog=catalog, workflow=wf)


def build_report(
    record: RunRecord,
    nodes: Mapping[str, NodeResult],
    *,
    catalog: Catalog,
    workflow: Workflow | None = None,
) -> RunReport:
    """Build a run's report from its record and node results (as a RunStore returns them).

    Args:
        record: the run's record.
        nodes: every node's result, by id.
        catalog: prices for the counterfactual savings.
        workflow: the workflow the run ran, for policies, static tiers and the critical
            path; without it those parts of the report are left empty.
    """
    t0 = record.started_at
    top = catalog.top_price_model()
    nodes = {**nodes, **_never_ran(record, nodes, workflow)}
    order = list(nodes)
    if workflow is not None:
        from ..graph import build_graph, topological_order

        order = [n for n in topological_order(build_graph(workflow)) if n in nodes]
        order += [n for n in nodes if n not in order]
    rows: list[NodeRow] = []
    for nid in order:
        r = nodes[nid]
        final = final_answer(r)
        row = NodeRow(
            node_id=nid,
            status=r.status,
            policy=workflow.node_label(nid) if workflow and nid in workflow.nodes else None,
            tier=r.tier,
            model=r.model,
            attempts=[_attempt_row(a) for a in r.attempts],
            escalations=count_escalations(r.attempts),
            cache_hit=r.cache_hit or r.status == "cached",
            cost=r.cost,
            judge_cost=r.judge_cost,
            tokens=r.usage.total,
            start_s=None if r.started_at is None else r.started_at - t0,
            end_s=None if r.finished_at is None else r.finished_at - t0,
            error=r.error,
            decision=r.decision,
            deadline_tier=r.deadline_tier,
        )
        # A cache hit costs nothing here and would cost nothing in the counterfactual run
        # either: only answers paid for in this run are repriced.
        paid = final is not None and not row.cache_hit
        if top is not None:
            row.top_tier_cost = (top.cost(final.usage) + final.judge_cost) if paid else 0.0  # type: ignore[union-attr]
        if workflow is not None and nid in workflow.nodes:
            row.static_tier = int(workflow.node_policy(nid).top_tier)
            ref = tier_reference(catalog, row.static_tier)
            if paid and ref is not None:
                row.static_cost = ref.cost(final.usage) + final.judge_cost  # type: ignore[union-attr]
            elif not paid:
                row.static_cost = 0.0
        rows.append(row)

    critical: list[str] = []
    critical_s = 0.0
    if workflow is not None:
        from ..graph import build_graph, critical_path

        g = build_graph(workflow)
        by_id = {n.node_id: n for n in rows}
        critical, critical_s = critical_path(g, lambda n: by_id[n].latency_s if n in by_id else 0.0)
        for nid in critical:
            if nid in by_id:
                by_id[nid].critical = True

    cost_by_tier: dict[int, float] = {}
    calls_by_tier: dict[int, int] = {}
    by_status: dict[str, int] = {}
    for row in rows:
        by_status[row.status] = by_status.get(row.status, 0) + 1
        for a in row.attempts:
            cost_by_tier[a.tier] = cost_by_tier.get(a.tier, 0.0) + a.cost + a.judge_cost
            calls_by_tier[a.tier] = calls_by_tier.get(a.tier, 0) + 1
    every = [a for row in rows for a in row.attempts]
    actual = sum(row.cost for row in rows)
    totals = Totals(
        cost=actual,
        judge_cost=sum(row.judge_cost for row in rows),
        attempts=len(every),
        escalations=sum(row.escalations for row in rows),
        cache_hits=sum(1 for row in rows if row.cache_hit),
        input_tokens=sum(a.input_tokens for a in every),
        output_tokens=sum(a.output_tokens for a in every),
        cache_read_tokens=sum(a.cache_read_tokens for a in every),
        cache_write_tokens=sum(a.cache_write_tokens for a in every),
        reasoning_tokens=sum(a.reasoning_tokens for a in every),
        cost_by_tier=dict(sorted(cost_by_tier.items())),
        calls_by_tier=dict(sorted(calls_by_tier.items())),
        nodes_by_status=dict(sorted(by_status.items())),
    )
    static_known = workflow is not None and all(
        row.static_cost is not None for row in rows if row.node_id in workflow.nodes
    )
    savings = Savings(
        actual=actual,
        top_tier_model=top.name if top is not None else None,
        top_tier_cost=sum(row.top_tier_cost or 0.0 for row in rows) if top is not None else None,
        static_cost=sum(row.static_cost or 0.0 for row in rows) if static_known else None,
        stand_ins=_stand_ins(catalog, every),
    )
    return RunReport(
        run_id=record.run_id,
        workflow=record.workflow,
        status=record.status,
        source=record.source,
        started_at=record.started_at,
        finished_at=record.finished_at,
        nodes=rows,
        totals=totals,
        savings=savings,
        critical_path=critical,
        critical_path_s=critical_s,
        deadline=DeadlineOutcome.recorded(record, rows),
    )


def report_from_result(
    result: RunResult, *, catalog: Catalog, workflow: Workflow | None = None
) -> RunReport:
    """A report straight from a :class:`RunResult` (no store involved)."""
    from ..store import RunRecord

    record = RunRecord(
        result.run_id,
        result.workflow,
        result.status,
        result.started_at,
        finished_at=result.finished_at,
        cost=result.cost,
        source=workflow.source if workflow is not None else None,
        deadline_s=result.deadline_s,
        deadline_at=(
            result.started_at + result.deadline_s if result.deadline_s is not None else None
        ),
    )
    return build_report(record, result.nodes, catalog=catalog, workflow=workflow)


# --- comparing two runs -------------------------------------------------------------------


@dataclass(slots=True)
class NodeChange:
    node_id: str
    status_a: str | None
    status_b: str | None
    tier_a: int | None
    tier_b: int | None
    model_a: str | None
    model_b: str | None
    cost_a: float
    cost_b: float
    attempts_a: int
    attempts_b: int

    @property
    def cost_delta(self) -> float:
        return self.cost_b - self.cost_a

    @property
    def tier_change(self) -> str:
        a = f"T{self.tier_a}" if self.tier_a else "-"
        b = f"T{self.tier_b}" if self.tier_b else "-"
        return a if a == b else f"{a}→{b}"


@dataclass(slots=True)
class Comparison:
    run_a: str
    run_b: str
    nodes: list[NodeChange]
    cost_a: float
    cost_b: float

    @property
    def cost_delta(self) -> float:
        return self.cost_b - self.cost_a

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_a": self.run_a,
            "run_b": self.run_b,
            "cost_a": self.cost_a,
            "cost_b": self.cost_b,
            "cost_delta": self.cost_delta,
            "nodes": [
                {**asdict(n), "cost_delta": n.cost_delta, "tier_change": n.tier_change}
                for n in self.nodes
            ],
        }


async def load_comparison(
    store: RunStore, a: str, b: str, *, catalog: Catalog, workflow: Path | None = None
) -> Comparison | ABReport:
    """``a`` against ``b``: two batches as an A/B test (:func:`.abtest.compare_batches`)
    when the store holds both as batches, else two runs node by node
    (:func:`compare_reports`). *Added in issue 14* (from the CLI).

    Raises:
        StoreError: a run or batch is not in the store (the recent runs named).
        SpecError: ``workflow`` does not load.
    """
    batches = getattr(store, "load_batch", None)
    if batches is not None and all([await batches(x) for x in (a, b)]):
        from .abtest import compare_batches

        return await compare_batches(store, a, b)
    return compare_reports(
        await load_run_report(store, a, catalog=catalog, workflow=workflow),
        await load_run_report(store, b, catalog=catalog, workflow=workflow),
    )


def compare_reports(a: RunReport, b: RunReport) -> Comparison:
    """Per node: cost and tier of run A against run B (nodes of either run, B's order first)."""
    rows_a = {n.node_id: n for n in a.nodes}
    rows_b = {n.node_id: n for n in b.nodes}
    ids = [n.node_id for n in b.nodes] + [n.node_id for n in a.nodes if n.node_id not in rows_b]
    changes = []
    for nid in ids:
        x, y = rows_a.get(nid), rows_b.get(nid)
        changes.append(
            NodeChange(
                nid,
                x.status if x else None,
                y.status if y else None,
                x.tier if x else None,
                y.tier if y else None,
                x.model if x else None,
                y.model if y else None,
                x.cost if x else 0.0,
                y.cost if y else 0.0,
                len(x.attempts) if x else 0,
                len(y.attempts) if y else 0,
            )
        )
    return Comparison(a.run_id, b.run_id, changes, a.totals.cost, b.totals.cost)
