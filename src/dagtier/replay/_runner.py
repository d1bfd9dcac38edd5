"""Replay: stream recorded queries through the real executor under each policy.

Each query is one run of a one-node workflow whose prompt is the query id and whose task
key is the query's task. The executor, the policies, the checks and the statistics store
are dagtier's own; only the provider (recorded outcomes) and the judge (recorded quality
seen through configurable errors) are simulated. An adaptive policy starts from an empty
store for each replay and learns online from the stream, as it would in production.

The per-query path is kept lean: workflows, catalog, gateway and provider are built once
per replay and reused by every run.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from .._exceptions import SpecError, SpecIssue
from .._types import Tier
from ..catalog import Catalog, ModelEntry, Price
from ..plan import Plan, compile_workflow
from ..policies.routers import ClassifierRouter, TextFeatures
from ..providers.gateway import Gateway
from ..providers.registry import ProviderRegistry
from ..spec.models import Workflow
from ..store import MemoryStore
from ._data import Outcomes
from ._judge import ReplayJudge
from ._metrics import aiq, pgr
from ._provider import ReplayProvider

DEFAULT_POLICIES = ("static:1", "static:2", "static:3", "cascade", "adaptive")
ROUTER_POLICIES = ("router+cascade", "router+adaptive", "router-only")
NODE = "answer"
ROUTE_ONLY_TARGET = 0.96
"""``router-only`` without a threshold picks, on the training part, the one at which routing
would have reached this share of the top tier's quality there (with no judge there are no
prices to break even on, only the quality wanted): 95%, and a point for the difference
between the part it is chosen on and the part it is used on (about the standard error of
the difference in quality between two halves of 7,000 queries; on RouteLLM MMLU, seeds 0
and 1, chosen for 95.5% it reached 95.3% and 94.5%)."""
DEFAULT_TRAIN = 0.5
"""With router policies, the share of the stream that only trains (not reported)."""

Progress = Callable[[int], None]
"""Called with the number of queries replayed since the last call."""


@dataclass(frozen=True, slots=True)
class PolicySpec:
    """A policy as named on the command line: ``static:N``, ``cascade[:START]``,
    ``adaptive[:TARGET]``."""

    label: str
    policy: dict[str, Any]
    judged: bool
    router: bool = False
    """A classifier router reads each query's text first (``router+...``)."""
    threshold: float | None = None
    """The router's threshold (None: break-even on the tiers' prices)."""
    skip_worth: float = 0.0
    """The router's worth of an avoided escalation (:class:`ClassifierRouter`)."""


ROUTER_SETTINGS = ("skip_worth",)
"""Settings of a ``router+...`` policy that are the router's, not the policy's."""


def parse_policy(
    text: str, n_tiers: int, canary: float | None = None, *, source: str = "--policy"
) -> PolicySpec:
    """``NAME[:ARG] key=value ...``: a replay policy with those settings
    (``"adaptive fix_worth=1.5"``, ``"router+cascade skip_worth=0.03"``). ``canary``: the
    adaptive policy's canary share (None: its default).

    Raises:
        SpecError: an unknown policy (with the valid forms), a word that is not
            ``key=value``, or a setting the policy does not take or a value it refuses
            (pydantic's message, located).
    """
    from ..spec.models import Policy

    head, *words = text.split()
    base = _parse_name(head, n_tiers, canary)
    if not words:
        return base
    policy: dict[str, Any] = dict(base.policy)
    skip_worth = base.skip_worth

    def bad(msg: str, hint: str) -> SpecError:
        return SpecError(source=source, issues=[SpecIssue(text, msg, "bad-policy", hint=hint)])

    for word in words:
        key, eq, raw = word.partition("=")
        if not eq or not key:
            raise bad(
                f"'{word}' is not key=value",
                'write the policy then its settings: "adaptive fix_worth=1.5"',
            )
        if key in ROUTER_SETTINGS and base.router:
            try:
                skip_worth = float(raw)
            except ValueError:
                skip_worth = -1.0
            if not 0.0 <= skip_worth < math.inf:
                raise bad(f"{key} must be a number >= 0, got '{raw}'", f"{key}=0.03")
            continue
        try:
            policy[key] = yaml.safe_load(raw)
        except yaml.YAMLError:
            policy[key] = raw
    try:
        TypeAdapter(Policy).validate_python(policy)
    except ValidationError as exc:
        issues = [
            SpecIssue(
                text + (f": {'.'.join(str(p) for p in e['loc'][1:])}" if e["loc"][1:] else ""),
                e["msg"],
                "bad-policy",
                hint=f"settings of {policy['kind']}: see the policy reference in README.md"
                + (f"; a router's: {', '.join(ROUTER_SETTINGS)}" if base.router else ""),
            )
            for e in exc.errors()
        ]
        raise SpecError(source=source, issues=issues) from None
    return replace(base, label=text, policy=policy, skip_worth=skip_worth)


