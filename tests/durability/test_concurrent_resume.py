"""Two resumes of one interrupted run, started at once in two real processes, on each
store: exactly one runs, the other is refused naming the winner's pid, and no node is paid
twice (issue 12, item 1)."""

from __future__ import annotations

import os
import sys
import textwrap
from collections import Counter
from pathlib import Path

import anyio
import pytest
import structlog
from anyio.abc import ByteReceiveStream
from anyio.streams.buffered import BufferedByteReceiveStream

import dagtier
from dagtier.catalog import catalog_from_dict
from dagtier.providers import CompletionRequest, PythonProvider
from dagtier.store import open_store

pytestmark = pytest.mark.anyio

SRC = str(Path(__file__).resolve().parents[2] / "src")

NODES = 24
WF = "name: wide\nconcurrency: 4\nnodes:\n" + "".join(
    f"  n{i}: {{prompt: 'p{i}'}}\n" for i in range(NODES)
)
CATALOG = {
    "models": {
        f"py{t}": {"provider": "python", "model": f"py{t}", "price": {"input": 1, "output": 1}}
        for t in (1, 2, 3)
    },
    "tiers": {1: ["py1"], 2: ["py2"], 3: ["py3"]},
}

# Each process appends "pid node" to the ledger for every paid call. It opens the store,
# says "ready" and resumes when the test writes "go": both reach the claim together.
RESUMER = textwrap.dedent(
    """
    import os, sys, time, anyio, dagtier
    from dagtier.catalog import catalog_from_dict
    from dagtier.providers import PythonProvider
    from dagtier.store import open_store

    location, run_id, ledger, wf_text, catalog = sys.argv[1:6]

    def model(m, request):
        with open(ledger, "a") as f:
            f.write(f"{os.getpid()} {request.metadata['node_id']}\\n")
        time.sleep(0.02)  # a slow model: the run is still going when the other arrives
        return "ok"

    async def main():
        store = open_store(location)
        print("ready", flush=True)
        await anyio.to_thread.run_sync(sys.stdin.readline)
        try:
            result = await dagtier.run(
                dagtier.parse_workflow(wf_text), store=store, resume=run_id,
                catalog=catalog_from_dict(eval(catalog)),
                providers={"python": PythonProvider(model)},
            )
        except dagtier.RunClaimed as exc:
            print(exc, file=sys.stderr)
            sys.exit(2)
        finally:
            await store.aclose()
        sys.exit(0 if result.ok else 1)

    anyio.run(main)
    """
)


async def _read_all(stream: ByteReceiveStream | None) -> str:
    out = b""
    if stream is not None:
        async for chunk in stream:
            out += chunk
    return out.decode()


async def test_two_resumes_at_once_one_runs_the_other_is_refused(
    location: str, tmp_path: Path
) -> None:
    """Of two concurrent resumes exactly one runs; the other exits 2 naming its pid; every
    node is paid once."""
    wf = dagtier.parse_workflow(WF)
    broken = {f"n{i}" for i in range(NODES) if i % 4}  # 18 of 24 fail the first time

    def first_model(model: object, request: CompletionRequest) -> str:
        nid = request.metadata["node_id"]
        if nid in broken:
            raise dagtier.BadRequest("scripted", provider="python", model="py", status_code=400)
        return "ok"

    store = open_store(location)
    first = await dagtier.run(
        wf,
        store=store,
        catalog=catalog_from_dict(CATALOG),
        providers={"python": PythonProvider(first_model)},
    )
    await store.aclose()
    assert first.status == "failed"

    ledger = tmp_path / "ledger"
    args = [location, first.run_id, str(ledger), WF, repr(CATALOG)]
    env = {**os.environ, "PYTHONPATH": SRC}
    procs = [
        await anyio.open_process([sys.executable, "-c", RESUMER, *args], env=env) for _ in range(2)
    ]
    for p in procs:
        assert p.stdout is not None
        assert await BufferedByteReceiveStream(p.stdout).receive_until(b"\n", 100) == b"ready"
    for p in procs:
        assert p.stdin is not None
        await p.stdin.send(b"go\n")
    codes = [await p.wait() for p in procs]
    errors = [await _read_all(p.stderr) for p in procs]

    assert sorted(codes) == [0, 2], errors
    winner = procs[codes.index(0)].pid
    assert f"already being run by process {winner}" in errors[codes.index(2)]
    paid = Counter(line.split()[1] for line in ledger.read_text().splitlines())
    assert paid == Counter(broken)  # each failed node once, nothing finished paid again
    assert {line.split()[0] for line in ledger.read_text().splitlines()} == {str(winner)}

    store = open_store(location)
    loaded = await store.load_run(first.run_id)
    await store.aclose()
    assert loaded is not None
    assert loaded[0].status == "succeeded" and loaded[0].pid == winner
    assert {r.status for r in loaded[1].values()} == {"succeeded"}


def test_the_cli_refuses_a_resume_of_a_live_run_with_exit_2(tmp_path: Path) -> None:
    """`dagtier run --resume` of a run another live process owns exits 2 naming that pid."""
    import subprocess

    from typer.testing import CliRunner

    from dagtier.cli import app
    from dagtier.store import RunOwner, RunRecord

    wf_file = tmp_path / "wide.yaml"
    wf_file.write_text(WF)
    db = tmp_path / "runs.db"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        owner = RunOwner(RunOwner.this_process().host, sleeper.pid, "t")

        async def record_owned_run() -> None:
            store = open_store(db)
            await store.begin_run(RunRecord("r1", "wide", "running", 1.0), owner)
            await store.aclose()

        anyio.run(record_owned_run)
        result = CliRunner().invoke(
            app, ["run", str(wf_file), "--resume", "r1", "--store", str(db), "-q"]
        )
    finally:
        sleeper.kill()
        sleeper.wait()
        structlog.reset_defaults()  # the in-process CLI configured logging for everyone
    assert result.exit_code == 2, result.output
    assert f"already being run by process {sleeper.pid}" in result.output
