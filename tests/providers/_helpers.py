"""Helpers shared by the provider tests (kept out of conftest.py so tests can import them)."""

from __future__ import annotations

import anyio.lowlevel
from _catalog import loopback_catalog as make_catalog  # noqa: F401 (the providers tests' name)

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
