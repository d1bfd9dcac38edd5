"""The real embedded model: in-process, and over loopback HTTP through the real SDKs.

Tests assert structure (valid JSON that matches the schema), never wording.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import jsonschema
import pytest

from dagtier.catalog import ModelEntry, default_catalog
from dagtier.providers import CompletionRequest, Gateway, ProviderRegistry
from dagtier.providers.anthropic import AnthropicProvider
from dagtier.providers.local import LocalModelServer, LocalProvider, _loaded, local_model_status
from dagtier.providers.openai import OpenAIProvider

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.slow,
    pytest.mark.skipif(not local_model_status()[0], reason=local_model_status()[1]),
]

SCHEMA = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}
TEXTS = [
    "Alice Martin is 31 years old and lives in Lyon.",
    "Our new colleague, Bob Chen (age 45), starts on Monday.",
]


def _request(text: str) -> CompletionRequest:
    return CompletionRequest.from_prompt(
        f"Extract the person's name and age as JSON.\n\nText: {text}",
        system="You extract fields from text.",
        json_schema=SCHEMA,
        max_tokens=64,
        temperature=0.0,
    )


@pytest.fixture(scope="module")
def llama_http() -> Iterator[LocalModelServer]:
    with LocalModelServer(n_ctx=2048) as server:
        yield server


def _entry(provider: str, base_url: str) -> ModelEntry:
    return ModelEntry(
        name=f"smollm2-over-{provider}",
        provider=provider,  # type: ignore[arg-type]
        model="smollm2-135m-instruct",
        base_url=base_url,
        api_key_env="DAGTIER_TEST_LLAMA_KEY",
        price={"input": 0, "output": 0},  # type: ignore[arg-type]
    )


async def test_openai_sdk_gets_schema_valid_json_from_the_real_model_over_loopback(
    llama_http: LocalModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Structured output through the real openai SDK and HTTP validates against its schema."""
    monkeypatch.setenv("DAGTIER_TEST_LLAMA_KEY", llama_http.api_key)
    entry = _entry("openai", llama_http.openai_base_url)
    provider = OpenAIProvider(base_url=entry.base_url, api_key_env="DAGTIER_TEST_LLAMA_KEY")
    for text in TEXTS:
        c = await provider.complete(entry, _request(text))
        jsonschema.validate(json.loads(c.text), SCHEMA)
        assert c.usage.input_tokens + c.usage.cache_read_tokens > 0
        assert c.usage.output_tokens > 0
        assert c.model == "smollm2-135m-instruct"
    await provider.aclose()


