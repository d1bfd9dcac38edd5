"""Ctrl-C for the CLI: the first one stops the run cleanly, the others are ignored.

The first SIGINT cancels the run's cancel scope: the executor records the run as cancelled
with every finished node kept, and a local-model generation stops (its connection closes).
Further SIGINTs are ignored until the process exits, so that this clean-up is never torn
down halfway: with asyncio's own handler a second Ctrl-C raised KeyboardInterrupt wherever
the main thread happened to be, inside the model library included.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from types import FrameType, TracebackType
from typing import Any, TypeVar

import anyio

T = TypeVar("T")


class CtrlC:
    """``CtrlC().run(fn)`` runs ``fn`` on its own event loop, stopped cleanly by the first
    Ctrl-C; ``pressed`` says whether it was interrupted (``run`` then returns None)."""

    def __init__(self) -> None:
        self.pressed = False
        self._cancel: Callable[[], Any] | None = None
        self._previous: Any = None
        self._installed = False

    def __enter__(self) -> CtrlC:
        if threading.current_thread() is threading.main_thread():
            # asyncio installs its own handler only while SIGINT has the default one
            self._previous = signal.signal(signal.SIGINT, self._on_sigint)
            self._installed = True
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._installed:
            # once pressed, the process is on its way out: stay deaf to Ctrl-C until it is
            signal.signal(signal.SIGINT, signal.SIG_IGN if self.pressed else self._previous)

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        if self.pressed:
            return
        self.pressed = True
        if self._cancel is None:
            raise KeyboardInterrupt  # nothing running yet to stop cleanly
        self._cancel()

    def run(
        self, fn: Callable[[], Awaitable[T]], *, view: AbstractContextManager[Any] | None = None
    ) -> T | None:
        """``anyio.run(fn)`` with this handler installed and inside ``view`` (a live
        display), or None once Ctrl-C was pressed, even before ``fn`` had started."""
        try:
            with self, view if view is not None else nullcontext():
                return anyio.run(self.guard, fn)
        except KeyboardInterrupt:
            if not self.pressed:  # not ours: a Ctrl-C outside the handler's lifetime
                raise
            return None

    async def guard(self, fn: Callable[[], Awaitable[T]]) -> T | None:
        """``await fn()``, cancelled by the first Ctrl-C (then None)."""
        loop = asyncio.get_running_loop()
        with anyio.CancelScope() as scope:
            # a signal handler may interrupt the loop anywhere: hand the cancel to the loop
            self._cancel = lambda: loop.call_soon_threadsafe(scope.cancel)
            try:
                return await fn()
            finally:
                self._cancel = None
        return None
