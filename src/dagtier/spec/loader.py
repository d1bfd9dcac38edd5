"""YAML text -> a validated :class:`Workflow`, or a :class:`SpecError` listing every problem."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
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


CHECK_NAMES = frozenset({"answer_file"})
"""Names a command check's templates may use besides inputs and upstream nodes."""


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
            for c in (
                m.JsonSchemaCheck,
                m.RegexCheck,
                m.LengthCheck,
                m.PythonCheck,
                m.CommandCheck,
                m.JudgeCheck,
            )
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
        issues += [
            # a node of no kind reads as the missing field most nodes have: prompt
            replace(
                i,
                path=f"{i.path}.prompt",
                code="missing-field",
                message="required field 'prompt' is missing",
                hint="or set run (a Python function), command (a subprocess) or agent instead",
            )
            if i.code == "missing-node-kind"
            else i
            for i in issues_from_validation_error(
                exc, positions, data, field_choices=_field_choices()
            )
        ]
    # the graph and template checks read the raw document, so they run even when some
    # field has the wrong type: one `dagtier validate` lists every problem
    issues += check_semantics(data, positions)
    if issues or wf is None:
        raise SpecError(source=source, issues=_sorted(issues))
    wf._source = source
    wf._positions = positions
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


_RawTemplates = list[tuple[tuple[str | int, ...], str]]


def _raw_templates(node: dict[str, Any]) -> _RawTemplates:
    """A raw node's templates with their paths below the node: prompt, system, a command's
    arguments, its cwd and env values, and the arguments of its command checks."""
    out: _RawTemplates = []
    for key in ("prompt", "system", "cwd"):
        if isinstance(node.get(key), str):
            out.append(((key,), node[key]))
    command = node.get("command")
    if isinstance(command, list):
        out += [(("command", i), a) for i, a in enumerate(command) if isinstance(a, str)]
    env = node.get("env")
    if isinstance(env, dict):
        out += [(("env", str(k)), v) for k, v in env.items() if isinstance(v, str)]
    checks = node.get("checks")
    for i, check in enumerate(checks if isinstance(checks, list) else []):
        if isinstance(check, dict) and check.get("type") == "command":
            for path, src in _raw_templates({k: check.get(k) for k in ("command", "cwd", "env")}):
                out.append((("checks", i, *path), src))
    return out


def _raw_view(
    data: dict[str, Any],
) -> tuple[dict[str, tuple[list[str], _RawTemplates]], set[str], dict[str, str]]:
    """Node id -> (depends_on, templates), input names and outputs, read from the raw
    document. Values of the wrong type are left out: the model validation reports those."""
    raw_nodes = data.get("nodes")
    nodes: dict[str, tuple[list[str], _RawTemplates]] = {}
    if isinstance(raw_nodes, dict):
        for nid, node in raw_nodes.items():
            node = node if isinstance(node, dict) else {}
            nodes[str(nid)] = (_str_list(node.get("depends_on")), _raw_templates(node))
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
    for nid, (depends_on, _) in nodes.items():
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
    for nid, raw in (data.get("nodes") or {}).items():
        router = raw.get("router") if isinstance(raw, dict) else None
        if isinstance(router, dict):
            for where, message, code, advice in router_problems(router):
                add(("nodes", nid, "router", *where), message, code, advice)
    # defined on a cyclic graph too, so a cycle does not also flag every template in it
    is_upstream = ancestry(g)

    def check_template(
        path: tuple[str | int, ...], source: str, owner: str | None, allowed: frozenset[str]
    ) -> None:
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
            if name == "inputs" or name in allowed:
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

    for nid, (_, templates) in nodes.items():
        for rel, source in templates:
            if source:
                allowed = CHECK_NAMES if rel[0] == "checks" else frozenset()
                check_template(("nodes", nid, *rel), source, nid, allowed)
    for name, source in outputs.items():
        check_template(("outputs", name), source, None, frozenset())
    return issues


def _block_offset(source: str, template_line: int | None) -> int:
    # a block scalar (|) starts on the line after the key, so the template's line N is N lines down
    return template_line if template_line and "\n" in source else 0


def _suggest_id(nid: str) -> str:
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in nid)
    return out if out and not out[0].isdigit() else f"n_{out}"


def load_and_import(path: str | Path) -> m.Workflow:
    """:func:`load_workflow`, then :func:`check_callables` (what ``dagtier validate`` does).

    Raises:
        SpecError: the file's problems, or else its callables' problems.
    """
    wf = load_workflow(path)
    issues = check_callables(wf)
    if issues:
        raise SpecError(source=wf.source, issues=issues)
    return wf


