"""OpenTelemetry spans for runs (extra ``dagtier[otel]``): run -> node -> attempt.

Attempt spans follow the GenAI semantic conventions (``gen_ai.*``: operation, provider,
request and response model, token usage) and add dagtier's own attributes
(``dagtier.tier``, ``dagtier.cost_usd``, ``dagtier.verdict``...). Implemented as an event
subscriber, so the executor knows nothing about OpenTelemetry::

    from dagtier.telemetry.otel import OtelSubscriber
    result = await dagtier.run(wf, inputs, subscribers=[OtelSubscriber()])

Spans get their real start and end times from the events (an attempt's span ends when its
event arrives and starts ``latency_s`` earlier), so the trace is right even though spans
are created after the fact. Token counts: ``gen_ai.usage.input_tokens`` is the whole
prompt (cache reads and writes included), as the conventions define it; dagtier's disjoint
kinds are under ``dagtier.usage.*``.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

try:
    from opentelemetry import trace
    from opentelemetry.trace import Status, StatusCode
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("OpenTelemetry is not installed: pip install 'dagtier[otel]'") from exc

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
    from ..results import Attempt, NodeResult

_SYSTEM = {"local": "llama.cpp", "python": "dagtier.python", "replay": "dagtier.replay"}
"""``gen_ai.system`` for providers whose name is not already the conventional value."""


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


class OtelSubscriber:
    """Turns run events into spans on ``tracer_provider`` (default: the global one).

    Args:
        tracer_provider: where spans go; tests pass an SDK provider with an in-memory
            exporter.
        catalog: maps catalog names to provider model ids for ``gen_ai.request.model``
            (without it the catalog name is used).
    """

    def __init__(self, tracer_provider: Any = None, *, catalog: Any = None) -> None:
        self._tracer = trace.get_tracer("dagtier", tracer_provider=tracer_provider)
        self._catalog = catalog
        self._run: Any = None
        self._nodes: dict[str, Any] = {}
        self._decisions: dict[str, str] = {}

    def __call__(self, event: Event) -> None:
        if isinstance(event, AttemptFinished):
            self._attempt(event)
        elif isinstance(event, NodeStarted):
            self._nodes[event.node_id] = self._tracer.start_span(
                f"node {event.node_id}",
                context=trace.set_span_in_context(self._run) if self._run else None,
                start_time=_ns(event.at),
                attributes={"dagtier.run_id": event.run_id, "dagtier.node_id": event.node_id},
            )
        elif isinstance(event, PolicyDecision):
            self._decisions[event.node_id] = event.reason
            span = self._nodes.get(event.node_id)
            if span is not None:
                span.add_event(
                    "policy decision", {"dagtier.tier": event.tier, "dagtier.reason": event.reason}
                )
        elif isinstance(event, NodeFinished):
            self._end_node(event.result)
        elif isinstance(event, RunStarted):
            self._run = self._tracer.start_span(
                f"run {event.workflow.name}",
                start_time=_ns(event.at),
                attributes={
                    "dagtier.run_id": event.run_id,
                    "dagtier.workflow": event.workflow.name,
                    "dagtier.resumed": event.resumed,
                },
            )
        elif isinstance(event, RunFinished):
            r = event.result
            for res in r.nodes.values():
                if res.node_id in self._nodes:
                    self._end_node(res)
            if self._run is not None:
                self._run.set_attribute("dagtier.status", r.status)
                self._run.set_attribute("dagtier.cost_usd", r.cost)
                if not r.ok:
                    self._run.set_status(Status(StatusCode.ERROR, r.error or r.status))
                self._run.end(end_time=_ns(r.finished_at or time.time()))
                self._run = None

    def _request_model(self, att: Attempt) -> str:
        if self._catalog is not None and att.model in self._catalog.models:
            return str(self._catalog.models[att.model].model)
        return att.model

    def _attempt(self, event: AttemptFinished) -> None:
        att = event.attempt
        parent = self._nodes.get(event.node_id) or self._run
        end = time.time()
        u = att.usage
        request_model = self._request_model(att)
        attrs: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.system": _SYSTEM.get(att.provider, att.provider),
            "gen_ai.provider.name": _SYSTEM.get(att.provider, att.provider),
            "gen_ai.request.model": request_model,
            "gen_ai.usage.input_tokens": u.input_tokens
            + u.cache_read_tokens
            + u.cache_write_tokens,
            "gen_ai.usage.output_tokens": u.output_tokens + u.reasoning_tokens,
            "dagtier.run_id": event.run_id,
            "dagtier.node_id": event.node_id,
            "dagtier.task_key": event.task_key,
            "dagtier.attempt": att.index,
            "dagtier.purpose": att.purpose,
            "dagtier.tier": att.tier,
            "dagtier.model": att.model,
            "dagtier.cost_usd": att.cost,
            "dagtier.judge_cost_usd": att.judge_cost,
            "dagtier.verdict": att.verdict,
            "dagtier.usage.input_tokens": u.input_tokens,
            "dagtier.usage.output_tokens": u.output_tokens,
            "dagtier.usage.cache_read_tokens": u.cache_read_tokens,
            "dagtier.usage.cache_write_tokens": u.cache_write_tokens,
            "dagtier.usage.reasoning_tokens": u.reasoning_tokens,
            "dagtier.fallbacks": len(att.fallbacks),
        }
        if att.response_model or att.verdict != "error":
            attrs["gen_ai.response.model"] = att.response_model or request_model
        if att.request_id:
            attrs["gen_ai.response.id"] = att.request_id
        if att.reason:
            attrs["dagtier.reason"] = att.reason
        span = self._tracer.start_span(
            f"chat {request_model}",
            context=trace.set_span_in_context(parent) if parent is not None else None,
            kind=trace.SpanKind.CLIENT,
            start_time=_ns(end - att.latency_s),
            attributes=attrs,
        )
        if att.verdict == "error":
            span.set_status(Status(StatusCode.ERROR, att.reason))
            span.set_attribute("error.type", att.reason.split(":", 1)[0] or "provider-error")
        span.end(end_time=_ns(end))

    def _end_node(self, r: NodeResult) -> None:
        span = self._nodes.pop(r.node_id, None)
        if span is None:
            return
        span.set_attribute("dagtier.status", r.status)
        span.set_attribute("dagtier.cost_usd", r.cost)
        span.set_attribute("dagtier.attempts", len(r.attempts))
        if r.task_key:
            span.set_attribute("dagtier.task_key", r.task_key)
        if r.tier is not None:
            span.set_attribute("dagtier.tier", r.tier)
        if r.model:
            span.set_attribute("dagtier.model", r.model)
        decision = r.decision or self._decisions.pop(r.node_id, None)
        if decision:
            span.set_attribute("dagtier.decision", decision)
        if not r.ok:
            span.set_status(Status(StatusCode.ERROR, r.error or r.status))
        span.end(end_time=_ns(r.finished_at or time.time()))
