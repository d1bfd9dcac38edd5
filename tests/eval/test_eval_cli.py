"""`dagtier eval` from the command line: a real SQLite file and a real model server on
127.0.0.1 reached through the openai SDK."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from batch._model_server import model_server
from typer.testing import CliRunner

from dagtier.cli import app

WF = """
name: triage
inputs: {ticket: string}
nodes:
  a: {prompt: "a {{ inputs.ticket }}"}
  b: {prompt: "b {{ a }}", depends_on: [a]}
"""


def _files(tmp_path: Path, lines: list[str]) -> tuple[Path, Path]:
    wf = tmp_path / "wf.yaml"
    wf.write_text(WF)
    cases = tmp_path / "cases.jsonl"
    cases.write_text("\n".join(lines) + "\n")
    return wf, cases


def test_eval_writes_table_json_html_and_outcomes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A whole eval: JSON per node and tier, the HTML chart, and an outcomes file."""
    lines = [json.dumps({"inputs": {"ticket": f"t{i}"}, "expected": {"b": f"<b <a t{i}>>"}})
             for i in range(3)]  # fmt: skip
    wf, cases = _files(tmp_path, lines)
    with model_server(delay_s=0.0) as server:
        cat = server.catalog(tmp_path / "models.yaml")
        monkeypatch.setenv("FAKE_API_KEY", "fake-key-for-tests-0000")
        args = ["eval", str(wf), "--cases", str(cases), "--models", str(cat)]
        args += ["--store", str(tmp_path / "runs.db"), "--nodes", "b", "--tiers", "1,3"]
        args += ["--html", str(tmp_path / "e.html"), "--out", str(tmp_path / "o.csv")]
        res = CliRunner().invoke(app, [*args, "--json", "-q"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    (node,) = data["nodes"]
    assert [(t["tier"], t["n"], t["quality"], t["expected"]) for t in node["tiers"]] == [
        (1, 3, 1.0, 1.0),
        (3, 3, 1.0, 1.0),
    ]
    html = (tmp_path / "e.html").read_text()
    assert "<svg" in html and "quality against cost, b" in html
    assert (tmp_path / "o.csv").read_text().count("\n") == 1 + 6
    assert (tmp_path / "o.queries.csv").read_text().startswith("query_id,text\n")


def test_bad_input_is_a_located_error(tmp_path: Path) -> None:
    """--tiers 4 and a malformed case line each end in a diagnostic, exit 2, no traceback."""
    wf, cases = _files(tmp_path, ['{"inputs": {"ticket": "x"}}', '{"inputs": '])
    res = CliRunner().invoke(app, ["eval", str(wf), "--cases", str(cases), "--tiers", "1,4"])
    assert res.exit_code == 2
    assert "there is no tier 4" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(app, ["eval", str(wf), "--cases", str(cases)])
    assert res.exit_code == 2
    assert "line 2" in res.output and "not valid JSON" in res.output


@pytest.mark.slow
def test_ctrl_c_then_resume_pays_for_nothing_twice(tmp_path: Path) -> None:
    """SIGINT stops the eval (exit 130) and prints the resume command; the resume finishes
    it with the full table, and the model was paid at most the in-flight calls extra."""
    import os
    import shlex
    import signal
    import subprocess
    import sys
    import time

    cases = 10
    lines = [json.dumps({"inputs": {"ticket": f"t{i}"}}) for i in range(cases)]
    wf, path = _files(tmp_path, lines)
    db = tmp_path / "runs.db"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    env.update(
        PYTHONPATH=str(Path(__file__).resolve().parents[2] / "src"),
        FAKE_API_KEY="fake-key-for-tests-0000",
    )
    with model_server(delay_s=0.05) as server:
        cat = server.catalog(tmp_path / "models.yaml")
        cmd = [sys.executable, "-m", "dagtier", "eval", str(wf), "--cases", str(path), "--nodes"]
        cmd += ["b", "--store", str(db), "--models", str(cat), "--concurrency", "2", "-q"]
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # a shell's background job starts with SIGINT ignored, and the child would keep it
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        deadline = time.monotonic() + 60
        while sum(server.counts().values()) < 8:
            assert proc.poll() is None and time.monotonic() < deadline, "no answers in time"
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err.decode()
        first = sum(server.counts().values())
        resume = err.decode().split("resume it with:")[1].strip().splitlines()[0]
        argv = shlex.split(resume)
        assert argv[:2] == ["dagtier", "eval"] and "--resume" in argv
        again = subprocess.run(
            [sys.executable, "-m", "dagtier", *argv[1:], "--json", "-q"],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert again.returncode == 0, again.stderr
        total = sum(server.counts().values())
    needed = cases * (2 + 3)  # the reference run's two nodes, then b on each tier
    assert first < needed
    assert needed <= total <= needed + 2  # at most the 2 calls in flight at Ctrl-C
    (node,) = json.loads(again.stdout)["nodes"]
    assert [(t["tier"], t["n"]) for t in node["tiers"]] == [(1, cases), (2, cases), (3, cases)]
