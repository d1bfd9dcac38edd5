"""Run inside a network namespace with only loopback (see test_batch_ray.py): a batch on two
Ray actors, one SIGKILLed mid-run; prints a JSON report of what was paid and committed.

Usage: python _ray_scenario.py TMPDIR
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

ITEMS = 24


def main(tmp: Path) -> None:
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
        killer.start()
        results = []

        async def go() -> object:
            return await run_batch_on_ray(
                wf,
                items,
                store=db,
                models=cat,
                actors=2,
                concurrency=3,
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
    print(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
