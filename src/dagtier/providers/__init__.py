"""Providers: one module per provider behind one small async interface.

The SDK-backed providers (``anthropic``, ``openai``, ``local``) are not imported here: the
registry imports each on first use, so ``import dagtier`` stays fast.
"""

from __future__ import annotations

from ._resilience import BreakerPolicy, Clock, RetryPolicy, SystemClock
from .base import Completion, CompletionRequest, Message, Provider
from .gateway import Budget, CallContext, CallResult, Gateway
from .python import PythonProvider
from .registry import ProviderRegistry, check_priced

__all__ = [
    "BreakerPolicy",
    "Budget",
    "CallContext",
    "CallResult",
    "Clock",
    "Completion",
    "CompletionRequest",
    "Gateway",
    "Message",
    "Provider",
    "ProviderRegistry",
    "PythonProvider",
    "RetryPolicy",
    "SystemClock",
    "check_priced",
]
