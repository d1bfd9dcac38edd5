"""The live progress view of ``dagtier run`` in a terminal.

:class:`ProgressState` is an event subscriber holding plain state (what each node is doing,
on which tier and model, what it has cost); :class:`LiveView` draws that state with rich's
``Live`` from rich's own refresh thread. Events only update the state: drawing never
happens on the executor's task, so a slow terminal cannot slow a run down.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from ..events import (
    AttemptFinished,
    Event,
    NodeFinished,
    NodeStarted,
    PolicyDecision,
    RunFinished,
    RunStarted,
)

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.live import Live

    from ..results import NodeResult

Phase = Literal["pending", "running", "done", "failed", "skipped"]

_PHASE_OF_STATUS: dict[str, Phase] = {
    "succeeded": "done",
    "unverified": "done",
    "cached": "done",
    "failed": "failed",
    "skipped": "skipped",
    "cancelled": "skipped",
}
_STYLE: dict[Phase, str] = {
    "pending": "dim",
    "running": "cyan",
    "done": "green",
    "failed": "red",
    "skipped": "yellow",
}


@dataclass(slots=True)
class NodeProgress:
    node_id: str
    phase: Phase = "pending"
    status: str | None = None
    """The node's final status (``succeeded``, ``cached``, ...) once it has one."""
    tier: int | None = None
    model: str | None = None
    cost: float = 0.0
    attempts: int = 0
    started_at: float | None = None
    finished_at: float | None = None

    def elapsed(self, now: float) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at or now) - self.started_at


class ProgressState:
    """Per-node progress of one run, updated from events. Safe to read from another thread
    while the run writes: the node table is filled once at run start and only its entries'
    fields change afterwards."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.run_id: str | None = None
        self.workflow: str | None = None
        self.nodes: dict[str, NodeProgress] = {}
        self.started_at: float | None = None
        self.finished_at: float | None = None
        self.status: str | None = None

    @property
    def total_cost(self) -> float:
        return sum(n.cost for n in self.nodes.values())

    def count(self, phase: Phase) -> int:
        return sum(1 for n in self.nodes.values() if n.phase == phase)

    def __call__(self, event: Event) -> None:
        if isinstance(event, AttemptFinished):
            node = self.nodes.get(event.node_id)
            if node is not None:
                att = event.attempt
                node.tier, node.model = att.tier, att.model
                node.cost += att.total_cost
                node.attempts += att.tries
        elif isinstance(event, NodeStarted):
            node = self._node(event.node_id)
            node.phase, node.started_at = "running", event.at
        elif isinstance(event, PolicyDecision):
            self._node(event.node_id).tier = event.tier
        elif isinstance(event, NodeFinished):
            self._finish(event.result)
        elif isinstance(event, RunStarted):
            self.run_id, self.workflow = event.run_id, event.workflow.name
            self.started_at = event.at
            self.nodes = {nid: NodeProgress(nid) for nid in _ordered(event)}
            for nid, node in self.nodes.items():  # a one-tier node's tier is known up front
                policy = event.workflow.node_policy(nid)
                if policy.start_tier == policy.top_tier:
                    node.tier = int(policy.top_tier)
        elif isinstance(event, RunFinished):
            r = event.result
            for res in r.nodes.values():
                node = self.nodes.get(res.node_id)
                if node is None or node.status is None:
                    self._finish(res)
            self.status, self.finished_at = r.status, r.finished_at

    def _node(self, node_id: str) -> NodeProgress:
        node = self.nodes.get(node_id)
        if node is None:  # an event for a node the run did not announce (defensive)
            node = self.nodes[node_id] = NodeProgress(node_id)
        return node

    def _finish(self, r: NodeResult) -> None:
        node = self._node(r.node_id)
        node.phase = _PHASE_OF_STATUS.get(r.status, "failed")
        node.status = r.status
        node.tier = r.tier if r.tier is not None else node.tier
        node.model = r.model or node.model
        node.cost = r.cost
        node.attempts = r.tries
        node.started_at = r.started_at if r.started_at is not None else node.started_at
        node.finished_at = r.finished_at or (self.clock() if node.started_at else None)

    def render(self) -> RenderableType:
        """The table of nodes and a footer with the run's cost and progress."""
        from rich.console import Group
        from rich.table import Table
        from rich.text import Text

        now = self.clock()
        table = Table(box=None, pad_edge=False, header_style="bold")
        for col, justify in (
            ("node", "left"),
            ("state", "left"),
            ("tier", "right"),
            ("model", "left"),
            ("tries", "right"),
            ("cost $", "right"),
            ("secs", "right"),
        ):
            table.add_column(col, justify=justify)  # type: ignore[arg-type]
        for n in self.nodes.values():
            elapsed = n.elapsed(now)
            label = n.status if n.status and n.status != "succeeded" else n.phase
            table.add_row(
                n.node_id,
                Text(label, style=_STYLE[n.phase]),
                f"T{n.tier}" if n.tier else "-",
                n.model or "-",
                str(n.attempts) if n.attempts else "-",
                f"{n.cost:.6f}" if n.attempts else "-",
                f"{elapsed:.1f}" if elapsed is not None else "-",
            )
        total = len(self.nodes)
        finished = total - self.count("pending") - self.count("running")
        run_elapsed = ((self.finished_at or now) - self.started_at) if self.started_at else 0.0
        footer = Text.assemble(
            ("total $", "bold"),
            (f"{self.total_cost:.6f}", "bold"),
            f"   {finished}/{total} nodes finished, {self.count('running')} running",
            f"   {run_elapsed:.1f}s",
        )
        title = Text(f"dagtier run {self.run_id or ''}  {self.workflow or ''}", style="bold")
        return Group(title, table, footer)


def _ordered(event: RunStarted) -> list[str]:
    """Nodes in execution order (topological, sorted within a generation), from the run's
    plan: checking a big graph again would cost more than the run."""
    if event.plan is not None:
        return list(event.plan.order)
    from ..graph import build_graph, topological_order

    return topological_order(build_graph(event.workflow))


class LiveView:
    """Draws a :class:`ProgressState` in the terminal while a run goes on.

    Use as a context manager around the run and pass the view as a subscriber. The view is
    transient: when it stops, the final summary table takes its place.
    """

    def __init__(self, console: Console, *, state: ProgressState | None = None) -> None:
        self.state = state or ProgressState()
        self.console = console
        self._live: Live | None = None

    def __call__(self, event: Event) -> None:
        self.state(event)

    def __enter__(self) -> LiveView:
        from rich.live import Live

        self._live = Live(
            console=self.console,
            get_renderable=self.state.render,
            refresh_per_second=4,
            transient=True,
            redirect_stderr=False,  # log lines go to stderr untouched
        )
        self._live.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None


def live_enabled(console: Console, *, quiet: bool) -> bool:
    """The live view runs only for a person watching: a terminal, and not ``--quiet``."""
    return not quiet and console.is_terminal and not console.is_dumb_terminal
