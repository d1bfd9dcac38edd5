"""YAML text -> a validated :class:`Workflow`, or a :class:`SpecError` listing every problem."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import networkx as nx
from pydantic import ValidationError

from .._exceptions import SpecError, SpecIssue
from .._yaml import (
    Positions,
    did_you_mean,
    format_path,
    issues_from_validation_error,
    load_yaml,
    locate,
    read_text,
)
from ..graph import ancestry, find_cycle
from . import models as m
from .templates import TemplateProblem, analyze

RESERVED_IDS = frozenset(
    {
        "inputs",
        "outputs",
        "loop",
        "self",
        "range",
        "dict",
        "lipsum",
        "cycler",
        "joiner",
        "namespace",
    }
)


def _field_choices() -> dict[tuple[str | int, ...], Sequence[str]]:
    def keys(model: type[Any]) -> list[str]:
        return [f.alias or name for name, f in model.model_fields.items()]

    choices: dict[tuple[str | int, ...], Sequence[str]] = {
        (): keys(m.Workflow),
        ("nodes", "*"): keys(m.Node),
        ("defaults",): keys(m.NodeSettings),
        ("inputs", "*"): keys(m.InputSpec),
        ("nodes", "*", "output"): keys(m.OutputSpec),
    }
    policy_keys = sorted(
        {k for p in (m.StaticPolicy, m.CascadePolicy, m.AdaptivePolicy) for k in keys(p)}
    )
    choices[("nodes", "*", "policy")] = policy_keys
    choices[("defaults", "policy")] = policy_keys
    check_keys = sorted(
        {
            k
            for c in (m.JsonSchemaCheck, m.RegexCheck, m.LengthCheck, m.PythonCheck, m.JudgeCheck)
            for k in keys(c)
        }
    )
    choices[("nodes", "*", "checks", "*")] = check_keys
    choices[("defaults", "checks", "*")] = check_keys
    return choices


def parse_workflow(text: str, source: str = "<string>") -> m.Workflow:
    """Validate workflow YAML text.

    Raises:
        SpecError: every problem found, each with its field path, line and column.
    """
    issues: list[SpecIssue] = []
    data, positions = load_yaml(text, source, problems=issues)
    if not isinstance(data, dict):
        raise SpecError(
            source=source,
            issues=[
                SpecIssue(
                    path="",
                    message="a workflow is a YAML mapping with at least 'name' and 'nodes'",
                    code="not-a-mapping",
                    line=1,
                    column=1,
                    hint="start from workflows/refactor.yaml or run 'dagtier schema'",
                )
            ],
        )
    wf = None
    try:
        wf = m.Workflow.model_validate(data)
    except ValidationError as exc:
        issues += issues_from_validation_error(exc, positions, data, field_choices=_field_choices())
    # the graph and template checks read the raw document, so they run even when some
    # field has the wrong type: one `dagtier validate` lists every problem
    issues += check_semantics(data, positions)
    if issues or wf is None:
        raise SpecError(source=source, issues=_sorted(issues))
    wf._source = source
    return wf


def load_workflow(path: str | Path) -> m.Workflow:
    """Read and validate a workflow file.

    Raises:
        SpecError: the file is missing, not YAML, or not a valid workflow (every problem listed).
    """
    return parse_workflow(read_text(path), str(path))


def _sorted(issues: list[SpecIssue]) -> list[SpecIssue]:
    return sorted(issues, key=lambda i: (i.line or 0, i.column or 0, i.path))


def _str_list(value: Any) -> list[str]:
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def _raw_view(
    data: dict[str, Any],
) -> tuple[dict[str, tuple[list[str], str | None, str | None]], set[str], dict[str, str]]:
    """Node id -> (depends_on, prompt, system), input names and outputs, read from the raw
    document. Values of the wrong type are left out: the model validation reports those."""
    raw_nodes = data.get("nodes")
    nodes: dict[str, tuple[list[str], str | None, str | None]] = {}
    if isinstance(raw_nodes, dict):
        for nid, node in raw_nodes.items():
            node = node if isinstance(node, dict) else {}
            prompt, system = node.get("prompt"), node.get("system")
            nodes[str(nid)] = (
                _str_list(node.get("depends_on")),
                prompt if isinstance(prompt, str) else None,
                system if isinstance(system, str) else None,
            )
    raw_inputs = data.get("inputs")
    inputs = {str(k) for k in raw_inputs} if isinstance(raw_inputs, dict) else set()
    raw_outputs = data.get("outputs")
    outputs = (
        {str(k): v for k, v in raw_outputs.items() if isinstance(v, str)}
        if isinstance(raw_outputs, dict)
        else {}
    )
    return nodes, inputs, outputs


def check_semantics(data: dict[str, Any], positions: Positions) -> list[SpecIssue]:
    """The checks pydantic cannot do alone: ids, dependencies, cycles, template references.

    Works on the raw document (not the validated model) so that it runs, and reports, even
    when the model validation failed elsewhere.
    """
    issues: list[SpecIssue] = []
    nodes, declared_inputs, outputs = _raw_view(data)

    def add(
        path: tuple[str | int, ...],
        message: str,
        code: str,
        hint: str | None = None,
        *,
        key: bool = False,
        line_offset: int = 0,
    ) -> None:
        line, col = locate(positions, path, key=key)
        if line is not None and line_offset:
            line += line_offset
        issues.append(SpecIssue(format_path(path), message, code, line, col, hint))

    node_ids = list(nodes)
    for nid in node_ids:
        if not m.is_identifier(nid):
            add(
                ("nodes", nid),
                f"node id '{nid}' is not a valid name",
                "invalid-node-id",
                "use letters, digits and underscores, not starting with a digit (e.g. "
                f"'{_suggest_id(nid)}'); templates refer to nodes by id",
                key=True,
            )
        elif nid in RESERVED_IDS:
            add(
                ("nodes", nid),
                f"node id '{nid}' is reserved",
                "reserved-node-id",
                f"rename it (e.g. '{nid}_step')",
                key=True,
            )

    g = nx.DiGraph()
    g.add_nodes_from(node_ids)
    for nid, (depends_on, _, _) in nodes.items():
        for i, dep in enumerate(depends_on):
            path = ("nodes", nid, "depends_on", i)
            if dep == nid:
                add(
                    path,
                    f"node '{nid}' depends on itself",
                    "self-dependency",
                    "remove it from depends_on",
                )
            elif dep not in nodes:
                hint = (
                    did_you_mean(dep, node_ids) or f"nodes defined: {', '.join(sorted(node_ids))}"
                )
                add(path, f"no node named '{dep}'", "unknown-dependency", hint)
            else:
                g.add_edge(dep, nid)
    cycle = find_cycle(g)
    if cycle:
        add(
            ("nodes", cycle[0], "depends_on"),
            "dependency cycle: " + " -> ".join(cycle),
            "dependency-cycle",
            "remove one of these dependencies; a workflow must be a DAG",
        )
    # defined on a cyclic graph too, so a cycle does not also flag every template in it
    is_upstream = ancestry(g)

    def check_template(path: tuple[str | int, ...], source: str, owner: str | None) -> None:
        try:
            refs = analyze(source)
        except TemplateProblem as exc:
            add(
                path,
                str(exc),
                "template-syntax",
                "Jinja2 syntax: {{ inputs.name }}, {{ node_id }}, {% if ... %}...{% endif %}",
                line_offset=_block_offset(source, exc.line),
            )
            return
        for name in sorted(refs.names):
            if name == "inputs":
                continue
            if name not in nodes:
                choices = [*node_ids, "inputs"]
                hint = did_you_mean(name, choices) or (
                    f"templates may use inputs.NAME or an upstream node id ({', '.join(sorted(node_ids))})"
                )
                add(
                    path, f"template refers to unknown name '{name}'", "unknown-template-name", hint
                )
            elif owner is not None and not is_upstream(name, owner):
                if name == owner:
                    add(
                        path,
                        f"node '{owner}' refers to its own output",
                        "self-reference",
                        "a node's prompt can only use inputs and upstream nodes",
                    )
                else:
                    add(
                        path,
                        f"template refers to node '{name}', which is not upstream of '{owner}'",
                        "not-an-ancestor",
                        f"add '{name}' to depends_on of '{owner}'",
                    )
        for name in sorted(refs.inputs - declared_inputs):
            hint = (
                did_you_mean(name, declared_inputs)
                or f"declare it under 'inputs:' (e.g. {name}: string)"
            )
            add(path, f"template uses undeclared input '{name}'", "undeclared-input", hint)

    for nid, (_, prompt, system) in nodes.items():
        if prompt:
            check_template(("nodes", nid, "prompt"), prompt, nid)
        if system:
            check_template(("nodes", nid, "system"), system, nid)
    for name, source in outputs.items():
        check_template(("outputs", name), source, None)
    return issues


def _block_offset(source: str, template_line: int | None) -> int:
    # a block scalar (|) starts on the line after the key, so the template's line N is N lines down
    return template_line if template_line and "\n" in source else 0


def _suggest_id(nid: str) -> str:
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in nid)
    return out if out and not out[0].isdigit() else f"n_{out}"
