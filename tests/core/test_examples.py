"""The examples run as documented (in a subprocess, offline)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_embed_in_app_runs_inside_the_apps_own_loop() -> None:
    """examples/embed_in_app.py runs the workflow in its asyncio loop while the app keeps
    ticking, escalates the short reply to tier 2, and prints per-node costs."""
    proc = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "embed_in_app.py")],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "run succeeded" in out
    assert "finished reply     succeeded  tier 2 (mid)" in out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.strip()}
    assert lines["reply"][1:4] == ["2", "mid", "2"]  # tier, model, attempts
    assert lines["classify"][1:4] == ["1", "small", "1"]
    assert float(lines["total"][1]) > 0
    beats = int(out.split("heartbeat ticked ")[1].split()[0])
    assert beats >= 2
    assert "category: billing" in out
    assert proc.stderr == ""
