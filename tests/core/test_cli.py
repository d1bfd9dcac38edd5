"""The CLI prints spec errors as diagnostics (no traceback) and exits 2; a valid file is
summarised; graphs are labelled with policy and tier; runs use the same library calls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from dagtier.cli import app

runner = CliRunner()

BAD = """\
name: review
nodes:
  draft:
    prompt: write
  critique:
    prompt: "{{ draft }}"
    depends_on: [draft]
  summarize:
    prompt: hi
    depends_on: [critique, sumarize_x]
    policy: {kind: static, tier: 4}
"""

GOOD = """\
name: demo
inputs:
  topic: string
nodes:
  outline:
    prompt: "Outline {{ inputs.topic }}"
    policy: {kind: static, tier: 1}
  draft:
    prompt: "Draft from {{ outline }}"
    depends_on: [outline]
    policy: {kind: cascade, start: 2, max: 3}
  polish:
    prompt: "Polish {{ draft }}"
    depends_on: [draft]
    policy: {kind: adaptive, target: 0.9, min_tier: 1, max_tier: 2}
"""


def write(tmp_path: Path, text: str, name: str = "flow.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def test_validate_reports_every_problem_and_exits_2(tmp_path: Path) -> None:
    """`dagtier validate` on a bad file prints all issues with positions and exits 2."""
    path = write(tmp_path, BAD)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr == (
        f"error[spec-invalid]: 2 problems in {path}\n"
        "  nodes.summarize.depends_on[1]  (line 10, col 28)\n"
        "      no node named 'sumarize_x'  [code=unknown-dependency]\n"
        "      hint: did you mean 'summarize'?\n"
        "  nodes.summarize.policy.tier  (line 11, col 34)\n"
        "      tier must be 1, 2 or 3 (1 cheap, 2 mid, 3 frontier), got 4  [code=unknown-tier]\n"
    )
    assert "Traceback" not in result.output


def test_validate_yaml_syntax_error(tmp_path: Path) -> None:
    """A YAML syntax error exits 2 with its line and column, no traceback."""
    path = write(tmp_path, "name: x\nnodes:\n  a:\n    prompt: 'open\n")
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 2
    assert "(line 5, col 1)" in result.stderr
    assert "[code=yaml-syntax]" in result.stderr
    assert "Traceback" not in result.output


def test_validate_missing_file(tmp_path: Path) -> None:
    """A missing file exits 2 with file-not-found."""
    result = runner.invoke(app, ["validate", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "[code=file-not-found]" in result.stderr


def test_validate_ok_summarises(tmp_path: Path) -> None:
    """A valid file prints one line with the node and policy counts, exit 0."""
    path = write(tmp_path, GOOD)
    result = runner.invoke(app, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"ok: {path} is valid: workflow 'demo', 3 nodes (1 adaptive, 1 cascade, 1 static)\n"
    )


def test_graph_mermaid_and_dot_are_labelled_with_policy_and_tier(tmp_path: Path) -> None:
    """Both drawings label each node with its policy and tiers."""
    path = write(tmp_path, GOOD)
    mermaid = runner.invoke(app, ["graph", str(path)])
    assert mermaid.exit_code == 0
    assert mermaid.stdout == (
        "flowchart TD\n"
        '    outline["outline<br/><small>static T1</small>"]\n'
        '    draft["draft<br/><small>cascade T2→T3</small>"]\n'
        '    polish["polish<br/><small>adaptive T1–T2 ≥0.9</small>"]\n'
        "    draft --> polish\n"
        "    outline --> draft\n"
    )
    dot = runner.invoke(app, ["graph", str(path), "--format", "dot"])
    assert dot.exit_code == 0
    assert 'outline [label="outline\\nstatic T1"];' in dot.stdout
    assert "outline -> draft;" in dot.stdout
    bad = runner.invoke(app, ["graph", str(path), "--format", "png"])
    assert bad.exit_code == 2
    assert "mermaid or dot" in bad.stderr


def test_schema_prints_json() -> None:
    """`dagtier schema` prints the JSON Schema."""
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.stdout)["title"] == "dagtier workflow"


def test_run_with_unknown_and_missing_inputs_exits_2(tmp_path: Path) -> None:
    """Inputs that do not match the declaration exit 2 before any model is called."""
    path = write(tmp_path, GOOD)
    result = runner.invoke(app, ["run", str(path), "--input", "topc=x"])
    assert result.exit_code == 2
    assert "unknown input 'topc'" in result.stderr
    assert "did you mean 'topic'?" in result.stderr
    assert "required input 'topic' was not given" in result.stderr


def test_python_m_dagtier_validate_in_a_subprocess(tmp_path: Path) -> None:
    """`python -m dagtier validate` exits 2 on a bad file with the diagnostic on stderr."""
    path = write(tmp_path, BAD)
    src = str(Path(__file__).resolve().parents[2] / "src")
    env = {**os.environ, "PYTHONPATH": src}
    proc = subprocess.run(
        [sys.executable, "-m", "dagtier", "validate", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert proc.returncode == 2
    assert "[code=unknown-dependency]" in proc.stderr
    assert "Traceback" not in proc.stderr