def _parse_name(text: str, n_tiers: int, canary: float | None) -> PolicySpec:
    name, _, arg = text.strip().partition(":")
    forms = (
        f"static:N (N = 1..{n_tiers}), cascade[:START], adaptive[:TARGET], "
        "router+cascade[:P], router+adaptive[:P], router-only[:P] (P: the router's threshold; "
        "router-only without P picks it on the training part)"
    )

    def bad(msg: str) -> SpecError:
        return SpecError(
            source="--policy",
            issues=[SpecIssue(text, msg, "bad-policy", hint=f"valid forms: {forms}")],
        )

    def tier_arg(default: int) -> int:
        if not arg:
            return default
        if not arg.isdigit() or not 1 <= int(arg) <= n_tiers:
            raise bad(f"tier must be 1..{n_tiers}, got '{arg}'")
        return int(arg)

    if name.startswith("router"):
        threshold = None
        if arg:
            try:
                threshold = float(arg)
            except ValueError:
                threshold = -1.0
            if not 0.0 <= threshold <= 1.0:
                raise bad(f"the router's threshold must be a number in [0, 1], got '{arg}'")
        if name == "router-only":
            static = {"kind": "static", "tier": 1}
            return PolicySpec(text, static, judged=False, router=True, threshold=threshold)
        base = {"router+cascade": "cascade", "router+adaptive": "adaptive"}.get(name)
        if base is None:
            raise bad(f"unknown policy '{name}'")
        inner = _parse_name(base, n_tiers, canary)
        return PolicySpec(text, inner.policy, judged=True, router=True, threshold=threshold)
    if name == "static":
        if not arg:
            raise bad("static needs a tier: static:1")
        return PolicySpec(text, {"kind": "static", "tier": tier_arg(1)}, judged=False)
    exhausted = "accept_unverified"  # the top tier's answer is the user's answer either way
    if name == "cascade":
        start = tier_arg(1)
        policy = {"kind": "cascade", "start": start, "max": n_tiers, "on_exhausted": exhausted}
        return PolicySpec(text, policy, judged=True)
    if name == "adaptive":
        policy = {"kind": "adaptive", "max_tier": n_tiers, "on_exhausted": exhausted}
        if canary is not None:
            policy["canary"] = canary
        if arg:
            try:
                policy["target"] = float(arg)
            except ValueError:
                raise bad(f"target must be a number in (0, 1], got '{arg}'") from None
        return PolicySpec(text, policy, judged=True)
    raise bad(f"unknown policy '{name}'")


