"""A fault-injecting HTTP server on 127.0.0.1 speaking enough of both model APIs.

Serves ``POST /v1/messages`` (Anthropic Messages) and ``POST /v1/chat/completions`` (OpenAI
Chat Completions) from a stdlib ``ThreadingHTTPServer`` in a daemon thread. What each request
gets is decided per model (the ``model`` field of the body):

- a script: ``server.script("m", ["429:ra=2", "ok"])`` is consumed one fault per request;
- then a random fault rate: ``server.fail_rate("m", 0.3)`` draws from ``RANDOM_FAULTS``;
- otherwise a normal answer (JSON text when the request asks for structured output),
  after ``server.delay("m", 0.5)`` seconds when one is set (a model of known latency).

Faults: ``ok``, ``429`` (``:ra=S``, ``:ra-ms=MS``, ``:date=S`` for an HTTP date S seconds
ahead), ``529``, ``503``, ``500`` (``:no-retry`` adds ``x-should-retry: false``), ``400``
(``:context`` for a context-length error, ``:should-retry`` adds ``x-should-retry: true``),
``401`` (``:echo`` quotes the credential the client sent, as some providers partly do),
``slow`` (answers after ``slow_s``), ``malformed`` (a 200 with broken JSON), ``empty`` (a
200 with no text), ``drop`` (closes the connection without answering).
"""

from __future__ import annotations

import email.utils
import json
import random
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from _loopback import LoopbackServer

RANDOM_FAULTS = ("429:ra=1", "529", "503", "500", "slow", "malformed", "empty", "drop")


@dataclass
class Seen:
    path: str
    model: str
    fault: str
    headers: dict[str, str]
    body: dict[str, Any]
    at: float = field(default_factory=time.monotonic)


class FaultServer(LoopbackServer):
    def __init__(self, *, seed: int = 1234, slow_s: float = 2.0) -> None:
        self.slow_s = slow_s
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[str]] = {}
        self._rates: dict[str, float] = {}
        self._usage: dict[str, dict[str, Any]] = {}
        self._delays: dict[str, float] = {}
        self._seed = seed
        self._rng = random.Random(seed)
        self._stop = threading.Event()
        self.seen: list[Seen] = []
        self._n = 0
        super().__init__(_Handler, fs=self)

    # -- control
    def stop(self) -> None:
        self._stop.set()
        super().stop()

    def script(self, model: str, faults: list[str]) -> None:
        with self._lock:
            self._scripts.setdefault(model, deque()).extend(faults)

    def fail_rate(self, model: str, rate: float) -> None:
        with self._lock:
            self._rates[model] = rate

    def delay(self, model: str, seconds: float) -> None:
        """Every answer of ``model`` (not its faults) comes ``seconds`` after the request."""
        with self._lock:
            self._delays[model] = seconds

    def set_usage(self, model: str, usage: dict[str, Any]) -> None:
        with self._lock:
            self._usage[model] = usage

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
            self._rates.clear()
            self._usage.clear()
            self._delays.clear()
            self.seen.clear()
            self._n = 0
            self._rng = random.Random(self._seed)
        self.slow_s = 2.0

    def requests_for(self, model: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.model == model]

    # -- used by the handler
    def _next(self, path: str, model: str, headers: dict[str, str], body: dict[str, Any]) -> str:
        with self._lock:
            self._n += 1
            script = self._scripts.get(model)
            if script:
                fault = script.popleft()
            elif self._rng.random() < self._rates.get(model, 0.0):
                fault = self._rng.choice(RANDOM_FAULTS)
            else:
                fault = "ok"
            self.seen.append(Seen(path, model, fault, headers, body))
            return fault

    def _req_id(self) -> str:
        with self._lock:
            return f"req_{self._n:04d}"


class _Handler(BaseHTTPRequestHandler):
    fs: FaultServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        path = self.path.split("?")[0]
        anthropic = path.endswith("/messages")
        if not (anthropic or path.endswith("/chat/completions")):
            self._send(404, {"error": {"message": f"no route {path}"}})
            return
        model = str(body.get("model", ""))
        headers = {k.lower(): v for k, v in self.headers.items()}
        fault = self.fs._next(path, model, headers, body)
        kind, _, arg = fault.partition(":")
        rid = self.fs._req_id()
        extra = {"request-id" if anthropic else "x-request-id": rid}
        if kind == "drop":
            self.close_connection = True
            return  # no response at all: the client sees the connection close
        if kind == "slow":
            if self.fs._stop.wait(self.fs.slow_s):
                return
            kind = "ok"
        if kind == "malformed":
            self._send_raw(200, b'{"id": "broken", "choices": [{"message": ', extra)
            return
        if kind in ("ok", "empty"):
            if self.fs._stop.wait(self.fs._delays.get(model, 0.0)):
                return
            answer = self._answer(body, model, anthropic, empty=kind == "empty")
            if arg == "length":
                answer["choices"][0]["finish_reason"] = "length"
            self._send(200, answer, extra)
            return
        status = int(kind)
        if arg.startswith("ra="):
            extra["retry-after"] = arg[3:]
        elif arg.startswith("ra-ms="):
            extra["retry-after-ms"] = arg[6:]
        elif arg.startswith("date="):
            extra["retry-after"] = email.utils.formatdate(time.time() + float(arg[5:]), usegmt=True)
        elif arg == "no-retry":
            extra["x-should-retry"] = "false"
        elif arg == "should-retry":
            extra["x-should-retry"] = "true"
        message = {
            400: "invalid request",
            401: "invalid x-api-key",
            429: "rate limit exceeded",
            500: "internal error",
            503: "service unavailable",
            529: "Overloaded",
        }.get(status, "error")
        if arg == "context":
            message = "prompt is too long: 250000 tokens > 200000 maximum"
        if arg == "echo":
            sent = headers.get("x-api-key") or headers.get("authorization", "")
            message = f"Incorrect API key provided: {sent}"
        if anthropic:
            err = {"type": "error", "error": {"type": "api_error", "message": message}}
        else:
            err = {"error": {"message": message, "type": "error", "code": None}}
        self._send(status, err, extra)

    def _answer(self, body: dict[str, Any], model: str, anthropic: bool, *, empty: bool) -> Any:
        structured = bool(body.get("response_format") or body.get("output_config"))
        text = "" if empty else (json.dumps({"answer": "ok"}) if structured else f"ok from {model}")
        usage = self.fs._usage.get(model)
        if anthropic:
            return {
                "id": "msg_0001",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [] if empty else [{"type": "text", "text": text}],
                "stop_reason": "end_turn",
                "stop_sequence": None,
                "usage": usage or {"input_tokens": 10, "output_tokens": 5},
            }
        return {
            "id": "chatcmpl-0001",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
            "usage": usage or {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15},
        }

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(payload).encode(), headers)

    def _send_raw(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
        try:
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass  # the client gave up (timeout): nothing to do
