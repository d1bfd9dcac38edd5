"""Helpers shared by the provider tests (kept out of conftest.py so tests can import them)."""

from __future__ import annotations

from typing import Any

import anyio.lowlevel

from dagtier.catalog import Catalog, catalog_from_dict

ANTHROPIC_KEY = "sk-ant-test-SECRET123abcdefXYZ"
OPENAI_KEY = "sk-test-SECRET456ghijklmnoPQR"


class FakeClock:
    """Virtual time: ``sleep`` records the delay and advances time at once."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await anyio.lowlevel.checkpoint()

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_catalog(
    url: str,
    tiers: dict[int, list[str]],
    *,
    models: dict[str, dict[str, Any]] | None = None,
) -> Catalog:
    """A catalog whose models live on the fault server: ``a-*`` names speak Anthropic, the rest
    OpenAI. Prices are Haiku's and GPT-4o-mini's unless ``models`` says otherwise."""
    names = {n for ns in tiers.values() for n in ns}
    defs: dict[str, dict[str, Any]] = {}
    for name in names:
        anthropic = name.startswith("a-")
        defs[name] = {
            "provider": "anthropic" if anthropic else "openai",
            "model": name,
            "base_url": url if anthropic else url + "/v1",
            "api_key_env": "TEST_ANTHROPIC_KEY" if anthropic else "TEST_OPENAI_KEY",
            "price": (
                {"input": 1.0, "output": 5.0, "cache_read": 0.10, "cache_write": 1.25}
                if anthropic
                else {"input": 0.15, "output": 0.60, "cache_read": 0.075}
            ),
        }
    for name, extra in (models or {}).items():
        defs.setdefault(name, {}).update(extra)
    return catalog_from_dict({"models": defs, "tiers": tiers})
