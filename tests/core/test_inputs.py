"""A run's inputs as the command line gives them (``--inputs FILE.json``, ``--input
NAME=VALUE``, ``NAME=@file``), read by the library function the CLI calls."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dagtier import SpecError
from dagtier.cli import app
from dagtier.executor import read_inputs


def test_pairs_override_the_json_file_and_at_reads_a_file(tmp_path: Path) -> None:
    """The file's values come first, each NAME=VALUE over them; @path is the file's text;
    values from pairs stay strings (coerce_inputs converts them later)."""
    (tmp_path / "in.json").write_text('{"n": 3, "text": "from json"}', encoding="utf-8")
    (tmp_path / "body.txt").write_text("line 1\nline 2\n", encoding="utf-8")
    values = read_inputs(
        ["text=from flag", f"body=@{tmp_path / 'body.txt'}", "eq=a=b"], tmp_path / "in.json"
    )
    assert values == {"n": 3, "text": "from flag", "body": "line 1\nline 2\n", "eq": "a=b"}


@pytest.mark.parametrize(
    ("content", "pairs", "code", "where"),
    [
        ('{"a": 1,\n  oops}', [], "json-syntax", (2, 3)),
        ("[1, 2]", [], "not-an-object", (1, 1)),
        (None, ["novalue"], "bad-input-flag", (None, None)),
        (None, ["=x"], "bad-input-flag", (None, None)),
        (None, ["f=@missing.txt"], "file-not-found", (None, None)),
    ],
)
def test_bad_inputs_are_spec_errors_with_a_code_and_position(
    tmp_path: Path,
    content: str | None,
    pairs: list[str],
    code: str,
    where: tuple[int | None, int | None],
) -> None:
    """A broken JSON file, a JSON list, a pair without '=' or name, or a missing @file: one
    issue with its code (and the JSON file's line and column)."""
    file = None
    if content is not None:
        file = tmp_path / "in.json"
        file.write_text(content, encoding="utf-8")
    with pytest.raises(SpecError) as info:
        read_inputs(pairs, file)
    [issue] = info.value.issues
    assert issue.code == code
    assert (issue.line, issue.column) == where


def test_the_cli_reports_a_bad_input_flag_as_a_usage_error(tmp_path: Path) -> None:
    """`dagtier run wf --input novalue` exits 2 naming the flag and how to write it."""
    wf = tmp_path / "wf.yaml"
    wf.write_text("name: w\nnodes:\n  a: {prompt: hi}\n", encoding="utf-8")
    res = CliRunner().invoke(
        app, ["run", str(wf), "--input", "novalue", "--store", str(tmp_path / "r.db")]
    )
    assert res.exit_code == 2, res.output
    assert "'novalue' is not NAME=VALUE" in res.stderr
    assert "--input text='some text'" in res.stderr
    assert "Traceback" not in res.output
