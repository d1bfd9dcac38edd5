"""Run events: the one seam the store, reports, live progress and telemetry subscribe to.

Subscribers are plain callables taking an event, called in order, synchronously, from the
executor's task: keep them cheap (append to a buffer, update a counter) and do slow work
elsewhere. An exception in a subscriber is logged and does not stop the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .plan import Plan
    from .results import Attempt, NodeResult, RunResult, Turn
    from .spec.models import Workflow


@dataclass(frozen=True, slots=True)
class RunStarted:
    run_id: str
    workflow: Workflow
    inputs: dict[str, Any]
    at: float
    resumed: bool = False
    plan: Plan | None = None
    """The compiled workflow the run executes (execution order, resolved settings)."""


@dataclass(frozen=True, slots=True)
class NodeStarted:
    run_id: str
    node_id: str
    at: float


@dataclass(frozen=True, slots=True)
class AttemptFinished:
    run_id: str
    node_id: str
    task_key: str
    attempt: Attempt


@dataclass(frozen=True, slots=True)
class ToolTurn:
    """A tool loop's model call finished and the tools it asked for ran."""

    run_id: str
    node_id: str
    tier: int
    index: int
    """The turn's position in the node's loop (0 first; a continued loop counts on)."""
    turn: Turn


@dataclass(frozen=True, slots=True)
class NodeFinished:
    run_id: str
    result: NodeResult


@dataclass(frozen=True, slots=True)
class PolicyDecision:
    run_id: str
    node_id: str
    task_key: str
    tier: int
    reason: str


@dataclass(frozen=True, slots=True)
class RunFinished:
    run_id: str
    result: RunResult


Event = (
    RunStarted
    | NodeStarted
    | AttemptFinished
    | ToolTurn
    | NodeFinished
    | PolicyDecision
    | RunFinished
)
Subscriber = Callable[[Event], None]


class EventBus:
    __slots__ = ("_subscribers",)

    def __init__(self, subscribers: list[Subscriber] | None = None) -> None:
        self._subscribers: list[Subscriber] = list(subscribers or [])

    def subscribe(self, fn: Subscriber) -> Callable[[], None]:
        """Add ``fn``; returns a function that removes it."""
        self._subscribers.append(fn)
        return lambda: self._subscribers.remove(fn)

    def __bool__(self) -> bool:
        return bool(self._subscribers)

    def emit(self, event: Event) -> None:
        for fn in self._subscribers:
            try:
                fn(event)
            except Exception:  # a broken subscriber must not break a paid-for run
                from ._logging import get_logger

                get_logger().exception("event subscriber failed", subscriber=repr(fn))
