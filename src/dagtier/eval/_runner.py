"""Running an eval: per case a reference run, then each selected node on each tier.

Every model call is a durable run in the store (the CallContext, budget, retries and
prices are the ordinary ones), named by the eval's id, so ``resume=`` pays for nothing
twice: finished runs are read back, interrupted ones resume node by node.

* The reference run is the workflow as written, once per case.
* A probe runs one node on one tier, on the reference run's upstream outputs, so every
  tier answers exactly the same prompt. It is a run of the node and its ancestors whose
  ancestors are seeded from the reference run (at no cost) before it is resumed, so only
  the node is called, by the ordinary executor, with its checks.
* The blind judge is a run too: a one-node workflow on the judge tier that reads every
  tier's answer to one case, labelled by number in a shuffled order, twice (the second
  time in reverse order, which measures position bias). It never sees model names.

Eval runs keep statistics out of the store (probes would otherwise teach adaptive as if
they were traffic); ``seed_stats`` puts the evidence in deliberately.
"""

from __future__ import annotations

import json
import random
import re
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import anyio

from .._exceptions import DagtierUsageError, RunError, SpecError, SpecIssue
from .._types import TIERS
from .._yaml import did_you_mean
from ..budget import Budget
from ..catalog import Catalog
from ..events import Subscriber
from ..executor import plan_and_gateway, render_outputs, split_plan
from ..executor import run as run_workflow
from ..graph import build_graph
from ..plan import Plan, compile_workflow
from ..providers.base import Provider
from ..providers.gateway import Gateway
from ..results import NodeResult, RunResult
from ..spec.models import StaticPolicy, Workflow
from ..store import MemoryStore, RunRecord, RunStore
from ._cases import Case, expected_targets, load_cases

Scorer = Callable[..., Any]
"""``fn(node_id=..., output=..., expected=...)`` -> a bool or a number in [0, 1]."""

FINISHED = ("succeeded", "failed")
JUDGE_NODE = "judge"
_SCORE_RE = re.compile(r"^\s*(?:answer\s*)?(\d+)\s*[:=\-]\s*(\d+(?:\.\d+)?)", re.I | re.M)

JUDGE_PROMPT = """\
You are grading {n} candidate answers to the same task. They come from different sources,
shown in no particular order. Grade each answer on its own merits: correct, complete,
does what the task asks. Do not prefer an answer for its position or its length.

<task>
{task}
</task>

{answers}

Reply with one line per answer, in exactly this form, a score from 0 (useless) to 10 (perfect):
{form}
"""


def new_eval_id() -> str:
    return time.strftime("e%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


@dataclass(slots=True)
class Unit:
    """One node's answer on one tier for one case (one repeat)."""

    case: int
    line: int
    node_id: str
    tier: int
    repeat: int
    run_id: str
    status: str
    """The node's status, ``skipped`` (its upstream failed in the reference run) or
    ``not run`` (the eval stopped first)."""
    model: str | None = None
    output: Any = None
    text: str | None = None
    cost: float = 0.0
    latency_s: float = 0.0
    checks: bool | None = None
    """Passed the node's checks; None when it has none."""
    expected: float | None = None
    """Agreement with the expected output (mean over the keys that name this node)."""
    judge: float | None = None
    """The blind judge's score in [0, 1] (mean of both orders)."""
    resumed: bool = False

    @property
    def scored(self) -> bool:
        return self.status not in ("skipped", "not run")

    @property
    def quality(self) -> float:
        """The node's checks gate; then the expected output where given, else the judge."""
        if not self.scored or (self.text is None and self.output is None):
            return 0.0
        if self.checks is False:
            return 0.0
        if self.expected is not None:
            return self.expected
        if self.judge is not None:
            return self.judge
        return 1.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "line": self.line,
            "node": self.node_id,
            "tier": self.tier,
            "repeat": self.repeat,
            "run_id": self.run_id,
            "status": self.status,
            "model": self.model,
            "quality": self.quality,
            "checks": self.checks,
            "expected": self.expected,
            "judge": self.judge,
            "cost": self.cost,
            "latency_s": self.latency_s,
        }


