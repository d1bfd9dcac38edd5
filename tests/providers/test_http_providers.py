"""The Anthropic and OpenAI providers through the real SDKs against a loopback fault server."""

from __future__ import annotations

import json
import logging
import traceback

import pytest
from _fault_server import FaultServer
from _helpers import FakeClock, make_catalog

from dagtier._exceptions import (
    AuthError,
    BadRequest,
    ContextTooLong,
    Overloaded,
    ProviderConnectionError,
    ProviderError,
    ProviderResponseError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from dagtier.catalog import ModelEntry, default_catalog
from dagtier.providers import CompletionRequest, Gateway, ProviderRegistry
from dagtier.providers.anthropic import AnthropicProvider
from dagtier.providers.base import Provider
from dagtier.providers.openai import OpenAIProvider

pytestmark = pytest.mark.anyio

FAULTS = [
    ("429:ra=2", RateLimited, True),
    ("529", Overloaded, True),
    ("503", Overloaded, True),
    ("500", ServerError, True),
    ("500:no-retry", ServerError, False),
    ("400", BadRequest, False),
    ("400:context", ContextTooLong, False),
    ("400:should-retry", BadRequest, True),
    ("401", AuthError, False),
    ("slow", ProviderTimeout, True),
    ("malformed", ProviderResponseError, True),
    ("empty", ProviderResponseError, True),
    ("drop", ProviderConnectionError, True),
]


def _provider(entry: ModelEntry) -> Provider:
    if entry.provider == "anthropic":
        return AnthropicProvider(base_url=entry.base_url, api_key_env=entry.api_key_env)
    return OpenAIProvider(base_url=entry.base_url, api_key_env=entry.api_key_env)


@pytest.mark.parametrize("name", ["a-model", "o-model"])
@pytest.mark.parametrize(("fault", "cls", "retryable"), FAULTS)
async def test_each_fault_becomes_its_taxonomy_error(
    fault_server: FaultServer,
    fake_keys: dict[str, str],
    name: str,
    fault: str,
    cls: type[ProviderError],
    retryable: bool,
) -> None:
    """Every scripted fault maps to one taxonomy class with the right retryable flag."""
    fault_server.slow_s = 1.0
    entry = make_catalog(fault_server.base_url, {1: [name]}).model(name)
    provider = _provider(entry)
    fault_server.script(name, [fault])
    with pytest.raises(ProviderError) as info:
        await provider.complete(entry, CompletionRequest.from_prompt("hi", timeout_s=0.3))
    await provider.aclose()
    err = info.value
    assert type(err) is cls
    assert err.retryable is retryable
    assert err.provider == entry.provider and err.model == name
    if fault.startswith(("4", "5")):
        assert err.status_code == int(fault[:3])
        assert err.request_id is not None and err.request_id.startswith("req_")
    if fault == "429:ra=2":
        assert err.retry_after == 2.0
    assert len(fault_server.requests_for(name)) == 1, "the SDK must not retry by itself"


@pytest.mark.parametrize("name", ["a-model", "o-model"])
async def test_success_carries_text_usage_and_request_id(
    fault_server: FaultServer, fake_keys: dict[str, str], name: str
) -> None:
    """A 200 gives the text, the serving model, usage, latency and the request id."""
    entry = make_catalog(fault_server.base_url, {1: [name]}).model(name)
    provider = _provider(entry)
    c = await provider.complete(entry, CompletionRequest.from_prompt("hi", system="be brief"))
    await provider.aclose()
    assert c.text == f"ok from {name}"
    assert c.model == name
    assert c.request_id == "req_0001"
    assert c.latency_s > 0
    assert c.usage.total > 0
    body = fault_server.seen[0].body
    if name.startswith("a-"):
        assert body["system"] == "be brief"
    else:
        assert body["messages"][0] == {"role": "system", "content": "be brief"}


async def test_structured_output_requests_reach_the_wire(
    fault_server: FaultServer, fake_keys: dict[str, str]
) -> None:
    """A JSON Schema becomes output_config (Anthropic) and response_format (OpenAI)."""
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    cat = make_catalog(fault_server.base_url, {1: ["a-model", "o-model"]})
    for name in ("a-model", "o-model"):
        entry = cat.model(name)
        provider = _provider(entry)
        c = await provider.complete(
            entry, CompletionRequest.from_prompt("hi", json_schema=schema, temperature=0.0)
        )
        await provider.aclose()
        assert json.loads(c.text) == {"answer": "ok"}
    a_body, o_body = fault_server.seen[0].body, fault_server.seen[1].body
    assert a_body["output_config"] == {"format": {"type": "json_schema", "schema": schema}}
    assert "json_schema" not in a_body
    assert a_body["temperature"] == 0.0
    assert o_body["response_format"]["type"] == "json_schema"
    assert o_body["response_format"]["json_schema"]["schema"] == schema


# ---------------------------------------------------------------- golden costs

ANTHROPIC_USAGE = {
    "input_tokens": 1200,
    "cache_creation_input_tokens": 2000,
    "cache_read_input_tokens": 10000,
    "output_tokens": 500,
    "output_tokens_details": {"thinking_tokens": 200},
}
OPENAI_USAGE = {
    "prompt_tokens": 12000,
    "completion_tokens": 900,
    "total_tokens": 12900,
    "prompt_tokens_details": {"cached_tokens": 8000},
    "completion_tokens_details": {"reasoning_tokens": 400},
}


@pytest.mark.parametrize(
    ("catalog_name", "usage", "expected_usd"),
    [
        # Haiku 4.5, $/M 1 / 5 / cache read 0.10 / cache write 1.25; thinking at the output price:
        # 1200*1 + 300*5 + 10000*0.10 + 2000*1.25 + 200*5 = 7200 micro-dollars.
        ("claude-haiku-4-5", ANTHROPIC_USAGE, 0.0072),
        # Sonnet 4.6, 3 / 15 / 0.30 / 3.75: 3600 + 4500 + 3000 + 7500 + 3000.
        ("claude-sonnet-4-6", ANTHROPIC_USAGE, 0.0216),
        # o1, 15 / 60 / cached 7.50: input 12000-8000=4000, output 900-400=500, reasoning 400:
        # 4000*15 + 8000*7.5 + 500*60 + 400*60 = 174000.
        ("o1", OPENAI_USAGE, 0.174),
        # GPT-4o-mini, 0.15 / 0.60 / 0.075: 600 + 600 + 300 + 240.
        ("gpt-4o-mini", OPENAI_USAGE, 0.00174),
    ],
)
async def test_golden_cost_from_a_realistic_usage_block(
    fault_server: FaultServer,
    fake_keys: dict[str, str],
    catalog_name: str,
    usage: dict[str, object],
    expected_usd: float,
) -> None:
    """The usage block of a realistic response, at catalog prices, gives the exact dollars."""
    base = default_catalog().model(catalog_name)
    anthropic = base.provider == "anthropic"
    entry = base.model_copy(
        update={
            "base_url": fault_server.base_url if anthropic else fault_server.base_url + "/v1",
            "api_key_env": "TEST_ANTHROPIC_KEY" if anthropic else "TEST_OPENAI_KEY",
        }
    )
    fault_server.set_usage(entry.model, usage)
    from dagtier.catalog import Catalog

    catalog = Catalog({catalog_name: entry}, {1: [catalog_name]})
    gateway = Gateway(catalog)
    result = await gateway.call(1, CompletionRequest.from_prompt("hi"))
    await gateway.registry.aclose()
    assert result.cost == pytest.approx(expected_usd, rel=1e-12, abs=0)
    u = result.completion.usage
    if anthropic:
        assert (
            u.input_tokens,
            u.output_tokens,
            u.cache_read_tokens,
            u.cache_write_tokens,
            u.reasoning_tokens,
        ) == (1200, 300, 10000, 2000, 200)
    else:
        assert (
            u.input_tokens,
            u.output_tokens,
            u.cache_read_tokens,
            u.cache_write_tokens,
            u.reasoning_tokens,
        ) == (4000, 500, 8000, 0, 400)


# ---------------------------------------------------------------- secrets


async def test_api_keys_never_appear_in_errors_reprs_or_logs(
    fault_server: FaultServer,
    fake_keys: dict[str, str],
    caplog: pytest.LogCaptureFixture,
    clock: FakeClock,
) -> None:
    """Auth errors that echo the key, bad requests and dropped calls never show a key."""
    caplog.set_level(logging.DEBUG)
    catalog = make_catalog(fault_server.base_url, {1: ["a-model", "o-model"]})
    for name in ("a-model", "o-model"):
        fault_server.script(name, ["401:echo", "400", "drop", "500"])
    registry = ProviderRegistry()
    texts: list[str] = []
    for _ in range(4):
        gateway = Gateway(catalog, registry, clock=clock)
        try:
            await gateway.call(1, CompletionRequest.from_prompt("hi"))
        except ProviderError as exc:
            texts.append(str(exc) + repr(exc))
            texts.extend(traceback.format_exception(exc))
            e: BaseException | None = exc
            while e is not None:
                texts.append(str(e) + repr(e) + repr(getattr(e, "__dict__", "")))
                e = e.__cause__ or e.__context__
    texts.append(repr(registry.get(catalog.model("a-model"))))
    texts.append(repr(registry.get(catalog.model("o-model"))))
    await registry.aclose()
    texts.append(caplog.text)
    assert any("Incorrect API key provided" in t for t in texts), "the echo fault must fire"
    blob = "\n".join(texts)
    for key in fake_keys.values():
        assert key not in blob
        assert key[-12:] not in blob  # no tail of it either


async def test_an_empty_completion_cut_by_the_token_limit_is_not_retried(
    fault_server: FaultServer, fake_keys: dict[str, str]
) -> None:
    """No text because max_tokens ran out (reasoning ate them) would repeat: not retryable."""
    entry = make_catalog(fault_server.base_url, {1: ["o-model"]}).model("o-model")
    provider = OpenAIProvider(base_url=entry.base_url, api_key_env=entry.api_key_env)
    fault_server.script("o-model", ["empty:length"])
    with pytest.raises(ProviderResponseError) as info:
        await provider.complete(entry, CompletionRequest.from_prompt("hi"))
    await provider.aclose()
    assert not info.value.retryable


@pytest.mark.parametrize("name", ["a-model", "o-model"])
async def test_a_rotated_key_is_used_without_a_restart(
    fault_server: FaultServer,
    fake_keys: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
) -> None:
    """The provider keeps one SDK client, but a key changed in the environment reaches the
    wire on the next call (a long-running app rotates keys without restarting)."""
    entry = make_catalog(fault_server.base_url, {1: [name]}).model(name)
    provider = _provider(entry)
    request = CompletionRequest.from_prompt("hi")
    await provider.complete(entry, request)
    await provider.complete(entry, request)
    assert entry.api_key_env is not None
    monkeypatch.setenv(entry.api_key_env, "sk-rotated-0123456789abcdef")
    await provider.complete(entry, request)
    await provider.aclose()

    def sent(headers: dict[str, str]) -> str:
        return headers.get("x-api-key") or headers.get("authorization", "")

    keys = [sent(s.headers) for s in fault_server.requests_for(name)]
    old = fake_keys["anthropic" if name.startswith("a-") else "openai"]
    assert [old in k for k in keys] == [True, True, False]
    assert "sk-rotated-0123456789abcdef" in keys[2]