@dataclass(slots=True)
class PolicyStats:
    """What one policy did over the replayed stream."""

    label: str
    queries: int = 0
    quality: float = 0.0
    """Sum of the final answers' recorded quality (mean: :attr:`mean_quality`)."""
    cost: float = 0.0
    """Sum of every call's cost, judge included."""
    judge_cost: float = 0.0
    escalated: int = 0
    """Queries that made more than one answer attempt."""
    failed: int = 0
    """Queries that ended without an answer (counted at quality 0)."""
    wasted: int = 0
    """Answers below the last one (paid for, then escalated past)."""
    wasted_cheap: int = 0
    """Tier-1 answers escalated past: the cheap attempts wasted, which a router that starts
    an input higher saves (the tiers above tier 1 are not cheap)."""
    routed: int = 0
    """Queries whose router did not abstain."""
    calls: dict[int, int] = field(default_factory=lambda: {1: 0, 2: 0, 3: 0})
    router: dict[str, Any] | None = None
    """The router's own account at the end (its state, outcomes seen, AUC)."""
    seconds: float = 0.0
    per_query: list[tuple[float, float]] = field(default_factory=list)
    """(quality, cost) of each query in stream order: the same order for every policy of
    a replay, so two policies pair query by query (``replay --compare``)."""
    # filled in by the report
    quality_pct: float | None = None
    cost_pct: float | None = None
    pgr: float | None = None

    @property
    def mean_quality(self) -> float:
        return self.quality / self.queries if self.queries else 0.0

    @property
    def mean_cost(self) -> float:
        return self.cost / self.queries if self.queries else 0.0

    @property
    def mean_judge_cost(self) -> float:
        return self.judge_cost / self.queries if self.queries else 0.0

    @property
    def wasted_per_100(self) -> float:
        return 100 * self.wasted / self.queries if self.queries else 0.0

    @property
    def wasted_cheap_per_100(self) -> float:
        return 100 * self.wasted_cheap / self.queries if self.queries else 0.0

    @property
    def escalation_rate(self) -> float:
        return self.escalated / self.queries if self.queries else 0.0

    def call_shares(self) -> dict[int, float]:
        total = sum(self.calls.values())
        return {t: (n / total if total else 0.0) for t, n in self.calls.items()}

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.label,
            "queries": self.queries,
            "mean_quality": self.mean_quality,
            "quality_pct_of_top": self.quality_pct,
            "mean_cost": self.mean_cost,
            "cost_pct_of_top": self.cost_pct,
            "escalation_rate": self.escalation_rate,
            "wasted_per_100": self.wasted_per_100,
            "wasted_cheap_per_100": self.wasted_cheap_per_100,
            "routed_share": self.routed / self.queries if self.queries else 0.0,
            "call_share_by_tier": {str(t): s for t, s in self.call_shares().items()},
            "mean_judge_cost": self.mean_judge_cost,
            "failed": self.failed,
            "pgr": self.pgr,
            "router": self.router,
            "seconds": self.seconds,
        }


@dataclass(slots=True)
class Reference:
    """A per-query choice computed straight from the data (tiers alone, the oracle)."""

    label: str
    mean_quality: float
    mean_cost: float


@dataclass(slots=True)
class ReplayReport:
    source: str
    tiers: list[str]
    queries: int
    skipped: int
    """Queries without an outcome for every tier's model (not replayed)."""
    seed: int
    judge: ReplayJudge
    policies: list[PolicyStats]
    tier_refs: list[Reference]
    oracle: Reference
    aiq_policies: float | None = None
    aiq_tiers: float | None = None
    seconds: float = 0.0
    canary: float | None = None
    """The adaptive policy's canary share when set for the replay (None: its default)."""
    trained: int = 0
    """Queries at the head of the stream that only trained (not in any figure)."""

    @property
    def top(self) -> Reference:
        return self.tier_refs[-1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "tiers": self.tiers,
            "queries": self.queries,
            "skipped": self.skipped,
            "seed": self.seed,
            "canary": self.canary,
            "trained_on": self.trained,
            "judge": {
                "false_accept": self.judge.false_accept,
                "false_reject": self.judge.false_reject,
                "cost": self.judge.cost,
            },
            "tiers_alone": [
                {
                    "tier": i + 1,
                    "model": r.label,
                    "mean_quality": r.mean_quality,
                    "mean_cost": r.mean_cost,
                }
                for i, r in enumerate(self.tier_refs)
            ],
            "oracle": {
                "mean_quality": self.oracle.mean_quality,
                "mean_cost": self.oracle.mean_cost,
            },
            "policies": [p.to_dict() for p in self.policies],
            "aiq_policies": self.aiq_policies,
            "aiq_tiers_alone": self.aiq_tiers,
            "seconds": self.seconds,
        }


