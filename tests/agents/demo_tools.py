"""Tools the tool-loop tests declare (``demo_tools:NAME``): real functions, sync and async."""

from __future__ import annotations

import threading
import time

import anyio
import anyio.lowlevel

NOTES = {"a": "apples are red", "b": "bananas are yellow"}
_lock = threading.Lock()
RUNNING: list[str] = []
"""Tool calls in flight right now, to see parallel calls overlap."""
MAX_PARALLEL = 0


def read_note(key: str) -> str:
    """Read one note.

    Args:
        key: the note's key (a or b).
    """
    global MAX_PARALLEL
    with _lock:
        RUNNING.append(key)
        MAX_PARALLEL = max(MAX_PARALLEL, len(RUNNING))
    try:
        time.sleep(0.2)  # long enough for a parallel call to start meanwhile
        if key not in NOTES:
            raise KeyError(f"no note {key!r}")
        return NOTES[key]
    finally:
        with _lock:
            RUNNING.remove(key)


async def count_words(text: str, minimum: int = 1) -> dict[str, int]:
    """Count the words of a text.

    Args:
        text: any text.
        minimum: only words at least this long count.
    """
    await anyio.lowlevel.checkpoint()
    return {"words": len([w for w in text.split() if len(w) >= minimum])}


def leak() -> object:
    """Return something JSON cannot hold."""
    return object()


def hang(seconds: float) -> str:
    """Sleep for a while."""
    time.sleep(seconds)
    return "woke"
