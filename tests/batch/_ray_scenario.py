"""Run inside a network namespace with only loopback (see test_batch_ray.py): a batch on two
Ray actors, one SIGKILLed mid-run; prints a JSON report of what was paid and committed.

Usage: python _ray_scenario.py TMPDIR actor|driver [postgresql://URL]

``actor``: SIGKILL one of the two actors mid-batch. ``driver``: run ``dagtier batch --ray
--budget 1`` as a child process against this process's Ray cluster, SIGKILL that driver
mid-batch, then finish the batch with the ``--resume`` command. With a PostgreSQL URL the
work queue lives in that database (claims by ``FOR UPDATE SKIP LOCKED``) and the actor
scenario also shares an ample budget through its ledger; else in a SQLite file.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _model_server import CHAIN_WF, model_server

from dagtier.batch_ray import run_batch_on_ray
from dagtier.store import open_store

ITEMS = 24


def query(store: str, sql: str) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` read straight from the store (a SQLite file or a PostgreSQL URL), as
    another process sees them; [] while the tables do not exist yet."""
    if store.startswith("postgresql://"):
        import psycopg

        try:
            with psycopg.connect(store) as con:
                return con.execute(sql).fetchall()
        except psycopg.errors.UndefinedTable:
            return []
    try:
        con = sqlite3.connect(store)
        try:
            return con.execute(sql).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return []


def committed(store: str) -> list[tuple[Any, ...]]:
    return query(store, "SELECT run_id, node_id FROM nodes WHERE status = 'succeeded'")


def ledger(store: str, batch_id: str) -> list[float]:
    async def read() -> list[float]:
        st = open_store(store)
        state = await st.reclaim_budget(batch_id)  # a dead actor's holds count as spent
        await st.aclose()
        assert state is not None
        return [state.limit, state.spent, state.reserved]

    return anyio.run(read)


def kill_an_actor(tmp: Path, store: str) -> None:
    wf, items = tmp / "wf.yaml", tmp / "items.jsonl"
    wf.write_text(CHAIN_WF)
    items.write_text("".join(json.dumps({"ticket": f"t{i}"}) + "\n" for i in range(ITEMS)))
    os.environ["FAKE_API_KEY"] = "fake-key-for-tests-0000"
    budget = 1.0 if store.startswith("postgresql://") else None
    report: dict[str, object] = {}
    with model_server(delay_s=0.1) as server:
        cat = server.catalog(tmp / "models.yaml")

        def kill_one() -> None:
            # once some items are done, SIGKILL the actor process holding an item
            while True:
                time.sleep(0.05)
                rows = query(
                    store, "SELECT status, owner FROM batch_items WHERE batch_id = 'b-ray'"
                )
                done = sum(1 for s, _ in rows if s == "done")
                owners = {o for s, o in rows if s is None and o}
                if done >= 4 and owners:
                    pid = int(sorted(owners)[0].split(":")[1])
                    os.kill(pid, signal.SIGKILL)
                    time.sleep(0.2)  # its last writes, if any, are final now
                    report["killed"] = pid
                    report["committed"] = committed(store)
                    report["paid_at_kill"] = dict(server.counts())
                    return

        killer = threading.Thread(target=kill_one, daemon=True)
        killer.start()
        results = []

        async def go() -> object:
            return await run_batch_on_ray(
                wf,
                items,
                store=store,
                models=cat,
                actors=2,
                concurrency=3,
                budget=budget,
                batch_id="b-ray",
                lease_s=3.0,
                on_result=results.append,
                ray_init={"num_cpus": 2, "include_dashboard": False},
            )

        summary = anyio.run(go)
        killer.join(timeout=5)
        report["summary"] = {
            "status": summary.status,
            "succeeded": summary.succeeded,
            "total": summary.total,
        }
        report["results"] = [
            {"index": r.index, "status": r.status, "outputs": r.outputs} for r in results
        ]
        report["paid"] = dict(server.counts())
    if budget is not None:
        report["budget"] = ledger(store, "b-ray")
    print(json.dumps(report))


def kill_the_driver(tmp: Path, store: str) -> None:
    import subprocess

    import ray

    wf, items, out = tmp / "wf.yaml", tmp / "items.jsonl", tmp / "out.jsonl"
    wf.write_text(CHAIN_WF)
    items.write_text("".join(json.dumps({"ticket": f"t{i}"}) + "\n" for i in range(ITEMS)))
    # the actors run in this cluster's workers, with this process's environment
    os.environ["FAKE_API_KEY"] = "fake-key-for-tests-0000"
    ctx = ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    address = ctx.address_info["gcs_address"]
    env = dict(os.environ)
    report: dict[str, object] = {}

    def done_items() -> int:
        rows = query(store, "SELECT COUNT(*) FROM batch_items WHERE status = 'done'")
        return int(rows[0][0]) if rows else 0

    with model_server(delay_s=0.1) as server:
        cat = server.catalog(tmp / "models.yaml")
        cmd = [sys.executable, "-m", "dagtier", "batch", str(wf), "--inputs", str(items)]
        cmd += ["--store", store, "--models", str(cat), "--out", str(out), "--budget", "1"]
        cmd += ["--concurrency", "3", "--lease", "3", "--ray", "--ray-address", address]
        driver = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while done_items() < 4:
            assert driver.poll() is None, driver.stderr.read().decode() if driver.stderr else ""
            if time.monotonic() > deadline:
                driver.kill()
                raise AssertionError(driver.communicate()[1].decode()[-3000:])
            time.sleep(0.05)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        report["committed"] = committed(store)
        batch_id = query(store, "SELECT batch_id FROM batches")[0][0]
        report["paid_at_kill"] = dict(server.counts())
        resumed = subprocess.run(
            [*cmd, "--resume", batch_id], env=env, capture_output=True, text=True, timeout=180
        )
        assert resumed.returncode == 0, resumed.stderr
        report["results"] = [json.loads(x) for x in out.read_text().splitlines() if x.strip()]
        report["paid"] = dict(server.counts())
    ray.shutdown()
    report["budget"] = ledger(store, batch_id)
    print(json.dumps(report))


if __name__ == "__main__":
    tmp_dir, mode = Path(sys.argv[1]), sys.argv[2]
    where = sys.argv[3] if len(sys.argv) > 3 else str(tmp_dir / "runs.db")
    {"actor": kill_an_actor, "driver": kill_the_driver}[mode](tmp_dir, where)
