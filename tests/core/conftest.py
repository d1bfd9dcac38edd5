"""Fixtures for the core tests (spec, graph, executor, CLI, benches' shapes).

The scheduling tests run workflows on ``PythonProvider``: an in-process model function is
the honest tool for testing the scheduler, because the test decides exactly when each
"model" answers (anyio Events), which no real provider allows.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """The CLI configures structlog globally when run in-process (CliRunner): undo it after
    each test so later tests (anyone's) see structlog's defaults."""
    yield
    structlog.reset_defaults()
