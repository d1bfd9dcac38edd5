"""A scripted tool-calling model on 127.0.0.1, speaking both APIs' native tool formats.

``POST /v1/messages`` answers in Anthropic's form (``tool_use`` blocks, ``stop_reason:
tool_use``) and ``POST /v1/chat/completions`` in OpenAI's (``tool_calls`` with JSON-text
``arguments``, ``finish_reason: tool_calls``). Per model (the body's ``model``), each request
takes the next scripted turn:

- ``calls(("read_file", {"path": "a.py"}), ...)``: one or more tool calls (a ``str``
  argument is sent verbatim: a malformed call);
- ``"some text"``: a final answer.

Once a model's script is used up it repeats its last turn (a model stuck in a loop).
Every request body is kept, so a test can read what the client sent back (tool results).
"""

from __future__ import annotations

import itertools
import json
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from _loopback import LoopbackServer

Call = tuple[str, "dict[str, Any] | str"]


@dataclass(frozen=True)
class Calls:
    calls: tuple[Call, ...]


def calls(*items: Call) -> Calls:
    return Calls(tuple(items))


Turn = Calls | str

USAGE_IN, USAGE_OUT = 100, 20
"""Tokens every answer reports (input, output)."""


class ToolServer(LoopbackServer):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[Turn]] = {}
        self._last: dict[str, Turn] = {}
        self._ids = itertools.count(1)
        self.bodies: list[tuple[str, dict[str, Any]]] = []
        super().__init__(_Handler, server_ref=self)

    def script(self, model: str, turns: list[Turn]) -> None:
        with self._lock:
            self._scripts[model] = deque(turns)

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
            self._last.clear()
            self.bodies.clear()

    def requests_for(self, model: str) -> list[dict[str, Any]]:
        with self._lock:
            return [b for _, b in self.bodies if b.get("model") == model]

    def _next(self, path: str, body: dict[str, Any]) -> Turn:
        model = str(body.get("model"))
        with self._lock:
            self.bodies.append((path, body))
            script = self._scripts.get(model)
            if script:
                self._last[model] = script.popleft()
            return self._last.get(model, "(no script)")

    def call_id(self) -> str:
        return f"call_{next(self._ids)}"


class _Handler(BaseHTTPRequestHandler):
    server_ref: ToolServer

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length", 0))
        body = json.loads(self.rfile.read(length) or b"{}")
        turn = self.server_ref._next(self.path, body)
        if self.path.endswith("/messages"):
            out = self._anthropic(body, turn)
        else:
            out = self._openai(body, turn)
        data = json.dumps(out).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.send_header("request-id", "req_tool")
        self.end_headers()
        self.wfile.write(data)

    def _anthropic(self, body: dict[str, Any], turn: Turn) -> dict[str, Any]:
        if isinstance(turn, str):
            content: list[dict[str, Any]] = [{"type": "text", "text": turn}]
            stop = "end_turn"
        else:
            content = [
                {
                    "type": "tool_use",
                    "id": self.server_ref.call_id(),
                    "name": name,
                    # the Messages API always sends parsed input: a "malformed" call there is
                    # one whose input does not fit the schema
                    "input": args if isinstance(args, dict) else {"raw": args},
                }
                for name, args in turn.calls
            ]
            stop = "tool_use"
        return {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": body.get("model"),
            "content": content,
            "stop_reason": stop,
            "usage": {"input_tokens": USAGE_IN, "output_tokens": USAGE_OUT},
        }

    def _openai(self, body: dict[str, Any], turn: Turn) -> dict[str, Any]:
        if isinstance(turn, str):
            message: dict[str, Any] = {"role": "assistant", "content": turn}
            finish = "stop"
        else:
            message = {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": self.server_ref.call_id(),
                        "type": "function",
                        "function": {
                            "name": name,
                            "arguments": args if isinstance(args, str) else json.dumps(args),
                        },
                    }
                    for name, args in turn.calls
                ],
            }
            finish = "tool_calls"
        return {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 0,
            "model": body.get("model"),
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": USAGE_IN,
                "completion_tokens": USAGE_OUT,
                "total_tokens": USAGE_IN + USAGE_OUT,
            },
        }