@dataclass(slots=True)
class EvalResult:
    """Everything an eval measured, before aggregation (see :mod:`._report`)."""

    eval_id: str
    plan: Plan
    cases: list[Case]
    nodes: list[str]
    tiers: list[int]
    repeat: int
    units: list[Unit] = field(default_factory=list)
    prompts: dict[tuple[int, str], str] = field(default_factory=dict)
    """(case, node) -> the rendered prompt every tier answered."""
    reference_cost: float = 0.0
    judge_cost: float = 0.0
    judge_tier: int | None = None
    position_bias: float | None = None
    """Mean judge score of an answer shown first minus the same answer shown last."""
    status: str = "finished"
    """``finished``, ``cancelled`` or ``budget_exhausted``."""

    @property
    def cost(self) -> float:
        return self.reference_cost + self.judge_cost + sum(u.cost for u in self.units)


class _RunsOnly:
    """The store's runs and nothing else: eval runs must not feed the statistics (they
    would count as traffic) nor the result cache (every tier must really answer)."""

    __slots__ = (
        "begin_run",
        "claim_run",
        "commit_node",
        "commit_nodes",
        "finish_run",
        "list_runs",
        "load_run",
    )

    def __init__(self, store: RunStore) -> None:
        self.begin_run = store.begin_run
        self.claim_run = store.claim_run
        self.commit_node = store.commit_node
        self.commit_nodes = store.commit_nodes
        self.finish_run = store.finish_run
        self.list_runs = store.list_runs
        self.load_run = store.load_run


def _bad(source: str, path: str, message: str, code: str, hint: str | None = None) -> SpecError:
    return SpecError(source=source, issues=[SpecIssue(path, message, code, hint=hint)])


def check_selection(plan: Plan, tiers: Sequence[int], nodes: Sequence[str] | None) -> list[str]:
    """The nodes to evaluate (default: every node that calls a model).

    Raises:
        SpecError: a tier outside 1..3, or a node that does not exist or calls no model.
    """
    wf = plan.workflow
    if not tiers:
        raise _bad("--tiers", "", "no tier given", "bad-tiers", "e.g. --tiers 1,2,3")
    for i, t in enumerate(tiers):
        if t not in TIERS:
            raise _bad(
                "--tiers",
                f"[{i}]",
                f"there is no tier {t}",
                "bad-tiers",
                "tiers are 1, 2 and 3 (cheapest first): --tiers 1,2,3",
            )
    model_nodes = [n for n, node in wf.nodes.items() if node.kind == "prompt"]
    if nodes is None:
        if not model_nodes:
            raise _bad(wf.source, "nodes", "no node of this workflow calls a model", "no-nodes")
        return model_nodes
    for i, n in enumerate(nodes):
        if n not in wf.nodes:
            hint = did_you_mean(n, wf.nodes) or "nodes: " + ", ".join(wf.nodes)
            raise _bad(
                "--nodes", f"[{i}]", f"no node '{n}' in workflow '{wf.name}'", "unknown-node", hint
            )
        if n not in model_nodes:
            raise _bad(
                "--nodes",
                f"[{i}]",
                f"node '{n}' is a {wf.nodes[n].kind} node: it calls no model on a tier",
                "not-a-model-node",
                "model nodes: " + (", ".join(model_nodes) or "(none)"),
            )
    return list(nodes)


def score_expected(output: Any, expected: Any) -> float:
    """1.0 when ``output`` matches: a JSON object or list must contain ``expected`` (a
    subset, recursively); anything else must equal it (text compared stripped)."""
    if isinstance(expected, (dict, list)):
        if isinstance(output, str):
            try:
                output = json.loads(output)
            except json.JSONDecodeError:
                return 0.0
        return 1.0 if _subset(expected, output) else 0.0
    if isinstance(output, str) and isinstance(expected, str):
        return 1.0 if output.strip() == expected.strip() else 0.0
    return 1.0 if output == expected else 0.0


