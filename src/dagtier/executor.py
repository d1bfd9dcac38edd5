"""The scheduler: a node starts the moment all its dependencies have succeeded.

No lock-step rounds: each finished node decrements its dependents' counters of unfinished
dependencies and starts those that reach zero, so a slow node never holds back an
unrelated branch. One anyio task group owns every worker task; the number of workers is the
concurrency limit (see ``_Run._worker``). A node's result is committed to the store before
its dependents start.
"""

from __future__ import annotations

import json
import random
import time
import uuid
import warnings
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import anyio

from . import _durable
from ._callables import CallableError
from ._exceptions import (
    BudgetExhausted,
    DagtierUsageError,
    NoStatsStoreWarning,
    SpecError,
    SpecIssue,
    StepError,
)
from ._logging import get_logger, redact_text
from ._types import TIERS, RunStatus
from ._yaml import did_you_mean, read_text
from .budget import Budget, StoreBudget
from .catalog import Catalog, load_catalog
from .events import EventBus, NodeFinished, NodeStarted, RunFinished, RunStarted, Subscriber
from .fingerprint import workflow_fingerprint
from .plan import Plan, compile_workflow
from .policies import AttemptFailed, NodeContext
from .policies.deadline import RunDeadline, apply_deadline, check_deadline, plan_deadline
from .policies.routers import Router, apply_route, learn_route, start_floor
from .providers.base import CompletionRequest, Message, Provider
from .providers.gateway import CallContext, Gateway
from .providers.registry import ProviderRegistry
from .results import NodeResult, RunResult
from .spec.models import Workflow
from .steps import run_step
from .store import (
    MemoryStore,
    ResultCache,
    RunOwner,
    RunRecord,
    RunStore,
    StandInStats,
    StatsStore,
    implements,
)
from .tools import Tool, load_tool


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


def read_inputs(pairs: Iterable[str] = (), file: str | Path | None = None) -> dict[str, Any]:
    """Input values as the command line gives them: ``file`` a JSON object of names to
    values, then each ``NAME=VALUE`` pair over it (``NAME=@path`` reads the file at
    ``path``). Strings stay strings: :func:`coerce_inputs` converts them to the declared
    types. Added in issue 11 (from the CLI).

    Raises:
        SpecError: ``file`` is not a JSON object, or a pair is not ``NAME=VALUE``.
    """
    values: dict[str, Any] = {}
    if file is not None:
        try:
            loaded = json.loads(read_text(file))
        except json.JSONDecodeError as exc:
            raise SpecError(
                source=str(file),
                issues=[
                    SpecIssue(
                        "",
                        f"not valid JSON: {exc.msg}",
                        "json-syntax",
                        exc.lineno,
                        exc.colno,
                        hint="--inputs takes a JSON object of input names to values",
                    )
                ],
            ) from None
        if not isinstance(loaded, dict):
            raise SpecError(
                source=str(file),
                issues=[
                    SpecIssue(
                        "", "expected a JSON object of input names to values", "not-an-object", 1, 1
                    )
                ],
            )
        values.update(loaded)
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SpecError(
                source="--input",
                issues=[
                    SpecIssue(
                        "",
                        f"'{pair}' is not NAME=VALUE",
                        "bad-input-flag",
                        hint="write --input text='some text'; use --inputs FILE.json for many",
                    )
                ],
            )
        values[name] = read_text(value[1:]) if value.startswith("@") else value
    return values


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


