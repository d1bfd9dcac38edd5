"""Code nodes (run: and command:) and command checks, with real functions and subprocesses."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

import dagtier
from dagtier.providers import CompletionRequest, Gateway, ProviderRegistry, PythonProvider
from dagtier.store import open_store

pytestmark = pytest.mark.anyio

PY = sys.executable

STEPS = """
import json, os
from pathlib import Path

def _log(name):
    # read at each call: the module is imported once per test session
    with Path(os.environ["STEPS_LOG"]).open("a") as fh:
        fh.write(name + "\\n")

def double(n: int) -> int:
    _log("double")
    return n * 2

async def describe(double, inputs):
    _log("describe")
    return {"value": double, "label": inputs["label"]}

def boom(n):
    raise ValueError(f"cannot take {n}")

def socket_like(n):
    return object()
"""


def gateway(fn: Any) -> Gateway:
    price = {"input": 1.0, "output": 2.0}
    catalog = dagtier.catalog_from_dict(
        {
            "models": {
                f"m{t}": {"provider": "python", "model": f"m{t}", "price": price} for t in (1, 2, 3)
            },
            "tiers": {1: ["m1"], 2: ["m2"], 3: ["m3"]},
        }
    )
    return Gateway(catalog, ProviderRegistry({"python": PythonProvider(fn)}))


def write(tmp_path: Path, yaml: str) -> dagtier.Workflow:
    (tmp_path / "steps.py").write_text(STEPS)
    path = tmp_path / "flow.yaml"
    path.write_text(yaml)
    return dagtier.load_workflow(path)


@pytest.fixture(autouse=True)
def steps_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    log = tmp_path / "calls.log"
    monkeypatch.setenv("STEPS_LOG", str(log))
    return log


def calls(log: Path) -> list[str]:
    return log.read_text().split() if log.exists() else []


FLOW = f"""
name: code
inputs: {{n: integer, label: string}}
nodes:
  double: {{run: "steps:double"}}
  describe: {{run: "steps:describe", depends_on: [double]}}
  shout:
    command: ["{PY}", "-c", "import os, sys; print(os.environ['WORD'] * {{{{ double }}}}, os.getcwd())"]
    env: {{WORD: "{{{{ inputs.label }}}}"}}
    cwd: "{{{{ inputs.label }}}}"
    depends_on: [double]
  summarize:
    prompt: "summarize {{{{ describe.value }}}} and {{{{ shout.stdout }}}}"
    depends_on: [describe, shout]
outputs: {{final: "{{{{ summarize }}}}"}}
"""


async def test_code_nodes_feed_each_other_and_a_prompt(tmp_path: Path, steps_log: Path) -> None:
    """run nodes (sync and async) get inputs and upstream outputs by parameter name; a
    command renders its argv, env and cwd; a prompt node reads both outputs."""
    (tmp_path / "ab").mkdir()
    wf = write(tmp_path, FLOW)
    seen: list[str] = []

    def model(_m: Any, req: CompletionRequest) -> str:
        seen.append(req.messages[0].content)
        return "done"

    res = await dagtier.run(wf, {"n": 3, "label": "ab"}, gateway=gateway(model), store=None)
    # cwd is relative to where the run starts: run from tmp_path
    assert res.ok, {k: v.error for k, v in res.nodes.items()}
    assert res["double"].output == 6
    assert res["describe"].output == {"value": 6, "label": "ab"}
    assert res["shout"].output["stdout"].split() == ["abababababab", str(tmp_path / "ab")]
    assert res["shout"].output["exit_code"] == 0
    assert seen == [f"summarize 6 and abababababab {tmp_path / 'ab'}\n"]
    assert res["double"].cost == 0 and res["double"].attempts == []
    assert res["double"].latency_s > 0


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


async def test_failing_steps_fail_their_node_only(tmp_path: Path) -> None:
    """A raising function, a non-zero exit, a missing program, a timeout and a result JSON
    cannot hold each fail their own node with a clear error; the other branch succeeds."""
    wf = write(
        tmp_path,
        f"""
name: failing
inputs: {{n: integer}}
nodes:
  boom: {{run: "steps:boom"}}
  socket: {{run: "steps:socket_like"}}
  exit3: {{command: ["{PY}", "-c", "import sys; print('bad things'); sys.exit(3)"]}}
  missing: {{command: ["no-such-program-dagtier", "-x"]}}
  slow: {{command: ["{PY}", "-c", "import time; print('started', flush=True); time.sleep(30)"], timeout_s: 0.5}}
  fine: {{run: "steps:double"}}
