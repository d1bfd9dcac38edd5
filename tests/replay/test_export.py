"""export-outcomes writes dagtier's own judged attempts in the format replay reads."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from dagtier import MemoryStore, run
from dagtier.providers import Gateway, ProviderRegistry
from dagtier.replay import OutcomeRow, ReplayJudge, ReplayProvider, load_outcomes, replay_catalog
from dagtier.replay._data import Outcomes, read_rows, write_rows
from dagtier.replay._export import export_rows
from dagtier.spec import Workflow

pytestmark = pytest.mark.anyio


async def test_exported_history_round_trips_through_the_outcomes_format(tmp_path: Path) -> None:
    """Every judged attempt of every stored run becomes one row: its model, pass as 1 and
    fail as 0, and the model call's cost without the judge's."""
    recorded = Outcomes("<test>")
    for i in range(6):
        recorded.add(OutcomeRow(f"q{i}", "t", "a", float(i % 2), 0.001, False))
        recorded.add(OutcomeRow(f"q{i}", "t", "b", 1.0, 0.01, False))
    provider = ReplayProvider(recorded, ReplayJudge(0, 0, cost=0.0001))
    gateway = Gateway(replay_catalog(["a", "b"]), ProviderRegistry({"replay": provider}))
    wf = Workflow.model_validate(
        {
            "name": "hist",
            "inputs": {"query_id": "string"},
            "nodes": {
                "n": {
                    "prompt": "{{ inputs.query_id }}",
                    "task": "t",
                    "policy": {"kind": "cascade", "max": 2},
                    "checks": [{"type": "judge"}],
                }
            },
        }
    )
    store = MemoryStore()
    for i in range(6):
        await run(wf, {"query_id": f"q{i}"}, gateway=gateway, store=store, run_id=f"r{i}")
    buf = io.BytesIO()
    assert write_rows(await export_rows(store), buf) == 6 + 3  # odd queries pass on "a"
    path = tmp_path / "mine.csv.gz"
    path.write_bytes(buf.getvalue())
    rows = sorted(read_rows(path), key=lambda r: (r.query_id, r.model))
    assert rows[:3] == [
        OutcomeRow("r0/n", "t", "a", 0.0, 0.001, False),
        OutcomeRow("r0/n", "t", "b", 1.0, 0.01, False),
        OutcomeRow("r1/n", "t", "a", 1.0, 0.001, False),
    ]
    assert set(load_outcomes(path).models) == {"a", "b"}