class _Run:
    """The state of one run. Allocates little per node: the benchmark counts microseconds."""

    def __init__(
        self,
        plan: Plan,
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
        routers: Mapping[str, Router] | None = None,
        deadline: RunDeadline | None = None,
    ) -> None:
        self.wf = plan.workflow
        self.plan = plan
        self.routers = routers
        self.inputs = inputs
        self.run_id = run_id
        self.gateway = gateway
        self.run_store = run_store
        # MemoryStore's commit never suspends, so no cancellation can land inside it and a
        # shield (a cancel scope per node, ~3 µs) would protect nothing
        self.shield_commits = type(run_store) is not MemoryStore
        self.stats = stats
        self.events = events
        self.concurrency = concurrency
        self.workers = 0
        """Worker tasks alive; each runs one node at a time (see :meth:`_worker`)."""
        self.starting = 0
        """Workers spawned that have not yet taken a node: they will take ready ones.
        Counting them stops a run of instant nodes from spawning a worker per node (the
        worker that made them ready often runs them all before a new one gets to start)."""
        self.ready: deque[str] = deque()
        """Nodes whose dependencies all succeeded, waiting for a worker."""
        self.unsaved: list[NodeResult] = []
        """Finished nodes waiting for :meth:`_save` to commit them; their dependents wait too."""
        self.saving = False
        self.saved = anyio.Event()
        """Set (and replaced) when :meth:`_save` made nodes ready or ended."""
        self.waiting = 0
        """Workers waiting for ``saved``."""
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
        self.deadline = deadline

    async def execute(self) -> None:
        results, pending, ready = self.results, self.pending, self.ready
        # nodes finished in an earlier attempt of this run (resume) count as done
        for nid in self.plan.order:
            r = results.get(nid)
            if r is not None and r.ok:
                for c in self.plan.children[nid]:
                    pending[c] -= 1
        for nid in self.plan.order:
            r = results.get(nid)
            if pending[nid] == 0 and (r is None or not r.ok):
                ready.append(nid)
        async with anyio.create_task_group() as tg:
            self.tg = tg
            self._add_workers(len(ready))

    def _add_workers(self, wanted: int) -> None:
        """Start workers for ``wanted`` ready nodes, counting those already starting, never
        more than the concurrency limit."""
        n = min(wanted - self.starting, self.concurrency - self.workers)
        if n > 0:
            self.workers += n
            self.starting += n
            for _ in range(n):
                self.tg.start_soon(self._worker)

    async def _worker(self) -> None:
        """Run ready nodes one after another until none is left.

        The pool of workers *is* the concurrency limit: at most ``concurrency`` exist, and a
        worker that finishes a node goes straight on to the next ready one (usually a child
        of the node it just finished). That is cheaper than a task plus a CapacityLimiter per
        node (two trips through the event loop each), and no ready node waits while a worker
        could take it: whoever makes nodes ready starts the workers they need.
        """
        ready = self.ready
        self.starting -= 1
        try:
            while True:
                while ready and not self.stop_reason:
                    nid = ready.popleft()
                    result = await self._run_node(nid)
                    self.results[nid] = result
                    if self.run_store is None:
                        self._settle(nid, result)
                        continue
                    self.unsaved.append(result)
                    if not self.saving:
                        await self._save()
                if not self.saving or self.stop_reason:
                    return
                # The save under way will make nodes ready: wait for it (counted as
                # starting, so no worker is spawned for what this one will take) rather
                # than end and have a new task spawned, which costs several wake-ups.
                self.starting += 1
                self.waiting += 1
                try:
                    await self.saved.wait()
                finally:
                    self.starting -= 1
                    self.waiting -= 1
        finally:
            self.workers -= 1

    async def _save(self) -> None:
        """Commit the finished nodes waiting in ``unsaved``, then settle them: durable before
        any dependent starts, so a crash after this never pays for them again.

        One worker saves at a time; the others queue their results and go on to the next
        ready node instead of waiting, and the saver commits whatever queued meanwhile as
        its next batch (one store call and one wake-up per batch, not per node). Shielded:
        a write that reached the store completes, and what queued behind it is committed
        before a cancellation lands (no unshielded checkpoint between the batches).
        """
        store = self.run_store
        assert store is not None
        self.saving = True
        try:
            while self.unsaved:
                batch, self.unsaved = self.unsaved, []
                if self.shield_commits:
                    with anyio.CancelScope(shield=True):
                        await store.commit_nodes(self.run_id, batch)
                else:
                    await store.commit_nodes(self.run_id, batch)
                for result in batch:
                    self._settle(result.node_id, result)
                if self.ready:
                    self._wake_waiting()
        finally:
            self.saving = False
            self._wake_waiting()  # to end, unless a node became ready meanwhile

    def _wake_waiting(self) -> None:
        """Wake the workers waiting in :meth:`_worker` for a save to make nodes ready."""
        if self.waiting:
            self.saved.set()
            self.saved = anyio.Event()

    def _settle(self, nid: str, result: NodeResult) -> None:
        """After a node's result is stored: tell subscribers, then start what it unblocked
        (or stop the run, with fail_fast). Synchronous: nothing here may checkpoint."""
        if self.events:
            self.events.emit(NodeFinished(self.run_id, result))
        if result.ok:
            self.outputs[nid] = result.output
            if self.stop_reason:
                return
            pending, ready = self.pending, self.ready
            for c in self.plan.children[nid]:
                pending[c] -= 1
                if pending[c] == 0:
                    ready.append(c)
            if len(ready) > 1 + self.starting and self.workers < self.concurrency:
                # this worker takes one; the others need workers of their own
                self._add_workers(len(ready) - 1)
        else:
            self.failed = True
            if self.fail_fast:
                self.stop_reason = "failed"
                self.tg.cancel_scope.cancel()

    async def _run_node(self, nid: str) -> NodeResult:
        wf = self.wf
        np = self.plan.nodes[nid]
        started = time.time()
        if self.events:
            self.events.emit(NodeStarted(self.run_id, nid, started))
        key = np.task_key
        if self.budget is not None:
            if self.stop_reason == "budget_exhausted":  # do not start once the money ran out
                return _durable.out_of_budget(nid, self.budget.exhausted, [], started, key)
            call = CallContext(self.run_id, nid, self.budget)
        else:
            call = CallContext(self.run_id, nid)
        if np.kind in ("run", "command"):
            return await self._run_step(nid, started)
        tctx: dict[str, Any] = {"inputs": self.inputs}
        for ref in np.refs:
            tctx[ref] = self.outputs[ref]
        tools: dict[str, Tool] = {}
        if np.tools:
            try:  # before any call: a tool that cannot be loaded fails the node unpaid
                tools = {t.name: t for t in (load_tool(s, search=np.search) for s in np.tools)}
            except CallableError as exc:
                return NodeResult(
                    nid,
                    "failed",
                    error=str(exc),
                    started_at=started,
                    finished_at=time.time(),
                    task_key=key,
                )
        if np.static is not None:
            messages = np.static
            system = np.system.source if np.system is not None else None
        else:
            try:
                messages = (Message("user", np.prompt.render(tctx)),)
                system = np.system.render(tctx) if np.system is not None else None
            except Exception as exc:  # a template error at run time (a missing key's field)
                return NodeResult(
                    nid,
                    "failed",
                    error=f"cannot render the prompt: {exc}",
                    started_at=started,
                    finished_at=time.time(),
                    task_key=key,
                )
        request = CompletionRequest(
            messages,
            system,
            np.max_tokens,
            np.temperature,
            np.json_schema,
            np.timeout_s,
            {"run_id": self.run_id, "node_id": nid, "task_key": key},
        )
        ckey = None
        if self.cache is not None and np.cache:
            ckey = self.plan.cache_key(nid, messages, system)
            hit = await self.cache.cache_get(ckey, ttl_s=self.cache_ttl_s)
            if hit is not None:
                return _durable.cached_result(nid, key, hit, started)
        ctx = NodeContext(
            self.run_id,
            nid,
            key,
            wf,
            wf.nodes[nid],
            request,
            self.gateway,
            self.events,
            self.stats,
            self.rng,
            self.log,
            np.checks,
            call,
            values=tctx,
            tools=tools,
        )
        router = self.routers.get(nid) if self.routers else np.router
        if router is not None:
            upstream = {d: self.outputs.get(d) for d in wf.nodes[nid].depends_on}
            await apply_route(router, ctx, upstream)
            key = ctx.task_key
        if self.deadline is not None and nid in self.deadline.critical:
            policy = np.policy
            apply_deadline(self.deadline, ctx, start_floor(ctx, policy.start_tier, policy.top_tier))
        try:
            outcome = await np.runner(ctx)
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
                error_code=exc.cause.failure_code,
                deadline_tier=ctx.deadline_start,
            )
        except BudgetExhausted as exc:
            if self.budget is not None and exc is self.budget.exhausted:
                self.stop_reason = "budget_exhausted"
            return _durable.out_of_budget(nid, exc, ctx.attempts, started, key)
        if router is not None:
            await learn_route(router, ctx)
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
            deadline_tier=ctx.deadline_start,
        )
        if ckey is not None and self.cache is not None and result.status == "succeeded":
            await self.cache.cache_put(ckey, _durable.answer_of(self.run_id, result))
        return result

    async def _run_step(self, nid: str, started: float) -> NodeResult:
        """A code node: no model, no policy; its output, or the error that failed it."""
        np = self.plan.nodes[nid]
        values: dict[str, Any] = {"inputs": self.inputs}
        for ref in np.refs:
            values[ref] = self.outputs[ref]
        try:
            output = await run_step(self.wf.nodes[nid], values, np.search)
        except StepError as exc:
            return NodeResult(
                nid,
                "failed",
                error=redact_text(str(exc)),
                error_code=exc.failure_code,
                started_at=started,
                finished_at=time.time(),
                task_key=np.task_key,
            )
        return NodeResult(
            nid,
            "succeeded",
            output=output,
            text=output if isinstance(output, str) else json.dumps(output, ensure_ascii=False),
            started_at=started,
            finished_at=time.time(),
            task_key=np.task_key,
        )

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
                task_key=self.plan.nodes[nid].task_key,
                error="an upstream node failed"
                if blocked
                else f"run ended ({status or 'cancelled'})",
            )
        return {nid: self.results[nid] for nid in self.plan.order}


