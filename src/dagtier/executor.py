"""The scheduler: a node starts the moment all its dependencies have succeeded.

No lock-step rounds: each finished node decrements its dependents' counters of unfinished
dependencies and starts those that reach zero, so a slow node never holds back an
unrelated branch. One anyio task group owns every node task; a CapacityLimiter bounds
concurrency. A node's result is committed to the store before its dependents start.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio

from . import _durable
from ._exceptions import BudgetExhausted, DagtierUsageError, SpecError, SpecIssue
from ._logging import get_logger, redact_text
from ._types import RunStatus
from ._yaml import did_you_mean
from .budget import CURRENT_NODE, Budget
from .catalog import Catalog, load_catalog
from .events import EventBus, NodeFinished, NodeStarted, RunFinished, RunStarted, Subscriber
from .fingerprint import cache_key, node_fingerprints, workflow_fingerprint
from .policies import POLICIES, AttemptFailed, NodeContext
from .providers.base import CompletionRequest, Message, Provider
from .providers.gateway import Gateway
from .providers.registry import ProviderRegistry
from .results import NodeResult, RunResult
from .spec.models import Workflow
from .spec.templates import Template, analyze
from .store import MemoryStore, ResultCache, RunRecord, RunStore, StatsStore


@dataclass(frozen=True, slots=True)
class _Plan:
    """Per-workflow data the scheduler needs, computed once."""

    order: tuple[str, ...]
    children: dict[str, tuple[str, ...]]
    indegree: dict[str, int]
    prompts: dict[str, Template]
    systems: dict[str, Template | None]
    refs: dict[str, frozenset[str]]
    """Node ids each node's templates read (besides inputs)."""


def _plan(workflow: Workflow) -> _Plan:
    from .graph import build_graph, topological_order

    g = build_graph(workflow)
    order = tuple(topological_order(g))
    children = {n: tuple(sorted(g.successors(n))) for n in order}
    indegree = {n: g.in_degree(n) for n in order}
    prompts, systems, refs = {}, {}, {}
    for nid, node in workflow.nodes.items():
        prompts[nid] = Template(node.prompt)
        systems[nid] = Template(node.system) if node.system else None
        names = set(analyze(node.prompt).names)
        if node.system:
            names |= analyze(node.system).names
        names.discard("inputs")
        refs[nid] = frozenset(names)
    return _Plan(order, children, indegree, prompts, systems, refs)


_PLANS: dict[int, tuple[Workflow, _Plan]] = {}


def plan_for(workflow: Workflow) -> _Plan:
    cached = _PLANS.get(id(workflow))
    if cached is not None and cached[0] is workflow:
        return cached[1]
    plan = _plan(workflow)
    if len(_PLANS) > 64:
        _PLANS.clear()
    _PLANS[id(workflow)] = (workflow, plan)
    return plan