def _subset(want: Any, got: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(got, dict) and all(
            k in got and _subset(v, got[k]) for k, v in want.items()
        )
    if isinstance(want, list):
        return (
            isinstance(got, list)
            and len(want) == len(got)
            and all(_subset(w, g) for w, g in zip(want, got, strict=True))
        )
    return bool(want == got)


def _score_value(value: Any, where: str) -> float:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)) and 0 <= value <= 1:
        return float(value)
    raise RunError(
        f"the scorer returned {value!r} for {where}; return a bool or a number in [0, 1]"
    )


class _Eval:
    def __init__(
        self,
        result: EvalResult,
        *,
        gateway: Gateway,
        store: Any,
        budget: Budget | None,
        concurrency: int,
        scorer: Scorer | None,
        subscribers: list[Subscriber],
        on_unit: Callable[[Unit], Any] | None,
        seed: int,
    ) -> None:
        self.r = result
        self.plan = result.plan
        self.wf = result.plan.workflow
        self.gateway = gateway
        self.store = store
        self.runs = _RunsOnly(store)
        self.budget = budget
        self.limiter = anyio.CapacityLimiter(concurrency)
        self.scorer = scorer
        self.subscribers = subscribers
        self.on_unit = on_unit
        self.seed = seed
        self.stop: str | None = None
        graph = build_graph(self.wf)
        import networkx as nx

        self.ancestors = {n: set(nx.ancestors(graph, n)) for n in result.nodes}
        self._probe_plans: dict[tuple[str, int], Plan] = {}
        self._judge_plan: Plan | None = None
        self.targets = expected_targets(self.plan)
        self.bias: list[float] = []

    # --- runs ------------------------------------------------------------------------

    async def _run(
        self, plan: Plan, values: dict[str, Any], rid: str, seed: Callable[[], Any] | None = None
    ) -> tuple[RunResult | None, bool]:
        """The finished run ``rid``: read back if finished, else resumed or run now.
        Returns (result, resumed); None when the eval is stopping."""
        loaded = await self.store.load_run(rid)
        if loaded is not None and loaded[0].status in FINISHED:
            record, nodes = loaded
            return RunResult(rid, record.workflow, record.status, nodes), True
        if self.stop:
            return None, False
        async with self.limiter:
            if self.stop:
                return None, False
            resume = rid if loaded is not None else None
            if resume is None and seed is not None:
                with anyio.CancelScope(shield=True):  # half a seeded run would look alive
                    await seed()
                resume = rid
            res = await run_workflow(
                plan,
                values,
                gateway=self.gateway,
                store=self.runs,
                run_id=rid,
                resume=resume,
                subscribers=self.subscribers,
                shared_budget=self.budget,
            )
        if self.budget is not None and self.budget.exhausted is not None:
            self.stop = "budget_exhausted"
        return res, False

    def _probe_plan(self, nid: str, tier: int) -> Plan:
        key = (nid, tier)
        plan = self._probe_plans.get(key)
        if plan is None:
            keep = self.ancestors[nid] | {nid}
            node = self.wf.nodes[nid].model_copy(
                update={"policy": StaticPolicy(kind="static", tier=tier), "cache": False}  # type: ignore[arg-type]
            )
            nodes = {k: (node if k == nid else v) for k, v in self.wf.nodes.items() if k in keep}
            sub = self.wf.model_copy(update={"nodes": nodes, "outputs": {}})
            plan = self._probe_plans[key] = compile_workflow(sub, self.gateway.catalog)
        return plan

    async def case(self, case: Case) -> None:
        r = self.r
        ref_id = f"{r.eval_id}:c{case.index}:ref"
        ref, _ = await self._run(self.plan, case.inputs, ref_id)
        if ref is None:
            return
        r.reference_cost += ref.cost
        units: dict[tuple[str, int, int], Unit] = {}

        async def probe(nid: str, tier: int, rep: int) -> None:
            rid = f"{r.eval_id}:c{case.index}:{nid}:t{tier}:r{rep}"
            unit = Unit(case.index, case.line, nid, tier, rep, rid, "not run")
            units[(nid, tier, rep)] = unit
            if not all(
                ref.nodes.get(a) is not None and ref.nodes[a].ok for a in self.ancestors[nid]
            ):
                unit.status = "skipped"
                return
            plan = self._probe_plan(nid, tier)

            async def seed() -> None:
                fps = plan.node_fingerprints(case.inputs)
                await self.runs.begin_run(
                    RunRecord(
                        rid,
                        self.wf.name,
                        "running",
                        time.time(),
                        inputs=case.inputs,
                        source=self.wf.source,
                        node_fingerprints=fps,
                    )
                )
                for a in self.ancestors[nid]:
                    # seeded without attempts: the reference run paid for them
                    await self.runs.commit_node(rid, replace(ref.nodes[a], attempts=[]))
                await self.runs.finish_run(rid, "interrupted", 0.0)

            res, resumed = await self._run(plan, case.inputs, rid, seed)
            if res is None:
                return
            self._fill(unit, case, res, resumed)

        async with anyio.create_task_group() as tg:
            for nid in r.nodes:
                for tier in r.tiers:
                    for rep in range(r.repeat):
                        tg.start_soon(probe, nid, tier, rep)
        for nid in r.nodes:
            r.prompts[(case.index, nid)] = _render_prompt(self.plan, nid, case.inputs, ref.nodes)
        if r.judge_tier is not None:
            for nid in r.nodes:
                for rep in range(r.repeat):
                    answered = [units[(nid, t, rep)] for t in r.tiers]
                    await self._judge(case, nid, rep, [u for u in answered if u.scored and u.text])
        for u in units.values():
            r.units.append(u)
            if self.on_unit is not None and u.status != "not run":
                self.on_unit(u)

    def _fill(self, unit: Unit, case: Case, res: RunResult, resumed: bool) -> None:
        node = res.nodes.get(unit.node_id)
        unit.resumed = resumed
        if node is None:
            unit.status = res.status
            return
        unit.status = node.status
        unit.model = node.model or (node.attempts[-1].model if node.attempts else None)
        unit.cost = node.cost
        unit.latency_s = node.latency_s
        answers = [a for a in node.attempts if a.purpose == "answer"]
        unit.text = node.text or (answers[-1].output if answers else None)
        unit.output = node.output if node.ok else unit.text
        if self.wf.node_checks(unit.node_id):
            unit.checks = node.status == "succeeded"
        scores = []
        for key, want in case.expected.items():
            refs = self.targets[key]
            if unit.node_id not in refs:
                continue
            if key == unit.node_id:
                got = unit.output
            else:
                if not set(refs) <= self.ancestors[unit.node_id] | {unit.node_id}:
                    continue  # the output reads nodes this probe did not run
                seeded = dict(res.nodes)
                got = render_outputs(self.plan, case.inputs, seeded).get(key)
            if self.scorer is not None:
                value = self.scorer(node_id=unit.node_id, output=got, expected=want)
                scores.append(_score_value(value, f"case line {case.line}, {key}"))
            else:
                scores.append(score_expected(got, want))
        if scores:
            unit.expected = sum(scores) / len(scores)

    # --- the blind judge ---------------------------------------------------------------

    def judge_plan(self) -> Plan:
        if self._judge_plan is None:
            wf = Workflow.model_validate(
                {
                    "name": "dagtier-eval-judge",
                    "inputs": {"prompt": "string"},
                    "nodes": {
                        JUDGE_NODE: {
                            "prompt": "{{ inputs.prompt }}",
                            "policy": {"kind": "static", "tier": self.r.judge_tier},
                            "temperature": 0,
                            "max_tokens": 400,
                        }
                    },
                }
            )
            self._judge_plan = compile_workflow(wf, self.gateway.catalog)
        return self._judge_plan

    async def _judge(self, case: Case, nid: str, rep: int, units: list[Unit]) -> None:
        if len(units) < 1:
            return
        rng = random.Random(f"{self.seed}:{case.index}:{nid}:{rep}")
        order = list(units)
        rng.shuffle(order)
        task = self.r.prompts[(case.index, nid)]
        scores: dict[int, list[float]] = {u.tier: [] for u in units}
        passes = [order, order[::-1]] if len(order) > 1 else [order]
        seen: list[dict[int, float]] = []
        for k, shown in enumerate(passes):
            rid = f"{self.r.eval_id}:c{case.index}:{nid}:r{rep}:judge{k}"
            prompt = judge_prompt(task, [u.text or "" for u in shown])
            res, _ = await self._run(self.judge_plan(), {"prompt": prompt}, rid)
            if res is None:
                return
            node = res.nodes[JUDGE_NODE]
            self.r.judge_cost += node.cost
            parsed = parse_scores(node.text or "", len(shown))
            got = {}
            for pos, u in enumerate(shown):
                if pos + 1 in parsed:
                    scores[u.tier].append(parsed[pos + 1])
                    got[u.tier] = parsed[pos + 1]
            seen.append(got)
        for u in units:
            if scores[u.tier]:
                u.judge = sum(scores[u.tier]) / len(scores[u.tier])
        if len(seen) == 2:
            first, last = order[0].tier, order[-1].tier
            # the answer shown first in pass 1 is shown last in pass 2, and vice versa
            for tier, a, b in ((first, 0, 1), (last, 1, 0)):
                if tier in seen[a] and tier in seen[b]:
                    self.bias.append(seen[a][tier] - seen[b][tier])