def render_outputs(
    plan: Plan, inputs: dict[str, Any], results: Mapping[str, NodeResult]
) -> dict[str, Any]:
    """The workflow's declared outputs; one whose nodes did not all succeed is None."""
    out: dict[str, Any] = {}
    if not plan.outputs:
        return out
    ctx: dict[str, Any] = {"inputs": inputs}
    ctx.update({nid: r.output for nid, r in results.items() if r.ok})
    for name, (template, refs) in plan.outputs.items():
        out[name] = None if any(r not in ctx for r in refs) else template.render(ctx)
    return out


def _warn_adaptive_forgets(plan: Plan) -> None:
    """Warn that adaptive nodes will learn nothing that lasts (see :class:`NoStatsStoreWarning`).

    Why not open the CLI's default store instead: a library call should not write a file
    in the user's data directory unasked (a server, a test, a read-only container); the
    CLI is the application that owns that default.
    """
    adaptive = [n for n, p in plan.nodes.items() if p.policy.kind == "adaptive"]
    if adaptive:
        warnings.warn(
            f"workflow '{plan.workflow.name}': adaptive node(s) {', '.join(adaptive[:3])}"
            f"{' ...' if len(adaptive) > 3 else ''} learn which tier suffices, but this run "
            "has no store to keep it in: the next run starts from nothing; pass "
            "store=dagtier.open_store() (the CLI's SQLite file) or a MemoryStore you keep",
            NoStatsStoreWarning,
            stacklevel=3,
        )


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def split_plan(workflow: Workflow | Plan, caller: str) -> tuple[Workflow, Plan | None]:
    """The workflow and, when ``workflow`` is a compiled :class:`Plan`, that plan: what
    ``run()``, ``run_batch()`` and ``evaluate()`` accept."""
    if isinstance(workflow, Plan):
        return workflow.workflow, workflow
    if not isinstance(workflow, Workflow):
        raise DagtierUsageError(
            f"{caller} takes a Workflow (from dagtier.load_workflow) or a Plan (from "
            f"dagtier.compile_workflow), got {type(workflow).__name__}"
        )
    return workflow, None


