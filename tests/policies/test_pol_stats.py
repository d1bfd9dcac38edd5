"""``dagtier stats``: evidence per task key and tier, and the tier adaptive would pick."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import anyio
import pytest
from pol_helpers import Models, run, workflow

import dagtier
import dagtier.store as store_mod
from dagtier import MemoryStore
from dagtier.policies.stats_view import collect

pytestmark = pytest.mark.anyio

SRC = str(Path(__file__).resolve().parents[2] / "src")


async def _fill(store: object) -> None:
    for _ in range(30):
        await store.record_observation("wf/n", 1, success=False, cost=0.001, latency_s=0.5)  # type: ignore[attr-defined]
        await store.record_observation("wf/n", 2, success=True, cost=0.01, latency_s=1.5)  # type: ignore[attr-defined]
    await store.record_observation("other", 1, success=True)  # type: ignore[attr-defined]


async def test_collect_reports_evidence_estimates_and_the_pick() -> None:
    """Per tier: observations, successes, estimate, mean cost and latency; the pick is the
    cheapest proven tier."""
    store = MemoryStore()
    await _fill(store)
    keys = await collect(store, workflow_name="wf")
    assert [k.task_key for k in keys] == ["wf/n"]
    (k,) = keys
    assert k.pick == 2 and k.target == 0.9
    t1, t2 = k.tiers
    assert (t1.tier, t1.observations, t1.successes) == (1, 30, 0)
    assert (t2.tier, t2.observations) == (2, 30) and t2.successes > 20
    assert t2.estimate > 0.95 and t1.estimate < 0.1
    assert t1.mean_cost == pytest.approx(0.001) and t2.mean_latency_s == pytest.approx(1.5)
    assert [x.task_key for x in await collect(store, task="other")] == ["other"]


async def test_collect_uses_the_workflow_file_settings() -> None:
    """Given a workflow, only its task keys are shown, judged against its nodes' targets."""
    store = MemoryStore()
    await _fill(store)
    wf = workflow("policy: {kind: adaptive, target: 0.5, max_tier: 2}\n", name="wf")
    (k,) = await collect(store, workflow=wf)
    assert k.task_key == "wf/n" and k.target == 0.5


async def test_judge_agreement_is_shown_beside_the_tier() -> None:
    """Outcomes reported for judged answers show how often the judge agreed."""
    import dagtier

    store = MemoryStore()
    models = Models(lambda t, req: "x", judge=lambda p: "PASS")
    r = await run(
        workflow("task: k\npolicy: {kind: adaptive}\nchecks:\n  - {type: judge}\n"),
        models,
        store=store,
    )
    await dagtier.record_outcome(r.run_id, "n", True, store=store)
    (k,) = await collect(store)
    assert [(j.tier, j.observations) for j in k.judge] == [(1, 1)]


def test_the_cli_shows_how_much_evidence_an_eval_seeded(tmp_path: Path) -> None:
    """`dagtier stats` counts a tier's TASK#eval observations beside its own, in the table
    ("from eval") and in the JSON."""
    from typer.testing import CliRunner

    from dagtier.cli import app

    path = tmp_path / "stats.db"

    async def fill() -> None:
        st = store_mod.open_store(path)
        try:
            await _fill(st)
            for _ in range(3):
                await st.record_observation("wf/n#eval", 2, success=True)
        finally:
            await st.aclose()

    anyio.run(fill)
    res = CliRunner().invoke(app, ["stats", "--store", str(path), "--task", "wf/n", "--json"])
    assert res.exit_code == 0, res.output
    [key] = json.loads(res.output)["keys"]
    assert [(t["tier"], t["eval_observations"]) for t in key["tiers"]] == [(1, 0), (2, 3)]
    table = CliRunner().invoke(
        app, ["stats", "--store", str(path), "--task", "wf/n"], env={"COLUMNS": "200"}
    )
    assert table.exit_code == 0, table.output
    header, *rows = [x for x in table.output.splitlines() if "│" in x or "┃" in x]
    assert "from eval" in header
    cells = [[c.strip() for c in row.split("│")[1:-1]] for row in rows]
    assert [(c[1], c[2], c[3]) for c in cells] == [("1", "30", "-"), ("2", "30", "3")]


