"""The benchmark scripts keep running (tiny sizes; they print figures, nothing is timed)."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_bench(*args: str) -> str:
    proc = subprocess.run(
        [sys.executable, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_overhead_bench_prints_both_schedulers() -> None:
    """bench/overhead.py prints per-node figures for dagtier and the baseline, with a ratio."""
    out = run_bench("bench/overhead.py", "-n", "100", "-n", "200", "-r", "1")
    rows = [line.split() for line in out.splitlines() if line.strip()[:3].isdigit()]
    assert [r[0] for r in rows] == ["100", "200"]
    assert "growth per node from 100 to 200 nodes" in out


def test_overhead_bench_with_the_sqlite_store(tmp_path: Path) -> None:
    """--store PATH runs the same DAG committing every node to a real SQLite file."""
    out = run_bench("bench/overhead.py", "-n", "100", "-r", "1", "--store", str(tmp_path / "b.db"))
    assert any(line.split()[:1] == ["100"] for line in out.splitlines())
    assert (tmp_path / "b.db").exists()


def test_makespan_bench_prints_ratios() -> None:
    """bench/makespan.py prints makespan / critical path for dagtier and the lock-step one."""
    out = run_bench("bench/makespan.py", "-n", "100", "--scale", "0.001")
    assert "lock-step by formula" in out
    row = next(line.split() for line in out.splitlines() if line.split()[:1] == ["100"])
    assert len(row) == 7
    assert float(row[4]) >= 0.99  # dagtier can never beat the critical path


def test_batch_bench_prints_items_per_second_against_the_bound() -> None:
    """bench/batch.py prints dagtier's items/s as a share of the rate-limit bound, its CPU
    time per item, and RSS."""
    out = run_bench("bench/batch.py", "--items", "40", "--bound", "40", "--only", "dagtier")
    row = next(line.split() for line in out.splitlines() if line.startswith("dagtier"))
    assert len(row) == 8 and row[3].endswith("%") and float(row[4]) > 0 and row[5].endswith("M")
    assert float(row[3].rstrip("%")) <= 100.0  # nothing goes faster than the rate limit


def test_batch_ray_bench_prints_the_speed_up() -> None:
    """bench/batch_ray.py prints items/s with 1 and 2 Ray actors and the speed-up."""
    if importlib.util.find_spec("ray") is None or os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs Ray, root and unshare (Ray runs in a loopback-only namespace)")
    out = run_bench("bench/batch_ray.py", "--items", "40", "--repeat", "1")
    assert "1 actor " in out and "2 actors" in out
    assert "speed-up 1 -> 2 actors:" in out


def test_deadline_bench_prints_every_variant_against_the_cascade() -> None:
    """bench/deadline.py prints time, met share and cost for the cascade, the deadline and
    the top tier, with ratios to the cascade."""
    out = run_bench("bench/deadline.py", "--scale", "0.005", "--learn", "3", "--runs", "2")
    rows = {
        line.split()[0]: line.split() for line in out.splitlines() if line[:3] in ("cas", "dea")
    }
    assert set(rows) == {"cascade", "deadline"}
    assert rows["cascade"][-2:] == ["1.00", "1.00"]
    assert "top tier" in out and "the deadline started a node higher in" in out