def plan_and_gateway(
    workflow: Workflow,
    plan: Plan | None,
    gateway: Gateway | None,
    catalog: Catalog | None,
    providers: Mapping[str, Provider] | None,
) -> tuple[Plan, Gateway]:
    """The plan and the gateway a run calls: the caller's, or made here (the plan's catalog,
    else ``catalog``, else the default); a plan compiled against another catalog than the
    gateway's is refused."""
    if gateway is None:
        if catalog is None:
            catalog = plan.catalog if plan is not None else load_catalog()
        gateway = Gateway(catalog, ProviderRegistry(providers))
    if plan is None:
        return compile_workflow(workflow, gateway.catalog), gateway
    if plan.catalog is not gateway.catalog:
        # fingerprints and cache keys name the plan's models: they must be the ones called
        raise DagtierUsageError(
            "the plan was compiled against another catalog than the one this run calls; "
            "compile it with compile_workflow(workflow, catalog) using the gateway's catalog"
        )
    return plan, gateway


async def run(
    workflow: Workflow | Plan,
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
    shared_budget: Budget | StoreBudget | None = None,
    cache_ttl_s: float | None = _durable.DEFAULT_CACHE_TTL_S,
    routers: Mapping[str, Router] | None = None,
    deadline_s: float | None = None,
) -> RunResult:
    """Run a workflow and return every node's result.

    Runs in the caller's event loop (asyncio or trio through anyio), so agent frameworks can
    await it. Cancelling the call cancels the nodes in flight; what finished is kept in the
    store and in the exception's context.

    Args:
        workflow: from :func:`dagtier.load_workflow` or :func:`dagtier.parse_workflow`, or
            a :class:`~dagtier.Plan` from :func:`dagtier.compile_workflow`: runs of one
            plan, concurrent or not, share everything worked out from the workflow
            (a workflow is compiled on every call). *Changed in issue 11*: takes a Plan.
        inputs: values for the workflow's declared inputs.
        catalog: the model catalog (default: the packaged one plus ``$DAGTIER_MODELS``).
        providers: provider objects by name, overriding the built-in ones.
        gateway: a ready gateway (retry, fallback and limits configured); built from
            ``catalog`` and ``providers`` when omitted, and then closed when the run ends
            (a gateway passed in is the caller's to close: ``await gateway.aclose()``).
        store: where runs and statistics go: a :class:`~dagtier.RunStore` and/or
            :class:`~dagtier.StatsStore` (and :class:`~dagtier.ResultCache`), such as
            ``dagtier.open_store(path)`` (SQLite) or :class:`~dagtier.MemoryStore` (the default).
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
        shared_budget: a :class:`~dagtier.budget.Budget` shared with other runs (a batch's),
            or a :class:`~dagtier.budget.StoreBudget` shared with other processes: every
            call also reserves from it, and the run ends ``budget_exhausted`` when it runs
            out. *Added in issue 14.*
        cache_ttl_s: how old a cached answer may be for nodes with ``cache: true``
            (default a week; None: any age).
        routers: a router per node id (see :mod:`dagtier.policies.routers`): it classifies
            the node's rendered input before the policy runs and learns from its judged
            answers. Keep the same objects across runs: they are what learns.
        deadline_s: seconds the run should end within, from this call (default: the
            workflow's ``deadline_s:``). A node on the critical path whose policy is
            expected to miss it starts at the cheapest tier expected to fit, by the
            latencies in ``store``'s statistics (see :mod:`dagtier.policies.deadline`).
            Nothing is cancelled when it passes: the run finishes, and its result says
            whether it met the deadline (:attr:`RunResult.deadline_met`). *Added in
            issue 16.*

    Raises:
        SpecError: the inputs do not match the workflow's declaration.
        DagtierUsageError: ``workflow`` is neither a Workflow nor a Plan, the plan was
            compiled against another catalog than the gateway's, or ``deadline_s`` is not
            a number of seconds above 0.
        RunError: ``resume`` names no run of this workflow, one still running, or finished
            nodes the edited workflow no longer matches (without ``force``).
    """
    workflow, plan = split_plan(workflow, "run()")
    deadline_s = check_deadline(deadline_s)
    remembers = store is not None  # a MemoryStore made here is gone when the run ends
    store = store if store is not None else MemoryStore()
    run_store = store if implements(store, RunStore) else None
    stats = store if implements(store, StatsStore) else None
    prior = None
    if resume is not None:
        prior = await _durable.load_for_resume(run_store, resume, workflow)
        if inputs is None:
            inputs = prior[0].inputs
    values = coerce_inputs(workflow, inputs)
    own_gateway = gateway is None  # one made here is closed here; a caller's, by its caller
    plan, gateway = plan_and_gateway(workflow, plan, gateway, catalog, providers)
    if not (remembers and stats is not None):
        _warn_adaptive_forgets(plan)
    stand_ins = {
        t: gateway.usable_models(t)[0].name for t in TIERS if gateway.uses_local_fallback(t)
    }
    if stats is not None and stand_ins:
        stats = StandInStats(stats, stand_ins)
    # fingerprints identify a stored run's nodes (resume, edits): a run kept nowhere needs none
    fps = plan.node_fingerprints(values) if run_store is not None else {}
    done: dict[str, NodeResult] = {}
    spent = 0.0
    if prior is not None:
        record = prior[0]
        done = _durable.finished_to_keep(workflow, record, prior[1], fps, force=force)
        spent = record.cost
    events = EventBus(list(subscribers))
    rid = resume or run_id or new_run_id()
    limit = budget if budget is not None else workflow.budget
    caps = plan.caps
    started = time.time()
    clock_started = time.monotonic()
    deadline_s = deadline_s if deadline_s is not None else workflow.deadline_s
    if run_store is not None:
        # Claims the run atomically: a second resume of it fails here with RunClaimed.
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
                deadline_s=deadline_s,
                deadline_at=started + deadline_s if deadline_s is not None else None,
            ),
            RunOwner.this_process(),
        )
        if prior is not None:
            spent += await _durable.catch_up(run_store, workflow, prior, fps, done)
    # the run's own: it travels with each call (CallContext), so runs sharing a gateway
    # never see each other's budget
    run_budget = (
        Budget(limit, spent=spent, node_caps=caps, run_id=rid, parent=shared_budget)
        if limit or caps or shared_budget is not None
        else None
    )
    deadline = None
    if deadline_s is not None:
        deadline = await plan_deadline(
            plan, stats, deadline_s, done=done.keys(), started=clock_started
        )
    if events:
        events.emit(
            RunStarted(rid, workflow, values, started, resumed=prior is not None, plan=plan)
        )
    state = _Run(
        plan,
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
        cache=store if implements(store, ResultCache) else None,
        cache_ttl_s=cache_ttl_s,
        routers=routers,
        deadline=deadline,
    )
    status: RunStatus = "cancelled"
    try:
        try:
            await state.execute()
        except BaseExceptionGroup as group:
            # one error escaped a node (a catalog error, a bug in a user's model function):
            # raise it as itself, not wrapped in the task group's ExceptionGroup, so callers
            # can catch what they know
            cancelled = anyio.get_cancelled_exc_class()
            errors = [e for e in group.exceptions if not isinstance(e, cancelled)]
            if len(errors) == 1 and isinstance(errors[0], Exception):
                status = "failed"
                raise errors[0] from None
            raise
        status = state.stop_reason or ("failed" if state.failed else "succeeded")
    finally:
        nodes = state.finalize(status)
        result = RunResult(
            rid,
            workflow.name,
            status,
            nodes,
            outputs=render_outputs(plan, values, nodes),
            started_at=started,
            finished_at=time.time(),
            error=_durable.run_error(status, run_budget, rid, workflow),
            deadline_s=deadline_s,
        )
        with anyio.CancelScope(shield=True):
            try:
                if run_store is not None:
                    await run_store.finish_run(rid, status, result.cost)
                if events:
                    events.emit(RunFinished(rid, result))
            finally:
                if own_gateway:
                    # its SDK clients' connections would otherwise outlive the event loop
                    await gateway.aclose()
    return result
