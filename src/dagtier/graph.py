"""The workflow as a NetworkX DAG: checks, order, critical path, drawings. Pure: no I/O."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import networkx as nx

from ._exceptions import GraphError

if TYPE_CHECKING:  # spec's loader imports this module: a runtime import would be circular
    from .spec.models import Workflow


def build_graph(workflow: Workflow) -> nx.DiGraph:
    """Edges point from a dependency to its dependent.

    Raises:
        GraphError: a dependency names no node, or the dependencies form a cycle.
    """
    g = nx.DiGraph()
    for node_id in workflow.nodes:
        g.add_node(node_id)
    for node_id, node in workflow.nodes.items():
        for dep in node.depends_on:
            if dep not in workflow.nodes:
                raise GraphError(f"node '{node_id}' depends on unknown node '{dep}'")
            g.add_edge(dep, node_id)
    cycle = find_cycle(g)
    if cycle:
        raise GraphError("dependency cycle: " + " -> ".join(cycle), cycle=cycle)
    return g


def find_cycle(g: nx.DiGraph) -> list[str] | None:
    """One cycle as a closed path ``[a, b, ..., a]``, or None. Deterministic for a given graph."""
    try:
        edges = nx.find_cycle(g, source=sorted(g.nodes))
    except nx.NetworkXNoCycle:
        return None
    path = [str(u) for u, _ in edges]
    return [*path, path[0]]


def generations(g: nx.DiGraph) -> list[list[str]]:
    """Topological generations, each sorted, so the order is the same on every run."""
    return [sorted(gen) for gen in nx.topological_generations(g)]


def topological_order(g: nx.DiGraph) -> list[str]:
    return [n for gen in generations(g) for n in gen]


def critical_path(
    g: nx.DiGraph, duration: Mapping[str, float] | Callable[[str], float]
) -> tuple[list[str], float]:
    """The longest path by node duration, and its length: a lower bound on any run's makespan."""
    dur = duration if callable(duration) else duration.__getitem__
    finish: dict[str, float] = {}
    best_pred: dict[str, str | None] = {}
    for n in topological_order(g):
        preds = list(g.predecessors(n))
        if preds:
            p = max(preds, key=lambda q: finish[q])
            start, best_pred[n] = finish[p], p
        else:
            start, best_pred[n] = 0.0, None
        finish[n] = start + float(dur(n))
    if not finish:
        return [], 0.0
    end = max(finish, key=lambda n: finish[n])
    path: list[str] = []
    cur: str | None = end
    while cur is not None:
        path.append(cur)
        cur = best_pred[cur]
    return path[::-1], finish[end]


def _label(workflow: Workflow, node_id: str) -> str:
    p = workflow.node_policy(node_id)
    if p.kind == "static":
        return f"static T{p.tier}"
    if p.kind == "cascade":
        return f"cascade T{p.start}→T{p.max}"
    return f"adaptive T{p.min_tier}–T{p.max_tier} ≥{p.target:g}"


def to_mermaid(workflow: Workflow) -> str:
    g = build_graph(workflow)
    lines = ["flowchart TD"]
    for n in topological_order(g):
        lines.append(f'    {n}["{n}<br/><small>{_label(workflow, n)}</small>"]')
    for u, v in sorted(g.edges):
        lines.append(f"    {u} --> {v}")
    return "\n".join(lines) + "\n"


def to_dot(workflow: Workflow) -> str:
    g = build_graph(workflow)
    lines = [
        f'digraph "{workflow.name}" {{',
        "    rankdir=TB;",
        "    node [shape=box, style=rounded];",
    ]
    for n in topological_order(g):
        lines.append(f'    {n} [label="{n}\\n{_label(workflow, n)}"];')
    for u, v in sorted(g.edges):
        lines.append(f"    {u} -> {v};")
    lines.append("}")
    return "\n".join(lines) + "\n"
