"""Batch tests run on asyncio through the anyio plugin."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def _reset_structlog() -> Iterator[None]:
    """The CLI configures structlog globally when run in-process: undo it after each test."""
    yield
    structlog.reset_defaults()
