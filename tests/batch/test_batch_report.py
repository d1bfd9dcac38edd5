"""`dagtier report --batch`: cost per item over the batch, tier mix, where escalations happened."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
from typer.testing import CliRunner

import dagtier
from dagtier.catalog import catalog_from_dict
from dagtier.cli import app
from dagtier.providers import CompletionRequest, Gateway, ProviderRegistry, PythonProvider
from dagtier.store import open_store

WF = """
name: esc
inputs: {ticket: string, hard: {type: boolean, default: false}}
nodes:
  label:
    prompt: "label {{ inputs.ticket }} {{ inputs.hard }}"
    policy: {kind: cascade}
    checks:
      - {type: regex, pattern: "^ok"}
  reply: {prompt: "reply {{ label }}", depends_on: [label]}
"""


def answer(model: Any, request: CompletionRequest) -> str:
    # tier 1 cannot label the hard tickets; tier 2 can
    if "True" in request.messages[-1].content and model.model == "py-1":
        return "unsure"
    return "ok"


def test_the_batch_report_shows_escalations_and_the_tier_mix(tmp_path: Path) -> None:
    """A node that escalated on some items is named with its path and count."""
    price = {"input": 1.0, "output": 2.0}
    cat = catalog_from_dict(
        {
            "models": {
                f"py{t}": {"provider": "python", "model": f"py-{t}", "price": price}
                for t in (1, 2, 3)
            },
            "tiers": {1: ["py1"], 2: ["py2"], 3: ["py3"]},
        }
    )
    db = tmp_path / "runs.db"
    rows = [{"ticket": f"t{i}", "hard": i % 4 == 0} for i in range(20)]

    async def go() -> dagtier.BatchSummary:
        store = open_store(db)
        gw = Gateway(cat, ProviderRegistry({"python": PythonProvider(answer)}))
        try:
            return await dagtier.run_batch(
                dagtier.parse_workflow(WF), rows, store=store, gateway=gw, batch_id="b-esc"
            )
        finally:
            await store.aclose()

    summary = anyio.run(go)
    assert summary.succeeded == 20
    assert summary.tiers == {1: 35, 2: 5}
    res = CliRunner().invoke(
        app, ["report", "--batch", "b-esc", "--store", str(db), "--format", "json"]
    )
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["statuses"] == {"succeeded": 20}
    assert report["tiers"] == {"1": 35, "2": 5}
    assert [(e["node_id"], e["items"], e["paths"]) for e in report["escalations"]] == [
        ("label", 5, {"1->2": 5})
    ]
    assert sum(s["items"] for s in report["slices"]) == 20
    assert report["cost"] > 0
    table = CliRunner().invoke(app, ["report", "--batch", "b-esc", "--store", str(db)])
    assert table.exit_code == 0, table.output
    assert "escalations" in table.output and "1->2 x5" in table.output
    missing = CliRunner().invoke(app, ["report", "--batch", "nope", "--store", str(db)])
    assert missing.exit_code == 3 and "recent batches: b-esc" in missing.output

    async def from_python() -> str:  # the Python API reads the same report
        from dagtier.report.batch import load_batch_report, render_batch_json

        store = open_store(db)
        try:
            return render_batch_json(await load_batch_report(store, "b-esc"))
        finally:
            await store.aclose()

    assert json.loads(anyio.run(from_python)) == report


def test_the_progress_line_counts_items_spending_and_the_tier_mix() -> None:
    """The progress bar's caption: done, failed, running, $ spent, $/item, ETA, tier mix."""
    from dagtier.batch import ItemResult
    from dagtier.events import AttemptFinished, NodeFinished, RunStarted
    from dagtier.report.batch import BatchProgress
    from dagtier.results import Attempt, NodeResult

    now = [100.0]
    p = BatchProgress(10, clock=lambda: now[0])
    wf = dagtier.parse_workflow(WF)
    for i in range(3):
        p(RunStarted(f"r{i}", wf, {}, 0.0))
    p(AttemptFinished("r0", "label", "k", Attempt(0, 1, "m", "python", cost=0.25)))
    p(AttemptFinished("r0", "label", "k", Attempt(1, 2, "m", "python", cost=0.75)))
    p(NodeFinished("r0", NodeResult("label", "succeeded", tier=2)))
    p(NodeFinished("r0", NodeResult("reply", "succeeded", tier=1)))
    p.item(ItemResult(0, 1, "r0", "succeeded", cost=1.0, tiers={"label": 2, "reply": 1}))
    p.item(ItemResult(1, 2, None, "invalid", error="required input 'ticket' was not given"))
    now[0] = 110.0
    assert p.line() == (
        "2/10 done (1 failed), 3 running, $1.0000 spent, $1.00000/item, ETA 40s, "
        "tiers T1 50% T2 50%"
    )
