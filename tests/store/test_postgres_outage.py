"""The PostgreSQL server lost mid-batch: reads and writes pause, reconnect with backoff and
carry on, so the batch finishes with nothing committed lost and nothing paid twice; a server
that does not come back fails with an error that says so and names the URL without its
password, and `dagtier batch` then names the command that resumes the batch.

Each test stops and restarts a real throwaway cluster of its own (``pg_ctl stop -m
immediate``: the server processes quit at once, as in a crash, and the restart recovers
from the WAL); the session's shared cluster is never stopped.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread
import pytest

import dagtier
from dagtier import StoreError
from dagtier.catalog import catalog_from_dict
from dagtier.providers import CompletionRequest, Gateway, ProviderRegistry, PythonProvider
from dagtier.results import NodeResult
from dagtier.store import RunRecord
from dagtier.store.postgres import ENV_RETRY, PostgresStore

pytestmark = pytest.mark.anyio

WF = """
name: triage
inputs: {ticket: string}
nodes:
  label: {prompt: "label {{ inputs.ticket }}"}
  reply: {prompt: "reply to {{ inputs.ticket }} as {{ label }}", depends_on: [label]}
outputs: {answer: "{{ reply }}"}
"""
ITEMS = 30
CLI_WF = """
name: tiny
inputs: {q: string}
nodes:
  a: {prompt: "say {{ inputs.q }}", policy: {kind: static, tier: 1}}
"""
SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture
def own_cluster(postgres_server: str) -> Iterator[str]:
    """A cluster this test may stop (``postgres_server`` only for its skip-or-fail check)."""
    import pgcluster

    del postgres_server
    with pgcluster.cluster(fsync=False) as url:
        yield url


class Model:
    """An in-process model answering in 20 ms, counting the calls it answered per prompt."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    async def __call__(self, model: Any, request: CompletionRequest) -> str:
        await anyio.sleep(0.02)
        prompt = request.messages[-1].content
        self.calls[prompt] += 1
        return f"<{prompt}>"


def _gateway(model: Model) -> Gateway:
    price = {"input": 1.0, "output": 2.0}
    models = {
        f"py{t}": {"provider": "python", "model": f"py-{t}", "price": price} for t in (1, 2, 3)
    }
    cat = catalog_from_dict({"models": models, "tiers": {1: ["py1"], 2: ["py2"], 3: ["py3"]}})
    return Gateway(cat, ProviderRegistry({"python": PythonProvider(model)}))


async def test_a_batch_waits_out_a_postgresql_restart_and_pays_nothing_twice(
    own_cluster: str,
) -> None:
    """The server crashes (immediate stop) once 5 items are done and comes back a second
    later: every item succeeds, every prompt was answered once, and each run's stored cost
    is exactly what its nodes cost (a write applied twice after the loss would count it
    twice)."""
    import pgcluster

    store = PostgresStore(own_cluster, retry_s=60)
    model = Model()
    done: list[dagtier.ItemResult] = []
    outage = anyio.Event()
    items = [{"ticket": f"t{i}"} for i in range(ITEMS)]

    def crash_and_restart() -> None:
        pgcluster.stop(own_cluster)
        anyio.from_thread.run_sync(outage.set)
        time.sleep(1.0)
        pgcluster.start(own_cluster)

    five_done = anyio.Event()

    async def on_result(r: dagtier.ItemResult) -> None:
        done.append(r)
        if len(done) == 5:
            five_done.set()

    async def crash_when_5_done() -> None:
        await five_done.wait()
        await anyio.to_thread.run_sync(crash_and_restart)

    async with anyio.create_task_group() as tg:
        tg.start_soon(crash_when_5_done)
        summary = await dagtier.run_batch(
            dagtier.parse_workflow(WF),
            items,
            store=store,
            gateway=_gateway(model),
            concurrency=4,
            on_result=on_result,
        )
    assert outage.is_set()
    assert summary.status == "finished" and summary.succeeded == ITEMS
    assert len(model.calls) == 2 * ITEMS and set(model.calls.values()) == {1}
    for r in done:
        loaded = await store.load_run(r.run_id)
        assert loaded is not None
        record, nodes = loaded
        assert record.status == "succeeded" and set(nodes) == {"label", "reply"}
        assert record.cost == pytest.approx(sum(n.cost for n in nodes.values()))
    await store.aclose()