class _StatsOnly:
    """A StatsStore and nothing else: replayed runs are not worth keeping, only learning
    (the executor stores runs only in a store that is also a RunStore)."""

    __slots__ = ("all_stats", "record_observation", "tier_stats")

    def __init__(self) -> None:
        mem = MemoryStore()
        self.tier_stats = mem.tier_stats
        self.record_observation = mem.record_observation
        self.all_stats = mem.all_stats


def replay_catalog(models: Sequence[str]) -> Catalog:
    """One replay model per tier. Priced at zero: the provider reports each call's cost."""
    free = Price(input=0, output=0)
    entries = {m: ModelEntry(provider="replay", model=m, price=free) for m in models}
    tiers: dict[Tier, list[str]] = {1: [], 2: [], 3: []}
    for i, m in enumerate(models):
        tiers[i + 1] = [m]  # type: ignore[index]
    return Catalog(entries, tiers, source="replay catalog")


def _workflow(spec: PolicySpec, task: str, texts: bool) -> Workflow:
    node: dict[str, Any] = {"prompt": "{{ inputs.query_id }}", "task": task, "policy": spec.policy}
    inputs = {"query_id": "string"}
    if texts:
        # routers read the prompt: the query's text; the provider finds the query by its id
        node["prompt"], node["system"] = "{{ inputs.text }}", "{{ inputs.query_id }}"
        inputs["text"] = "string"
    if spec.judged:
        node["checks"] = [{"type": "judge"}]
    return Workflow.model_validate({"name": "replay", "inputs": inputs, "nodes": {NODE: node}})


def references(
    outcomes: Outcomes, tiers: Sequence[str], queries: Sequence[str]
) -> tuple[list[Reference], Reference]:
    """Each tier alone, and the oracle (per query the cheapest model with the best quality)."""
    table = outcomes.table
    n = len(queries) or 1
    refs = []
    for m in tiers:
        refs.append(
            Reference(
                m,
                sum(table[q][m][0] for q in queries) / n,
                sum(table[q][m][1] for q in queries) / n,
            )
        )
    oq = oc = 0.0
    for q in queries:
        row = table[q]
        best = max(row[m][0] for m in tiers)
        oq += best
        oc += min(row[m][1] for m in tiers if row[m][0] == best)
    return refs, Reference("oracle", oq / n, oc / n)


def default_policies(rungs: int) -> tuple[str, ...]:
    """What a ladder of ``rungs`` models is replayed under by default: static on each rung
    (no ``static:3`` on two), cascade, adaptive; :data:`DEFAULT_POLICIES` for three."""
    return (*(f"static:{t}" for t in range(1, rungs + 1)), "cascade", "adaptive")


