"""SIGKILL at 20 random moments: no node the store recorded as succeeded is paid for twice.

Real everything: the CLI in a subprocess, a real SQLite file, a real OpenAI-compatible HTTP
server on 127.0.0.1 (answering ``/v1/chat/completions`` after a short delay and counting
the answers it delivered, per node), and a real SIGKILL.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import dagtier

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        importlib.util.find_spec("dagtier.providers.openai") is None,
        reason="needs the OpenAI provider (providers branch)",
    ),
]

SRC = str(Path(dagtier.__file__).resolve().parents[1])
LAYERS, WIDTH, DELAY_S = 20, 3, 0.05
_NODE = re.compile(r"node=(\w+)")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    answered: Counter[str]
    lock: threading.Lock


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:  # quiet
        return None

    def do_POST(self) -> None:
        try:
            self._answer()
        except (OSError, ValueError):  # the client was killed mid-request: nothing delivered
            return

    def _answer(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        prompt = body["messages"][-1]["content"]
        node = _NODE.search(prompt).group(1)  # type: ignore[union-attr]
        time.sleep(DELAY_S)
        payload = json.dumps(
            {
                "id": f"chatcmpl-{node}",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": f"answer-{node}"},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {"prompt_tokens": 20, "completion_tokens": 5, "total_tokens": 25},
            }
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        self.wfile.flush()
        with self.server.lock:  # delivered: billable
            self.server.answered[node] += 1


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.answered, srv.lock = Counter(), threading.Lock()
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _workflow() -> str:
    lines = ["name: killed", "concurrency: 3", "nodes:"]
    for layer in range(LAYERS):
        for i in range(WIDTH):
            nid = f"n{layer}_{i}"
            if layer == 0:
                lines.append(f"  {nid}: {{prompt: 'node={nid}'}}")
            else:
                parents = [f"n{layer - 1}_{j}" for j in range(WIDTH) if j != i]
                refs = " ".join("{{ " + p + " }}" for p in parents)
                lines.append(f"  {nid}: {{prompt: 'node={nid} {refs}', depends_on: {parents}}}")
    last = " ".join(f"{{{{ n{LAYERS - 1}_{i} }}}}" for i in range(WIDTH))
    lines.append(f"outputs: {{final: '{last}'}}")
    return "\n".join(lines) + "\n"


def _succeeded(db: Path) -> tuple[str | None, set[str]]:
    if not db.exists():
        return None, set()
    con = sqlite3.connect(db)
    try:
        row = con.execute("SELECT run_id FROM runs").fetchone()
        done = {r[0] for r in con.execute("SELECT node_id FROM nodes WHERE status = 'succeeded'")}
    except sqlite3.OperationalError:  # killed before the schema was created
        return None, set()
    finally:
        con.close()
    return (row[0] if row else None), done


def test_sigkill_at_random_moments_never_pays_twice(tmp_path: Path, server: _Server) -> None:
    """Kill the CLI 20 times at seeded random moments and resume each time: every node the
    store had as succeeded is never called again, and the final outputs are whole."""
    wf = tmp_path / "wf.yaml"
    wf.write_text(_workflow())
    catalog = tmp_path / "catalog.yaml"
    port = server.server_address[1]
    catalog.write_text(
        "models:\n"
        "  fake-mini:\n"
        "    provider: openai\n"
        "    model: fake-mini\n"
        f"    base_url: http://127.0.0.1:{port}/v1\n"
        "    api_key_env: FAKE_API_KEY\n"
        "    price: {input: 1.0, output: 2.0}\n"
        "tiers: {1: [fake-mini], 2: [fake-mini], 3: [fake-mini]}\n"
    )
    db = tmp_path / "runs.db"
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")}
    env.update(PYTHONPATH=SRC, FAKE_API_KEY="fake-key-for-tests-0000", DAGTIER_STORE=str(db))
    base = [sys.executable, "-m", "dagtier", "run", str(wf), "--store", str(db)]
    base += ["--models", str(catalog)]
    rng = random.Random(20261121)
    snapshots: list[tuple[set[str], Counter[str]]] = []
    kills = 0
    while kills < 20:
        run_id, _ = _succeeded(db)
        cmd = base + (["--resume", run_id] if run_id else [])
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        with server.lock:
            before = sum(server.answered.values())
        if rng.random() < 0.2:
            # while starting up, opening the store, beginning or resuming the run
            deadline = time.monotonic() + rng.uniform(0.05, 1.2)
        else:
            # while nodes are being called and committed: some time after this process's
            # first answer arrived
            while proc.poll() is None:
                with server.lock:
                    if sum(server.answered.values()) > before:
                        break
                time.sleep(0.002)
            deadline = time.monotonic() + rng.uniform(0.0, 0.08)
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.002)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        else:
            err = proc.stderr.read().decode() if proc.stderr else ""
            assert proc.returncode == 0, err
            pytest.fail("the run finished before 20 kills: make the workflow longer")
        if proc.stderr:
            proc.stderr.close()
        # What the store holds now is what must never be paid for again.
        _, done = _succeeded(db)
        with server.lock:
            snapshots.append((done, Counter(server.answered)))
    run_id, _ = _succeeded(db)
    assert run_id is not None
    final = subprocess.run(
        [*base, "--resume", run_id, "--json"], env=env, capture_output=True, text=True, timeout=120
    )
    assert final.returncode == 0, final.stderr
    result = json.loads(final.stdout)
    assert result["status"] == "succeeded"
    nodes = [f"n{layer}_{i}" for layer in range(LAYERS) for i in range(WIDTH)]
    for nid in nodes:
        node = result["nodes"][nid]
        assert node["status"] in ("succeeded", "cached") and node["output"] == f"answer-{nid}"
    assert result["outputs"]["final"] == " ".join(f"answer-n{LAYERS - 1}_{i}" for i in range(WIDTH))
    for done, counts in snapshots:
        for nid in done:
            assert server.answered[nid] == counts[nid], f"{nid} was called again after it succeeded"
    assert set(server.answered) == set(nodes)
    assert kills == 20
