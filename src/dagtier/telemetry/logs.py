"""Structured logs driven by run events: one canonical line per attempt.

Each attempt's line carries everything needed to understand it without reading the rest:
run, node, task key, tier, model, provider, every token kind, cost, latency, verdict and
reason, why it escalated (the previous attempt's failed check), the provider errors it
survived (retries and fallbacks), and the policy's decision for the node.
"""

from __future__ import annotations

from collections import Counter
from itertools import pairwise
from typing import TYPE_CHECKING, Any

from .._logging import get_logger, info_enabled
from ..events import (
    AttemptFinished,
    Event,
    NodeFinished,
    NodeStarted,
    PolicyDecision,
    RunFinished,
    RunStarted,
    ToolTurn,
)

if TYPE_CHECKING:
    from ..results import Attempt
    from ..spec.models import Workflow


class LogSubscriber:
    """Logs every run event through structlog (logger ``dagtier``).

    Levels: run/node/attempt lines are INFO; a failed node and an attempt whose provider
    call failed are WARNING, so they show on the console by default.
    """

    def __init__(self) -> None:
        self._log: Any = None
        self._info = True
        self._workflow: Workflow | None = None
        self._last: dict[str, Attempt] = {}
        self._decision: dict[str, tuple[int, str]] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, AttemptFinished):
            # the line has 20-odd fields: build it only when someone will read it
            if self._info or event.attempt.verdict == "error":
                self._attempt(event)
            else:
                self._last[event.node_id] = event.attempt
        elif isinstance(event, NodeStarted):
            if not self._info:
                return
            self.log.info(
                "node started",
                run_id=event.run_id,
                node=event.node_id,
                task_key=self._task_key(event.node_id),
                policy=self._policy(event.node_id),
            )
        elif isinstance(event, ToolTurn):
            if self._info:
                t = event.turn
                self.log.info(
                    "tool turn",
                    run_id=event.run_id,
                    node=event.node_id,
                    tier=event.tier,
                    turn=event.index,
                    model=t.model,
                    input_tokens=t.usage.input_tokens,
                    output_tokens=t.usage.output_tokens,
                    cost=round(t.cost, 8),
                    latency_s=round(t.latency_s, 4),
                    tool_calls=[
                        {"name": c.name, "duration_s": round(c.duration_s, 4), "error": c.error}
                        for c in t.tool_calls
                    ],
                )
        elif isinstance(event, PolicyDecision):
            self._decision[event.node_id] = (event.tier, event.reason)
        elif isinstance(event, NodeFinished):
            self._node_finished(event)
        elif isinstance(event, RunStarted):
            # a concrete logger for the run: the lazy proxy would re-bind on every line
            self._log = get_logger().bind()
            self._info = info_enabled(self._log)
            self._workflow = event.workflow
            self.log.info(
                "run started",
                run_id=event.run_id,
                workflow=event.workflow.name,
                source=event.workflow.source,
                nodes=len(event.workflow.nodes),
                resumed=event.resumed,
            )
        elif isinstance(event, RunFinished):
            r = event.result
            counts = Counter(n.status for n in r.nodes.values())
            log = self.log
            (log.info if r.ok else log.warning)(
                "run finished",
                run_id=r.run_id,
                workflow=r.workflow,
                status=r.status,
                cost=round(r.cost, 8),
                duration_s=round(r.finished_at - r.started_at, 4),
                nodes=dict(sorted(counts.items())),
                error=r.error,
            )

    @property
    def log(self) -> Any:
        """The run's logger (a fresh one for events outside a run, e.g. in tests)."""
        return self._log if self._log is not None else get_logger()

    def _task_key(self, node_id: str) -> str | None:
        wf = self._workflow
        if wf is None or node_id not in wf.nodes:
            return None
        return wf.task_key(node_id)

    def _policy(self, node_id: str) -> str | None:
        wf = self._workflow
        if wf is None or node_id not in wf.nodes:
            return None
        return wf.node_label(node_id)

    def _attempt(self, event: AttemptFinished) -> None:
        att = event.attempt
        prev = self._last.get(event.node_id)
        escalation = None
        if prev is not None and prev.verdict == "fail" and att.tier > prev.tier:
            escalation = f"tier {prev.tier} answer failed its checks: {prev.reason}"
        self._last[event.node_id] = att
        decision = self._decision.get(event.node_id)
        u = att.usage
        fields: dict[str, Any] = {
            "run_id": event.run_id,
            "node": event.node_id,
            "task_key": event.task_key,
            "attempt": att.index,
            "purpose": att.purpose,
            "tier": att.tier,
            "model": att.model,
            "provider": att.provider,
            "input_tokens": u.input_tokens,
            "output_tokens": u.output_tokens,
            "cache_read_tokens": u.cache_read_tokens,
            "cache_write_tokens": u.cache_write_tokens,
            "reasoning_tokens": u.reasoning_tokens,
            "cost": round(att.cost, 8),
            "judge_cost": round(att.judge_cost, 8),
            "latency_s": round(att.latency_s, 4),
            "verdict": att.verdict,
            "reason": att.reason or None,
            "escalation": escalation,
            "fallbacks": att.fallbacks or None,
            "decision": decision[1] if decision else None,
            "request_id": att.request_id,
        }
        log = self.log
        (log.warning if att.verdict == "error" else log.info)("attempt", **fields)

    def _node_finished(self, event: NodeFinished) -> None:
        r = event.result
        self._last.pop(r.node_id, None)
        decision = self._decision.pop(r.node_id, None)
        if r.ok and not self._info:
            return
        log = self.log
        (log.info if r.ok else log.warning)(
            "node finished",
            run_id=event.run_id,
            node=r.node_id,
            task_key=r.task_key,
            status=r.status,
            tier=r.tier,
            model=r.model,
            attempts=len(r.attempts),
            escalations=count_escalations(r.attempts),
            cost=round(r.cost, 8),
            latency_s=round(r.latency_s, 4),
            cache_hit=r.cache_hit,
            decision=r.decision or (decision[1] if decision else None),
            error=r.error,
        )


def count_escalations(attempts: list[Attempt]) -> int:
    """How many times a node moved up a tier after an answer failed its checks."""
    n = 0
    answers = [a for a in attempts if a.purpose == "answer"]
    for prev, cur in pairwise(answers):
        if prev.verdict == "fail" and cur.tier > prev.tier:
            n += 1
    return n
