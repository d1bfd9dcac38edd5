"""The store contract, run on every store: a real SQLite file, a real PostgreSQL database
and (where the contract applies) MemoryStore."""

from __future__ import annotations

import os
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from dagtier import RunClaimed
from dagtier.catalog import Usage
from dagtier.results import Attempt, CheckResult, NodeResult
from dagtier.store import (
    CachedAnswer,
    ResultCache,
    RunOwner,
    RunRecord,
    RunStore,
    StatsStore,
    open_store,
)

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
        deadline_tier=2,
    )


async def _dead_pid() -> int:
    dead = await anyio.run_process([sys.executable, "-c", "import os; print(os.getpid())"])
    return int(dead.stdout.decode())


async def test_every_store_implements_every_protocol(store: Any) -> None:
    """Each store is a RunStore, a StatsStore and a ResultCache."""
    assert isinstance(store, RunStore)
    assert isinstance(store, StatsStore)
    assert isinstance(store, ResultCache)


async def test_runs_and_nodes_survive_reopening(location: str) -> None:
    """A run's record and every node result read back whole after the store is reopened."""
    store = open_store(location)
    await store.begin_run(
        RunRecord(
            "r1",
            "wf",
            "running",
            100.0,
            inputs={"x": 1},
            node_fingerprints={"a": "f"},
            deadline_s=30.0,
            deadline_at=130.0,
        )
    )
    original = _result("a")
    await store.commit_node("r1", original)
    await store.finish_run("r1", "succeeded", 0.36)
    await store.aclose()

    again = open_store(location)
    loaded = await again.load_run("r1")
    assert loaded is not None
    rec, nodes = loaded
    assert (rec.status, rec.inputs, rec.node_fingerprints) == ("succeeded", {"x": 1}, {"a": "f"})
    assert rec.cost == pytest.approx(0.36)
    assert (rec.deadline_s, rec.deadline_at) == (30.0, 130.0)
    assert rec.pid == os.getpid()
    assert nodes["a"].to_dict() == original.to_dict()
    assert [r.run_id for r in await again.list_runs()] == ["r1"]
    assert await again.node_counts("r1") == {"succeeded": 1}
    await again.aclose()


async def test_a_rerun_node_replaces_its_result_but_its_cost_stays_counted(store: Any) -> None:
    """Committing a node twice keeps the newest result; the run's cost counts both."""
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


async def test_a_resumed_run_keeps_its_cost_and_start(store: Any) -> None:
    """begin_run again on a finished run marks it running and keeps its cost and start time;
    its deadline is the resume's own."""
    await store.begin_run(RunRecord("r1", "wf", "running", 5.0))
    await store.commit_node(
        "r1", NodeResult("a", "failed", attempts=[Attempt(0, 1, "m", "p", cost=1.5)])
    )
    await store.finish_run("r1", "failed", 1.5)
    await store.begin_run(
        RunRecord("r1", "wf", "running", 99.0, inputs={"y": 2}, deadline_s=4.0, deadline_at=103.0)
    )
    loaded = await store.load_run("r1")
    assert loaded is not None
    rec = loaded[0]
    assert (rec.status, rec.started_at, rec.cost, rec.inputs) == ("running", 5.0, 1.5, {"y": 2})
    assert (rec.deadline_s, rec.deadline_at) == (4.0, 103.0)


async def test_a_running_run_whose_process_is_gone_lists_as_interrupted(store: Any) -> None:
    """A run left 'running' by a dead process shows as interrupted; a live one as running."""
    dead = RunOwner(RunOwner.this_process().host, await _dead_pid(), "t")
    await store.begin_run(RunRecord("gone", "wf", "running", 1.0), dead)
    await store.begin_run(RunRecord("alive", "wf", "running", 2.0))
    statuses = {r.run_id: r.status for r in await store.list_runs()}
    assert statuses == {"gone": "interrupted", "alive": "running"}