async def replay(
    outcomes: Outcomes,
    tiers: Sequence[str],
    policies: Sequence[str | PolicySpec] | None = None,
    *,
    false_accept: float = 0.1,
    false_reject: float = 0.1,
    judge_cost: float | None = None,
    seed: int = 0,
    limit: int | None = None,
    canary: float | None = None,
    progress: Progress | None = None,
    texts: Mapping[str, str] | None = None,
    train: float | None = None,
) -> ReplayReport:
    """Replay recorded outcomes under each policy and measure quality and cost.

    Configure logging at WARNING first (the CLI does): at INFO every attempt is logged.

    Args:
        outcomes: from :func:`load_outcomes`.
        tiers: the ladder's model names, cheapest first (2 or 3).
        policies: ``static:N``, ``cascade[:START]``, ``adaptive[:TARGET]``, or parsed
            :class:`PolicySpec` (``replay --compare`` passes configured ones); default:
            :func:`default_policies` of the ladder. *Changed in issue 11*: follows the
            ladder (was :data:`DEFAULT_POLICIES`, whose ``static:3`` a 2-model ladder lacks).
        false_accept, false_reject: the judge's error rates.
        judge_cost: USD per judgement; default: tier 1's mean cost on the replayed queries.
        seed: the stream's shuffle and the judge's mistakes.
        limit: replay only the first N queries of the shuffled stream.
        canary: the share of adaptive runs that also run the top tier, which measures the
            judge (None: the policy's default, 1%).
        progress: called with the number of queries done since its last call.
        texts: each query's text (:func:`load_queries`): the prompt routers read.
        train: the share of the stream (after ``limit``) that only trains: every policy
            runs it and learns, no figure counts it (default: half with router policies,
            none otherwise). Routers learn online only from what they have seen: no peeking.

    Raises:
        SpecError: an unknown model or policy, or no query with outcomes for every tier,
            or router policies without texts.
    """
    from .. import executor

    tiers = list(tiers)
    if not 2 <= len(tiers) <= 3:
        raise SpecError(
            source="--tiers",
            issues=[
                SpecIssue(
                    "",
                    f"expected 2 or 3 models (tiers 1..3), got {len(tiers)}",
                    "bad-tiers",
                    hint="--tiers CHEAP,MID,FRONTIER",
                )
            ],
        )
    outcomes.check_models(tiers)
    if policies is None:
        policies = default_policies(len(tiers))
    specs = [
        p if isinstance(p, PolicySpec) else parse_policy(p, len(tiers), canary) for p in policies
    ]
    queries = outcomes.complete_queries(tiers)
    skipped = len(outcomes.tasks) - len(queries)
    if not queries:
        raise SpecError(
            source=outcomes.source,
            issues=[
                SpecIssue("", "no query has an outcome for every model of --tiers", "no-queries")
            ],
        )
    random.Random(seed).shuffle(queries)
    if limit is not None:
        queries = queries[:limit]
    routed = any(s.router for s in specs)
    if routed and texts is None:
        raise SpecError(
            source="--policy",
            issues=[
                SpecIssue(
                    ", ".join(s.label for s in specs if s.router),
                    "router policies read each query's text",
                    "no-query-texts",
                    hint="pass --queries NAME.queries.csv.gz",
                )
            ],
        )
    if train is None:
        train = DEFAULT_TRAIN if routed else 0.0
    n_train = int(len(queries) * train)
    scored = queries[n_train:]
    tier_refs, oracle = references(outcomes, tiers, scored)
    cost = tier_refs[0].mean_cost if judge_cost is None else judge_cost
    judge = ReplayJudge(false_accept, false_reject, cost, seed)
    provider = ReplayProvider(outcomes, judge)
    gateway = Gateway(replay_catalog(tiers), ProviderRegistry({"replay": provider}))
    tasks = outcomes.tasks
    table = outcomes.table
    started = time.perf_counter()
    results = []
    features = None
    if routed:
        assert texts is not None
        features = TextFeatures(memo=None)
        features.prime([(texts[q], tasks[q]) for q in queries])
    for spec in specs:
        # one plan per task, compiled once: a run of a workflow would compile it again
        plans: dict[str, Plan] = {}
        store = _StatsOnly()
        st = PolicyStats(spec.label)
        route_only = spec.router and not spec.judged
        router = (
            ClassifierRouter(
                threshold=spec.threshold,
                features=features,
                per_cost=route_only,
                skip_worth=spec.skip_worth,
            )
            if spec.router
            else None
        )
        routers = {NODE: router} if router is not None else None
        t0 = time.perf_counter()
        pending = 0
        for i, q in enumerate(queries):
            task = tasks[q]
            plan = plans.get(task)
            if plan is None:
                wf = _workflow(spec, task, texts is not None)
                plan = plans[task] = compile_workflow(wf, gateway.catalog)
            inputs = {"query_id": q} if texts is None else {"query_id": q, "text": texts[q]}
            if route_only and i == n_train:
                assert router is not None
                await router.refit()
                if spec.threshold is None:
                    router.threshold = _route_only_threshold(
                        router, [table[q] for q in queries[:n_train]], tiers
                    )
            res = await executor.run(
                plan,
                inputs,
                gateway=gateway,
                store=store,
                run_id=q,
                seed=seed + i,
                # route-only's training part runs at tier 1, every outcome reported: its
                # training set, as an application would log one before routing
                routers=None if route_only and i < n_train else routers,
            )
            node = res.nodes[NODE]
            if route_only and node.model is not None:
                # no judge: the outcome is reported, as an application would with
                # record_outcome (what the route-only router learns from)
                assert router is not None and node.tier is not None and texts is not None
                right = table[q][node.model][0] >= judge.threshold
                await router.learn(texts[q], task, node.tier, right, node.cost)
            if i < n_train:
                continue
            st.queries += 1
            answered: list[int] = []
            for att in node.attempts:
                st.cost += att.cost + att.judge_cost
                st.judge_cost += att.judge_cost
                st.calls[att.tier] += 1
                if att.purpose == "answer":
                    answered.append(att.tier)
            if len(answered) > 1:
                st.escalated += 1
                st.wasted += len(answered) - 1
                st.wasted_cheap += answered[:-1].count(1)
            if node.task_key != task:
                st.routed += 1
            quality = 0.0
            if node.ok and node.model is not None:
                quality = table[q][node.model][0]
                st.quality += quality
            else:
                st.failed += 1
            st.per_query.append((quality, node.cost))
            pending += 1
            if progress is not None and pending >= 200:
                progress(pending)
                pending = 0
        if progress is not None and pending:
            progress(pending)
        st.seconds = time.perf_counter() - t0
        if router is not None:
            st.router = router.status()
        results.append(st)
    report = ReplayReport(
        outcomes.source,
        tiers,
        len(scored),
        skipped,
        seed,
        judge,
        results,
        tier_refs,
        oracle,
        seconds=time.perf_counter() - started,
        canary=canary,
        trained=n_train,
    )
    _score(report)
    return report