def _render_prompt(
    plan: Plan, nid: str, inputs: Mapping[str, Any], nodes: Mapping[str, NodeResult]
) -> str:
    np = plan.nodes[nid]
    ctx: dict[str, Any] = {"inputs": inputs}
    ctx.update({k: r.output for k, r in nodes.items() if r.ok})
    try:
        text = np.prompt.render(ctx)
        if np.system is not None:
            text = np.system.render(ctx) + "\n\n" + text
    except Exception:  # a template that needs what the reference run did not produce
        return np.prompt.source
    return text


def judge_prompt(task: str, answers: Sequence[str]) -> str:
    """The blind comparison: answers numbered in the order given, nothing else about them."""
    blocks = "\n\n".join(f'<answer number="{i}">\n{a}\n</answer>' for i, a in enumerate(answers, 1))
    form = "\n".join(f"{i}: SCORE" for i in range(1, len(answers) + 1))
    return JUDGE_PROMPT.format(n=len(answers), task=task, answers=blocks, form=form)


def parse_scores(text: str, n: int) -> dict[int, float]:
    """``{answer number: score in [0, 1]}`` from lines ``N: SCORE`` (0-10); others ignored."""
    out: dict[int, float] = {}
    for m in _SCORE_RE.finditer(text):
        i, s = int(m.group(1)), float(m.group(2))
        if 1 <= i <= n and i not in out:
            out[i] = min(s, 10.0) / 10.0
    return out


