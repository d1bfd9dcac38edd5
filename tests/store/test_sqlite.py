"""The SQLite store: a real file, reopened, shared by two processes."""

from __future__ import annotations

import os
import sqlite3
import sys
import textwrap
import time
from pathlib import Path

import anyio
import pytest

from dagtier import StoreError
from dagtier.catalog import Usage
from dagtier.results import Attempt, CheckResult, NodeResult
from dagtier.store import CachedAnswer, RunRecord, RunStore, StatsStore, open_store
from dagtier.store.sqlite import SCHEMA_VERSION, SqliteStore

pytestmark = pytest.mark.anyio

SRC = str(Path(__file__).resolve().parents[2] / "src")


def _result(node_id: str, text: str = "answer") -> NodeResult:
    return NodeResult(
        node_id,
        "succeeded",
        output={"a": 1},
        text=text,
        tier=2,
        model="m2",
        attempts=[
            Attempt(0, 1, "m1", "openai", verdict="fail", reason="bad", output="nope", cost=0.1),
            Attempt(
                1,
                2,
                "m2",
                "openai",
                usage=Usage(10, 5, 1, 0, 2),
                cost=0.25,
                verdict="pass",
                checks=[CheckResult("json", True)],
                judge_cost=0.01,
                judge_usage=Usage(3, 1),
                output=text,
                fallbacks=["RateLimited: x"],
            ),
            Attempt(2, 2, "m2", "openai", verdict="error", reason="boom", output=None),
        ],
        started_at=1.0,
        finished_at=2.0,
        task_key="wf/n",
    )


async def test_runs_and_nodes_survive_reopening_the_file(tmp_path: Path) -> None:
    """A run's record and every node result read back whole after the store is reopened."""
    path = tmp_path / "runs.db"
    store = open_store(path)
    assert isinstance(store, RunStore) and isinstance(store, StatsStore)
    await store.begin_run(
        RunRecord("r1", "wf", "running", 100.0, inputs={"x": 1}, node_fingerprints={"a": "f"})
    )
    original = _result("a")
    await store.commit_node("r1", original)
    await store.finish_run("r1", "succeeded", 0.36)
    await store.aclose()

    again = SqliteStore(path)
    loaded = await again.load_run("r1")
    assert loaded is not None
    rec, nodes = loaded
    assert (rec.status, rec.inputs, rec.node_fingerprints) == ("succeeded", {"x": 1}, {"a": "f"})
    assert rec.cost == pytest.approx(0.36)
    assert rec.pid == os.getpid()
    assert nodes["a"].to_dict() == original.to_dict()
    assert [r.run_id for r in await again.list_runs()] == ["r1"]
    again.close()


async def test_a_rerun_node_replaces_its_result_but_its_cost_stays_counted(tmp_path: Path) -> None:
    """Committing a node twice keeps the newest result; the run's cost counts both."""
    store = open_store(tmp_path / "runs.db")
    await store.begin_run(RunRecord("r1", "wf", "running", 1.0))
    await store.commit_node(
        "r1", NodeResult("a", "failed", attempts=[Attempt(0, 1, "m", "p", cost=1.0)])
    )
    await store.commit_node(
        "r1",
        NodeResult(
            "a", "succeeded", text="t", attempts=[Attempt(0, 1, "m", "p", cost=2.0, output="t")]
        ),
    )
    loaded = await store.load_run("r1")
    assert loaded is not None
    rec, nodes = loaded
    assert nodes["a"].status == "succeeded" and len(nodes["a"].attempts) == 1
    assert rec.cost == pytest.approx(3.0)
    store.close()


async def test_a_running_run_whose_process_is_gone_lists_as_interrupted(tmp_path: Path) -> None:
    """A run left 'running' by a dead process shows as interrupted; a live one as running."""
    dead = await anyio.run_process([sys.executable, "-c", "import os; print(os.getpid())"])
    store = open_store(tmp_path / "runs.db")
    await store.begin_run(RunRecord("gone", "wf", "running", 1.0, pid=int(dead.stdout.decode())))
    await store.begin_run(RunRecord("alive", "wf", "running", 2.0))
    statuses = {r.run_id: r.status for r in await store.list_runs()}
    assert statuses == {"gone": "interrupted", "alive": "running"}
    store.close()


