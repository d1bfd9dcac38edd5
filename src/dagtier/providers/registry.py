"""Which Provider object serves a catalog entry, and whether it can serve it here.

Everything dagtier knows about a provider *kind* (``anthropic``, ``openai``, ``local``,
``replay``, ``python``) lives in :data:`PROVIDER_KINDS`, asked by name: how to build it, whether
it can be called on this machine (a key set, the SDK or the model installed), and whether it
is a paid hosted API. The catalog is plain data and imports none of this. SDKs are imported
on first use only.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .._exceptions import CatalogError
from .._types import TIERS, Tier
from ..catalog import Catalog, ModelEntry
from .base import Provider

if TYPE_CHECKING:
    from ..spec.models import Workflow

Availability = tuple[bool, str]
"""Whether a model can be called right now, and why (not)."""


@dataclass(frozen=True, slots=True)
class ProviderKind:
    """What dagtier knows about one provider name."""

    build: Callable[[ModelEntry], Provider]
    available: Callable[[ModelEntry], Availability]
    paid_api: bool = False
    """Its hosted endpoint (no ``base_url``) bills per token: a zero price is a mistake."""


def _sdk_available(entry: ModelEntry) -> Availability:
    if entry.api_key_env and not os.environ.get(entry.api_key_env):
        return False, f"${entry.api_key_env} is not set"
    if importlib.util.find_spec(entry.provider) is None:
        return False, f"the '{entry.provider}' package is not installed"
    return True, f"key in ${entry.api_key_env}" if entry.api_key_env else "no key needed"


def _local_available(entry: ModelEntry) -> Availability:
    from .local import local_model_status

    return local_model_status()


def _in_process(entry: ModelEntry) -> Availability:
    return True, "in-process"


def _build_anthropic(entry: ModelEntry) -> Provider:
    from .anthropic import AnthropicProvider

    return AnthropicProvider(base_url=entry.base_url, api_key_env=entry.api_key_env)


def _build_openai(entry: ModelEntry) -> Provider:
    from .openai import OpenAIProvider

    return OpenAIProvider(base_url=entry.base_url, api_key_env=entry.api_key_env)


def _build_local(entry: ModelEntry) -> Provider:
    from .local import LocalProvider

    return LocalProvider()


def _needs_object(entry: ModelEntry) -> Provider:
    raise CatalogError(
        f"model '{entry.name}' uses provider '{entry.provider}', which needs an object passed "
        f"in: run(..., providers={{'{entry.provider}': ...}})"
    )


PROVIDER_KINDS: Mapping[str, ProviderKind] = {
    "anthropic": ProviderKind(_build_anthropic, _sdk_available, paid_api=True),
    "openai": ProviderKind(_build_openai, _sdk_available, paid_api=True),
    "local": ProviderKind(_build_local, _local_available),
    "replay": ProviderKind(_needs_object, _in_process),
    "python": ProviderKind(_needs_object, _in_process),
}


class ProviderRegistry:
    """Builds one provider per (provider, base_url, key variable) and reuses it.

    ``overrides`` maps a provider name (``anthropic``, ``openai``, ``local``, ``replay``,
    ``python``) to an object to use instead of the built-in one. Whether a model is usable
    is still decided by its kind (an overridden ``anthropic`` still needs its key set).
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
            provider = self._cache[key] = PROVIDER_KINDS[entry.provider].build(entry)
        return provider

    @staticmethod
    def availability(entry: ModelEntry) -> Availability:
        """Whether ``entry`` can be called here, and why not."""
        return PROVIDER_KINDS[entry.provider].available(entry)

    @staticmethod
    def usable(catalog: Catalog, tier: Tier) -> tuple[list[ModelEntry], bool]:
        """The models dagtier will call for ``tier``, in order, and whether that is the
        catalog's local fallback (none of the tier's own models is usable, e.g. no key set)."""
        usable = [m for m in catalog.tier_models(tier) if ProviderRegistry.availability(m)[0]]
        if not usable and catalog.local_fallback:
            fb = catalog.models[catalog.local_fallback]
            if ProviderRegistry.availability(fb)[0]:
                return [fb], True
        return usable, False

    @staticmethod
    def local_fallback_tiers(catalog: Catalog, workflow: Workflow) -> list[Tier]:
        """The tiers ``workflow``'s nodes may use that the catalog's local fallback model
        serves here (see :meth:`usable`): what to tell the user before a run starts."""
        return [
            t
            for t in TIERS
            if ProviderRegistry.usable(catalog, t)[1]
            and any(workflow.node_policy(n).may_use(t) for n in workflow.nodes)
        ]

    async def aclose(self) -> None:
        for p in self._cache.values():
            await p.aclose()
        self._cache.clear()


def check_priced(entry: ModelEntry) -> None:
    """Fail loudly, before any call, for a model whose cost dagtier cannot compute.

    Raises:
        CatalogError: the entry has no price, or a paid hosted API (a paid provider kind
            with no ``base_url``) is priced at zero, which is always a catalog mistake.
    """
    price = getattr(entry, "price", None)
    if price is None:
        raise CatalogError(
            f"model '{entry.name or entry.model}' has no price",
            hint="give it price: {input: ..., output: ...} in USD per million tokens",
        )
    if (
        PROVIDER_KINDS[entry.provider].paid_api
        and entry.base_url is None
        and price.input == 0
        and price.output == 0
    ):
        raise CatalogError(
            f"model '{entry.name or entry.model}' calls {entry.provider}'s paid API but is "
            "priced at 0: its cost would be reported as free",
            hint="set its price from the provider's pricing page, or set base_url if it is "
            "a free self-hosted endpoint",
        )