async def evaluate(
    workflow: Workflow | Plan,
    cases: str | Path | Sequence[Mapping[str, Any]],
    *,
    tiers: Sequence[int] = (1, 2, 3),
    nodes: Sequence[str] | None = None,
    repeat: int = 1,
    judge: int | None = None,
    scorer: Scorer | None = None,
    store: Any = None,
    catalog: Catalog | None = None,
    providers: Mapping[str, Provider] | None = None,
    gateway: Gateway | None = None,
    concurrency: int = 8,
    budget: float | None = None,
    eval_id: str | None = None,
    resume: str | None = None,
    subscribers: Iterable[Subscriber] = (),
    on_unit: Callable[[Unit], Any] | None = None,
    on_start: Callable[[int], Any] | None = None,
    seed: int = 0,
) -> EvalResult:
    """Evaluate each selected node on each tier over ``cases`` (see the module docstring).

    Cancelling the call (Ctrl-C) keeps every run committed so far; ``resume=`` the eval id
    with the same store finishes it without paying for them again.

    Args:
        workflow: the workflow, or a plan compiled against the gateway's catalog.
        cases: a ``.jsonl`` file of ``{"inputs": {...}, "expected": {...}}``, or a list.
        tiers: the tiers to try each node on.
        nodes: the nodes to evaluate (default: every prompt node).
        repeat: answers per case, node and tier (for noisy models).
        judge: the tier of the blind judge (None: no judge).
        scorer: compares an output with its expected value (default: exact or JSON subset).
        store: keeps every run (default: in memory, so nothing resumes).
        catalog, providers, gateway: as for :func:`dagtier.run` (a gateway made here is
            closed when the eval ends; one passed in stays open, the caller's to close).
        concurrency: runs in flight at once.
        budget: USD for the whole eval; no run starts once it is spent.
        eval_id: the id of a new eval; resume: the id of one to finish.
        subscribers: receive every run's events (a progress bar).
        on_unit: called with each answer as its case finishes.
        on_start: called with the number of answers the eval will score (progress bars).
        seed: the judge's shuffles.

    Raises:
        SpecError: bad cases (every problem, by line), tiers or nodes.
    """
    workflow, plan = split_plan(workflow, "evaluate()")
    if repeat < 1 or concurrency < 1:
        raise DagtierUsageError("repeat and concurrency must be at least 1")
    if judge is not None and judge not in TIERS:
        raise _bad(
            "--judge", "", f"there is no tier {judge}", "bad-tiers", "the judge tier is 1, 2 or 3"
        )
    own_gateway = gateway is None  # one made here is closed here; a caller's, by its caller
    plan, gateway = plan_and_gateway(workflow, plan, gateway, catalog, providers)
    try:
        selected = check_selection(plan, list(tiers), nodes)
        loaded = load_cases(plan, cases)
        store = store if store is not None else MemoryStore()
        if not isinstance(store, RunStore):
            raise DagtierUsageError(f"evaluate() needs a store that keeps runs, got {store!r}")
        eid = resume or eval_id or new_eval_id()
        if resume is not None and await store.load_run(f"{eid}:c{loaded[0].index}:ref") is None:
            raise RunError(
                f"no eval '{eid}' in the store\nhint: pass the same --store as the first run of the eval"
            )
        result = EvalResult(eid, plan, loaded, selected, list(tiers), repeat, judge_tier=judge)
        if on_start is not None:
            on_start(len(loaded) * len(selected) * len(tiers) * repeat)
        shared = None
        if budget is not None:
            # a resumed eval counts what its runs already spent
            spent = sum(
                r.cost for r in await store.list_runs(1 << 62) if r.run_id.startswith(eid + ":")
            )
            shared = Budget(budget, spent=spent, run_id=eid, scope="eval")
        state = _Eval(
            result,
            gateway=gateway,
            store=store,
            budget=shared,
            concurrency=concurrency,
            scorer=scorer,
            subscribers=list(subscribers),
            on_unit=on_unit,
            seed=seed,
        )
        result.status = "cancelled"
        try:
            async with anyio.create_task_group() as tg:
                for case in loaded:
                    tg.start_soon(state.case, case)
            result.status = state.stop or "finished"
        finally:
            if state.bias:
                result.position_bias = sum(state.bias) / len(state.bias)
            result.units.sort(
                key=lambda u: (u.case, result.nodes.index(u.node_id), u.tier, u.repeat)
            )
        return result
    finally:
        if own_gateway:
            with anyio.CancelScope(shield=True):
                # its SDK clients' connections would otherwise outlive the event loop
                await gateway.aclose()
