"""Providers: one module per provider behind one small async interface."""

from __future__ import annotations

from .base import Completion, CompletionRequest, Message, Provider
from .gateway import CallResult, Gateway, RetryPolicy
from .python import PythonProvider
from .registry import ProviderRegistry

__all__ = [
    "CallResult",
    "Completion",
    "CompletionRequest",
    "Gateway",
    "Message",
    "Provider",
    "ProviderRegistry",
    "PythonProvider",
    "RetryPolicy",
]
