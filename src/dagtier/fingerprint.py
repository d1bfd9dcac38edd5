"""Fingerprints: what a node's result depends on, as a hash.

A node's *own* fingerprint covers everything in its definition that can change its answer:
prompt, system prompt, output format and schema, policy, checks, max_tokens, temperature, the
catalog models of every tier it may run on (its policy's range and its judges' tiers), and
the values of the workflow inputs its templates read. Its *full* fingerprint adds its
parents' full fingerprints, so an edit upstream changes every descendant too.

On resume a finished node whose full fingerprint changed is stale: resuming is refused with
the nodes named, or, with ``force``, exactly those nodes (the edited ones and their
descendants) run again.

The result cache keys on the rendered request instead (:func:`cache_key`): the same prompt
text reaches the same answer whichever workflow or inputs produced it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from .spec.templates import analyze

if TYPE_CHECKING:
    from .catalog import Catalog
    from .providers.base import CompletionRequest
    from .spec.models import Workflow


def _hash(obj: Any) -> str:
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _tiers_used(workflow: Workflow, nid: str) -> list[int]:
    p = workflow.node_policy(nid)
    tiers: set[int]
    if p.kind == "static":
        tiers = {p.tier}
    elif p.kind == "cascade":
        tiers = set(range(p.start, p.max + 1))
    else:
        tiers = set(range(p.min_tier, p.max_tier + 1))
    tiers |= {c.tier for c in workflow.node_checks(nid) if c.type == "judge"}
    return sorted(tiers)


def _models(catalog: Catalog, tiers: list[int]) -> dict[int, list[list[str | None]]]:
    return {
        t: [[m.name, m.provider, m.model, m.base_url] for m in catalog.tier_models(t)]  # type: ignore[arg-type]  # t is 1..3
        for t in tiers
    }


def _settings(workflow: Workflow, nid: str) -> dict[str, Any]:
    node = workflow.nodes[nid]
    return {
        "policy": workflow.node_policy(nid).model_dump(mode="json"),
        "checks": [c.model_dump(mode="json", by_alias=True) for c in workflow.node_checks(nid)],
        "max_tokens": workflow.node_setting(nid, "max_tokens"),
        "temperature": workflow.node_setting(nid, "temperature"),
        "output": node.output.model_dump(mode="json", by_alias=True),
    }


class _Static:
    """What a workflow and a catalog fix about each node's own fingerprint, computed once
    per (workflow, catalog) pair: both are immutable, and hashing every node's settings
    on every run cost more than running a zero-latency node (bench/overhead.py)."""

    __slots__ = ("catalog", "full", "parts", "workflow")

    def __init__(self, workflow: Workflow, catalog: Catalog) -> None:
        self.workflow = workflow
        self.catalog = catalog
        self.parts: dict[str, tuple[dict[str, Any], tuple[str, ...] | None, str | None]] = {}
        """Node -> (the hashed fields but inputs, the inputs it reads (None: all of them),
        its own fingerprint when it reads no input)."""
        self.full: dict[str, dict[str, str]] = {}
        """Full fingerprints by the run's inputs (as sorted JSON), a few kept."""
        for nid, node in workflow.nodes.items():
            names: set[str] = set()
            read: set[str] = set()
            for source in (node.prompt, node.system):
                if source:
                    refs = analyze(source)
                    names |= refs.names
                    read |= refs.inputs
            fields = {
                "prompt": node.prompt,
                "system": node.system,
                **_settings(workflow, nid),
                "models": _models(catalog, _tiers_used(workflow, nid)),
            }
            if "inputs" in names and not read:
                self.parts[nid] = (fields, None, None)  # the inputs object as a whole
            elif read:
                self.parts[nid] = (fields, tuple(sorted(read)), None)
            else:
                self.parts[nid] = (fields, (), _hash({**fields, "inputs": {}}))


_STATIC: dict[tuple[int, int], _Static] = {}


def _static(workflow: Workflow, catalog: Catalog) -> _Static:
    st = _STATIC.get((id(workflow), id(catalog)))
    if st is None or st.workflow is not workflow or st.catalog is not catalog:
        if len(_STATIC) > 64:
            _STATIC.clear()
        st = _STATIC[(id(workflow), id(catalog))] = _Static(workflow, catalog)
    return st


def own_fingerprints(
    workflow: Workflow, catalog: Catalog, inputs: Mapping[str, Any]
) -> dict[str, str]:
    """Per node: the hash of its own definition, models and the input values it reads."""
    out: dict[str, str] = {}
    for nid, (fields, read, fixed) in _static(workflow, catalog).parts.items():
        if fixed is not None:
            out[nid] = fixed
            continue
        names = sorted(inputs) if read is None else read
        out[nid] = _hash({**fields, "inputs": {k: inputs.get(k) for k in names}})
    return out


def node_fingerprints(
    workflow: Workflow, catalog: Catalog, inputs: Mapping[str, Any]
) -> dict[str, str]:
    """Per node: its own fingerprint combined with its parents' (see the module docstring).

    Repeated runs with the same inputs reuse the result (a copy: callers may keep it)."""
    from .executor import plan_for

    st = _static(workflow, catalog)
    key = json.dumps(inputs, sort_keys=True, separators=(",", ":"), default=str)
    cached = st.full.get(key)
    if cached is not None:
        return dict(cached)
    own = own_fingerprints(workflow, catalog, inputs)
    full: dict[str, str] = {}
    for nid in plan_for(workflow).order:  # parents first
        parents = sorted(workflow.nodes[nid].depends_on)
        full[nid] = _hash([own[nid], [full[p] for p in parents]])
    if len(st.full) >= 8:
        st.full.clear()
    st.full[key] = full
    return dict(full)


def workflow_fingerprint(workflow: Workflow, node_fps: Mapping[str, str]) -> str:
    """One hash for the whole workflow: graph, prompts, policies, models, outputs."""
    return _hash({"name": workflow.name, "nodes": dict(node_fps), "outputs": workflow.outputs})


def stale_nodes(
    recorded: Mapping[str, str], current: Mapping[str, str], finished: set[str]
) -> list[str]:
    """Finished nodes whose result no longer matches the workflow (sorted).

    A node with no recorded fingerprint (a store written before fingerprints) counts as
    unchanged.
    """
    return sorted(n for n in finished if n in recorded and recorded[n] != current.get(n))


def cache_key(workflow: Workflow, catalog: Catalog, nid: str, request: CompletionRequest) -> str:
    """The result cache's key: rendered prompt and system prompt, the models the node may
    use, and every parameter that shapes the answer (temperature, max_tokens, output
    schema, policy and checks)."""
    return _hash(
        {
            "messages": [[m.role, m.content] for m in request.messages],
            "system": request.system,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
            "schema": request.json_schema,
            **_settings(workflow, nid),
            "models": _models(catalog, _tiers_used(workflow, nid)),
        }
    )


__all__ = [
    "cache_key",
    "node_fingerprints",
    "own_fingerprints",
    "stale_nodes",
    "workflow_fingerprint",
]