async def test_stats_apply_decay_and_read_back(store: Any) -> None:
    """record_observation folds evidence in with the same decay as TierStats.apply."""
    await store.record_observation("k", 1, success=True, cost=0.5, latency_s=1.0, half_life=1.0)
    await store.record_observation("k", 1, success=False, cost=0.5, latency_s=3.0, half_life=1.0)
    await store.record_observation("k", 2, success=True, weight=2.0)
    st = (await store.tier_stats("k"))[1]
    assert (st.successes, st.failures, st.observations) == (0.5, 1.0, 2)
    assert (st.mean_cost, st.mean_latency_s) == (0.5, 2.0)
    assert (await store.tier_stats("k"))[2].successes == 2.0
    assert [(s.task_key, s.tier) for s in await store.all_stats()] == [("k", 1), ("k", 2)]
    assert await store.tier_stats("other") == {}


async def test_an_observation_with_an_evidence_id_counts_once(store: Any) -> None:
    """The same evidence id again for a (task key, tier) changes nothing and says so; under
    another key or tier it counts, and an observation without an id always counts."""
    assert await store.record_observation("k", 1, success=True, evidence_id="e1") is True
    assert await store.record_observation("k", 1, success=False, evidence_id="e1") is False
    assert await store.record_observation("k", 2, success=True, evidence_id="e1") is True
    assert await store.record_observation("k#eval", 1, success=True, evidence_id="e1") is True
    assert await store.record_observation("k", 1, success=True) is True
    st = (await store.tier_stats("k"))[1]
    assert (st.observations, st.successes, st.failures) == (2, 2.0, 0.0)
    assert (await store.tier_stats("k"))[2].observations == 1


async def test_two_processes_writing_stats_lose_no_update(location: str) -> None:
    """Two processes folding 300 observations each into one key leave 600 observations."""
    await open_store(location).aclose()
    script = textwrap.dedent(
        f"""
        import anyio, sys
        from dagtier.store import open_store
        async def main():
            s = open_store({location!r})
            for i in range(300):
                await s.record_observation("shared", 2, success=i % 3 != 0, cost=0.001)
            await s.aclose()
        anyio.run(main)
        """
    )
    env = {**os.environ, "PYTHONPATH": SRC}
    procs = [await anyio.open_process([sys.executable, "-c", script], env=env) for _ in range(2)]
    assert [await p.wait() for p in procs] == [0, 0]
    store = open_store(location)
    st = (await store.tier_stats("shared"))[2]
    assert (st.observations, st.successes, st.failures) == (600, 400, 200)
    assert st.total_cost == pytest.approx(0.6)
    await store.aclose()


async def test_concurrent_writers_in_one_process_share_transactions(store: Any) -> None:
    """Many concurrent commits all land (group commit loses nothing)."""
    await store.begin_run(RunRecord("r", "wf", "running", 1.0))
    async with anyio.create_task_group() as tg:
        for i in range(200):
            tg.start_soon(store.commit_node, "r", NodeResult(f"n{i}", "succeeded", text=str(i)))
            tg.start_soon(lambda: store.record_observation("k", 1, success=True))
    loaded = await store.load_run("r")
    assert loaded is not None and len(loaded[1]) == 200
    assert (await store.tier_stats("k"))[1].observations == 200


async def test_cache_entries_expire_and_clear(store: Any) -> None:
    """A cached answer is found within its TTL, not after, and cache_clear removes it."""
    old = CachedAnswer("r", "n", {"x": 1}, '{"x": 1}', 1, "m", 0.2, time.time() - 100)
    await store.cache_put("k", old)
    assert (await store.cache_get("k", ttl_s=1000)) == old
    assert await store.cache_get("k", ttl_s=10) is None
    newer = CachedAnswer("r2", "n", None, "t", 2, "m", 0.3, time.time())
    await store.cache_put("k", newer)
    assert (await store.cache_get("k", ttl_s=10)) == newer
    assert await store.cache_clear(older_than_s=1000) == 0
    assert await store.cache_clear() == 1
    assert await store.cache_get("k", ttl_s=None) is None


# --- claiming a run (issue 12: two resumes of one run both ran it) -------------------------


