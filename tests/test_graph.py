"""The graph helpers: orders respect every edge, generations partition the nodes, any cycle
is found and named, the critical path is the longest path, drawings carry policy and tier."""

from __future__ import annotations

import itertools

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dagtier import GraphError, SpecError
from dagtier.graph import (
    ancestry,
    build_graph,
    critical_path,
    find_cycle,
    generations,
    to_dot,
    to_mermaid,
    topological_order,
)
from dagtier.spec.models import Node, Workflow


@st.composite
def dags(draw: st.DrawFn) -> nx.DiGraph:
    """Random DAGs: edges only go from a lower to a higher index."""
    n = draw(st.integers(min_value=1, max_value=25))
    g = nx.DiGraph()
    g.add_nodes_from(f"n{i}" for i in range(n))
    pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    if pairs:
        for i, j in draw(st.lists(st.sampled_from(pairs), unique=True, max_size=60)):
            g.add_edge(f"n{i}", f"n{j}")
    # relabel with a shuffled mapping so that order is not given away by the names
    names = draw(st.permutations([f"v{i}" for i in range(n)]))
    return nx.relabel_nodes(g, dict(zip(list(g.nodes), names, strict=True)))


def workflow_of(g: nx.DiGraph) -> Workflow:
    return Workflow.model_validate(
        {
            "name": "g",
            "nodes": {n: {"prompt": "p", "depends_on": sorted(g.predecessors(n))} for n in g.nodes},
        }
    )


@given(dags())
def test_every_edge_respects_the_execution_order(g: nx.DiGraph) -> None:
    """In topological_order, every dependency comes before its dependent."""
    order = topological_order(g)
    pos = {n: i for i, n in enumerate(order)}
    assert sorted(order) == sorted(g.nodes)
    for u, v in g.edges:
        assert pos[u] < pos[v]


@given(dags())
def test_generations_partition_the_nodes(g: nx.DiGraph) -> None:
    """Generations are disjoint, cover every node, are sorted, and no edge stays inside one."""
    gens = generations(g)
    flat = [n for gen in gens for n in gen]
    assert sorted(flat) == sorted(g.nodes)
    assert len(flat) == len(set(flat))
    level = {n: i for i, gen in enumerate(gens) for n in gen}
    for gen in gens:
        assert gen == sorted(gen)
    for u, v in g.edges:
        assert level[u] < level[v]


@given(dags(), st.data())
def test_closing_a_cycle_is_always_found_and_named(g: nx.DiGraph, data: st.DataObject) -> None:
    """Adding an edge back along any path makes find_cycle, build_graph and the loader name
    a closed cycle made of real edges."""
    paths = [(u, v) for u in g.nodes for v in nx.descendants(g, u)]
    if paths:
        u, v = data.draw(st.sampled_from(sorted(paths)))
    else:
        u = v = data.draw(st.sampled_from(sorted(g.nodes)))
    assert find_cycle(g) is None
    cyclic = g.copy()
    cyclic.add_edge(v, u)
    cycle = find_cycle(cyclic)
    assert cycle is not None
    assert cycle[0] == cycle[-1]
    for a, b in itertools.pairwise(cycle):
        assert cyclic.has_edge(a, b)
    if u == v:
        return  # a self-loop is reported as self-dependency by the loader instead
    wf_text = "name: g\nnodes:\n" + "".join(
        f"  {n}:\n    prompt: p\n    depends_on: {sorted(cyclic.predecessors(n))}\n"
        for n in sorted(cyclic.nodes)
    ).replace("'", "")
    from dagtier.spec import parse_workflow

    with pytest.raises(SpecError) as info:
        parse_workflow(wf_text)
    [issue] = [i for i in info.value.issues if i.code == "dependency-cycle"]
    assert issue.message.startswith("dependency cycle: ")
    named = issue.message.removeprefix("dependency cycle: ").split(" -> ")
    assert named[0] == named[-1] and len(named) >= 3
    for a, b in itertools.pairwise(named):
        assert cyclic.has_edge(a, b)


