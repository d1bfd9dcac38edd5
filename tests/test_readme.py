"""The README's two set-up commands stay true: CI runs the second verbatim, and the first
names a workflow and input file that exist and validate."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from dagtier.spec import load_workflow

ROOT = Path(__file__).resolve().parents[1]


def _setup_commands() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```bash\n(.*?)```", text, re.DOTALL)
    assert block, "README has no ```bash block with the set-up commands"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_exactly_two_setup_commands() -> None:
    """The first code block of the README holds exactly two commands."""
    assert len(_setup_commands()) == 2


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    """.ci/run contains the README's test command exactly."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_cmd = _setup_commands()[1]
    assert "pytest" in test_cmd
    assert test_cmd.replace(" -q", "") in ci.replace(" -q", "")


def test_first_command_runs_a_shipped_workflow_with_shipped_input() -> None:
    """The example workflow and its input file exist, and the workflow validates."""
    words = shlex.split(_setup_commands()[0])
    run_at = words.index("run")
    workflow = ROOT / words[run_at + 1]
    wf = load_workflow(workflow)
    inputs = [w for w in words if "=@" in w]
    assert inputs, "the example passes its input from a file"
    for pair in inputs:
        name, _, path = pair.partition("=@")
        assert name in wf.inputs
        assert (ROOT / path).is_file()
