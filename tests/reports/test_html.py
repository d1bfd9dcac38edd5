"""The HTML report read back from a store: every node of the workflow appears, skipped ones
included, and a run that cost nothing says so instead of drawing an empty chart."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from _catalog import make_catalog

from dagtier import PythonProvider, parse_workflow, run
from dagtier.report import build_report
from dagtier.report.html import render_html
from dagtier.report.render import render_csv
from dagtier.store import open_store

pytestmark = pytest.mark.anyio

WF = """
name: chain
nodes:
  a: {prompt: give JSON, output: json}
  b: {prompt: "use {{ a }}", depends_on: [a]}
  c: {prompt: unrelated}
"""


async def _report(tmp_path: Path, answer: str, price: float) -> Any:
    wf = parse_workflow(WF)
    cat = make_catalog(
        {1: ["py"], 2: ["py"], 3: ["py"]}, {"py": {"price": {"input": price, "output": price}}}
    )
    store = open_store(tmp_path / "runs.db")
    try:
        result = await run(
            wf, catalog=cat, providers={"python": PythonProvider(lambda m, r: answer)}, store=store
        )
        loaded = await store.load_run(result.run_id)
    finally:
        await store.aclose()
    assert loaded is not None
    record, nodes = loaded
    return build_report(record, nodes, catalog=cat, workflow=wf)


async def test_skipped_nodes_are_in_the_report(tmp_path: Path) -> None:
    """When 'a' fails, 'b' below it is skipped: the report read back from the store lists
    it, in the nodes table of the HTML and in the CSV."""
    rep = await _report(tmp_path, "not json", 1.0)
    assert {n.node_id: n.status for n in rep.nodes} == {
        "a": "failed",
        "b": "skipped",
        "c": "succeeded",
    }
    html = render_html(rep)
    nodes_table = html[html.index("<h2>Nodes</h2>") : html.index("<h2>Attempts</h2>")]
    assert re.search(r"<tr><td>b</td>.*?<td>skipped</td>", nodes_table)
    assert any(line.split(",")[1:3] == ["b", "skipped"] for line in render_csv(rep).splitlines())


async def test_a_free_run_says_so_instead_of_an_empty_cost_chart(tmp_path: Path) -> None:
    """Every answer at $0 (the local model, say): no bar chart of nothing, a sentence
    instead; the timeline is still drawn."""
    rep = await _report(tmp_path, '{"ok": true}', 0.0)
    assert rep.totals.cost == 0
    html = render_html(rep)
    assert 'aria-label="cost per node by tier"' not in html
    assert "every node cost $0" in html
    assert 'aria-label="timeline of node execution"' in html
    paid = render_html(await _report(tmp_path / "paid", '{"ok": true}', 1.0))
    assert 'aria-label="cost per node by tier"' in paid
