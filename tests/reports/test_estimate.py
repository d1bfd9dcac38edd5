"""``dagtier estimate``: per node and per policy forecasts from prompt sizes and prices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dagtier.catalog import Usage
from dagtier.cli import app
from dagtier.report.estimate import SCENARIOS, estimate_workflow
from dagtier.store import TierStats

from ._helpers import CATALOG_YAML, WORKFLOW, catalog, subprocess_env, workflow

ROOT = Path(__file__).resolve().parents[2]


def test_prices_prompt_tokens_and_max_tokens_per_tier() -> None:
    """One call per tier is priced from the prompt's size and the node's max_tokens."""
    est = estimate_workflow(workflow(), catalog(), inputs={"code": "def f(): pass"})
    node = next(n for n in est.nodes if n.node_id == "summarize")
    # "Summarize " is 10 characters (3 tokens), the input 13 (4 tokens); max_tokens 1024
    assert (node.input_tokens, node.output_tokens) == (7, 1024)
    cat = catalog()
    for tier, name in ((1, "cheap"), (2, "mid"), (3, "top")):
        assert node.call_cost[tier] == pytest.approx(cat.models[name].cost(Usage(7, 1024)))
    assert node.costs["static-tiers"] == node.costs["as-configured"] == node.call_cost[1]
    assert node.costs["all-top-tier"] == node.call_cost[3]


def test_cascade_is_weighted_by_assumed_pass_rates() -> None:
    """A cascade costs each tier's call times the chance that every tier before it failed."""
    est = estimate_workflow(workflow(), catalog())
    crit = next(n for n in est.nodes if n.node_id == "critique")
    c = crit.call_cost
    assert crit.costs["cascading"] == pytest.approx(c[1] + 0.4 * c[2] + 0.4 * 0.2 * c[3])
    assert crit.costs["as-configured"] == crit.costs["cascading"]
    # downstream prompts include the upstream node's expected output
    summarize = next(n for n in est.nodes if n.node_id == "summarize")
    assert crit.input_tokens >= summarize.output_tokens


def test_recorded_stats_replace_assumptions() -> None:
    """With evidence in the store, its mean cost and pass rate are used for that tier."""
    t1 = TierStats("review/critique", 1, successes=9, failures=1, observations=10,
                   total_cost=0.01)  # fmt: skip
    est = estimate_workflow(workflow(), catalog(), stats={"review/critique": {1: t1}})
    crit = next(n for n in est.nodes if n.node_id == "critique")
    assert crit.call_cost[1] == pytest.approx(0.001)
    assert crit.pass_rate[1] == pytest.approx(10 / 12)
    assert crit.evidence == {1: 10, 2: 0, 3: 0}
    c = crit.call_cost
    assert crit.costs["cascading"] == pytest.approx(c[1] + (2 / 12) * c[2] + (2 / 12) * 0.2 * c[3])


def test_the_stores_evidence_is_read_per_task_key() -> None:
    """recorded_stats reads each node's task key from the store (what `estimate --store`
    feeds the forecast); a key with no evidence maps to no tiers."""
    import anyio

    from dagtier.report.estimate import recorded_stats
    from dagtier.store import MemoryStore

    store = MemoryStore()
    wf = workflow()

    async def go() -> dict[str, dict[int, TierStats]]:
        await store.record_observation("review/critique", 1, success=True, cost=0.002)
        return await recorded_stats(store, wf)  # type: ignore[return-value]

    stats = anyio.run(go)
    assert set(stats) == {wf.task_key(n) for n in wf.nodes}
    assert stats["review/critique"][1].successes == 1
    assert stats["review/critique"][1].mean_cost == pytest.approx(0.002)
    assert all(stats[k] == {} for k in stats if k != "review/critique")


def test_estimate_command_on_refactor_workflow() -> None:
    """On workflows/refactor.yaml the command prints the scenario table, cheapest last."""
    wf = ROOT / "workflows" / "refactor.yaml"
    if not wf.exists():
        pytest.skip("workflows/refactor.yaml is not in this checkout")
    res = CliRunner().invoke(app, ["estimate", str(wf), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert set(data["totals"]) == set(SCENARIOS)
    totals = data["totals"]
    assert totals["all-top-tier"] > totals["all-mid-tier"] > totals["all-cheap-tier"] > 0
    assert totals["cascading"] < totals["all-top-tier"]
    res = CliRunner().invoke(app, ["estimate", str(wf)], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    for row in ("all-top-tier", "all-mid-tier", "static-tiers", "cascading", "adaptive"):
        assert row in res.output


def test_the_summary_has_every_scenario_and_piped_numbers_are_whole(tmp_path: Path) -> None:
    """Piped (even with COLUMNS=80 exported), `dagtier estimate` prints every scenario's total
    in the summary, all-cheap-tier and as-configured included, each number whole."""
    import subprocess
    import sys

    path = tmp_path / "review.yaml"
    path.write_text(WORKFLOW, encoding="utf-8")
    est = estimate_workflow(workflow(), catalog())
    models = tmp_path / "models.yaml"
    models.write_text(CATALOG_YAML, encoding="utf-8")
    proc = subprocess.run(
        [sys.executable, "-m", "dagtier", "estimate", str(path), "--models", str(models)],
        capture_output=True,
        text=True,
        env={**subprocess_env(), "COLUMNS": "80"},
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "…" not in proc.stdout
    summary = proc.stdout[proc.stdout.index("per scenario") :]
    for scenario in SCENARIOS:
        row = next(line for line in summary.splitlines() if line.startswith(f"│ {scenario} "))
        assert f"{est.total(scenario):.6f}" in row