def coerce_inputs(workflow: Workflow, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """Check the run's inputs against the declaration: required present, none unknown,
    strings from the command line converted to the declared type.

    Raises:
        SpecError: every problem with the inputs.
    """
    given = dict(given or {})
    issues: list[SpecIssue] = []
    out: dict[str, Any] = {}
    for name in given:
        if name not in workflow.inputs:
            hint = did_you_mean(name, workflow.inputs) or (
                f"declared inputs: {', '.join(workflow.inputs) or '(none)'}"
            )
            issues.append(
                SpecIssue(f"inputs.{name}", f"unknown input '{name}'", "unknown-input", hint=hint)
            )
    for name, decl in workflow.inputs.items():
        if name in given:
            value = given[name]
            try:
                out[name] = _coerce(value, decl.type)
            except ValueError as exc:
                issues.append(
                    SpecIssue(
                        f"inputs.{name}",
                        str(exc),
                        "invalid-input",
                        hint=f"'{name}' is declared as {decl.type}",
                    )
                )
        elif decl.default is not None:
            out[name] = decl.default
        elif decl.required:
            issues.append(
                SpecIssue(
                    f"inputs.{name}",
                    f"required input '{name}' was not given",
                    "missing-input",
                    hint=f"pass --input {name}=VALUE",
                )
            )
        else:
            out[name] = None
    if issues:
        raise SpecError(source=f"inputs of {workflow.source}", issues=issues)
    return out


def _coerce(value: Any, kind: str) -> Any:
    if kind == "string":
        return value if isinstance(value, str) else json.dumps(value)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise ValueError(f"expected {kind}, got {value!r}") from None
    checks = {
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
        "object": lambda v: isinstance(v, dict),
        "array": lambda v: isinstance(v, list),
    }
    if not checks[kind](value):
        raise ValueError(f"expected {kind}, got {value!r}")
    return value


def task_key(workflow: Workflow, node_id: str) -> str:
    return workflow.nodes[node_id].task or f"{workflow.name}/{node_id}"


class _Run:
    """The state of one run. Allocates little per node: the benchmark counts microseconds."""

    def __init__(
        self,
        workflow: Workflow,
        inputs: dict[str, Any],
        *,
        run_id: str,
        gateway: Gateway,
        run_store: RunStore | None,
        stats: StatsStore | None,
        events: EventBus,
        concurrency: int,
        fail_fast: bool,
        rng: random.Random,
        done: Mapping[str, NodeResult],
        budget: Any = None,
        cache: ResultCache | None = None,
        cache_ttl_s: float | None = None,
    ) -> None:
        self.wf = workflow
        self.plan = plan_for(workflow)
        self.inputs = inputs
        self.run_id = run_id
        self.gateway = gateway
        self.run_store = run_store
        self.stats = stats
        self.events = events
        self.limiter = anyio.CapacityLimiter(concurrency)
        self.fail_fast = fail_fast
        self.rng = rng
        self.log = get_logger().bind(run_id=run_id)
        self.results: dict[str, NodeResult] = dict(done)
        self.outputs: dict[str, Any] = {nid: r.output for nid, r in done.items() if r.ok}
        self.pending = dict(self.plan.indegree)
        self.failed = False
        self.stop_reason: RunStatus | None = None
        self.budget = budget
        self.cache = cache
        self.cache_ttl_s = cache_ttl_s

    async def execute(self) -> None:
        async with anyio.create_task_group() as tg:
            self.tg = tg
            # nodes finished in an earlier attempt of this run count as done
            ready = []
            for nid in self.plan.order:
                if nid in self.results and self.results[nid].ok:
                    continue
                if all(
                    p in self.results and self.results[p].ok for p in self.wf.nodes[nid].depends_on
                ):
                    ready.append(nid)
            for nid in self.plan.order:
                r = self.results.get(nid)
                if r is not None and r.ok:
                    for c in self.plan.children[nid]:
                        self.pending[c] -= 1
            for nid in ready:
                tg.start_soon(self._node, nid, name=nid)

    async def _node(self, nid: str) -> None:
        async with self.limiter:
            result = await self._run_node(nid)
        self.results[nid] = result
        if self.run_store is not None:
            # durable before any dependent starts: a crash after this never pays for it again
            with anyio.CancelScope(shield=True):
                await self.run_store.commit_node(self.run_id, result)
        if self.events:
            self.events.emit(NodeFinished(self.run_id, result))
        if result.ok:
            self.outputs[nid] = result.output
            pending = self.pending
            for c in self.plan.children[nid]:
                pending[c] -= 1
                if pending[c] == 0 and not self.stop_reason:
                    self.tg.start_soon(self._node, c, name=c)
        else:
            self.failed = True
            if self.fail_fast:
                self.stop_reason = "failed"
                self.tg.cancel_scope.cancel()

    def _context(self, nid: str) -> dict[str, Any]:
        ctx: dict[str, Any] = {"inputs": self.inputs}
        for ref in self.plan.refs[nid]:
            ctx[ref] = self.outputs[ref]
        return ctx

    async def _run_node(self, nid: str) -> NodeResult:
        wf = self.wf
        node = wf.nodes[nid]
        started = time.time()
        if self.events:
            self.events.emit(NodeStarted(self.run_id, nid, started))
        key = node.task or f"{wf.name}/{nid}"
        if self.budget is not None:
            if self.stop_reason == "budget_exhausted":  # do not start once the money ran out
                return _durable.out_of_budget(nid, self.budget.exhausted, [], started, key)
            CURRENT_NODE.set(nid)  # this task's calls count against the node's cap
        try:
            tctx = self._context(nid)
            prompt = self.plan.prompts[nid].render(tctx)
            system_t = self.plan.systems[nid]
            system = system_t.render(tctx) if system_t is not None else None
        except Exception as exc:  # a template error at run time (e.g. a field of a missing key)
            return NodeResult(
                nid,
                "failed",
                error=f"cannot render the prompt: {exc}",
                started_at=started,
                finished_at=time.time(),
                task_key=key,
            )
        request = CompletionRequest(
            messages=(Message("user", prompt),),
            system=system,
            max_tokens=wf.node_setting(nid, "max_tokens"),
            temperature=wf.node_setting(nid, "temperature"),
            json_schema=node.output.schema_ if node.output.format == "json" else None,
            timeout_s=wf.node_setting(nid, "timeout_s"),
            metadata={"run_id": self.run_id, "node_id": nid, "task_key": key},
        )
        ckey = None
        if self.cache is not None and wf.node_setting(nid, "cache"):
            ckey = cache_key(wf, self.gateway.catalog, nid, request)
            hit = await self.cache.cache_get(ckey, ttl_s=self.cache_ttl_s)
            if hit is not None:
                return _durable.cached_result(nid, key, hit, started)
        ctx = NodeContext(
            self.run_id,
            nid,
            key,
            wf,
            node,
            request,
            self.gateway,
            self.events,
            self.stats,
            self.rng,
            self.log,
        )
        policy = wf.node_policy(nid)
        try:
            outcome = await POLICIES[policy.kind](ctx)
        except AttemptFailed as exc:
            return NodeResult(
                nid,
                "failed",
                attempts=ctx.attempts,
                error=redact_text(str(exc.cause)),  # errors are stored: never a key
                started_at=started,
                finished_at=time.time(),
                task_key=key,
                decision=ctx.decision,
            )
        except BudgetExhausted as exc:
            if self.budget is not None and exc is self.budget.exhausted:
                self.stop_reason = "budget_exhausted"
            return _durable.out_of_budget(nid, exc, ctx.attempts, started, key)
        att = outcome.attempt
        result = NodeResult(
            nid,
            outcome.status,
            output=ctx.output_of(att) if att is not None else None,
            text=att.output if att is not None else None,
            tier=att.tier if att is not None else None,
            model=att.model if att is not None else None,
            attempts=ctx.attempts,
            error=outcome.error,
            started_at=started,
            finished_at=time.time(),
            task_key=key,
            decision=ctx.decision,
        )
        if ckey is not None and self.cache is not None and result.status == "succeeded":
            await self.cache.cache_put(ckey, _durable.answer_of(self.run_id, result))
        return result

    def finalize(self, status: RunStatus | None) -> dict[str, NodeResult]:
        """Mark nodes that never ran: skipped below a failure, else cancelled."""
        failed = {n for n, r in self.results.items() if not r.ok}
        for nid in self.plan.order:
            if nid in self.results:
                continue
            blocked = any(
                p in failed or (p in self.results and self.results[p].status == "skipped")
                for p in self.wf.nodes[nid].depends_on
            )
            self.results[nid] = NodeResult(
                nid,
                "skipped" if blocked else "cancelled",
                task_key=task_key(self.wf, nid),
                error="an upstream node failed"
                if blocked
                else f"run ended ({status or 'cancelled'})",
            )
        return {nid: self.results[nid] for nid in self.plan.order}


def render_outputs(
    workflow: Workflow, inputs: dict[str, Any], results: Mapping[str, NodeResult]
) -> dict[str, Any]:
    """The workflow's declared outputs; one whose nodes did not all succeed is None."""
    ctx: dict[str, Any] = {"inputs": inputs}
    ctx.update({nid: r.output for nid, r in results.items() if r.ok})
    out: dict[str, Any] = {}
    for name, source in workflow.outputs.items():
        refs = analyze(source).names - {"inputs"}
        if any(r not in ctx for r in refs):
            out[name] = None
            continue
        out[name] = Template(source).render(ctx)
    return out


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


async def run(
    workflow: Workflow,
    inputs: Mapping[str, Any] | None = None,
    *,
    catalog: Catalog | None = None,
    providers: Mapping[str, Provider] | None = None,
    gateway: Gateway | None = None,
    store: Any = None,
    concurrency: int | None = None,
    fail_fast: bool | None = None,
    subscribers: Iterable[Subscriber] = (),
    run_id: str | None = None,
    seed: int | None = None,
    resume: str | None = None,
    force: bool = False,
    budget: float | None = None,
    cache_ttl_s: float | None = _durable.DEFAULT_CACHE_TTL_S,
) -> RunResult:
    """Run a workflow and return every node's result.

    Runs in the caller's event loop (asyncio or trio through anyio), so agent frameworks can
    await it. Cancelling the call cancels the nodes in flight; what finished is kept in the
    store and in the exception's context.

    Args:
        workflow: from :func:`dagtier.load_workflow` or :func:`dagtier.parse_workflow`.
        inputs: values for the workflow's declared inputs.
        catalog: the model catalog (default: the packaged one plus ``$DAGTIER_MODELS``).
        providers: provider objects by name, overriding the built-in ones.
        gateway: a ready gateway (retry, fallback and limits configured); built from
            ``catalog`` and ``providers`` when omitted.
        store: where runs and statistics go (a RunStore and/or StatsStore); default: in memory.
        concurrency: at most this many nodes call models at once (default: the workflow's).
        fail_fast: stop everything at the first failed node (default: the workflow's).
        subscribers: callables receiving every :mod:`dagtier.events` event.
        run_id: the id to record the run under (default: a new one).
        seed: seeds the run's random choices (quality canaries).
        resume: the id of an earlier run (in ``store``) to continue: its finished nodes are
            kept and never called again; failed and unfinished ones run. ``inputs`` default
            to the earlier run's.
        force: when resuming after an edit that changes finished nodes, rerun exactly those
            nodes and their descendants instead of refusing.
        budget: the run's budget in USD (default: the workflow's ``budget:``); no call
            starts that could take spending past it, and the run then ends
            ``budget_exhausted``. A resumed run counts what it already spent.
        cache_ttl_s: how old a cached answer may be for nodes with ``cache: true``
            (default a week; None: any age).

    Raises:
        SpecError: the inputs do not match the workflow's declaration.
        RunError: ``resume`` names no run of this workflow, one still running, or finished
            nodes the edited workflow no longer matches (without ``force``).
    """
    if not isinstance(workflow, Workflow):
        raise DagtierUsageError(
            f"run() takes a Workflow (from dagtier.load_workflow), got {type(workflow).__name__}"
        )
    store = store if store is not None else MemoryStore()
    run_store = store if isinstance(store, RunStore) else None
    stats = store if isinstance(store, StatsStore) else None
    prior = None
    if resume is not None:
        prior = await _durable.load_for_resume(run_store, resume, workflow)
        if inputs is None:
            inputs = prior[0].inputs
    values = coerce_inputs(workflow, inputs)
    if gateway is None:
        gateway = Gateway(catalog or load_catalog(), ProviderRegistry(providers))
    fps = node_fingerprints(workflow, gateway.catalog, values)
    done: dict[str, NodeResult] = {}
    spent = 0.0
    if prior is not None:
        record = prior[0]
        done = _durable.finished_to_keep(workflow, record, prior[1], fps, force=force)
        spent = record.cost
    events = EventBus(list(subscribers))
    rid = resume or run_id or new_run_id()
    limit = budget if budget is not None else workflow.budget
    caps = {n: c for n in workflow.nodes if (c := workflow.node_setting(n, "budget")) is not None}
    run_budget = Budget(limit, spent=spent, node_caps=caps, run_id=rid) if limit or caps else None
    if run_budget is not None:
        if getattr(gateway, "budget", None) is not None:
            raise DagtierUsageError("the gateway already has a budget; pass budget= to one only")
        gateway.budget = run_budget
    started = time.time()
    if run_store is not None:
        await run_store.begin_run(
            RunRecord(
                rid,
                workflow.name,
                "running",
                started,
                fingerprint=workflow_fingerprint(workflow, fps),
                inputs=values,
                source=workflow.source,
                node_fingerprints=fps,
                budget=limit,
            )
        )
    if events:
        events.emit(RunStarted(rid, workflow, values, started, resumed=prior is not None))
    state = _Run(
        workflow,
        values,
        run_id=rid,
        gateway=gateway,
        run_store=run_store,
        stats=stats,
        events=events,
        concurrency=concurrency or workflow.concurrency,
        fail_fast=workflow.fail_fast if fail_fast is None else fail_fast,
        rng=random.Random(seed),
        done=done,
        budget=run_budget,
        cache=store if isinstance(store, ResultCache) else None,
        cache_ttl_s=cache_ttl_s,
    )
    status: RunStatus = "cancelled"
    try:
        await state.execute()
        status = state.stop_reason or ("failed" if state.failed else "succeeded")
    finally:
        if run_budget is not None:
            gateway.budget = None
        nodes = state.finalize(status)
        result = RunResult(
            rid,
            workflow.name,
            status,
            nodes,
            outputs=render_outputs(workflow, values, nodes),
            started_at=started,
            finished_at=time.time(),
            error=_durable.run_error(status, run_budget, rid, workflow),
        )
        with anyio.CancelScope(shield=True):
            if run_store is not None:
                await run_store.finish_run(rid, status, result.cost)
            if events:
                events.emit(RunFinished(rid, result))
    return result
