"""The compiled workflow: everything a run needs that depends only on the workflow and the
catalog, worked out once.

A :class:`Plan` holds the execution order, each node's children and number of parents, its
templates and what they read, its task key, its resolved settings, its check plan and the
inputs to its fingerprint. Plans are immutable (apart from a small memo of fingerprints by
input values), so any number of runs, concurrent or not, share one::

    plan = dagtier.compile_workflow(dagtier.load_workflow("review.yaml"), catalog)
    results = await asyncio.gather(*(dagtier.run(plan, {"code": c}) for c in sources))

Everything that needs the order or a node's settings reads the plan; nothing recomputes
them and nothing caches them behind ``id()``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import fingerprint as fp
from .graph import build_graph, topological_order
from .policies import POLICIES
from .policies.checks import CheckPlan, build_check_plan
from .providers.base import Message
from .spec.models import (
    AdaptivePolicy,
    CascadePolicy,
    NodeKind,
    RouterSpec,
    StaticPolicy,
    Workflow,
)
from .spec.templates import Template, analyze
from .steps import search_dirs

if TYPE_CHECKING:
    from .catalog import Catalog
    from .policies import Policy
    from .policies.routers import Router

PolicySpec = StaticPolicy | CascadePolicy | AdaptivePolicy

__all__ = ["NodePlan", "Plan", "compile_workflow"]


@dataclass(frozen=True, slots=True)
class NodePlan:
    """What one node runs with, resolved from the node, the workflow's defaults and the
    built-in defaults."""

    node_id: str
    kind: NodeKind
    """prompt, run, command or agent: what the executor does with the node."""
    tools: tuple[str, ...]
    """Its ``tools:`` (``module:function``), loaded when the node starts."""
    search: tuple[str, ...]
    """Directories its ``module:function`` references are also looked for in (the
    workflow file's own)."""
    prompt: Template
    system: Template | None
    static: tuple[Message, ...] | None
    """The messages, when neither template uses ``{`` (the same on every run, and frozen,
    so shared by all runs)."""
    refs: tuple[str, ...]
    """Node ids the node's templates read (besides inputs)."""
    inputs_read: tuple[str, ...] | None
    """Workflow inputs the templates read by name; None when they use the inputs object
    as a whole."""
    task_key: str
    policy: PolicySpec
    runner: Policy
    """The policy's code: ``await runner(ctx)`` routes the node."""
    tiers_used: tuple[int, ...]
    """Every tier a call of the node may go to: its policy's range and its judges' tiers."""
    max_tokens: int
    temperature: float | None
    timeout_s: float | None
    json_schema: Mapping[str, Any] | None
    cache: bool
    budget: float | None
    """The node's spending cap in USD (its own ``budget:`` or the defaults')."""
    checks: CheckPlan
    shaping: Mapping[str, Any]
    """What shapes the answer besides the prompt: settings, checks, output, models (the
    part of the fingerprint and of the cache key that a run cannot change)."""
    own_fixed: str | None
    """The node's own fingerprint when it reads no input (the same for every run)."""
    router: Router | None = None
    """Its ``router:``, built once: the runs sharing this plan share what it learns (the
    one mutable part of a plan)."""


class Plan:
    """A workflow compiled against a catalog (see the module docstring). Build it with
    :func:`compile_workflow`."""

    __slots__ = (
        "_full",
        "caps",
        "catalog",
        "children",
        "graph",
        "indegree",
        "nodes",
        "order",
        "outputs",
        "workflow",
    )

    def __init__(self, workflow: Workflow, catalog: Catalog) -> None:
        self.workflow = workflow
        self.catalog = catalog
        g = build_graph(workflow)
        self.graph = g
        """The dependency graph (read-only: a deadline's critical path is found on it)."""
        self.order: tuple[str, ...] = tuple(topological_order(g))
        """Execution order: parents first, sorted within each generation."""
        self.children: dict[str, tuple[str, ...]] = {
            n: tuple(sorted(g.successors(n))) for n in self.order
        }
        self.indegree: dict[str, int] = {n: g.in_degree(n) for n in self.order}
        self.nodes: dict[str, NodePlan] = {n: _node_plan(workflow, catalog, n) for n in self.order}
        self.caps: dict[str, float] = {
            n: p.budget for n, p in self.nodes.items() if p.budget is not None
        }
        """Per-node spending caps (``budget:`` on a node or in defaults)."""
        self.outputs: dict[str, tuple[Template, frozenset[str]]] = {
            name: (Template(source), frozenset(analyze(source).names - {"inputs"}))
            for name, source in workflow.outputs.items()
        }
        """The workflow's declared outputs: template and the node ids it reads."""
        self._full: dict[str, dict[str, str]] = {}
        """Full fingerprints by the run's inputs (as sorted JSON), a few kept: repeated
        runs with the same inputs skip the hashing."""

    def __repr__(self) -> str:
        return f"<Plan of workflow {self.workflow.name!r}, {len(self.order)} nodes>"

    def own_fingerprints(self, inputs: Mapping[str, Any]) -> dict[str, str]:
        """Per node: the hash of its own definition, models and the input values it reads."""
        out: dict[str, str] = {}
        for nid, np in self.nodes.items():
            if np.own_fixed is not None:
                out[nid] = np.own_fixed
                continue
            names = sorted(inputs) if np.inputs_read is None else np.inputs_read
            system = np.system.source if np.system is not None else None
            out[nid] = fp.own_fingerprint(np.prompt.source, system, np.shaping, inputs, names)
        return out

    def node_fingerprints(self, inputs: Mapping[str, Any]) -> dict[str, str]:
        """Per node: its own fingerprint chained with its parents' (see :mod:`.fingerprint`).
        Returns a copy: callers may keep it."""
        key = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
        cached = self._full.get(key)
        if cached is None:
            own = self.own_fingerprints(inputs)
            cached = fp.chain(own, self.order, self.workflow)
            if len(self._full) >= 8:
                self._full.clear()
            self._full[key] = cached
        return dict(cached)

    def cache_key(self, node_id: str, messages: Any, system: str | None) -> str:
        """The result cache's key for a node's rendered request (see :func:`.fingerprint.cache_key`)."""
        np = self.nodes[node_id]
        return fp.cache_key(
            messages, system, np.max_tokens, np.temperature, np.json_schema, np.shaping
        )


def compile_workflow(workflow: Workflow, catalog: Catalog | None = None) -> Plan:
    """Compile ``workflow`` against ``catalog`` (default: the packaged catalog plus
    ``$DAGTIER_MODELS``) once, to run it any number of times: pass the plan to
    :func:`dagtier.run` in place of the workflow.

    Added in issue 11.

    Raises:
        GraphError: the workflow's nodes form a cycle or depend on unknown nodes.
    """
    if catalog is None:
        from .catalog import load_catalog

        catalog = load_catalog()
    return Plan(workflow, catalog)


def _node_plan(workflow: Workflow, catalog: Catalog, nid: str) -> NodePlan:
    node = workflow.nodes[nid]
    names: set[str] = set()
    read: set[str] = set()
    for _, source in node.templates():
        refs = analyze(source)
        names |= refs.names
        read |= refs.inputs
    if node.kind in ("run", "agent"):
        # a function may take any upstream output and any input by parameter name
        names |= {"inputs", *node.depends_on}
        read.clear()
    inputs_read = None if "inputs" in names and not read else tuple(sorted(read))
    policy = workflow.node_policy(nid)
    checks = workflow.node_checks(nid)
    tiers = set(policy.tiers) | {c.tier for c in checks if c.type == "judge"}
    shaping = fp.shaping_fields(workflow, catalog, nid, sorted(tiers))
    prompt = node.prompt or ""
    static = node.kind == "prompt" and "{" not in prompt and "{" not in (node.system or "")
    return NodePlan(
        node_id=nid,
        kind=node.kind,
        tools=tuple(node.tools),
        search=search_dirs(workflow.source),
        prompt=Template(prompt),
        system=Template(node.system) if node.system else None,
        static=(Message("user", prompt),) if static else None,
        refs=tuple(sorted(names - {"inputs"})),
        inputs_read=inputs_read,
        task_key=workflow.task_key(nid),
        policy=policy,
        runner=POLICIES[policy.kind],
        tiers_used=tuple(sorted(tiers)),
        max_tokens=workflow.node_setting(nid, "max_tokens"),
        temperature=workflow.node_setting(nid, "temperature"),
        timeout_s=workflow.node_setting(nid, "timeout_s"),
        json_schema=node.output.schema_ if node.output.format == "json" else None,
        cache=bool(workflow.node_setting(nid, "cache")),
        budget=workflow.node_setting(nid, "budget"),
        checks=build_check_plan(workflow, nid),
        shaping=shaping,
        own_fixed=(
            fp.own_fingerprint(prompt, node.system, shaping, {}, ()) if inputs_read == () else None
        ),
        router=_router(node.router),
    )


def _router(spec: RouterSpec | None) -> Router | None:
    if spec is None:
        return None
    from .policies.routers import build_router

    return build_router(spec)
