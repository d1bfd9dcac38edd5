"""bench/agent_loop.py keeps running (tiny sizes; its figures are printed, not timed)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_agent_loop_bench_compares_the_three_strategies() -> None:
    """Continuing a stalled loop on the next tier takes fewer top-tier turns and costs less
    than restarting it there, and less than the top tier throughout (scripted models)."""
    proc = subprocess.run(
        [sys.executable, "bench/agent_loop.py", "--turns", "5", "-r", "1"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    rows = {
        line.split()[0]: line.split()[1:]
        for line in proc.stdout.splitlines()
        if line.split()[:1] in (["continue"], ["restart"], ["top"])
    }
    (cont_cheap, cont_top, cont_cost, _), (_, restart_top, restart_cost, _) = (
        rows["continue"],
        rows["restart"],
    )
    assert int(cont_cheap) == 5 and int(cont_top) < int(restart_top) == 7
    assert float(cont_cost) < float(restart_cost) and float(cont_cost) < float(rows["top"][2])
    assert "per tool turn" in proc.stdout