def _route_only_threshold(
    router: ClassifierRouter,
    trained: Sequence[Mapping[str, tuple[float, float]]],
    tiers: Sequence[str],
) -> float | None:
    """The lowest threshold at which route-only would have kept :data:`ROUTE_ONLY_TARGET` of
    the top tier's quality on the training part, scored by the router's cross-validated
    estimates (a model that did not see the query). None: the router has no model."""
    scores = router.cross_validated_scores()
    if len(scores) != len(trained):
        return None
    cheap, up, top = tiers[0], tiers[1], tiers[-1]
    quality = sum(t[cheap][0] for t in trained)
    wanted = ROUTE_ONLY_TARGET * sum(t[top][0] for t in trained)
    if quality >= wanted:
        return 1.0 + max(scores, default=0.0)  # tier 1 alone is good enough: never route
    for score, t in sorted(zip(scores, trained, strict=True), key=lambda st: -st[0]):
        quality += t[up][0] - t[cheap][0]
        if quality >= wanted:
            return score
    return 0.0


def _score(report: ReplayReport) -> None:
    top, bottom = report.top, report.tier_refs[0]
    for st in report.policies:
        st.quality_pct = st.mean_quality / top.mean_quality if top.mean_quality else None
        st.cost_pct = st.mean_cost / top.mean_cost if top.mean_cost else None
        st.pgr = pgr(st.mean_quality, bottom.mean_quality, top.mean_quality)
    tier_pts = [(r.mean_cost, r.mean_quality) for r in report.tier_refs]
    pol_pts = [(p.mean_cost, p.mean_quality) for p in report.policies]
    lo, hi = bottom.mean_cost, top.mean_cost
    report.aiq_tiers = aiq(tier_pts, lo, hi)
    report.aiq_policies = aiq(pol_pts + tier_pts, lo, hi) if pol_pts else None
