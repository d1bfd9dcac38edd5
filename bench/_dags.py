"""Shared DAG shapes for the benches: layered DAGs, width W, each node with P parents."""

from __future__ import annotations

import random
from typing import Any

import dagtier


def layered_edges(n: int, width: int = 50, parents: int = 3, seed: int = 0) -> dict[str, list[str]]:
    """Node id -> its parents. Layer 0 has no parents; every other node has ``parents``
    distinct parents drawn from the layer above."""
    rng = random.Random(seed)
    deps: dict[str, list[str]] = {}
    layers: list[list[str]] = []
    for i in range(n):
        layer, pos = divmod(i, width)
        if pos == 0:
            layers.append([])
        nid = f"n{i}"
        layers[layer].append(nid)
        deps[nid] = [] if layer == 0 else rng.sample(layers[layer - 1], min(parents, width))
    return deps


def workflow_for(deps: dict[str, list[str]], *, concurrency: int | None = None) -> Any:
    """A Workflow with one static tier-1 node per entry, built from a dict (no YAML parse:
    the benches time runs, not loading)."""
    from dagtier.spec.models import MAX_CONCURRENCY, Workflow

    nodes = {
        nid: {"prompt": "go", "depends_on": parents, "policy": {"kind": "static", "tier": 1}}
        for nid, parents in deps.items()
    }
    return Workflow.model_validate(
        # no limit the DAG's width could reach (the widest bench layer is far below the cap)
        {
            "name": "bench",
            "nodes": nodes,
            "concurrency": concurrency or min(len(nodes), MAX_CONCURRENCY),
        }
    )


def python_catalog() -> dagtier.Catalog:
    """Every tier served by the in-process ``python`` provider, priced at zero."""
    return dagtier.catalog_from_dict(
        {
            "models": {
                "fn": {"provider": "python", "model": "fn", "price": {"input": 0, "output": 0}}
            },
            "tiers": {1: ["fn"], 2: ["fn"], 3: ["fn"]},
        }
    )
