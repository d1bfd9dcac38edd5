"""`dagtier batch --ray --budget`: workers in separate processes share one budget through
the store's ledger and together never pass it.

Three real processes run :func:`dagtier.batch_ray.drain`, what each Ray actor runs, on one
store (a real SQLite file, a real PostgreSQL database), calling a real model server on
127.0.0.1 through the openai SDK. No Ray: the guarantee rests on the store's ledger, not on
Ray, and plain processes start in a second where a Ray cluster takes many (the Ray path is
covered by tests/batch/test_batch_ray.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import pytest

import dagtier
from dagtier.batch_ray import WorkerConfig
from dagtier.catalog import Usage, load_catalog
from dagtier.store import BatchRecord, QueuedItem, open_store

from ._model_server import model_server

pytestmark = pytest.mark.anyio

SRC = str(Path(dagtier.__file__).resolve().parents[1])
HERE = Path(__file__).resolve().parent
PAD = "x" * 120
WF = f"""
name: spend
inputs: {{ticket: string}}
defaults: {{max_tokens: 5}}
nodes:
  a: {{prompt: "a {{{{ inputs.ticket }}}} {PAD}"}}
  b: {{prompt: "b {PAD} {{{{ a }}}}", depends_on: [a]}}
outputs: {{answer: "{{{{ b }}}}"}}
"""
"""Prompts of over 120 characters and ``max_tokens: 5``: each call reserves at least the
20 prompt and 5 completion tokens the server reports, so no call costs more than it held."""
ITEMS, WORKERS, CALLS_AFFORDED = 40, 3, 30


async def test_workers_in_three_processes_never_pass_the_batch_budget_together(
    tmp_path: Path, location: str
) -> None:
    """A budget that affords 30 of the batch's 80 calls: three worker processes with four
    runs in flight each stop once it cannot cover the next call, and the calls the model
    server delivered cost no more than the budget (processes budgeting on their own would
    each have spent it). Every worker says why it stopped; the items not run stay queued."""
    wf, models = tmp_path / "wf.yaml", tmp_path / "models.yaml"
    wf.write_text(WF)
    with model_server(delay_s=0.05) as server:
        server.catalog(models)
        entry = load_catalog(models).models["fake-mini"]
        per_call = entry.cost(Usage(input_tokens=20, output_tokens=5))
        budget = CALLS_AFFORDED * per_call
        store: Any = open_store(location)
        await store.claim_batch(
            BatchRecord("b", "spend", "running", time.time(), "items", "sha", ITEMS)
        )
        items = [QueuedItem(i, i + 1, f"b-{i}", {"ticket": f"t{i}"}) for i in range(ITEMS)]
        await store.enqueue_items("b", items)
        await store.open_budget("b", budget)
        config = WorkerConfig(
            "b", str(wf), location, str(models), WORKERS, 4, lease_s=30.0, budget=True
        )
        env = {**os.environ, "PYTHONPATH": SRC, "FAKE_API_KEY": "fake-key-for-tests-0000"}
        cmd = [sys.executable, str(HERE / "_drain_worker.py"), json.dumps(asdict(config))]

        def run_workers() -> list[tuple[bytes, bytes]]:
            procs = [
                subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for _ in range(WORKERS)
            ]
            outs = [p.communicate(timeout=240) for p in procs]
            for p, (_, err) in zip(procs, outs, strict=True):
                assert p.returncode == 0, err.decode()[-3000:]
            return outs

        outs = await anyio.to_thread.run_sync(run_workers)
        paid = sum(server.counts().values())
    reports = [json.loads(out.decode().splitlines()[-1]) for out, _ in outs]
    assert paid * per_call <= budget * (1 + 1e-9)
    # the budget was spent, not abandoned early: within what calls in flight hold
    assert paid >= CALLS_AFFORDED - WORKERS * 4
    for r in reports:
        assert r["exhausted"] is not None and "batch budget" in r["exhausted"]
    state = await store.reclaim_budget("b")
    assert state.spent <= state.limit and state.reserved == pytest.approx(0.0, abs=1e-12)
    assert state.spent == pytest.approx(paid * per_call)
    assert 0 < await store.items_left("b") < ITEMS
    await store.aclose()