async def test_a_live_owner_keeps_its_run(store: Any) -> None:
    """A second owner's claim of a running run is refused; the owner itself may re-claim."""
    first, second = RunOwner.this_process(), RunOwner.this_process()
    await store.begin_run(RunRecord("r", "wf", "running", 1.0), first)
    assert await store.claim_run("r", second) is False
    with pytest.raises(RunClaimed, match=rf"process {os.getpid()} on"):
        await store.begin_run(RunRecord("r", "wf", "running", 1.0), second)
    assert await store.claim_run("r", first) is True
    assert await store.claim_run("missing", first) is False
    loaded = await store.load_run("r")
    assert loaded is not None and loaded[0].owner == first


async def test_a_finished_or_orphaned_run_can_be_claimed(store: Any) -> None:
    """A finished run, or one whose owner's process is dead, goes to the next claimant."""
    me = RunOwner.this_process()
    await store.begin_run(RunRecord("done", "wf", "running", 1.0), RunOwner.this_process())
    await store.finish_run("done", "failed", 0.0)
    dead = RunOwner(me.host, await _dead_pid(), "t")
    await store.begin_run(RunRecord("orphan", "wf", "running", 1.0), dead)
    assert await store.claim_run("done", me) is True
    assert await store.claim_run("orphan", me) is True
    runs = {r.run_id: (r.status, r.owner) for r in await store.list_runs()}
    assert runs == {"done": ("running", me), "orphan": ("running", me)}


async def test_a_known_dead_owner_on_another_host_can_be_taken_over(store: Any) -> None:
    """An owner on another host counts as alive, unless the claimant names it as dead."""
    remote = RunOwner("another-host", 4242, "t")
    await store.begin_run(RunRecord("r", "wf", "running", 1.0), remote)
    me = RunOwner.this_process()
    assert await store.claim_run("r", me) is False
    assert await store.claim_run("r", me, take_over=RunOwner("another-host", 4242, "old")) is False
    assert await store.claim_run("r", me, take_over=remote) is True


async def test_of_many_concurrent_claims_exactly_one_wins(store: Any) -> None:
    """Twenty claimants at once (one task each) for one run: one wins, nineteen are refused."""
    await store.begin_run(RunRecord("r", "wf", "running", 1.0))
    await store.finish_run("r", "failed", 0.0)
    owners = [RunOwner.this_process() for _ in range(20)]
    won: list[RunOwner] = []

    async def claim(owner: RunOwner) -> None:
        if await store.claim_run("r", owner):
            won.append(owner)

    async with anyio.create_task_group() as tg:
        for owner in owners:
            tg.start_soon(claim, owner)
    assert len(won) == 1
    loaded = await store.load_run("r")
    assert loaded is not None and loaded[0].owner == won[0]


async def test_a_node_committed_twice_in_one_batch_keeps_the_second(store: Any) -> None:
    """Two commits of one node queued together: the later result stays, both costs count."""
    await store.begin_run(RunRecord("r", "wf", "running", 1.0))
    first = NodeResult("a", "failed", attempts=[Attempt(0, 1, "m", "p", cost=1.0)])
    second = NodeResult(
        "a", "succeeded", text="t", attempts=[Attempt(0, 2, "m", "p", cost=2.0, output="t")]
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(store.commit_node, "r", NodeResult("b", "succeeded", text="b"))
        await anyio.lowlevel.checkpoint()
        tg.start_soon(store.commit_node, "r", first)
        tg.start_soon(store.commit_node, "r", second)
    loaded = await store.load_run("r")
    assert loaded is not None
    assert loaded[1]["a"].to_dict() == second.to_dict()
    assert loaded[0].cost == pytest.approx(3.0)


async def test_nodes_committed_together_read_back_whole(store: Any) -> None:
    """commit_nodes saves every node it is given with its attempts; the run's cost counts
    each, and a node given twice keeps its later result."""
    await store.begin_run(RunRecord("r", "wf", "running", 1.0))
    again = NodeResult(
        "a", "succeeded", text="t", attempts=[Attempt(0, 2, "m", "p", cost=2.0, output="t")]
    )
    await store.commit_nodes("r", [_result("a"), _result("b", "other"), again])
    loaded = await store.load_run("r")
    assert loaded is not None
    record, nodes = loaded
    assert {n: r.to_dict() for n, r in nodes.items()} == {
        "a": again.to_dict(),
        "b": _result("b", "other").to_dict(),
    }
    assert record.cost == pytest.approx(2 * _result("a").cost + 2.0)
