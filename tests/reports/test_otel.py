"""OpenTelemetry spans: run -> node -> attempt, with GenAI semantic-convention attributes."""

from __future__ import annotations

import pytest

pytest.importorskip("opentelemetry.sdk", reason="the dagtier[otel] extra is not installed")

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from dagtier.telemetry.otel import OtelSubscriber

from ._helpers import catalog, run_review

pytestmark = pytest.mark.anyio


async def test_spans_nest_run_node_attempt_with_genai_attributes() -> None:
    """Each attempt is a client span under its node's span, under the run's span."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    result = await run_review(subscribers=[OtelSubscriber(provider, catalog=catalog())])
    spans = exporter.get_finished_spans()
    by_name = {s.name: s for s in spans}
    run = by_name["run review"]
    nodes = [s for s in spans if s.name.startswith("node ")]
    chats = [s for s in spans if s.name.startswith("chat ")]
    assert len(spans) == 1 + 4 + 5
    assert {s.parent.span_id for s in nodes} == {run.context.span_id}  # type: ignore[union-attr]
    critique = by_name["node critique"]
    critique_chats = [s for s in chats if s.parent.span_id == critique.context.span_id]  # type: ignore[union-attr]
    assert [s.name for s in critique_chats] == ["chat cheap-1", "chat mid-1"]
    first = dict(critique_chats[0].attributes or {})
    att = result["critique"].attempts[0]
    assert first["gen_ai.operation.name"] == "chat"
    assert first["gen_ai.system"] == "dagtier.python"
    assert first["gen_ai.request.model"] == "cheap-1"
    assert first["gen_ai.response.model"] == "cheap-1"
    assert first["gen_ai.usage.input_tokens"] == att.usage.input_tokens
    assert first["gen_ai.usage.output_tokens"] == att.usage.output_tokens
    assert first["dagtier.tier"] == 1
    assert first["dagtier.cost_usd"] == pytest.approx(att.cost)
    assert first["dagtier.verdict"] == "fail"
    assert dict(critique.attributes or {})["dagtier.tier"] == 2
    assert dict(run.attributes or {})["dagtier.cost_usd"] == pytest.approx(result.cost)
    for s in spans:  # every span closed within its parent's lifetime
        assert s.end_time is not None and s.start_time is not None
        assert s.start_time <= s.end_time
