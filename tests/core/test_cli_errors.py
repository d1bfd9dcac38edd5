"""A user's mistake or a refused key ends the command with the exit code the README gives
(2 usage, 3 configuration or credentials) and a diagnostic, never a traceback, and records
nothing in the store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from _catalog import loopback_catalog_file, make_catalog
from providers._fault_server import FaultServer  # the provider tests' loopback server
from typer.testing import CliRunner

from dagtier.cli import app
from dagtier.replay import OutcomeRow, write_rows
from dagtier.store import open_store

runner = CliRunner()
SRC = str(Path(__file__).resolve().parents[2] / "src")

FLOW = """\
name: tiny
nodes:
  first: {prompt: say hi, policy: {kind: static, tier: 1}}
  second: {prompt: "again {{ first }}", depends_on: [first], policy: {kind: static, tier: 1}}
"""


@pytest.fixture(scope="module")
def fault_server() -> Iterator[FaultServer]:
    server = FaultServer().start()
    try:
        yield server
    finally:
        server.stop()


def _flow_and_catalog(tmp_path: Path, base_url: str) -> tuple[Path, Path]:
    flow = tmp_path / "flow.yaml"
    flow.write_text(FLOW, encoding="utf-8")
    models = loopback_catalog_file(
        tmp_path / "models.yaml",
        base_url,
        {t: ["o-tier1"] for t in (1, 2, 3)},
        models={"o-tier1": {"price": {"input": 1, "output": 2}}},
    )
    return flow, models


async def _run_ids(path: Path) -> list[str]:
    store = open_store(path)
    try:
        return [r.run_id for r in await store.list_runs(10)]
    finally:
        await store.aclose()


@pytest.mark.parametrize("budget", ["-1", "0", "nan", "inf"])
def test_a_budget_that_is_not_a_positive_amount_is_a_usage_error(
    tmp_path: Path, fault_server: FaultServer, budget: str
) -> None:
    """--budget -1 (or 0, nan, inf) exits 2 naming the flag, before any run is recorded."""
    flow, models = _flow_and_catalog(tmp_path, fault_server.base_url)
    store = tmp_path / "runs.db"
    res = runner.invoke(
        app,
        ["run", str(flow), "--models", str(models), "--store", str(store), "--budget", budget],
        env={"TEST_OPENAI_KEY": "sk-test-key-0123456789"},
    )
    assert res.exit_code == 2, res.output
    assert "--budget" in res.stderr and "more than 0" in res.stderr
    assert "Traceback" not in res.output
    assert not store.exists() or anyio.run(_run_ids, store) == []
    assert fault_server.seen == []


@pytest.mark.parametrize("command", ["run", "batch"])
@pytest.mark.parametrize("deadline", ["-1", "0", "nan", "inf"])
def test_a_deadline_that_is_not_a_positive_number_of_seconds_is_a_usage_error(
    tmp_path: Path, fault_server: FaultServer, deadline: str, command: str
) -> None:
    """--deadline -1 (or 0, nan, inf) on run or batch exits 2 naming the flag, before any run
    is recorded or any model called."""
    flow, models = _flow_and_catalog(tmp_path, fault_server.base_url)
    store = tmp_path / "runs.db"
    items = tmp_path / "items.jsonl"
    items.write_text("{}\n", encoding="utf-8")
    more = ["--inputs", str(items)] if command == "batch" else []
    res = runner.invoke(
        app,
        [command, str(flow), *more, "--models", str(models), "--store", str(store),
         "--deadline", deadline],
        env={"TEST_OPENAI_KEY": "sk-test-key-0123456789"},
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "--deadline must be more than 0 seconds" in res.stderr
    assert "hint: --deadline 30" in res.stderr
    assert "Traceback" not in res.output
    assert not store.exists() or anyio.run(_run_ids, store) == []
    assert fault_server.seen == []


def test_a_run_with_a_deadline_says_whether_it_met_it(
    tmp_path: Path, fault_server: FaultServer
) -> None:
    """dagtier run --deadline 60 prints, under the cost, that the deadline was met and
    that it changed no node's start (no statistics yet: every node keeps its policy)."""
    fault_server.reset()
    flow, models = _flow_and_catalog(tmp_path, fault_server.base_url)
    res = runner.invoke(
        app,
        ["run", str(flow), "--models", str(models), "--store", str(tmp_path / "runs.db"),
         "--deadline", "60", "-q"],
        env={"TEST_OPENAI_KEY": "sk-test-key-0123456789"},
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "deadline 60 s: met (" in res.stdout
    assert "it changed no node's start tier" in res.stdout


def test_a_refused_key_exits_3_with_a_hint(tmp_path: Path, fault_server: FaultServer) -> None:
    """A 401 from the provider is a credentials problem: exit 3, as the README says, with a
    note on which key to check and the command that resumes the run; the nodes below the
    refused one are skipped."""
    fault_server.reset()
    fault_server.script("o-tier1", ["401"])
    flow, models = _flow_and_catalog(tmp_path, fault_server.base_url)
    # a subprocess, as a user runs it: the SDK client's connections end with the process
    proc = subprocess.run(
        [sys.executable, "-m", "dagtier", "run", str(flow), "--models", str(models),
         "--store", str(tmp_path / "runs.db"), "-q"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": SRC, "TEST_OPENAI_KEY": "sk-test-key-0123456789"},
        timeout=120,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "TEST_OPENAI_KEY" in proc.stderr
    # the resume command names the same store and catalog, as the Ctrl-C hint does
    assert f"--store {tmp_path / 'runs.db'} --models {models}" in proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert proc.stdout.count("skipped") == 1  # 'second' never ran


def test_resuming_an_unknown_run_is_a_usage_error(
    tmp_path: Path, fault_server: FaultServer
) -> None:
    """--resume with an id the store does not hold exits 2 and points at `dagtier runs`."""
    flow, models = _flow_and_catalog(tmp_path, fault_server.base_url)
    res = runner.invoke(
        app,
        ["run", str(flow), "--models", str(models), "--store", str(tmp_path / "runs.db"),
         "--resume", "20990101-000000-abcdef", "-q"],
        env={"TEST_OPENAI_KEY": "sk-test-key-0123456789"},
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "no run '20990101-000000-abcdef'" in res.stderr
    assert "dagtier runs" in res.stderr
    assert "Traceback" not in res.output


def test_a_report_into_a_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    """`dagtier report -o missing_dir/r.html` exits 2 naming the path, without a traceback."""
    from dagtier import PythonProvider, parse_workflow, run

    store = tmp_path / "runs.db"

    async def one_run() -> None:
        st = open_store(store)
        try:
            await run(
                parse_workflow(FLOW),
                catalog=make_catalog({1: ["py"]}),
                providers={"python": PythonProvider(lambda m, r: "hi")},
                store=st,
            )
        finally:
            await st.aclose()

    anyio.run(one_run)
    target = tmp_path / "missing_dir" / "r.html"
    res = runner.invoke(
        app, ["report", "--last", "--store", str(store), "-f", "html", "-o", str(target)]
    )
    assert res.exit_code == 2, res.output
    assert str(target) in res.stderr
    assert "Traceback" not in res.output
    assert not target.exists()


def test_replay_on_a_two_model_ladder_runs_its_default_policies(tmp_path: Path) -> None:
    """`dagtier replay F --tiers A,B` works with its own default --policy: the static
    policies follow the ladder's length (no static:3 on two tiers)."""
    rows = [
        OutcomeRow(f"q{i}", "t", m, float(i % 2 or m == "b"), cost, False)
        for i in range(20)
        for m, cost in (("a", 0.001), ("b", 0.01))
    ]
    path = tmp_path / "out.csv.gz"
    with path.open("wb") as fh:
        write_rows(rows, fh)
    res = runner.invoke(app, ["replay", str(path), "--tiers", "a,b", "--json"])
    assert res.exit_code == 0, res.output
    names = [p["policy"] for p in json.loads(res.output)["policies"]]
    assert names[:2] == ["static:1", "static:2"]
    assert not any(n.startswith("static:3") for n in names)
