"""`dagtier batch --ray`: actors claim items from the store; a killed actor's items are
claimed again and resume without paying twice for committed nodes.

Ray binds the machine's interface address, so the scenario runs in a network namespace that
has only loopback (`unshare --net`, then `ip link set lo up`): real Ray, real actor
processes, a real SIGKILL, a real model server on 127.0.0.1 inside the namespace.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import dagtier

from ._model_server import chain_prompt

SRC = str(Path(dagtier.__file__).resolve().parents[1])
HERE = Path(__file__).resolve().parent


def _netns_reason() -> str | None:
    if importlib.util.find_spec("ray") is None:
        return "Ray is not installed (pip install 'dagtier[ray]')"
    if os.geteuid() != 0 or shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs root, unshare and ip to keep Ray on a loopback-only network namespace"
    probe = subprocess.run(
        ["unshare", "--net", "sh", "-c", "ip link set lo up"], capture_output=True, timeout=30
    )
    if probe.returncode != 0:
        return f"cannot create a network namespace here: {probe.stderr.decode().strip()}"
    return None


REASON = _netns_reason()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(REASON is not None, reason=REASON or "")]


def _scenario(tmp_path: Path, mode: str, store: str | None = None) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": SRC, "RAY_USAGE_STATS_ENABLED": "0"}
    where = f' "{store}"' if store else ""
    proc = subprocess.run(
        [
            "unshare",
            "--net",
            "sh",
            "-c",
            f'ip link set lo up && exec "{sys.executable}" "{HERE / "_ray_scenario.py"}" '
            f'"{tmp_path}" "{mode}"{where}',
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    report: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return report


def _nothing_committed_paid_twice(report: dict[str, Any]) -> None:
    paid, at_kill = report["paid"], report["paid_at_kill"]
    assert report["committed"], "nothing was committed before the kill"
    for run_id, node in report["committed"]:
        prompt = chain_prompt(run_id, node)
        assert paid[prompt] == at_kill[prompt] == 1, f"{run_id}/{node} was paid twice"


def _every_item_succeeded(results: list[dict[str, Any]]) -> None:
    assert sorted(r["index"] for r in results) == list(range(24))
    for r in results:
        assert r["status"] == "succeeded"
        assert r["outputs"] == {"answer": f"<c <b <a t{r['index']}>>>"}


PER_CALL = 20 * 1.0e-6 + 5 * 2.0e-6
"""What one answer costs: the model server's usage at the scenario catalog's prices."""


def _the_ledger_counts_every_call_paid(report: dict[str, Any]) -> None:
    """The shared budget's ledger (limit $1) counts at least what the server was paid, the
    calls of killed processes included (their holds count in full), and holds nothing."""
    limit, spent, reserved = report["budget"]
    assert limit == 1.0 and reserved == pytest.approx(0.0, abs=1e-12)
    assert sum(report["paid"].values()) * PER_CALL <= spent * (1 + 1e-9)
    assert spent <= limit


def test_a_killed_drivers_batch_resumes_from_the_store(tmp_path: Path) -> None:
    """SIGKILL the driver of `dagtier batch --ray --budget 1` mid-batch: `--resume` finishes
    every item and no node committed before the kill is called again (the driver held no
    state); the budget's ledger in the store counts every call paid."""
    report = _scenario(tmp_path, "driver")
    _every_item_succeeded(report["results"])
    _nothing_committed_paid_twice(report)
    _the_ledger_counts_every_call_paid(report)


def test_a_killed_drivers_batch_resumes_from_postgresql(tmp_path: Path, postgres_url: str) -> None:
    """The same with the work queue and the budget in PostgreSQL."""
    report = _scenario(tmp_path, "driver", postgres_url)
    _every_item_succeeded(report["results"])
    _nothing_committed_paid_twice(report)
    _the_ledger_counts_every_call_paid(report)


def _a_killed_actors_items_resume(report: dict[str, Any]) -> None:
    assert report["summary"] == {"status": "finished", "succeeded": 24, "total": 24}
    assert "killed" in report, "no actor was killed: the batch finished too soon"
    _every_item_succeeded(report["results"])
    _nothing_committed_paid_twice(report)
    paid = report["paid"]
    # every node answered; at most the killed actor's calls in flight were paid twice
    assert len(paid) == 72
    assert sum(paid.values()) - 72 <= 3


def test_a_killed_actors_items_are_claimed_again_and_resume(tmp_path: Path) -> None:
    """SIGKILL one of two actors mid-batch: every item still succeeds, and no node the store
    had committed when the actor died is called again."""
    _a_killed_actors_items_resume(_scenario(tmp_path, "actor"))


def test_a_killed_actors_items_are_claimed_again_from_postgresql(
    tmp_path: Path, postgres_url: str
) -> None:
    """The same with the work queue in PostgreSQL (claims by ``FOR UPDATE SKIP LOCKED``; the
    throwaway cluster's unix socket works inside the loopback-only namespace) and a budget
    the actors share through its ledger, which counts the dead actor's calls in flight."""
    report = _scenario(tmp_path, "actor", postgres_url)
    _a_killed_actors_items_resume(report)
    _the_ledger_counts_every_call_paid(report)
