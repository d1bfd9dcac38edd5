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


def _scenario(tmp_path: Path, mode: str) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": SRC, "RAY_USAGE_STATS_ENABLED": "0"}
    proc = subprocess.run(
        [
            "unshare",
            "--net",
            "sh",
            "-c",
            f'ip link set lo up && exec "{sys.executable}" "{HERE / "_ray_scenario.py"}" '
            f'"{tmp_path}" "{mode}"',
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


def test_a_killed_drivers_batch_resumes_from_the_store(tmp_path: Path) -> None:
    """SIGKILL the driver of `dagtier batch --ray` mid-batch: `--resume` finishes every item
    and no node committed before the kill is called again (the driver held no state)."""
    report = _scenario(tmp_path, "driver")
    results = report["results"]
    assert sorted(r["index"] for r in results) == list(range(24))
    for r in results:
        assert r["status"] == "succeeded"
        assert r["outputs"] == {"answer": f"<c <b <a t{r['index']}>>>"}
    _nothing_committed_paid_twice(report)


def test_a_killed_actors_items_are_claimed_again_and_resume(tmp_path: Path) -> None:
    """SIGKILL one of two actors mid-batch: every item still succeeds, and no node the store
    had committed when the actor died is called again."""
    report = _scenario(tmp_path, "actor")
    assert report["summary"] == {"status": "finished", "succeeded": 24, "total": 24}
    assert "killed" in report, "no actor was killed: the batch finished too soon"
    results = report["results"]
    assert sorted(r["index"] for r in results) == list(range(24))
    for r in results:
        assert r["status"] == "succeeded"
        assert r["outputs"] == {"answer": f"<c <b <a t{r['index']}>>>"}
    _nothing_committed_paid_twice(report)
    paid = report["paid"]
    # every node answered; at most the killed actor's calls in flight were paid twice
    assert len(paid) == 72
    assert sum(paid.values()) - 72 <= 3


def test_actors_claim_a_batch_from_postgresql(tmp_path: Path, postgres_url: str) -> None:
    """`--store postgresql://...`: two actors claim the items from PostgreSQL (the throwaway
    cluster's unix socket works inside the loopback-only namespace); every item runs once.
    They share a budget through the store's ledger, which counts exactly what was paid."""
    report = _scenario(tmp_path, postgres_url)
    assert report["summary"] == {"status": "finished", "succeeded": 24, "total": 24}
    results = report["results"]
    assert sorted(r["index"] for r in results) == list(range(24))
    for r in results:
        assert r["status"] == "succeeded"
        assert r["outputs"] == {"answer": f"<c <b <a t{r['index']}>>>"}
    # nobody died: each of the 72 nodes was paid exactly once
    assert len(report["paid"]) == 72 and set(report["paid"].values()) == {1}
    limit, spent, reserved = report["budget"]
    per_call = 20 * 1.0e-6 + 5 * 2.0e-6  # the server's usage at the catalog's prices
    assert (limit, spent, reserved) == pytest.approx((1.0, 72 * per_call, 0.0), abs=1e-12)
