"""Helpers for the core tests (imported by name: tests/core is on sys.path)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import dagtier
from dagtier.providers import Gateway, ProviderRegistry, PythonProvider


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