async def test_a_server_that_stays_down_fails_naming_the_url_without_its_password(
    own_cluster: str,
) -> None:
    """After ``retry_s`` the write fails with a StoreError saying the server was lost and
    did not come back, naming the URL with its password masked; what committed before the
    loss is there once the server is back."""
    import pgcluster

    url = own_cluster.replace("postgresql://dagtier@", "postgresql://dagtier:s3cret-pw@")
    store = PostgresStore(url, retry_s=1.0)
    await store.begin_run(RunRecord("r1", "wf", "running", 1.0))
    await store.commit_node("r1", NodeResult("a", "succeeded", text="kept"))
    pgcluster.stop(own_cluster)
    with pytest.raises(StoreError) as caught:
        await store.commit_node("r1", NodeResult("b", "succeeded", text="lost"))
    msg = str(caught.value)
    assert "s3cret-pw" not in msg
    assert "postgresql://dagtier:***@/postgres" in msg
    assert "did not come back within 1 s" in msg and "hint:" in msg
    pgcluster.start(own_cluster)
    loaded = await store.load_run("r1")
    assert loaded is not None and set(loaded[1]) == {"a"}
    await store.aclose()


def test_a_batch_the_store_ended_names_the_command_that_resumes_it(
    own_cluster: str, tmp_path: Path
) -> None:
    """`dagtier batch` on a PostgreSQL server that crashes mid-batch and stays down exits 3
    with the store's error and the exact command that resumes the batch, its id included;
    once the server is back, that command finishes every item."""
    import pgcluster
    from _catalog import loopback_catalog_file
    from providers._fault_server import FaultServer  # the provider tests' loopback server

    server = FaultServer().start()
    try:
        server.delay("m1", 0.2)
        flow = tmp_path / "flow.yaml"
        flow.write_text(CLI_WF, encoding="utf-8")
        tiers = {t: ["m1"] for t in (1, 2, 3)}
        models = loopback_catalog_file(tmp_path / "models.yaml", server.base_url, tiers)
        items = tmp_path / "items.jsonl"
        items.write_text("".join(f'{{"q": "q{i}"}}\n' for i in range(ITEMS)), encoding="utf-8")
        out = tmp_path / "results.jsonl"
        env = {
            **os.environ,
            "PYTHONPATH": SRC,
            "TEST_OPENAI_KEY": "sk-test-outage-0123456789",
            ENV_RETRY: "1",  # give up on the lost server after 1 s, not the default 60
        }
        args = [str(flow), "--inputs", str(items), "--out", str(out), "--store", own_cluster,
                "--models", str(models), "--concurrency", "2"]  # fmt: skip
        batch = subprocess.Popen(
            [sys.executable, "-m", "dagtier", "batch", *args, "-q"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        give_up = time.monotonic() + 60  # no hang if the batch never gets going
        while not out.exists() or len(out.read_text(encoding="utf-8").splitlines()) < 3:
            assert batch.poll() is None, batch.communicate()
            assert time.monotonic() < give_up, "no results within a minute"
            time.sleep(0.05)
        pgcluster.stop(own_cluster)
        _, stderr = batch.communicate(timeout=120)
        assert batch.returncode == 3, stderr
        assert "error[store-error]" in stderr and "did not come back within 1 s" in stderr

        pgcluster.start(own_cluster)
        [record] = anyio.run(_batches, own_cluster)
        said = re.search(r"resume it with:\n  (.+)", stderr)
        assert said is not None, stderr
        command = shlex.split(said.group(1))
        assert command == ["dagtier", "batch", *args, "--resume", record.batch_id]

        resumed = subprocess.run(
            [sys.executable, "-m", "dagtier", *command[1:], "-q"],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert resumed.returncode == 0, resumed.stderr
        results = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
        assert sorted(r["index"] for r in results) == list(range(ITEMS))
        assert {r["status"] for r in results} == {"succeeded"}
    finally:
        server.stop()


async def _batches(url: str) -> list[Any]:
    store = PostgresStore(url)
    try:
        return list(await store.list_batches(5))
    finally:
        await store.aclose()
