"""Helpers for the core tests (imported by name: tests/core is on sys.path)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from _catalog import one_per_tier

from dagtier.catalog import Catalog
from dagtier.providers import Gateway, ProviderRegistry, PythonProvider


def python_catalog() -> Catalog:
    """Tier 1, 2 and 3 each served by its own in-process model (``fn1`` .. ``fn3``)."""
    return one_per_tier("fn", model_id="fn-t{tier}")


def gateway_for(fn: Callable[..., Any]) -> Gateway:
    """A gateway whose every tier calls ``fn(model, request)``."""
    return Gateway(python_catalog(), ProviderRegistry({"python": PythonProvider(fn)}))