async def test_stats_apply_decay_and_read_back(tmp_path: Path) -> None:
    """record_observation folds evidence in with the same decay as TierStats.apply."""
    store = open_store(tmp_path / "runs.db")
    await store.record_observation("k", 1, success=True, cost=0.5, latency_s=1.0, half_life=1.0)
    await store.record_observation("k", 1, success=False, cost=0.5, latency_s=3.0, half_life=1.0)
    st = (await store.tier_stats("k"))[1]
    assert (st.successes, st.failures, st.observations) == (0.5, 1.0, 2)
    assert (st.mean_cost, st.mean_latency_s) == (0.5, 2.0)
    assert [(s.task_key, s.tier) for s in await store.all_stats()] == [("k", 1)]
    store.close()


async def test_two_processes_writing_stats_lose_no_update(tmp_path: Path) -> None:
    """Two processes folding 300 observations each into one key leave 600 observations."""
    path = tmp_path / "runs.db"
    open_store(path).close()
    script = textwrap.dedent(
        f"""
        import anyio, sys
        from dagtier.store import open_store
        async def main():
            s = open_store({str(path)!r})
            for i in range(300):
                await s.record_observation("shared", 2, success=i % 3 != 0, cost=0.001)
            await s.aclose()
        anyio.run(main)
        """
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    procs = [await anyio.open_process([sys.executable, "-c", script], env=env) for _ in range(2)]
    assert [await p.wait() for p in procs] == [0, 0]
    store = open_store(path)
    st = (await store.tier_stats("shared"))[2]
    assert (st.observations, st.successes, st.failures) == (600, 400, 200)
    assert st.total_cost == pytest.approx(0.6)
    store.close()


async def test_concurrent_writers_in_one_process_share_transactions(tmp_path: Path) -> None:
    """Many concurrent commits all land (group commit loses nothing)."""
    store = open_store(tmp_path / "runs.db")
    await store.begin_run(RunRecord("r", "wf", "running", 1.0))
    async with anyio.create_task_group() as tg:
        for i in range(200):
            tg.start_soon(store.commit_node, "r", NodeResult(f"n{i}", "succeeded", text=str(i)))
            tg.start_soon(lambda: store.record_observation("k", 1, success=True))
    loaded = await store.load_run("r")
    assert loaded is not None and len(loaded[1]) == 200
    assert (await store.tier_stats("k"))[1].observations == 200
    store.close()


async def test_cache_entries_expire_and_clear(tmp_path: Path) -> None:
    """A cached answer is found within its TTL, not after, and cache_clear removes it."""
    store = open_store(tmp_path / "runs.db")
    old = CachedAnswer("r", "n", {"x": 1}, '{"x": 1}', 1, "m", 0.2, time.time() - 100)
    await store.cache_put("k", old)
    assert (await store.cache_get("k", ttl_s=1000)) == old
    assert await store.cache_get("k", ttl_s=10) is None
    assert await store.cache_clear() == 1
    assert await store.cache_get("k", ttl_s=None) is None
    store.close()


def test_schema_is_versioned_and_migrations_run_once(tmp_path: Path) -> None:
    """A new file is migrated to the latest schema version; reopening changes nothing."""
    path = tmp_path / "runs.db"
    SqliteStore(path).close()
    s = SqliteStore(path)
    assert s.schema_version == SCHEMA_VERSION
    s.close()
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 1
    con.close()


def test_a_newer_schema_is_refused_with_advice(tmp_path: Path) -> None:
    """A file from a newer dagtier is not touched; the error names the path and the fix."""
    path = tmp_path / "runs.db"
    SqliteStore(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE schema_version SET version = 99")
    con.commit()
    con.close()
    with pytest.raises(StoreError, match=r"schema version 99.*\n.*upgrade dagtier"):
        SqliteStore(path)


def test_a_file_that_is_not_a_database_gets_a_clear_error(tmp_path: Path) -> None:
    """Pointing --store at some other file says so and how to fix it."""
    path = tmp_path / "notes.txt"
    path.write_text("hello, this is not sqlite at all " * 100)
    with pytest.raises(StoreError) as info:
        open_store(path)
    assert str(path) in str(info.value) and "--store" in str(info.value)
    assert "not a dagtier store" in str(info.value)


def test_default_path_follows_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DAGTIER_STORE overrides the default file under the user data directory."""
    from dagtier.store import default_store_path

    monkeypatch.setenv("DAGTIER_STORE", str(tmp_path / "x.db"))
    assert default_store_path() == tmp_path / "x.db"
    monkeypatch.delenv("DAGTIER_STORE")
    assert default_store_path().name == "dagtier.db" and "dagtier" in str(
        default_store_path().parent
    )
