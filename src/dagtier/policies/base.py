"""What a policy sees: the node, its rendered request, and one way to make an attempt.

A policy is a plain async callable ``policy(ctx) -> Outcome``. It decides which tier(s) to
try and when to stop; :meth:`NodeContext.attempt` does the call, the checks, the accounting
and the events, so every policy records attempts the same way.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .._exceptions import ProviderError, StepError
from .._logging import redact_text
from .._types import JSON, NodeStatus, Tier
from ..events import AttemptFinished, EventBus, PolicyDecision
from ..providers.base import CompletionRequest
from ..providers.gateway import NO_CONTEXT, CallContext, Gateway
from ..results import Attempt
from .checks import CheckPlan, run_checks  # module level: a function-level import ran the import
from .judge import JudgeUnavailable  # machinery on every attempt (~1 µs each)

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..providers.base import Message
    from ..spec.models import Node, Workflow
    from ..store import StatsStore
    from ..tools import Tool
    from .routers import Route

DEFAULT_HALF_LIFE = 50.0


@dataclass(slots=True)
class Outcome:
    status: NodeStatus
    attempt: Attempt | None
    """The attempt whose answer is the node's output (None when no answer was accepted)."""
    error: str | None = None


class AttemptFailed(Exception):
    """The provider layer could not get an answer (availability, after retries and fallback),
    or a tool loop broke in a way another tier does not fix (:class:`StepError`).

    Carries the recorded attempt; the policy lets it propagate: availability failures do not
    escalate the tier."""

    def __init__(self, attempt: Attempt, cause: ProviderError | StepError) -> None:
        self.attempt = attempt
        self.cause = cause
        super().__init__(str(cause))