""",
    )
    res = await dagtier.run(wf, {"n": 2}, gateway=gateway(lambda m, r: "x"))
    assert res.status == "failed"
    assert res["fine"].ok and res["fine"].output == 4
    errors = {n: r.error for n, r in res.nodes.items() if not r.ok}
    assert errors["boom"] == "run 'steps:boom' raised ValueError: cannot take 2"
    assert "returned a object, which is not JSON-serialisable" in errors["socket"]
    assert errors["exit3"].endswith("exited with code 3:\nbad things")
    assert errors["missing"].startswith("command not found: 'no-such-program-dagtier'")
    assert "did not finish within 0.5s and was killed; its last output:\nstarted" in errors["slow"]


async def test_a_resumed_run_does_not_rerun_finished_steps(tmp_path: Path, steps_log: Path) -> None:
    """Code nodes are committed like model nodes: resuming after a failure reruns only
    what failed."""
    flag = tmp_path / "ok.flag"
    wf = write(
        tmp_path,
        f"""
name: resume
inputs: {{n: integer, label: string}}
nodes:
  double: {{run: "steps:double"}}
  describe: {{run: "steps:describe", depends_on: [double]}}
  gate: {{command: ["{PY}", "-c", "import os, sys; sys.exit(0 if os.path.exists('{flag}') else 1)"], depends_on: [describe]}}
""",
    )
    store = open_store(tmp_path / "runs.db")
    first = await dagtier.run(wf, {"n": 1, "label": "x"}, gateway=gateway(None), store=store)
    assert first.status == "failed" and first["gate"].status == "failed"
    assert calls(steps_log) == ["double", "describe"]
    flag.write_text("")
    reopened = open_store(tmp_path / "runs.db")
    second = await dagtier.run(wf, gateway=gateway(None), store=reopened, resume=first.run_id)
    assert second.ok
    assert calls(steps_log) == ["double", "describe"]  # neither ran again
    assert second["describe"].output == {"value": 2, "label": "x"}


async def test_a_command_check_gates_a_cascade(tmp_path: Path) -> None:
    """A command check that fails on the tier-1 answer escalates to tier 2, whose answer
    passes; the failing check's output is the escalation's reason."""
    wf = write(
        tmp_path,
        f"""
name: gated
inputs: {{want: string}}
nodes:
  code:
    prompt: "write it"
    policy: {{kind: cascade, start: 1, max: 3}}
    checks:
      - type: command
        command: ["{PY}", "-c", "import sys; t = open(sys.argv[1]).read(); print('got', t); sys.exit(t != sys.argv[2])", "{{{{ answer_file }}}}", "{{{{ inputs.want }}}}"]
""",
    )

    def model(m: Any, _r: CompletionRequest) -> str:
        return {"m1": "wrong", "m2": "right", "m3": "right"}[m.model]

    res = await dagtier.run(wf, {"want": "right"}, gateway=gateway(model))
    assert res.ok and res["code"].output == "right" and res["code"].tier == 2
    first = res["code"].attempts[0]
    assert first.verdict == "fail"
    assert first.checks[-1].check == "command"
    assert "exited with code 1:\ngot wrong" in first.reason


def test_validate_reports_each_bad_reference_with_its_line(tmp_path: Path) -> None:
    """dagtier validate names file, line and field for: a module that cannot be imported,
    a function of the wrong signature, a tool without a schema, a node of two kinds and a
    command that is not a list."""
    from typer.testing import CliRunner

    from dagtier.cli import app

    (tmp_path / "vsteps.py").write_text(
        "def two(a, b):\n    return a\n\ndef untyped(path):\n    return path\n"
    )
    flow = tmp_path / "flow.yaml"
    callables = (
        "name: bad\n"
        "inputs: {a: string}\n"
        "nodes:\n"
        "  gone: {run: 'nosuchmodule_xyz:fn'}\n"
        "  sig: {run: 'vsteps:two'}\n"
        "  tooly: {prompt: hi, tools: ['vsteps:untyped']}\n"
    )
    flow.write_text(
        callables + "  both: {prompt: hi, run: 'vsteps:two'}\n"
        "  shell: {command: 'pytest -q tests'}\n"
    )
    out = CliRunner().invoke(app, ["validate", str(flow)])
    assert out.exit_code == 2
    text = out.output
    # parse errors come first; the kinds and the string command are spec problems
    assert "nodes.both  (line 7" in text and "[code=node-kind]" in text
    assert "nodes.shell.command  (line 8" in text
    assert "write it as [pytest, -q, tests]" in text
    # once the file parses, the callables themselves are imported and checked
    flow.write_text(callables)
    text = CliRunner().invoke(app, ["validate", str(flow)]).output
    assert "nodes.gone.run  (line 4" in text
    assert "cannot import module 'nosuchmodule_xyz'" in text
    assert "nodes.sig.run  (line 5" in text
    assert "required parameter 'b' names no upstream node and no input" in text
    assert "nodes.tooly.tools[0]  (line 6" in text
    assert "parameter 'path' has no type hint" in text and "[code=tool-schema]" in text
