"""End to end through the real command: API keys never reach any output or file.

``dagtier run`` runs in a subprocess against a tiny OpenAI-compatible server on 127.0.0.1
with fake keys in its environment; one run succeeds, one is refused (401) by a server that
quotes the key back, as real ones do. Then stdout, stderr, the JSON log, the reports and
the store file are searched for the keys.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"
GOOD_KEY = "sk-fake-good-0123456789abcdef"
BAD_KEY = "sk-fake-revoked-9876543210fedcba"
ANTHROPIC_KEY = "sk-ant-fake-api03-abcdefghijklmnop"
KEYS = (GOOD_KEY, BAD_KEY, ANTHROPIC_KEY)

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("dagtier.providers.openai") is None,
    reason="needs the OpenAI-compatible provider (providers branch) to call a real HTTP server",
)


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        key = self.headers.get("authorization", "").removeprefix("Bearer ")
        if key != GOOD_KEY:
            # like OpenAI: the error quotes (part of) the key it refused
            payload = {"error": {"message": f"Incorrect API key provided: {key}.",
                                 "type": "invalid_request_error", "code": "invalid_api_key"}}  # fmt: skip
            self._send(401, payload)
            return
        prompt = body["messages"][-1]["content"]
        self._send(
            200,
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": f"ok: {prompt[:20]}"}}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16},
            },
        )  # fmt: skip

    def _send(self, status: int, payload: dict[str, object]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *_: object) -> None:  # keep the test output clean
        return


@pytest.fixture
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()


def _files(tmp_path: Path, base_url: str) -> tuple[Path, Path]:
    models = "\n".join(
        f"  fake-{t}:\n    provider: openai\n    model: fake-model-{t}\n"
        f"    base_url: {base_url}\n    api_key_env: OPENAI_API_KEY\n"
        f"    price: {{input: {t}.0, output: {2 * t}.0}}"
        for t in (1, 2, 3)
    )
    catalog = tmp_path / "models.yaml"
    catalog.write_text(
        f"models:\n{models}\ntiers:\n  1: [fake-1]\n  2: [fake-2]\n  3: [fake-3]\n",
        encoding="utf-8",
    )
    wf = tmp_path / "wf.yaml"
    wf.write_text(
        "name: tiny\ninputs: {text: string}\nnodes:\n"
        "  first:\n    prompt: 'Echo {{ inputs.text }}'\n"
        "  second:\n    prompt: 'Again {{ first }}'\n    depends_on: [first]\n"
        "    policy: {kind: cascade, start: 1, max: 2}\n",
        encoding="utf-8",
    )
    return catalog, wf


def _dagtier(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dagtier", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_no_key_reaches_any_output(server: str, tmp_path: Path) -> None:
    """Keys from the environment appear in no stdout, stderr, log, report or store file."""
    catalog, wf = _files(tmp_path, server)
    store = tmp_path / "runs.db"
    env = {k: v for k, v in os.environ.items() if not k.endswith(("_API_KEY", "_TOKEN"))} | {
        "PYTHONPATH": str(SRC),
        "ANTHROPIC_API_KEY": ANTHROPIC_KEY,
        "DAGTIER_STORE": str(store),
        "NO_COLOR": "1",
    }
    outputs: list[str] = []
    log = tmp_path / "log.jsonl"
    common = ["run", str(wf), "--models", str(catalog), "-i", "text=hello", "--log-json", str(log)]

    ok = _dagtier([*common, "-v"], env | {"OPENAI_API_KEY": GOOD_KEY}, tmp_path)
    outputs += [ok.stdout, ok.stderr]
    assert ok.returncode == 0, ok.stderr
    assert "second" in ok.stdout

    refused = _dagtier([*common, "--json"], env | {"OPENAI_API_KEY": BAD_KEY}, tmp_path)
    outputs += [refused.stdout, refused.stderr]
    assert refused.returncode != 0
    assert "401" in refused.stdout + refused.stderr  # the failure is explained...
    assert "[redacted]" in (refused.stdout + refused.stderr).lower()  # ...with the key cut

    lines = [json.loads(line) for line in log.read_text(encoding="utf-8").splitlines()]
    assert {"run started", "attempt", "node finished", "run finished"} <= {
        e["event"] for e in lines
    }
    outputs.append(log.read_text(encoding="utf-8"))

    if importlib.util.find_spec("dagtier.store.sqlite") is not None:
        for fmt in ("table", "json", "csv", "html"):
            rep = _dagtier(["report", "--last", "--format", fmt], env, tmp_path)
            assert rep.returncode == 0, rep.stderr
            outputs += [rep.stdout, rep.stderr]
        for path in tmp_path.iterdir():
            if path.name.startswith("runs.db"):  # the store and its WAL
                outputs.append(path.read_bytes().decode("latin-1"))

    everything = "\n".join(outputs)
    for key in KEYS:
        assert key not in everything
        assert key[8:24] not in everything  # nor a recognisable part of it
