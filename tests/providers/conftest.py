"""Fixtures for the provider tests: a fault-injecting loopback server, a fake clock, fake keys."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import anyio.lowlevel
import pytest
from _fault_server import FaultServer

from dagtier.catalog import Catalog, catalog_from_dict

ANTHROPIC_KEY = "sk-ant-test-SECRET123abcdefXYZ"
OPENAI_KEY = "sk-test-SECRET456ghijklmnoPQR"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def _fault_server_session() -> Iterator[FaultServer]:
    server = FaultServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def fault_server(_fault_server_session: FaultServer) -> FaultServer:
    """The session's fault server with no scripts, no fault rates and an empty request log."""
    _fault_server_session.reset()
    return _fault_server_session


@pytest.fixture
def fake_keys(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    monkeypatch.setenv("TEST_ANTHROPIC_KEY", ANTHROPIC_KEY)
    monkeypatch.setenv("TEST_OPENAI_KEY", OPENAI_KEY)
    return {"anthropic": ANTHROPIC_KEY, "openai": OPENAI_KEY}


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


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


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
