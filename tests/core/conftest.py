"""Fixtures for the core tests (spec, graph, executor, CLI, benches' shapes).

The scheduling tests run workflows on ``PythonProvider``: an in-process model function is
the honest tool for testing the scheduler, because the test decides exactly when each
"model" answers (anyio Events), which no real provider allows.
"""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
