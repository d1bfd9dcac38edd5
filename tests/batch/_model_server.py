"""A slow OpenAI-compatible model on 127.0.0.1 that counts the answers it delivered.

Real HTTP for the subprocess tests: the CLI reaches it through the real openai SDK. An
answer counts as delivered (billable) once its bytes were written; a client killed or
cancelled mid-request is not billed.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CHAIN_WF = """
name: triage
inputs: {ticket: string}
nodes:
  a: {prompt: "a {{ inputs.ticket }}"}
  b: {prompt: "b {{ a }}", depends_on: [a]}
  c: {prompt: "c {{ b }}", depends_on: [b]}
outputs: {answer: "{{ c }}"}
"""
"""Three nodes in a chain; the server answers ``<prompt>``, so item ``t3``'s answer is
``<c <b <a t3>>>``."""


def chain_prompt(run_id: str, node: str) -> str:
    """The prompt CHAIN_WF's ``node`` sends in the run of item ``BATCH-INDEX``."""
    t = f"t{run_id.rsplit('-', 1)[1]}"
    return {"a": f"a {t}", "b": f"b <a {t}>", "c": f"c <b <a {t}>>"}[node]


class ModelServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, delay_s: float) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.delay_s = delay_s
        self.answered: Counter[str] = Counter()
        self.lock = threading.Lock()

    def counts(self) -> Counter[str]:
        with self.lock:
            return Counter(self.answered)

    def catalog(self, path: Path) -> Path:
        port = self.server_address[1]
        path.write_text(
            "models:\n"
            "  fake-mini:\n"
            "    provider: openai\n"
            "    model: fake-mini\n"
            f"    base_url: http://127.0.0.1:{port}/v1\n"
            "    api_key_env: FAKE_API_KEY\n"
            "    price: {input: 1.0, output: 2.0}\n"
            "tiers: {1: [fake-mini], 2: [fake-mini], 3: [fake-mini]}\n"
        )
        return path


class _Handler(BaseHTTPRequestHandler):
    server: ModelServer

    def log_message(self, format: str, *args: object) -> None:
        return None

    def do_POST(self) -> None:
        try:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            prompt = body["messages"][-1]["content"]
            time.sleep(self.server.delay_s)
            payload = json.dumps(
                {
                    "id": "chatcmpl-1",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": f"<{prompt}>"},
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
        except (OSError, ValueError):  # the client went away: nothing delivered
            return
        with self.server.lock:
            self.server.answered[prompt] += 1


@contextmanager
def model_server(delay_s: float) -> Iterator[ModelServer]:
    srv = ModelServer(delay_s)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
