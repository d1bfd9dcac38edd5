"""``router:`` in the YAML: validated with file, line and field; built once per compiled
workflow, so the runs that share it share what it learns."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import pytest
from pol_helpers import Models, gateway

import dagtier
from dagtier import MemoryStore, SpecError
from dagtier.executor import run as execute

pytestmark = pytest.mark.anyio

SRC = str(Path(__file__).resolve().parents[2] / "src")

BAD = """\
name: wf
inputs: {q: string}
nodes:
  n:
    prompt: '{{ inputs.q }}'
    router:
      kind: hybrid
      classes:
        code: {start: 2}
        chat:
      rules:
        - {class: code, pattern: 'def '}
        - {class: maths, keywords: [integral]}
        - {class: chat, pattern: '(unclosed'}
"""


def test_router_mistakes_name_their_field_and_line() -> None:
    """An undeclared class and an invalid regex: each with its path, line and a hint."""
    with pytest.raises(SpecError) as info:
        dagtier.parse_workflow(BAD, "flows/r.yaml")
    issues = [(i.path, i.line, i.code) for i in info.value.issues]
    assert issues == [
        ("nodes.n.router.rules[1].class", 13, "undeclared-class"),
        ("nodes.n.router.rules[2].pattern", 14, "invalid-regex"),
    ]
    text = str(info.value)
    assert "undeclared class 'maths'" in text and "declared classes: code, chat" in text
    assert "flows/r.yaml" in text


def test_an_llm_router_without_classes_is_refused() -> None:
    doc = "name: wf\nnodes:\n  n:\n    prompt: hi\n    router: {kind: llm}\n"
    with pytest.raises(SpecError) as info:
        dagtier.parse_workflow(doc)
    assert [(i.path, i.code) for i in info.value.issues] == [
        ("nodes.n.router.classes", "no-classes")
    ]


GOOD = """\
name: wf
inputs: {q: string}
nodes:
  n:
    prompt: '{{ inputs.q }}'
    task: k
    policy: {kind: cascade}
    checks: [{type: judge}]
    router:
      kind: hybrid
      classes: {code: {start: 2}}
      rules:
        - {class: code, pattern: 'def \\w+'}
"""


async def test_a_yaml_router_routes_and_its_classifier_abstains_without_outcomes() -> None:
    """The rule routes code to tier 2 under its own key; other inputs fall to the
    classifier, which has no recorded outcomes yet and abstains (the run goes on)."""
    wf = dagtier.parse_workflow(GOOD)
    models = Models(lambda t, req: "fine")
    store = MemoryStore()
    res = await execute(wf, {"q": "def f(): pass"}, gateway=gateway(models), store=store)
    assert res.nodes["n"].task_key == "k[code]" and res.nodes["n"].tier == 2
    res = await execute(wf, {"q": "hello"}, gateway=gateway(models), store=store)
    node = res.nodes["n"]
    assert node.task_key == "k" and node.tier == 1 and node.status == "succeeded"
    assert node.decision is not None
    assert "classifier: abstains: 0 recorded outcomes, needs 200" in node.decision


def test_the_readme_router_example_validates() -> None:
    """The ``router:`` block in the README is a valid node setting as written."""
    import re
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(router:\n.*?)```", readme, re.S)
    assert block is not None
    body = "\n".join("    " + line for line in block.group(1).splitlines())
    wf = dagtier.parse_workflow(
        "name: wf\ninputs: {q: string}\nnodes:\n  triage:\n    prompt: hi\n    output: json\n"
        f"  n:\n    prompt: '{{{{ inputs.q }}}}'\n    depends_on: [triage]\n{body}\n"
    )
    router = wf.nodes["n"].router
    assert router is not None and router.kind == "hybrid" and len(router.rules) == 3


async def test_stats_shows_each_routed_nodes_last_decision(tmp_path: Path) -> None:
    """`dagtier stats --workflow FILE` reads from the store what a router decided last, with
    the classifier's evidence, in its table and its JSON: a router's model lives in the
    process that ran the node."""
    spec = tmp_path / "wf.yaml"
    spec.write_text(GOOD, encoding="utf-8")
    wf = dagtier.load_workflow(spec)
    db = tmp_path / "runs.db"
    store = dagtier.open_store(db)
    models = Models(lambda t, req: "fine")
    await execute(wf, {"q": "def f(): pass"}, gateway=gateway(models), store=store)
    last = await execute(wf, {"q": "hello"}, gateway=gateway(models), store=store)
    await store.aclose()
    env = {**os.environ, "PYTHONPATH": SRC, "COLUMNS": "400"}
    cmd = [sys.executable, "-m", "dagtier", "stats", "--store", str(db), "--workflow", str(spec)]
    out = await anyio.run_process(cmd, env=env, check=False)
    assert out.returncode == 0, out.stderr.decode()
    text = out.stdout.decode()
    assert "routers (the last recorded decision)" in text
    (row,) = [line for line in text.splitlines() if "hybrid" in line]
    assert "classifier: abstains: 0 recorded outcomes, needs 200" in row

    out = await anyio.run_process([*cmd, "--json"], env=env, check=False)
    assert out.returncode == 0, out.stderr.decode()
    data = json.loads(out.stdout)
    assert [k["task_key"] for k in data["keys"]] == ["k"]
    [router] = data["routers"]
    assert (router["node_id"], router["kind"], router["run_id"]) == ("n", "hybrid", last.run_id)
    assert router["decision"] == last.nodes["n"].decision
    assert "classifier: abstains: 0 recorded outcomes, needs 200" in router["decision"]


def test_a_negative_skip_worth_names_its_line() -> None:
    doc = (
        "name: wf\nnodes:\n  n:\n    prompt: hi\n    router:\n      kind: classifier\n"
        "      classifier: {skip_worth: -0.5}\n"
    )
    with pytest.raises(SpecError) as info:
        dagtier.parse_workflow(doc, "flows/r.yaml")
    issue = info.value.issues[0]
    assert (issue.path, issue.line) == ("nodes.n.router.classifier.skip_worth", 7)
    assert "greater than or equal to 0" in issue.message
