"""Store tests run on asyncio through the anyio plugin, and each contract test once per
store: a real SQLite file, a real PostgreSQL database (a throwaway cluster; skipped with the
reason where PostgreSQL is not installed) and, where the contract applies, MemoryStore."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from dagtier.store import MemoryStore, open_store


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(params=["sqlite", "postgres", "memory"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Any]:
    """An open store of each kind, closed after the test."""
    if request.param == "memory":
        yield MemoryStore()
        return
    where = (
        str(tmp_path / "runs.db")
        if request.param == "sqlite"
        else request.getfixturevalue("postgres_url")
    )
    opened = open_store(where)
    yield opened
    await opened.aclose()
