"""Eval cases: one JSON object per line, ``{"inputs": {...}, "expected": {...}}``.

Read with the batch reader (:func:`dagtier.batch.read_items`, so lines are numbered the
same way), then checked against the workflow before anything is paid for: every problem
of every line is reported at once, by line and field.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._exceptions import SpecError, SpecIssue
from .._yaml import did_you_mean
from ..batch import Item, read_items
from ..executor import coerce_inputs
from ..plan import Plan

CASE_KEYS = ("inputs", "expected")


def parse_tiers(text: str) -> list[int]:
    """``1,2,3`` as tiers (range-checked later, with the others).

    Raises:
        SpecError: a part that is not a whole number.
    """
    out = []
    for i, part in enumerate(p.strip() for p in text.split(",")):
        if not part.isdigit():
            raise SpecError(
                source="--tiers",
                issues=[
                    SpecIssue(
                        f"[{i}]", f"'{part}' is not a tier", "bad-tiers", hint="--tiers 1,2,3"
                    )
                ],
            )
        out.append(int(part))
    return out


@dataclass(frozen=True, slots=True)
class Case:
    index: int
    """0-based position among the file's cases."""
    line: int
    inputs: dict[str, Any]
    """The workflow's inputs, checked and converted to their declared types."""
    expected: dict[str, Any] = field(default_factory=dict)
    """Expected output per node id or per workflow output name."""


def expected_targets(plan: Plan) -> dict[str, tuple[str, ...]]:
    """What an ``expected`` key may name: a node (itself), or a workflow output (the nodes
    its template reads)."""
    out: dict[str, tuple[str, ...]] = {nid: (nid,) for nid in plan.workflow.nodes}
    for name, (_, refs) in plan.outputs.items():
        out.setdefault(name, tuple(refs))
    return out


def load_cases(plan: Plan, cases: str | Path | Sequence[Mapping[str, Any]]) -> list[Case]:
    """The cases of a ``.jsonl`` file (or a list of mappings), checked against ``plan``.

    Raises:
        SpecError: every malformed line, missing or unknown input, and expected output
            naming neither a node nor a workflow output, each with its line and field.
    """
    if isinstance(cases, (str, Path)):
        source = str(cases)
        items: Iterable[Item] = read_items(cases)
    else:
        source = "<cases>"
        items = (
            Item(i, i + 1, dict(c))
            if isinstance(c, Mapping)
            else Item(i, i + 1, None, "not a mapping")
            for i, c in enumerate(cases)
        )
    wf = plan.workflow
    targets = expected_targets(plan)
    out: list[Case] = []
    issues: list[SpecIssue] = []

    def bad(path: str, message: str, code: str, line: int, hint: str | None = None) -> None:
        issues.append(SpecIssue(path, message, code, line=line, hint=hint))

    for item in items:
        if item.values is None:
            bad(
                "", item.error or "malformed", "bad-case", item.line, 'each line: {"inputs": {...}}'
            )
            continue
        obj = item.values
        for key in obj:
            if key not in CASE_KEYS:
                bad(
                    key,
                    f"unknown key '{key}'",
                    "bad-case",
                    item.line,
                    "a case has inputs and expected",
                )
        given = obj.get("inputs", {})
        expected = obj.get("expected", {})
        if not isinstance(given, dict):
            bad("inputs", "must be an object of input names to values", "bad-case", item.line)
            continue
        if not isinstance(expected, dict):
            bad("expected", "must be an object of node or output names", "bad-case", item.line)
            continue
        try:
            values = coerce_inputs(wf, given)
        except SpecError as exc:
            for i in exc.issues:
                bad(i.path, i.message, i.code, item.line, i.hint)
            continue
        ok = True
        for key in expected:
            if key not in targets:
                ok = False
                hint = did_you_mean(key, targets) or "nodes and outputs: " + ", ".join(targets)
                bad(
                    f"expected.{key}",
                    f"no node or output named '{key}' in workflow '{wf.name}'",
                    "unknown-node",
                    item.line,
                    hint,
                )
        if ok:
            out.append(Case(item.index, item.line, values, dict(expected)))
    if issues:
        raise SpecError(source=source, issues=issues)
    if not out:
        raise SpecError(
            source=source,
            issues=[SpecIssue("", "no cases", "no-cases", hint='one {"inputs": {...}} per line')],
        )
    return out
