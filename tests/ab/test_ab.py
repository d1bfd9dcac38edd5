"""A/B of routing changes: two policy configurations on recorded outcomes, two real batches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from _catalog import one_per_tier
from typer.testing import CliRunner

import dagtier
from dagtier import SpecError
from dagtier.cli import app
from dagtier.providers import CompletionRequest, Gateway, ProviderRegistry, PythonProvider
from dagtier.replay import OutcomeRow, load_outcomes, parse_policy, write_rows
from dagtier.replay._compare import compare_policies
from dagtier.report.abtest import bootstrap_difference, compare_batches

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _outcomes(tmp_path: Path, n: int = 200) -> Path:
    """Tier 1 is right on every other query at $0.001; tier 2 always, at $0.01."""
    rows = []
    for i in range(n):
        rows.append(OutcomeRow(f"q{i}", "t", "cheap", float(i % 2), 0.001))
        rows.append(OutcomeRow(f"q{i}", "t", "top", 1.0, 0.01))
    path = tmp_path / "o.csv.gz"
    with path.open("wb") as fh:
        write_rows(rows, fh)
    return path


async def test_static_tiers_differ_by_exactly_the_data(tmp_path: Path) -> None:
    """static:1 vs static:2 differs by the known 0.5 quality and $0.009, both significant."""
    outcomes = load_outcomes(_outcomes(tmp_path), models=["cheap", "top"])
    ab = await compare_policies(outcomes, ["cheap", "top"], "static:1", "static:2")
    quality, cost = ab.differences
    assert ab.paired and ab.n_a == ab.n_b == 200
    assert (quality.mean_a, quality.mean_b, quality.delta) == (0.5, 1.0, 0.5)
    assert quality.significant and quality.low > 0.35
    assert cost.delta == pytest.approx(0.009)
    assert cost.low == pytest.approx(0.009) and cost.significant


async def test_same_configuration_is_not_significant(tmp_path: Path) -> None:
    """A policy against itself: zero difference, an interval containing 0, not significant."""
    outcomes = load_outcomes(_outcomes(tmp_path), models=["cheap", "top"])
    ab = await compare_policies(outcomes, ["cheap", "top"], "cascade", "cascade")
    for d in ab.differences:
        assert d.delta == 0 and d.low <= 0 <= d.high and not d.significant


def test_configuration_settings_are_validated() -> None:
    """key=value settings reach the policy; an unknown setting or value is a located error."""
    spec = parse_policy("adaptive fix_worth=1.5 target=0.8", 3)
    assert spec.policy["fix_worth"] == 1.5 and spec.policy["target"] == 0.8
    with pytest.raises(SpecError) as err:
        parse_policy("adaptive fix_wort=1.5", 3)
    assert err.value.issues[0].path == "adaptive fix_wort=1.5: fix_wort"
    with pytest.raises(SpecError) as err:
        parse_policy("cascade 2", 3)
    assert "'2' is not key=value" in err.value.issues[0].message


def test_unpaired_bootstrap_sees_a_clear_shift() -> None:
    """Unpaired arms of different sizes: the interval brackets the true shift."""
    a = [0.0, 1.0] * 50
    b = [1.0] * 30
    d = bootstrap_difference("quality", a, b, paired=False)
    assert d.delta == 0.5 and 0.3 < d.low < 0.5 < d.high < 0.7 and d.significant


def test_replay_compare_cli(tmp_path: Path) -> None:
    """`dagtier replay --compare` prints both arms, the difference and its verdict."""
    path = _outcomes(tmp_path)
    args = ["replay", str(path), "--tiers", "cheap,top", "--compare", "static:1", "static:2"]
    res = CliRunner().invoke(app, [*args, "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert [d["delta"] for d in data["differences"]] == [0.5, pytest.approx(0.009)]
    res = CliRunner().invoke(app, args)
    assert "quality: B (static:2) is significantly higher by 0.5000" in res.output
    res = CliRunner().invoke(app, [*args[:-1], "adaptive target=2"])
    assert res.exit_code == 2 and "adaptive target=2: target" in res.output


WF = """
name: ab
inputs: {x: string}
nodes:
  a:
    prompt: "{{ inputs.x }}"
    policy: {kind: cascade, start: START}
    checks: [{type: regex, pattern: "^ok"}]
"""


async def _two_batches(tmp_path: Path) -> Path:
    """Batches 'from1' and 'from2' over one items file, cascading from tier 1 and tier 2."""

    def model(entry: Any, req: CompletionRequest) -> str:
        # tier 1 fails the check on odd items; higher tiers always pass
        return "bad" if entry.model == "m1" and int(req.messages[-1].content) % 2 else "ok"

    items = tmp_path / "items.jsonl"
    items.write_text("".join(json.dumps({"x": str(i)}) + "\n" for i in range(20)))
    db = tmp_path / "runs.db"
    store = dagtier.open_store(db)
    catalog = one_per_tier("m", prices={1: 1, 2: 10, 3: 100})
    gateway = Gateway(catalog, ProviderRegistry({"python": PythonProvider(model)}))
    try:
        for start, bid in ((1, "from1"), (2, "from2")):
            wf = dagtier.parse_workflow(WF.replace("START", str(start)))
            await dagtier.run_batch(wf, items, store=store, gateway=gateway, batch_id=bid)
    finally:
        await store.aclose()
    return db


async def test_compare_two_batches(tmp_path: Path) -> None:
    """Two batches over one items file pair by item: cascade from tier 2 costs more, and
    every item passes in both, so quality does not differ."""
    store = dagtier.open_store(await _two_batches(tmp_path))
    try:
        ab = await compare_batches(store, "from1", "from2")
    finally:
        await store.aclose()
    quality, cost = ab.differences
    assert ab.paired and ab.n_a == 20
    assert quality.delta == 0 and not quality.significant
    assert cost.delta > 0 and cost.significant


def test_report_compare_cli_on_batches(tmp_path: Path) -> None:
    """`dagtier report --compare BATCH_A BATCH_B` prints the A/B verdicts."""
    import anyio

    db = anyio.run(_two_batches, tmp_path)
    res = CliRunner().invoke(app, ["report", "--compare", "from1", "from2", "--store", str(db)])
    assert res.exit_code == 0, res.output
    assert "cost $/item: B (from2) is significantly higher" in res.output
    assert "quality: no significant difference" in res.output