@pytest.mark.skipif(not hasattr(store_mod, "open_store"), reason="needs the SQLite store (issue 5)")
async def test_cli_reads_a_real_store_file(tmp_path: Path) -> None:
    """`dagtier stats --store FILE` prints the table and JSON from a real SQLite file."""
    path = tmp_path / "stats.db"
    st = store_mod.open_store(path)  # type: ignore[attr-defined]
    await _fill(st)
    await st.aclose()
    env = {**os.environ, "PYTHONPATH": SRC}
    cmd = [sys.executable, "-m", "dagtier", "stats", "--store", str(path)]
    out = await anyio.run_process([*cmd, "--json"], env=env, check=False)
    assert out.returncode == 0, out.stderr.decode()
    data = json.loads(out.stdout)
    assert [(d["task_key"], d["pick"]) for d in data["keys"]] == [("other", 1), ("wf/n", 2)]
    assert data["routers"] == []  # no workflow file: no routed node to show
    table = await anyio.run_process([*cmd, "--task", "wf/n"], env=env, check=False)
    assert table.returncode == 0, table.stderr.decode()
    text = table.stdout.decode()
    assert "wf/n" in text and "tier 2 (target 0.9)" in text


async def test_a_stand_in_keeps_its_evidence_apart_and_reports_say_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When the local model stands in for a tier with no key, what it did is kept under
    its own name (TASK@MODEL), never as the tier's evidence, and the report names the
    stand-in instead of claiming savings against the tier's prices."""
    from dagtier.catalog import catalog_from_dict
    from dagtier.providers import Gateway, ProviderRegistry, PythonProvider
    from dagtier.providers.local import local_model_status
    from dagtier.report.model import build_report
    from dagtier.report.render import render_to_text

    if not local_model_status()[0]:
        pytest.skip(local_model_status()[1])  # the fallback is used only where it could run
    monkeypatch.delenv("DAGTIER_TEST_UNSET_KEY", raising=False)
    catalog = catalog_from_dict(
        {
            "models": {
                "m1": {"provider": "python", "model": "m1", "price": {"input": 1, "output": 1}},
                "big": {
                    "provider": "openai",
                    "model": "big",
                    "api_key_env": "DAGTIER_TEST_UNSET_KEY",
                    "price": {"input": 100, "output": 100},
                },
                "local-smollm2": {
                    "provider": "local",
                    "model": "smollm2-135m-instruct",
                    "price": {"input": 0, "output": 0},
                },
            },
            "tiers": {1: ["m1"], 2: ["m1"], 3: ["big"]},
            "local_fallback": "local-smollm2",
        }
    )
    model = PythonProvider(lambda entry, req: "good" if entry.provider == "local" else "bad")
    gw = Gateway(catalog, ProviderRegistry({"python": model, "local": model}))
    store = dagtier.open_store(tmp_path / "runs.db")
    wf = workflow(
        "task: wf/n\npolicy: {kind: cascade, start: 1, max: 3}\n"
        "checks:\n  - {type: regex, pattern: '^good'}\n"
    )
    with pytest.warns(dagtier.LocalFallbackWarning):
        result = await dagtier.run(wf, {}, gateway=gw, store=store)
    assert result.ok and result["n"].model == "local-smollm2"
    # tier 1's own model failed; tier 2 is the same model, which the cascade skips
    assert set(await store.tier_stats("wf/n")) == {1}
    kept = (await store.tier_stats("wf/n@local-smollm2"))[3]
    assert (kept.successes, kept.total_cost) == (1.0, 0.0)
    loaded = await store.load_run(result.run_id)
    await store.aclose()
    assert loaded is not None
    report = build_report(loaded[0], loaded[1], catalog=catalog, workflow=wf)
    assert report.savings.stand_ins == {3: "local-smollm2"}
    text = render_to_text(report, "table")
    assert "tier 3 was served by the stand-in 'local-smollm2'" in text
    assert "saved" not in text
