"""`dagtier batch` as a user runs it: a real subprocess, a real SQLite file, a real model
server on 127.0.0.1, real Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

import dagtier
from dagtier.cli import app

from ._model_server import CHAIN_WF, chain_prompt, model_server

SRC = str(Path(dagtier.__file__).resolve().parents[1])
ITEMS = 30
WF = CHAIN_WF


def _env(db: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    env.update(PYTHONPATH=SRC, FAKE_API_KEY="fake-key-for-tests-0000", DAGTIER_STORE=str(db))
    return env


def _committed(db: Path) -> set[tuple[str, str]]:
    con = sqlite3.connect(db)
    try:
        return set(
            con.execute("SELECT run_id, node_id FROM nodes WHERE status = 'succeeded'").fetchall()
        )
    finally:
        con.close()


def _lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _sigint_default() -> None:
    """In the child: Ctrl-C as a terminal delivers it. A shell's background job (CI's, say)
    starts with SIGINT ignored, and Python keeps an inherited SIG_IGN."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _wait_for_lines(path: Path, n: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while len(_lines(path)) < n:
        assert proc.poll() is None, "the batch ended before it could be interrupted"
        assert time.monotonic() < deadline, "no results within a minute"
        time.sleep(0.02)


def _batch_status(db: Path, batch_id: str) -> str:
    con = sqlite3.connect(db)
    try:
        [status] = con.execute(
            "SELECT status FROM batches WHERE batch_id = ?", (batch_id,)
        ).fetchone()
    finally:
        con.close()
    return str(status)


def _wait_for_claim(db: Path, batch_id: str, proc: subprocess.Popen[bytes]) -> None:
    """Until ``proc`` holds the batch (the store names it as the batch's process)."""
    deadline = time.monotonic() + 60
    while True:
        con = sqlite3.connect(db)
        try:
            row = con.execute(
                "SELECT status, pid FROM batches WHERE batch_id = ?", (batch_id,)
            ).fetchone()
        finally:
            con.close()
        if row == ("running", proc.pid):
            return
        assert proc.poll() is None, "the resumed batch ended before the second one started"
        assert time.monotonic() < deadline, "the resumed batch never claimed the batch"
        time.sleep(0.02)


@pytest.mark.slow
def test_ctrl_c_prints_the_resume_command_which_finishes_the_batch(tmp_path: Path) -> None:
    """Ctrl-C twice stops the batch cleanly (exit 130, no traceback, the batch recorded as
    cancelled) and prints the exact command that resumes it; a second --resume while that
    one runs is refused; the resume finishes every item and never calls a node again that
    the store had committed."""
    wf = tmp_path / "wf.yaml"
    wf.write_text(WF)
    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"ticket": f"t{i}"}) + "\n" for i in range(ITEMS)))
    db, out = tmp_path / "runs.db", tmp_path / "out.jsonl"
    # 0.25 s a call: the batch takes ~8 s, so the SIGINT after 4 results lands mid-batch even
    # on a loaded machine (at 0.05 s it sometimes finished before the signal arrived)
    with model_server(delay_s=0.25) as server:
        cat = server.catalog(tmp_path / "models.yaml")
        cmd = [sys.executable, "-m", "dagtier", "batch", str(wf), "--inputs", str(items)]
        cmd += ["--store", str(db), "--models", str(cat), "--out", str(out), "--concurrency", "3"]
        proc = subprocess.Popen(
            cmd,
            env=_env(db),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=_sigint_default,
        )
        _wait_for_lines(out, 4, proc)
        proc.send_signal(signal.SIGINT)
        # the second Ctrl-C lands while the first one's cancellation is being recorded: it
        # must neither tear that down nor turn into a traceback
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err.decode()
        text = err.decode()
        assert "Traceback" not in text, text
        assert "resume it with:" in text, text
        resume_line = text.split("resume it with:")[1].strip().splitlines()[0]
        argv = shlex.split(resume_line)
        assert argv[:2] == ["dagtier", "batch"] and "--resume" in argv
        batch_id = argv[argv.index("--resume") + 1]
        assert _batch_status(db, batch_id) == "cancelled"
        done_before = _committed(db)
        paid_before = server.counts()
        first = _lines(out)
        assert 4 <= len(first) < ITEMS

        again = [sys.executable, "-m", "dagtier", *argv[1:]]
        resumed = subprocess.Popen(
            again, env=_env(db), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        _wait_for_claim(db, batch_id, resumed)
        second = subprocess.run(
            again,
            env=_env(db),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1, second.stderr
        assert f"batch '{batch_id}' is running in process {resumed.pid}" in second.stderr
        _, err = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, err.decode()

    results = _lines(out)
    assert sorted(r["index"] for r in results) == list(range(ITEMS))
    for r in results:
        assert r["status"] == "succeeded"
        assert r["outputs"] == {"answer": f"<c <b <a t{r['index']}>>>"}
    assert {r["index"] for r in results if r.get("resumed")} >= {r["index"] for r in first}
    # nothing the store had committed was paid for again
    final = server.counts()
    for run_id, node in done_before:
        prompt = chain_prompt(run_id, node)
        assert final[prompt] == paid_before[prompt] == 1, f"{run_id}/{node} was paid twice"
    assert len(done_before) >= 12  # at least the 4 finished items' nodes
    assert _batch_status(db, batch_id) == "finished"


runner = CliRunner()


def test_a_malformed_line_is_named_and_nothing_runs(tmp_path: Path) -> None:
    """--on-bad-item stop (the default): exit 2, every malformed line named, no results."""
    wf = tmp_path / "wf.yaml"
    wf.write_text(WF)
    items = tmp_path / "items.jsonl"
    items.write_text('{"ticket": "a"}\n{"ticket": oops}\n')
    res = runner.invoke(
        app, ["batch", str(wf), "--inputs", str(items), "--store", str(tmp_path / "r.db")]
    )
    assert res.exit_code == 2, res.output
    assert "error[spec-invalid]: 1 problem in" in res.output
    assert "(line 2, col 1)" in res.output and "not valid JSON" in res.output
    assert "--on-bad-item skip" in res.output
    assert "Traceback" not in res.output


def test_an_unknown_items_format_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An items file that is neither .jsonl nor .csv is refused with a hint."""
    # never the user's default store: another dagtier may have written a newer schema there
    monkeypatch.setenv("DAGTIER_STORE", str(tmp_path / "runs.db"))
    wf = tmp_path / "wf.yaml"
    wf.write_text(WF)
    items = tmp_path / "items.txt"
    items.write_text("x\n")
    res = runner.invoke(app, ["batch", str(wf), "--inputs", str(items)])
    assert res.exit_code == 2
    assert "name the file .jsonl" in res.output