@dataclass(slots=True)
class NodeContext:
    run_id: str
    node_id: str
    task_key: str
    workflow: Workflow
    node: Node
    request: CompletionRequest
    gateway: Gateway
    events: EventBus
    stats: StatsStore | None
    rng: random.Random
    log: Any
    check_plan: CheckPlan
    """The node's checks in the order they run (from the run's plan)."""
    call: CallContext = NO_CONTEXT
    """The run's per-call state (run id, node id, budget): passed with every gateway call."""
    attempts: list[Attempt] = field(default_factory=list)
    parsed: dict[int, JSON] = field(default_factory=dict)
    """Parsed output per attempt index (JSON nodes)."""
    decision: str | None = None
    values: dict[str, Any] = field(default_factory=dict)
    """What the node's templates see: ``inputs`` and upstream outputs (command checks
    render their arguments with these)."""
    tools: Mapping[str, Tool] = field(default_factory=dict)
    """The node's tools by name; with any, each attempt is a tool loop."""
    transcript: tuple[Message, ...] | None = None
    """A stalled tool loop's conversation, which the next attempt continues."""
    turns: int = 0
    """Tool-loop turns made so far over the node's attempts."""
    route: Route | None = None
    """The router's decision for this input (None: the node has no router)."""
    deadline_start: Tier | None = None
    """The tier the run's deadline starts this node at (a floor, as a router's start tier
    is; see :mod:`dagtier.policies.deadline`). None: the deadline changes nothing here."""
    base_key: str | None = None
    """The node's own task key when a router's class replaced :attr:`task_key`."""
    unjudged: set[int] | None = None
    """Indexes of attempts whose judge was skipped (at the escalation ceiling): their
    "unchecked" verdict is no evidence of quality."""

    @property
    def checks(self) -> list[Any]:
        return self.workflow.node_checks(self.node_id)

    def decide(self, tier: Tier, reason: str) -> None:
        """Record why the policy chose ``tier`` (logged, shown in reports). Successive
        decisions of one node (a choice, then escalations) are kept in order, joined by
        ``"; "``."""
        self.decision = reason if self.decision is None else f"{self.decision}; {reason}"
        if self.events:
            self.events.emit(PolicyDecision(self.run_id, self.node_id, self.task_key, tier, reason))

    async def attempt(
        self,
        tier: Tier,
        *,
        purpose: str = "answer",
        record_evidence: bool = True,
        half_life: float | None = DEFAULT_HALF_LIFE,
        judge: bool = True,
    ) -> Attempt:
        """Call ``tier`` once (the gateway retries and falls back within the tier), then run
        the node's checks on the answer. Records the attempt, logs it and emits an event.
        ``judge=False`` skips the LLM judge (its verdict could not change the action); the
        cheap checks still run.

        Raises:
            AttemptFailed: no model of the tier answered.
        """
        index = len(self.attempts)
        if self.node.kind == "agent":
            att, meta = await self._agent_attempt(tier, index, purpose)
        elif self.tools:
            att, meta = await self._tool_attempt(tier, index, purpose)
            if att.verdict == "fail":  # stalled: no answer to check
                self._record(att)
                await self._evidence(att, record_evidence, half_life)
                return att
        else:
            att, meta = await self._single_call(tier, index, purpose)
        text = att.output or ""
        checking = time.perf_counter()
        try:
            checked = await run_checks(self, text, tier, meta, judge=judge)
        except JudgeUnavailable as exc:
            # the answer is paid for but cannot be judged: an availability failure, which
            # fails the node like any provider error instead of escalating
            att.verdict, att.reason = "error", str(exc)
            self._record(att)
            raise AttemptFailed(att, exc.cause) from exc
        att.verdict, att.reason, att.checks = checked.verdict, checked.reason, checked.results
        att.judge_cost, att.judge_usage = checked.judge_cost, checked.judge_usage
        if checked.parsed is not None:
            self.parsed[index] = checked.parsed
        if checked.judge_skipped:
            if self.unjudged is None:
                self.unjudged = set()
            self.unjudged.add(index)
        self._record(att)
        await self._evidence(att, record_evidence, half_life, time.perf_counter() - checking)
        return att

    async def _evidence(
        self, att: Attempt, record: bool, half_life: float | None, checks_s: float = 0.0
    ) -> None:
        """Fold the attempt into its tier's statistics. Its latency there is the call's
        plus its checks' (the judge's call included): what a deadline waits for."""
        if record and self.stats is not None and att.verdict in ("pass", "fail"):
            await self.stats.record_observation(
                self.task_key,
                att.tier,
                success=att.verdict == "pass",
                cost=att.total_cost,
                latency_s=att.latency_s + checks_s,
                half_life=half_life,
            )

    async def _single_call(
        self, tier: Tier, index: int, purpose: str
    ) -> tuple[Attempt, dict[str, Any]]:
        """One model call; the attempt, not yet checked, and the completion's meta."""
        t0 = time.perf_counter()
        try:
            call = await self.gateway.call(tier, self.request, self.call)
        except ProviderError as exc:
            att = Attempt(
                index,
                tier,
                exc.model,
                exc.provider,
                cost=exc.cost,  # failed tries that were billed anyway
                latency_s=time.perf_counter() - t0,
                verdict="error",
                reason=redact_text(str(exc)),
                fallbacks=[redact_text(f"{type(e).__name__}: {e}") for e in exc.failures],
                purpose=purpose,
            )
            self._record(att)
            raise AttemptFailed(att, exc) from exc
        comp = call.completion
        att = Attempt(
            index,
            tier,
            call.model.name,
            call.model.provider,
            usage=comp.usage,
            cost=call.cost,
            latency_s=comp.latency_s or (time.perf_counter() - t0),
            request_id=comp.request_id,
            response_model=comp.model,
            fallbacks=[redact_text(f"{type(e).__name__}: {e}") for e in call.errors],
            purpose=purpose,
            output=comp.text,
        )
        return att, comp.meta

    @contextmanager
    def _turns_kept(self, att: Attempt, what: str) -> Iterator[None]:
        """Record a multi-turn attempt however it ends, so its paid turns are counted: a
        provider or step error fails it (:class:`AttemptFailed`); the budget running out or
        a cancellation records it as interrupted and propagates."""
        try:
            yield
        except (ProviderError, StepError) as exc:
            if isinstance(exc, ProviderError) and not att.turns:
                att.model, att.provider = exc.model, exc.provider
            att.verdict, att.reason = "error", redact_text(str(exc))
            self._record(att)
            raise AttemptFailed(att, exc) from exc
        except BaseException:
            if att.turns:
                att.verdict, att.reason = "error", f"{what} interrupted"
                self._record(att)
            raise

    async def _agent_attempt(
        self, tier: Tier, index: int, purpose: str
    ) -> tuple[Attempt, dict[str, Any]]:
        """Run the node's agent function on ``tier``; the attempt holds its answer and
        every call it made (one turn each)."""
        from .._callables import CallableError, import_callable
        from ..agent import AgentContext
        from ..steps import call_function, search_dirs

        att = Attempt(index, tier, "-", "-", purpose=purpose)
        spec = self.node.agent
        assert spec is not None
        with self._turns_kept(att, "agent"):
            try:
                fn = import_callable(spec, search=search_dirs(self.workflow.source), what="agent")
            except CallableError as exc:
                raise StepError(str(exc)) from None
            actx = AgentContext(self, tier, att)
            value = await call_function(fn, {}, spec, args=(actx,), what="agent")
        if isinstance(value, str):
            att.output = value
        else:  # a structured answer is the node's output as it is; its text is JSON
            att.output = json.dumps(value, ensure_ascii=False)
            self.parsed[index] = value
        return att, {"turns": len(att.turns)}

    async def _tool_attempt(
        self, tier: Tier, index: int, purpose: str
    ) -> tuple[Attempt, dict[str, Any]]:
        """A tool loop on ``tier``; the attempt (verdict ``fail`` when the loop stalled,
        its transcript then kept for the next attempt to continue)."""
        from .toolloop import tool_loop

        att = Attempt(index, tier, "-", "-", purpose=purpose)
        with self._turns_kept(att, "tool loop"):
            end = await tool_loop(self, tier, att)
        if end.stalled is not None:
            att.verdict, att.reason = "fail", end.stalled
            if self.node.on_stall == "continue":
                self.transcript = end.transcript
        att.output = end.text
        return att, {"turns": len(att.turns)}

    def _record(self, att: Attempt) -> None:
        # The attempt's log line is written by the telemetry subscriber on this event: one
        # canonical line per attempt, carrying the escalation and decision context too.
        self.attempts.append(att)
        if self.events:
            self.events.emit(AttemptFinished(self.run_id, self.node_id, self.task_key, att))

    def output_of(self, att: Attempt) -> JSON:
        return self.parsed.get(att.index, att.output)

    def with_request(self, **changes: Any) -> None:
        self.request = replace(self.request, **changes)


Policy = Callable[[NodeContext], Awaitable[Outcome]]