def check_callables(workflow: m.Workflow) -> list[SpecIssue]:
    """Import every ``module:function`` the workflow names and check its shape: a ``run``
    function's required parameters must name inputs or upstream nodes, an ``agent`` takes
    one context argument, a tool's arguments must have a JSON Schema.

    This runs the user's module imports, so it is not part of parsing: ``dagtier validate``
    calls it (a module may only be importable where the workflow runs).
    """
    from .._callables import CallableError, import_callable
    from ..steps import search_dirs, signature_problem
    from ..tools import ToolSchemaError, load_tool

    search = search_dirs(workflow.source)
    positions: Positions = workflow._positions
    issues: list[SpecIssue] = []

    def add(path: tuple[str | int, ...], message: str, code: str, hint: str) -> None:
        line, col = locate(positions, path)
        issues.append(SpecIssue(format_path(path), message, code, line, col, hint))

    def load(path: tuple[str | int, ...], spec: str, what: str) -> Any:
        try:
            return import_callable(spec, search=search, what=what)
        except CallableError as exc:
            add(
                path,
                str(exc),
                "callable-not-found",
                "write module:function; the module is "
                "looked for on PYTHONPATH and next to the workflow file",
            )
            return None

    for nid, node in workflow.nodes.items():
        for i, check in enumerate(node.checks or []):
            if check.type == "python":
                load(("nodes", nid, "checks", i, "function"), check.function, "python check")
        if node.run is not None:
            fn = load(("nodes", nid, "run"), node.run, "run")
            if fn is not None:
                problem = signature_problem(fn, set(node.depends_on) | set(workflow.inputs))
                if problem:
                    add(
                        ("nodes", nid, "run"),
                        f"run '{node.run}': {problem}",
                        "bad-signature",
                        "name its parameters after inputs or nodes in depends_on",
                    )
        if node.agent is not None:
            fn = load(("nodes", nid, "agent"), node.agent, "agent")
            if fn is not None:
                problem = _agent_signature_problem(fn)
                if problem:
                    add(
                        ("nodes", nid, "agent"),
                        f"agent '{node.agent}': {problem}",
                        "bad-signature",
                        "def my_agent(ctx: dagtier.AgentContext) -> str",
                    )
        for i, spec in enumerate(node.tools):
            try:
                load_tool(spec, search=search)
            except CallableError as exc:
                code = "tool-schema" if isinstance(exc, ToolSchemaError) else "callable-not-found"
                add(
                    ("nodes", nid, "tools", i),
                    str(exc),
                    code,
                    "type-hint every parameter with JSON-friendly types (str, int, list[str], "
                    "a pydantic model...)",
                )
    return _sorted(issues)


def _agent_signature_problem(fn: Any) -> str | None:
    import inspect

    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return "its signature cannot be read"
    required = [
        p
        for p in params
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if len(required) != 1 and not (not required and params):
        return f"it must take one argument (the context), it takes {len(required)} required"
    return None


def router_problems(
    router: dict[str, Any],
) -> list[tuple[tuple[str | int, ...], str, str, str | None]]:
    """A node's ``router:`` as written: undeclared classes, invalid regexes, a kind missing
    what it needs (pydantic checks the types)."""
    import re

    out: list[tuple[tuple[str | int, ...], str, str, str | None]] = []
    classes = router.get("classes")
    declared = list(classes) if isinstance(classes, dict) else []
    hint = "declared classes: " + (", ".join(declared) or "(none)") + "; add it under classes:"

    def check_class(path: tuple[str | int, ...], name: Any) -> None:
        if isinstance(name, str) and name not in declared:
            out.append((path, f"undeclared class '{name}'", "undeclared-class", hint))

    rules = router.get("rules")
    for i, rule in enumerate(rules if isinstance(rules, list) else []):
        if not isinstance(rule, dict):
            continue
        check_class(("rules", i, "class"), rule.get("class"))
        pattern = rule.get("pattern")
        if isinstance(pattern, str):
            try:
                re.compile(pattern)
            except re.error as exc:
                out.append(
                    (
                        ("rules", i, "pattern"),
                        f"invalid regex {pattern!r}: {exc}",
                        "invalid-regex",
                        "a Python regular expression, searched in the rendered prompt",
                    )
                )
    kind = router.get("kind")
    classifier = router.get("classifier")
    if isinstance(classifier, dict) and declared:
        check_class(("classifier", "class"), classifier.get("class", "hard"))
    if kind == "llm" and not declared:
        out.append(
            (("classes",), "an llm router needs the classes it may answer", "no-classes", None)
        )
    if kind == "rules" and not rules:
        out.append((("rules",), "a rules router needs at least one rule", "no-rules", None))
    return out
