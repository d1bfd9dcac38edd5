"""Fixtures for the provider tests: a fault-injecting loopback server, a fake clock, fake keys."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _fault_server import FaultServer
from _helpers import ANTHROPIC_KEY, OPENAI_KEY, FakeClock


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


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()