async def test_anthropic_sdk_talks_to_the_real_model_over_loopback(
    llama_http: LocalModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real anthropic SDK gets a completion with usage from llama.cpp's /v1/messages.

    llama.cpp's Messages route drops ``output_config``, so only the free-text path is
    asserted here; structured output from llama.cpp goes through Chat Completions.
    """
    monkeypatch.setenv("DAGTIER_TEST_LLAMA_KEY", llama_http.api_key)
    entry = _entry("anthropic", llama_http.base_url)
    provider = AnthropicProvider(base_url=entry.base_url, api_key_env="DAGTIER_TEST_LLAMA_KEY")
    c = await provider.complete(
        entry,
        CompletionRequest.from_prompt(
            "Name three colours.", system="Answer briefly.", max_tokens=24, temperature=0.0
        ),
    )
    await provider.aclose()
    assert c.text.strip()
    assert c.usage.input_tokens + c.usage.cache_read_tokens > 0
    assert 0 < c.usage.output_tokens <= 24
    assert c.meta["finish_reason"] in ("end_turn", "max_tokens")


async def test_wrong_key_on_loopback_is_an_auth_error(
    llama_http: LocalModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loopback server rejects a wrong key with 401, mapped to AuthError, not retried."""
    from dagtier._exceptions import AuthError

    monkeypatch.setenv("DAGTIER_TEST_LLAMA_KEY", "sk-wrong-key-0123456789")
    entry = _entry("openai", llama_http.openai_base_url)
    provider = OpenAIProvider(base_url=entry.base_url, api_key_env="DAGTIER_TEST_LLAMA_KEY")
    with pytest.raises(AuthError) as info:
        await provider.complete(entry, _request(TEXTS[0]))
    await provider.aclose()
    assert not info.value.retryable
    assert "sk-wrong-key-0123456789" not in str(info.value)


async def test_local_provider_in_process_extracts_schema_valid_json() -> None:
    """The embedded model answers in-process, free, marked local, with valid JSON."""
    catalog = default_catalog()
    entry = catalog.model("local-smollm2")
    provider = LocalProvider(n_ctx=2048)
    gateway = Gateway(catalog, ProviderRegistry({"local": provider}))
    start = time.perf_counter()
    for text in TEXTS:
        c = await provider.complete(entry, _request(text))
        jsonschema.validate(json.loads(c.text), SCHEMA)
        assert c.meta["local"] is True
        assert entry.cost(c.usage) == 0.0
    elapsed = time.perf_counter() - start
    assert elapsed < 30
    # Free-text generation works too, and a long one reports its speed.
    long = await provider.complete(
        entry, CompletionRequest.from_prompt("Write a short story about a cat.", max_tokens=64)
    )
    assert long.text.strip() and long.usage.output_tokens > 0
    print(
        f"\nlocal model: {long.meta['tokens_per_s']:.0f} tokens/s over "
        f"{long.usage.output_tokens} tokens"
    )
    await gateway.registry.aclose()
    await provider.aclose()


async def test_local_provider_maps_context_overflow_and_bad_schema() -> None:
    """A prompt over the context window and an invalid schema are non-retryable errors."""
    from dagtier._exceptions import BadRequest, ContextTooLong

    entry = default_catalog().model("local-smollm2")
    provider = LocalProvider(n_ctx=256)
    with pytest.raises(ContextTooLong) as info:
        await provider.complete(entry, CompletionRequest.from_prompt("word " * 600))
    assert not info.value.retryable
    bad = CompletionRequest.from_prompt(
        "hi", json_schema={"type": "object", "properties": {"a": {"type": "nonsense"}}}
    )
    with pytest.raises(BadRequest):
        await provider.complete(entry, bad)
    await provider.aclose()


# A grammar that cannot end before 1,000 numbers: the model writes until max_tokens
# unless it is stopped.
ENDLESS = {"type": "array", "items": {"type": "integer"}, "minItems": 1000}
ENDLESS_TOKENS = 2000


def _local_gateway(provider: LocalProvider) -> Gateway:
    from _catalog import make_catalog

    catalog = make_catalog(
        {1: ["local"]},
        {
            "local": {
                "provider": "local",
                "model": "smollm2-135m-instruct",
                "price": {"input": 0, "output": 0},
                "context_window": 2048,
            }
        },
    )
    return Gateway(catalog, ProviderRegistry({"local": provider}))


def _endless(timeout_s: float) -> CompletionRequest:
    return CompletionRequest.from_prompt(
        "List the numbers from 1 to 5000.",
        json_schema=ENDLESS,
        max_tokens=ENDLESS_TOKENS,
        temperature=0.0,
        timeout_s=timeout_s,
    )


def _slot() -> dict[str, Any]:
    """llama.cpp's view of its one slot: is it generating, and how many tokens so far."""
    import http.client

    model = _loaded[2048]
    conn = http.client.HTTPConnection(model.host, model.port, timeout=30)
    conn.request("GET", "/slots", headers={"Authorization": f"Bearer {model.api_key}"})
    slot: dict[str, Any] = json.loads(conn.getresponse().read())[0]
    conn.close()
    return slot


async def test_a_timed_out_local_generation_stops_and_is_not_retried() -> None:
    """A local call past its timeout fails after one try (a retry would take as long again)
    and llama.cpp stops generating: its slot goes idle long before max_tokens."""
    import anyio

    from dagtier._exceptions import ModelUnavailable, ProviderTimeout

    provider = LocalProvider(n_ctx=2048)
    gateway = _local_gateway(provider)
    with pytest.raises(ModelUnavailable) as info:
        await gateway.call(1, _endless(timeout_s=1.0))
    cause = info.value.__cause__
    assert isinstance(cause, ProviderTimeout) and not cause.retryable
    assert "1 failed tries" in str(info.value)
    decoded = []
    while (slot := _slot())["is_processing"]:
        decoded.append(slot["next_token"][0]["n_decoded"])
        await anyio.sleep(0.05)
    # a generation left running would be seen counting up towards max_tokens
    assert max(decoded, default=0) < ENDLESS_TOKENS // 2, decoded


async def test_a_local_call_waiting_for_its_turn_is_not_timed_out() -> None:
    """Calls queued behind another generation each get their whole timeout for their own
    generation: the first one's time is not counted against the others."""
    import anyio

    from dagtier._exceptions import ModelUnavailable

    provider = LocalProvider(n_ctx=2048)
    gateway = _local_gateway(provider)
    await provider.prepare(gateway.catalog.model("local"))  # loaded: the endless call goes first
    short = CompletionRequest.from_prompt("Say hello.", max_tokens=8, temperature=0.0)
    outcomes: list[str] = []

    async def endless() -> None:
        with pytest.raises(ModelUnavailable):
            await gateway.call(1, _endless(timeout_s=3.0))
        outcomes.append("endless timed out")

    async def queued() -> None:
        await anyio.wait_all_tasks_blocked()
        # asks while the endless call holds the model for its 3 s: had that wait counted,
        # this call's 2.9 s would run out before it got the model
        assert _loaded[2048].turn.locked()
        r = await gateway.call(1, replace(short, timeout_s=2.9))
        outcomes.append(f"queued answered {r.completion.usage.output_tokens > 0}")

    async with anyio.create_task_group() as tg:
        tg.start_soon(endless)
        tg.start_soon(queued)
    assert outcomes == ["endless timed out", "queued answered True"]


async def test_runs_share_one_model_loaded_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two dagtier.run() calls falling back to the local model load it once per process,
    in a worker thread: the caller's event loop keeps running while it loads."""

    import dagtier
    from dagtier.providers import local

    for var in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    window = default_catalog().model("local-smollm2").context_window
    monkeypatch.delitem(local._loaded, window, raising=False)  # this test watches the load
    loads: list[int] = []
    loaded_in: list[threading.Thread] = []
    real_load = local.load_server

    def counted_load(**kwargs: Any) -> Any:
        loads.append(kwargs["n_ctx"])
        loaded_in.append(threading.current_thread())
        return real_load(**kwargs)

    monkeypatch.setattr(local, "load_server", counted_load)
    wf = dagtier.parse_workflow(
        "name: hi\nnodes:\n  a:\n    prompt: Say hi.\n    max_tokens: 4\n"
        "    policy: {kind: static, tier: 1}\n"
    )
    with pytest.warns(dagtier.LocalFallbackWarning):
        first = await dagtier.run(wf, {}, store=dagtier.MemoryStore())
        second = await dagtier.run(wf, {}, store=dagtier.MemoryStore())
    assert first.ok and second.ok
    assert first["a"].model == second["a"].model == "local-smollm2"
    assert loads == [window]
    # loaded in a worker thread, so the caller's loop runs on meanwhile (whether it gets the
    # GIL during the load is up to the model library, so the test does not time it)
    assert loaded_in and loaded_in[0] is not threading.main_thread()
