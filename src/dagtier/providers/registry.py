"""Which Provider object serves a catalog entry. SDKs are imported on first use only."""

from __future__ import annotations

from collections.abc import Mapping

from .._exceptions import CatalogError
from ..catalog import ModelEntry
from .base import Provider


class ProviderRegistry:
    """Builds one provider per (provider, base_url, key variable) and reuses it.

    ``overrides`` maps a provider name (``anthropic``, ``openai``, ``local``, ``replay``,
    ``python``) to an object to use instead of the built-in one.
    """

    def __init__(self, overrides: Mapping[str, Provider] | None = None) -> None:
        self._overrides = dict(overrides or {})
        self._cache: dict[tuple[str, str | None, str | None], Provider] = {}

    def get(self, entry: ModelEntry) -> Provider:
        if entry.provider in self._overrides:
            return self._overrides[entry.provider]
        key = (entry.provider, entry.base_url, entry.api_key_env)
        provider = self._cache.get(key)
        if provider is None:
            provider = self._cache[key] = _build(entry)
        return provider

    async def aclose(self) -> None:
        for p in self._cache.values():
            await p.aclose()
        self._cache.clear()


def _build(entry: ModelEntry) -> Provider:
    if entry.provider == "anthropic":
        from .anthropic import AnthropicProvider

        return AnthropicProvider(base_url=entry.base_url, api_key_env=entry.api_key_env)
    if entry.provider == "openai":
        from .openai import OpenAIProvider

        return OpenAIProvider(base_url=entry.base_url, api_key_env=entry.api_key_env)
    if entry.provider == "local":
        from .local import LocalProvider

        return LocalProvider()
    raise CatalogError(
        f"model '{entry.name}' uses provider '{entry.provider}', which needs an object passed "
        f"in: run(..., providers={{'{entry.provider}': ...}})"
    )
