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

This module only hashes; :class:`dagtier.plan.Plan` works out once per workflow what goes
into each hash and keeps the results.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .catalog import Catalog
    from .providers.base import Message
    from .spec.models import Workflow


def digest(obj: Any) -> str:
    """A short stable hash of JSON-able ``obj`` (keys sorted, so dict order does not count)."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def shaping_fields(
    workflow: Workflow, catalog: Catalog, nid: str, tiers: Sequence[int]
) -> dict[str, Any]:
    """What shapes a node's answer besides its prompt: policy, checks, max_tokens,
    temperature, output, and the catalog models of ``tiers`` (those the node may call).
    Worked out once per plan (:mod:`dagtier.plan`)."""
    node = workflow.nodes[nid]
    fields = {
        "policy": workflow.node_policy(nid).model_dump(mode="json"),
        "checks": [c.model_dump(mode="json", by_alias=True) for c in workflow.node_checks(nid)],
        "max_tokens": workflow.node_setting(nid, "max_tokens"),
        "temperature": workflow.node_setting(nid, "temperature"),
        "output": node.output.model_dump(mode="json", by_alias=True),
        "models": {
            t: [[m.name, m.provider, m.model, m.base_url] for m in catalog.tier_models(t)]  # type: ignore[arg-type]  # t is 1..3
            for t in tiers
        },
    }
    if node.kind != "prompt" or node.tools:
        # only then: a plain prompt node's fingerprint stays what stored runs have
        fields["step"] = node.model_dump(
            mode="json",
            include={"run", "command", "cwd", "env", "agent", "tools", "max_turns", "on_stall"},
        )
    return fields


def own_fingerprint(
    prompt: str,
    system: str | None,
    shaping: Mapping[str, Any],
    inputs: Mapping[str, Any],
    names: Sequence[str],
) -> str:
    """A node's own fingerprint: its templates, what shapes its answer, and the values of
    the inputs ``names`` it reads."""
    return digest(
        {
            "prompt": prompt,
            "system": system,
            **shaping,
            "inputs": {k: inputs.get(k) for k in names},
        }
    )


def chain(own: Mapping[str, str], order: Sequence[str], workflow: Workflow) -> dict[str, str]:
    """Full fingerprints: each node's own combined with its parents' full ones (``order``
    lists parents first)."""
    full: dict[str, str] = {}
    for nid in order:
        parents = sorted(workflow.nodes[nid].depends_on)
        full[nid] = digest([own[nid], [full[p] for p in parents]])
    return full


def workflow_fingerprint(workflow: Workflow, node_fps: Mapping[str, str]) -> str:
    """One hash for the whole workflow: graph, prompts, policies, models, outputs."""
    return digest({"name": workflow.name, "nodes": dict(node_fps), "outputs": workflow.outputs})


def stale_nodes(
    recorded: Mapping[str, str], current: Mapping[str, str], finished: set[str]
) -> list[str]:
    """Finished nodes whose result no longer matches the workflow (sorted).

    A node with no recorded fingerprint (a store written before fingerprints) counts as
    unchanged.
    """
    return sorted(n for n in finished if n in recorded and recorded[n] != current.get(n))


def cache_key(
    messages: Sequence[Message],
    system: str | None,
    max_tokens: int,
    temperature: float | None,
    schema: Mapping[str, Any] | None,
    shaping: Mapping[str, Any],
) -> str:
    """The result cache's key: rendered prompt and system prompt, the models the node may
    use, and every parameter that shapes the answer (temperature, max_tokens, output
    schema, policy and checks)."""
    return digest(
        {
            "messages": [[m.role, m.content] for m in messages],
            "system": system,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "schema": schema,
            **shaping,
        }
    )


__all__ = [
    "cache_key",
    "chain",
    "own_fingerprint",
    "shaping_fields",
    "stale_nodes",
    "workflow_fingerprint",
]
