"""``dagtier report`` against a real SQLite run store (the durability branch's)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import anyio
import pytest
from typer.testing import CliRunner

from dagtier.cli import app

from ._helpers import WORKFLOW, answer, run_review

store_mod = pytest.importorskip("dagtier.store")
if not hasattr(store_mod, "open_store"):
    pytest.skip("needs the SQLite run store (durability branch)", allow_module_level=True)


# The CLI runs its own event loop, so these tests are synchronous and make their runs first.
async def _two_runs(tmp_path: Path) -> tuple[Path, list[str]]:
    path = tmp_path / "runs.db"
    (tmp_path / "review.yaml").write_text(WORKFLOW, encoding="utf-8")
    ids = []
    for fn in (answer, lambda m, r: "GOOD " + answer(m, r)):
        store = store_mod.open_store(path)
        try:
            ids.append((await run_review(store=store, fn=fn)).run_id)
        finally:
            await store.aclose()
    return path, ids


def test_report_last_in_every_format(tmp_path: Path) -> None:
    """--last reads the newest run back from the store file, in each format."""
    path, (_, second) = anyio.run(_two_runs, tmp_path)
    runner = CliRunner()
    wf = ["--workflow", str(tmp_path / "review.yaml")]
    res = runner.invoke(app, ["report", "--last", "--store", str(path), "-f", "json", *wf])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["run_id"] == second
    assert [n["node_id"] for n in data["nodes"]] == ["summarize", "tests", "critique", "final"]
    res = runner.invoke(app, ["report", second, "--store", str(path), "-f", "csv"])
    assert res.exit_code == 0, res.output
    assert len(list(csv.DictReader(io.StringIO(res.output)))) == 4
    out = tmp_path / "r.html"
    res = runner.invoke(app, ["report", second, "--store", str(path), "-f", "html", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    res = runner.invoke(app, ["report", second, "--store", str(path)], env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "counterfactual" in res.output


def test_compare_and_unknown_run(tmp_path: Path) -> None:
    """--compare shows the critique node moving from T2 to T1; an unknown id is a clear error."""
    path, (first, second) = anyio.run(_two_runs, tmp_path)
    runner = CliRunner()
    res = runner.invoke(
        app, ["report", "--compare", first, second, "--store", str(path), "-f", "json"]
    )
    assert res.exit_code == 0, res.output
    crit = next(n for n in json.loads(res.output)["nodes"] if n["node_id"] == "critique")
    assert crit["tier_change"] == "T2→T1"
    res = runner.invoke(app, ["report", "nope", "--store", str(path)])
    assert res.exit_code == 3
    assert "no run 'nope'" in res.output and first in res.output


def test_the_python_api_builds_and_renders_the_reports_the_cli_prints(tmp_path: Path) -> None:
    """load_run_report (latest run when no id) and render_to_text give the Python API the
    report and the comparison table that `dagtier report` writes; a comparison has no
    HTML form (a usage error for both)."""
    from dagtier import DagtierUsageError
    from dagtier.catalog import load_catalog
    from dagtier.report import compare_reports, load_run_report
    from dagtier.report.render import render_json, render_to_text

    cat = load_catalog()  # the CLI's, without --models
    path, (first, second) = anyio.run(_two_runs, tmp_path)
    wf = tmp_path / "review.yaml"

    async def reports() -> tuple[object, object, object]:
        store = store_mod.open_store(path)
        try:
            latest = await load_run_report(store, catalog=cat, workflow=wf)
            a = await load_run_report(store, first, catalog=cat, workflow=wf)
            return latest, a, compare_reports(a, latest)  # type: ignore[arg-type]
        finally:
            await store.aclose()

    latest, _, cmp = anyio.run(reports)
    runner = CliRunner()
    res = runner.invoke(
        app, ["report", "--last", "--store", str(path), "-f", "json", "--workflow", str(wf)]
    )
    assert res.exit_code == 0, res.output
    assert json.loads(res.output) == json.loads(render_json(latest))  # type: ignore[arg-type]
    out = tmp_path / "cmp.txt"
    res = runner.invoke(
        app,
        ["report", "--compare", first, second, "--store", str(path), "-o", str(out),
         "--workflow", str(wf)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert out.read_text(encoding="utf-8") == render_to_text(cmp, "table")  # type: ignore[arg-type]
    assert "critique" in out.read_text(encoding="utf-8")
    with pytest.raises(DagtierUsageError, match="not html"):
        render_to_text(cmp, "html")  # type: ignore[arg-type]
    res = runner.invoke(app, ["report", "--compare", first, second, "--store", str(path),
                              "-f", "html"])  # fmt: skip
    assert res.exit_code == 2 and "--compare renders as table, json or csv" in res.stderr


def test_a_moved_workflow_file_leaves_the_report_without_it(tmp_path: Path) -> None:
    """The recorded workflow path no longer exists: the report still builds, without the
    policies; a --workflow that does not load is the user's error (SpecError)."""
    from dagtier import SpecError
    from dagtier.report import recorded_workflow

    assert recorded_workflow(str(tmp_path / "gone.yaml")) is None
    assert recorded_workflow(None) is None
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [\n", encoding="utf-8")
    assert recorded_workflow(str(bad)) is None  # recorded, now broken: left out quietly
    with pytest.raises(SpecError):
        recorded_workflow(None, bad)
    (tmp_path / "review.yaml").write_text(WORKFLOW, encoding="utf-8")
    found = recorded_workflow(str(tmp_path / "review.yaml"))
    assert found is not None and found.name == "review"
