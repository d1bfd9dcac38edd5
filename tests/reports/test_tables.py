"""Console tables keep ids and numbers whole: what `dagtier runs` prints can be copied into
``--resume``, in an 80-column terminal and through a pipe alike."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import anyio

from dagtier.store import open_store

from ._helpers import run_review, subprocess_env


async def _runs(path: Path, n: int) -> list[str]:
    store = open_store(path)
    try:
        return [(await run_review(store=store)).run_id for _ in range(n)]
    finally:
        await store.aclose()


def _runs_in_a_terminal(store: Path, columns: int) -> str:
    """`dagtier runs` with its stdout on a pseudo-terminal ``columns`` wide (rich sees a TTY)."""
    leader, follower = pty.openpty()
    try:
        with subprocess.Popen(
            [sys.executable, "-m", "dagtier", "runs", "--store", str(store)],
            stdout=follower,
            stderr=subprocess.PIPE,
            env=subprocess_env() | {"COLUMNS": str(columns), "LINES": "50", "TERM": "dumb"},
        ) as proc:
            os.close(follower)
            chunks = []
            while True:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # the terminal's other side closed: the command is done
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
    finally:
        os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


def test_run_ids_are_whole_in_an_80_column_terminal(tmp_path: Path) -> None:
    """On an 80-column terminal every run id is printed whole, on one line."""
    store = tmp_path / "a-store-in-a-rather-deep-directory-name" / "runs.db"
    store.parent.mkdir()
    ids = anyio.run(_runs, store, 2)
    out = _runs_in_a_terminal(store, 80)
    for rid in ids:
        assert rid in out


def test_run_ids_and_costs_are_whole_through_a_pipe(tmp_path: Path) -> None:
    """Piped, even with COLUMNS=80 exported, each row holds its whole run id and cost."""
    store = tmp_path / "runs.db"
    ids = anyio.run(_runs, store, 2)
    proc = subprocess.run(
        [sys.executable, "-m", "dagtier", "runs", "--store", str(store)],
        capture_output=True,
        text=True,
        env=subprocess_env() | {"COLUMNS": "80"},
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.startswith("│ 20")]
    assert [row.split("│")[1].strip() for row in rows] == ids[::-1]  # newest first
    assert "…" not in proc.stdout


def test_runs_as_json_list_each_run_with_its_node_counts(tmp_path: Path) -> None:
    """`dagtier runs --json`: newest first, each run with its node counts by status."""
    import json

    from typer.testing import CliRunner

    from dagtier.cli import app

    store = tmp_path / "runs.db"
    ids = anyio.run(_runs, store, 2)
    res = CliRunner().invoke(app, ["runs", "--store", str(store), "--json"])
    assert res.exit_code == 0, res.output
    runs = json.loads(res.stdout)
    assert [r["run_id"] for r in runs] == ids[::-1]
    assert all(r["nodes"] == {"succeeded": 4} and r["workflow"] == "review" for r in runs)
    assert all("node_fingerprints" not in r for r in runs)
