"""Shared fixtures. Async tests run on asyncio through the anyio plugin."""

from __future__ import annotations

import pytest
from hypothesis import settings

# No timed asserts in tests: hypothesis's per-example deadline (200 ms) is one, and fails at
# random on a machine shared by other jobs.
settings.register_profile("dagtier", deadline=None)
settings.load_profile("dagtier")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _own_default_store(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command run without --store writes to the test's own file, never to the user data
    directory's store (whose schema another checkout of dagtier may have moved on)."""
    monkeypatch.setenv("DAGTIER_STORE", str(tmp_path_factory.mktemp("store") / "dagtier.db"))
