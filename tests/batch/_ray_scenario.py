"""Run inside a network namespace with only loopback (see test_batch_ray.py): a batch on two
Ray actors, one SIGKILLed mid-run; prints a JSON report of what was paid and committed.

Usage: python _ray_scenario.py TMPDIR [actor|driver|postgresql://URL]

``actor``: SIGKILL one of the two actors mid-batch. ``driver``: run ``dagtier batch --ray``
as a child process against this process's Ray cluster, SIGKILL that driver mid-batch, then
finish the batch with the ``--resume`` command. A PostgreSQL URL: the same batch with the
work queue in that database (claims by ``FOR UPDATE SKIP LOCKED``) and a budget the actors
share through its ledger (ample: every item runs), no actor killed.
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

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _model_server import CHAIN_WF, model_server

from dagtier.batch_ray import run_batch_on_ray
from dagtier.store import open_store

ITEMS = 24


def main(tmp: Path, store_url: str | None = None) -> None:
    wf, items, db = tmp / "wf.yaml", tmp / "items.jsonl", tmp / "runs.db"
    wf.write_text(CHAIN_WF)
    items.write_text("".join(json.dumps({"ticket": f"t{i}"}) + "\n" for i in range(ITEMS)))
    os.environ["FAKE_API_KEY"] = "fake-key-for-tests-0000"
    report: dict[str, object] = {}
    with model_server(delay_s=0.1) as server:
        cat = server.catalog(tmp / "models.yaml")

        def kill_one() -> None:
            # once some items are done, SIGKILL the actor process holding an item
            while True:
                time.sleep(0.05)
                try:
                    con = sqlite3.connect(db)
                    rows = con.execute(
                        "SELECT status, owner FROM batch_items WHERE batch_id = 'b-ray'"
                    ).fetchall()
                    con.close()
                except sqlite3.Error:
                    continue
                done = sum(1 for s, _ in rows if s == "done")
                owners = {o for s, o in rows if s is None and o}
                if done >= 4 and owners:
                    pid = int(sorted(owners)[0].split(":")[1])
                    os.kill(pid, signal.SIGKILL)
                    time.sleep(0.2)  # its last writes, if any, are final now
                    con = sqlite3.connect(db)
                    committed = con.execute(
                        "SELECT run_id, node_id FROM nodes WHERE status = 'succeeded'"
                    ).fetchall()
                    con.close()
                    report["killed"] = pid
                    report["committed"] = committed
                    report["paid_at_kill"] = dict(server.counts())
                    return

        killer = threading.Thread(target=kill_one, daemon=True)
        if store_url is None:  # the SQLite scenario polls the file to find an actor to kill
            killer.start()
        results = []

        async def go() -> object:
            return await run_batch_on_ray(
                wf,
                items,
                store=store_url or db,
                models=cat,
                actors=2,
                concurrency=3,
                batch_id="b-ray",
                lease_s=3.0,
                budget=1.0 if store_url else None,
                on_result=results.append,
                ray_init={"num_cpus": 2, "include_dashboard": False},
            )

        summary = anyio.run(go)
        if killer.is_alive():
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
    if store_url:

        async def ledger() -> list[float]:
            store = open_store(store_url)
            state = await store.reclaim_budget("b-ray")
            await store.aclose()
            return [state.limit, state.spent, state.reserved]

        report["budget"] = anyio.run(ledger)
    print(json.dumps(report))


def _done_items(db: Path) -> int:
    try:
        con = sqlite3.connect(db)
        try:
            row = con.execute("SELECT COUNT(*) FROM batch_items WHERE status = 'done'").fetchone()
        finally:
            con.close()
    except sqlite3.Error:  # not created yet
        return 0
    return int(row[0])


def kill_the_driver(tmp: Path) -> None:
    import subprocess

    import ray

    wf, items, db, out = tmp / "wf.yaml", tmp / "items.jsonl", tmp / "runs.db", tmp / "out.jsonl"
    wf.write_text(CHAIN_WF)
    items.write_text("".join(json.dumps({"ticket": f"t{i}"}) + "\n" for i in range(ITEMS)))
    # the actors run in this cluster's workers, with this process's environment
    os.environ["FAKE_API_KEY"] = "fake-key-for-tests-0000"
    ctx = ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    address = ctx.address_info["gcs_address"]
    env = dict(os.environ)
    report: dict[str, object] = {}
    with model_server(delay_s=0.1) as server:
        cat = server.catalog(tmp / "models.yaml")
        cmd = [sys.executable, "-m", "dagtier", "batch", str(wf), "--inputs", str(items)]
        cmd += ["--store", str(db), "--models", str(cat), "--out", str(out)]
        cmd += ["--concurrency", "3", "--lease", "3", "--ray", "--ray-address", address]
        driver = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while _done_items(db) < 4:
            assert driver.poll() is None, driver.stderr.read().decode() if driver.stderr else ""
            if time.monotonic() > deadline:
                driver.kill()
                raise AssertionError(driver.communicate()[1].decode()[-3000:])
            time.sleep(0.05)
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        con = sqlite3.connect(db)
        report["committed"] = con.execute(
            "SELECT run_id, node_id FROM nodes WHERE status = 'succeeded'"
        ).fetchall()
        batch_id = con.execute("SELECT batch_id FROM batches").fetchone()[0]
        con.close()
        report["paid_at_kill"] = dict(server.counts())
        resumed = subprocess.run(
            [*cmd, "--resume", batch_id], env=env, capture_output=True, text=True, timeout=180
        )
        assert resumed.returncode == 0, resumed.stderr
        report["results"] = [json.loads(x) for x in out.read_text().splitlines() if x.strip()]
        report["paid"] = dict(server.counts())
    ray.shutdown()
    print(json.dumps(report))


if __name__ == "__main__":
    if sys.argv[2:] == ["driver"]:
        kill_the_driver(Path(sys.argv[1]))
    elif sys.argv[2].startswith("postgresql://"):
        main(Path(sys.argv[1]), sys.argv[2])
    else:
        main(Path(sys.argv[1]))
