"""Helpers for the core tests (imported by name: tests/core is on sys.path)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from _catalog import one_per_tier

from dagtier.providers import Gateway, ProviderRegistry, PythonProvider


def gateway_for(fn: Callable[..., Any]) -> Gateway:
    """A gateway whose every tier calls ``fn(model, request)``."""
    return Gateway(one_per_tier("fn"), ProviderRegistry({"python": PythonProvider(fn)}))
