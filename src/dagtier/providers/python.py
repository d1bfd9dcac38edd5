"""A provider that calls a Python function: for embedding dagtier in programs, tests and benches.

The function gets the catalog entry and the request and returns the text (or a full
:class:`Completion`). It may be sync or async. Token counts, when the function returns only
text, are estimated at 4 characters a token so that cost accounting still works.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Union

from ..catalog import ModelEntry, Usage
from .base import Completion, CompletionRequest

PythonModelFn = Callable[
    [ModelEntry, CompletionRequest],
    Union[str, Completion, Awaitable[str], Awaitable[Completion]],  # noqa: UP007
]


class PythonProvider:
    def __init__(self, fn: PythonModelFn) -> None:
        self._fn = fn
        self._is_async = inspect.iscoroutinefunction(fn)

    async def complete(self, model: ModelEntry, request: CompletionRequest) -> Completion:
        start = time.perf_counter()
        out = self._fn(model, request)
        if type(out) is str:  # the common case first: no inspection per call
            text = out
        else:
            if self._is_async or inspect.isawaitable(out):
                out = await out  # type: ignore[misc]
            if isinstance(out, Completion):
                return out
            text = str(out)
        usage = Usage(input_tokens=request.prompt_chars // 4 + 1, output_tokens=len(text) // 4 + 1)
        return Completion(text, model.model, usage, time.perf_counter() - start)

    async def aclose(self) -> None:
        return None
