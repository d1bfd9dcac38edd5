"""A real `dagtier run` subprocess on the real local model ends when it should: after a
timed-out generation, and on Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dagtier.providers.local import local_model_status

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not local_model_status()[0], reason=local_model_status()[1]),
]

SRC = Path(__file__).resolve().parents[2] / "src"

# 'hello' finishes; then 'numbers' writes under a grammar that cannot end before 2,000
# numbers, so it is still generating when Ctrl-C comes.
WORKFLOW = """\
name: endless
nodes:
  hello:
    prompt: Say hello.
    max_tokens: 4
  numbers:
    prompt: "List the numbers from 1 to 5000 after {{ hello }}"
    depends_on: [hello]
    max_tokens: 4000
    timeout_s: 600
    output:
      schema: {type: array, items: {type: integer}, minItems: 2000}
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_TOKEN"))}
    return env | {"PYTHONPATH": str(SRC), "NO_COLOR": "1", "DAGTIER_LOCAL_THREADS": "1"}


def _dagtier(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "dagtier", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
        cwd=cwd,
    )


def test_a_timed_out_local_node_fails_once_and_the_process_exits(tmp_path: Path) -> None:
    """A local node past its timeout fails after one try, the summary is printed and the
    process exits, leaving no generation behind to keep it alive."""
    wf = tmp_path / "endless.yaml"
    wf.write_text(WORKFLOW.replace("timeout_s: 600", "timeout_s: 2"), encoding="utf-8")
    proc = _dagtier(["run", str(wf), "--store", str(tmp_path / "runs.db")], tmp_path)
    try:
        out, err = proc.communicate(timeout=120)  # 4,000 tokens left running take minutes
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 1, err
    assert "numbers" in out and "Traceback" not in err
    con = sqlite3.connect(tmp_path / "runs.db")
    rows = con.execute("SELECT fallbacks FROM attempts WHERE node_id = 'numbers'").fetchall()
    con.close()
    [(failed_tries,)] = rows  # one attempt...
    assert json.loads(failed_tries) == [  # ...of one try: no retry
        "ProviderTimeout: local/smollm2-135m-instruct: no answer within the 2s attempt timeout"
    ]


def _node_status(db: Path) -> dict[str, str]:
    if not db.exists():
        return {}
    con = sqlite3.connect(db, timeout=30)
    try:
        return dict(con.execute("SELECT node_id, status FROM nodes").fetchall())
    except sqlite3.OperationalError:  # the schema is being created
        return {}
    finally:
        con.close()


def test_two_ctrl_c_stop_the_run_cleanly_and_say_how_to_resume(tmp_path: Path) -> None:
    """Ctrl-C twice while the local model generates: the process exits 130 without a
    traceback, names the run and the command that resumes it, and the store keeps the
    finished node with the run marked as stopped."""
    wf = tmp_path / "endless.yaml"
    wf.write_text(WORKFLOW, encoding="utf-8")
    db = tmp_path / "runs.db"
    proc = _dagtier(["run", str(wf), "--store", str(db)], tmp_path)
    try:
        while _node_status(db).get("hello") != "succeeded":  # then 'numbers' generates
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.1)
        time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    con = sqlite3.connect(db)
    [(run_id, status)] = con.execute("SELECT run_id, status FROM runs").fetchall()
    con.close()
    assert status == "cancelled"
    assert f"interrupted: run {run_id} stopped; its finished nodes are kept" in err
    assert f"dagtier run {wf} --resume {run_id} --store {db}" in err
    assert _node_status(db).get("hello") == "succeeded"
