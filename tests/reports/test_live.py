"""The live progress view: state transitions driven by events, and what it draws."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from dagtier.events import AttemptFinished, NodeFinished, NodeStarted, RunStarted
from dagtier.report.live import LiveView, ProgressState, live_enabled
from dagtier.results import Attempt, NodeResult

from ._helpers import run_review, workflow

pytestmark = pytest.mark.anyio


def test_state_follows_a_node_from_pending_to_done() -> None:
    """pending -> running -> done, with tier, model and cost from the attempts."""
    state = ProgressState(clock=lambda: 110.0)
    wf = workflow()
    state(RunStarted("r1", wf, {}, 100.0))
    assert {n.phase for n in state.nodes.values()} == {"pending"}
    assert list(state.nodes) == ["summarize", "tests", "critique", "final"]
    state(NodeStarted("r1", "summarize", 101.0))
    node = state.nodes["summarize"]
    assert (node.phase, node.elapsed(110.0)) == ("running", 9.0)
    state(AttemptFinished("r1", "summarize", "k", Attempt(0, 1, "cheap", "python", cost=0.25)))
    assert (node.tier, node.model, node.cost, state.total_cost) == (1, "cheap", 0.25, 0.25)
    state(
        NodeFinished(
            "r1",
            NodeResult("summarize", "succeeded", tier=1, model="cheap",
                       attempts=[Attempt(0, 1, "cheap", "python", cost=0.25)],
                       started_at=101.0, finished_at=103.0),
        )
    )  # fmt: skip
    assert (node.phase, node.elapsed(110.0)) == ("done", 2.0)
    state(NodeFinished("r1", NodeResult("tests", "failed", error="x")))
    state(NodeFinished("r1", NodeResult("final", "skipped")))
    assert state.count("failed") == 1 and state.count("skipped") == 1
    assert state.count("pending") == 1


async def test_a_real_run_ends_with_every_node_finished() -> None:
    """After a run, every node is done and the total cost equals the run's cost."""
    state = ProgressState()
    result = await run_review(subscribers=[state])
    assert {n.phase for n in state.nodes.values()} == {"done"}
    assert state.total_cost == pytest.approx(result.cost)
    assert state.status == "succeeded"
    assert state.nodes["critique"].tier == 2 and state.nodes["critique"].attempts == 2


async def test_live_view_draws_in_a_terminal() -> None:
    """In a terminal the view draws node states and the total; the final frame is shown."""
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100, color_system=None)
    assert live_enabled(console, quiet=False)
    assert not live_enabled(console, quiet=True)
    view = LiveView(console)
    with view:
        await run_review(subscribers=[view])
    text = Console(width=100, record=True, file=io.StringIO())
    text.print(view.state.render())
    frame = text.export_text()
    assert "critique" in frame and "done" in frame and "4/4 nodes finished" in frame


def test_not_a_terminal_means_no_live_view() -> None:
    """Output to a pipe or file gets no live view."""
    assert not live_enabled(Console(file=io.StringIO()), quiet=False)