def test_build_graph_raises_graph_error_naming_the_cycle() -> None:
    """build_graph on a cyclic workflow raises GraphError with the cycle in order."""
    # the loader refuses cycles, so build the model without it
    nodes = {"a": Node(prompt="p", depends_on=["b"]), "b": Node(prompt="p", depends_on=["a"])}
    wf = Workflow.model_construct(name="c", nodes=nodes)
    with pytest.raises(GraphError) as info:
        build_graph(wf)
    assert info.value.cycle == ["a", "b", "a"]
    assert str(info.value) == "dependency cycle: a -> b -> a"


@settings(max_examples=50)
@given(dags(), st.data())
def test_critical_path_is_the_longest_weighted_path(g: nx.DiGraph, data: st.DataObject) -> None:
    """The critical path is a real path, its length is the sum of its durations, and it
    equals the longest path found by networkx."""
    dur = {n: data.draw(st.floats(min_value=0.0, max_value=10.0)) for n in sorted(g.nodes)}
    path, length = critical_path(g, dur)
    for a, b in itertools.pairwise(path):
        assert g.has_edge(a, b)
    assert length == pytest.approx(sum(dur[n] for n in path))
    # networkx's longest path over edge weights: put each node's duration on its in-edges
    h = nx.DiGraph()
    h.add_node("__start__")
    for n in g.nodes:
        h.add_edge("__start__", n, w=dur[n])
    for u, v in g.edges:
        h.add_edge(u, v, w=dur[v])
    assert length == pytest.approx(nx.dag_longest_path_length(h, weight="w"))


def test_critical_path_of_a_known_shape() -> None:
    """On a diamond the heavier branch is the critical path; callable durations work too."""
    g = nx.DiGraph([("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")])
    dur = {"a": 1.0, "b": 5.0, "c": 2.0, "d": 1.0}
    assert critical_path(g, dur) == (["a", "b", "d"], 7.0)
    assert critical_path(g, lambda n: 1.0)[1] == 3.0
    assert critical_path(nx.DiGraph(), {}) == ([], 0.0)


def test_drawings_are_labelled_with_policy_and_tier() -> None:
    """Mermaid and dot label each node with its policy and tier range, defaults applied."""
    wf = Workflow.model_validate(
        {
            "name": "labels",
            "defaults": {"policy": {"kind": "static", "tier": 2}},
            "nodes": {
                "a": {"prompt": "p"},
                "b": {"prompt": "p", "depends_on": ["a"], "policy": {"kind": "cascade"}},
                "c": {
                    "prompt": "p",
                    "depends_on": ["a"],
                    "policy": {"kind": "adaptive", "target": 0.95, "max_tier": 2},
                },
            },
        }
    )
    assert to_mermaid(wf) == (
        "flowchart TD\n"
        '    a["a<br/><small>static T2</small>"]\n'
        '    b["b<br/><small>cascade T1→T3</small>"]\n'
        '    c["c<br/><small>adaptive T1–T2 ≥0.95</small>"]\n'
        "    a --> b\n"
        "    a --> c\n"
    )
    assert to_dot(wf) == (
        'digraph "labels" {\n'
        "    rankdir=TB;\n"
        "    node [shape=box, style=rounded];\n"
        '    a [label="a\\nstatic T2"];\n'
        '    b [label="b\\ncascade T1→T3"];\n'
        '    c [label="c\\nadaptive T1–T2 ≥0.95"];\n'
        "    a -> b;\n"
        "    a -> c;\n"
        "}\n"
    )


@given(dags())
def test_a_workflow_graph_has_the_declared_edges(g: nx.DiGraph) -> None:
    """build_graph turns depends_on into exactly the edges dependency -> dependent."""
    assert set(build_graph(workflow_of(g)).edges) == set(g.edges)


@given(dags(), st.data())
def test_ancestry_agrees_with_networkx(g: nx.DiGraph, data: st.DataObject) -> None:
    """ancestry(g)(a, b) is true exactly when a is among networkx's ancestors of b, on
    DAGs and after closing a cycle."""
    graphs = [g]
    if g.number_of_edges():
        u, v = data.draw(st.sampled_from(sorted(g.edges)))
        cyclic = g.copy()
        cyclic.add_edge(v, u)
        graphs.append(cyclic)
    for h in graphs:
        is_upstream = ancestry(h)
        for b in h.nodes:
            expected = nx.ancestors(h, b)
            assert {a for a in h.nodes if is_upstream(a, b)} == expected
