"""Fixtures for the core tests (spec, graph, executor, CLI, benches' shapes).

The scheduling tests run workflows on ``PythonProvider``: an in-process model function is
the honest tool for testing the scheduler, because the test decides exactly when each
"model" answers (anyio Events), which no real provider allows.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

import dagtier
from dagtier.providers import Gateway, ProviderRegistry, PythonProvider


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def python_catalog() -> dagtier.Catalog:
    """Tier 1, 2 and 3 each served by its own zero-priced in-process model."""
    price = {"input": 1.0, "output": 2.0}
    return dagtier.catalog_from_dict(
        {
            "models": {
                f"fn{t}": {"provider": "python", "model": f"fn-t{t}", "price": price}
                for t in (1, 2, 3)
            },
            "tiers": {1: ["fn1"], 2: ["fn2"], 3: ["fn3"]},
        }
    )


def gateway_for(fn: Callable[..., Any]) -> Gateway:
    """A gateway whose every tier calls ``fn(model, request)``."""
    return Gateway(python_catalog(), ProviderRegistry({"python": PythonProvider(fn)}))
