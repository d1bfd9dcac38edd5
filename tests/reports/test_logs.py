"""Structured logs from run events, and the redaction every output goes through."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog
from structlog.testing import capture_logs

from dagtier._logging import configure_logging, redact_secrets, redact_text, redact_value
from dagtier.telemetry import LogSubscriber

from ._helpers import run_review

pytestmark = pytest.mark.anyio


def test_redact_text_replaces_env_secrets_and_key_shapes(monkeypatch: pytest.MonkeyPatch) -> None:
    """A secret from the environment and anything shaped like a key become [REDACTED]."""
    monkeypatch.setenv("MY_SERVICE_TOKEN", "plainlookingvalue123")
    text = (
        "token plainlookingvalue123; openai sk-proj-abcdef123456; anthropic "
        "sk-ant-api03-xyzxyzxyz; google AIzaSyA1234567890123456789; "
        "Authorization: Bearer abc.def.ghijklmnop; x-api-key: q1w2e3r4t5y6u7"
    )
    assert redact_text(text) == (
        "token [REDACTED]; openai [REDACTED]; anthropic [REDACTED]; google [REDACTED]; "
        "Authorization: Bearer [REDACTED]; x-api-key: [REDACTED]"
    )


def test_a_secret_set_in_place_of_an_unset_variable_is_redacted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Unsetting one variable and setting a secret one keeps the environment's size; the
    new secret is redacted all the same."""
    monkeypatch.setenv("DAGTIER_TEST_PLAIN", "not a secret")
    redact_text("the names of this environment are scanned")
    monkeypatch.delenv("DAGTIER_TEST_PLAIN")
    monkeypatch.setenv("OTHER_SERVICE_TOKEN", "anotherplainvalue42")
    assert redact_text("token anotherplainvalue42") == "token [REDACTED]"


def test_redact_text_leaves_prose_about_keys_readable() -> None:
    """Hints that name a key's variable are not mistaken for keys."""
    text = "check the API key named by api_key_env=OPENAI_API_KEY in the catalog"
    assert redact_text(text, []) == text


def test_redact_value_walks_structures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nested dicts, lists and exceptions are redacted; a secret-named field loses its value."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-fake-0123456789")
    value = {
        "api_key": "whatever-it-is",
        "api_key_env": "ANTHROPIC_API_KEY",
        "errors": [RuntimeError("bad key sk-ant-fake-0123456789"), ("x", 3)],
        "tokens": 12,
    }
    assert redact_value(value) == {
        "api_key": "[REDACTED]",
        "api_key_env": "ANTHROPIC_API_KEY",
        "errors": ["RuntimeError: bad key [REDACTED]", ["x", 3]],
        "tokens": 12,
    }


def test_processor_redacts_every_field(monkeypatch: pytest.MonkeyPatch) -> None:
    """The structlog processor leaves no secret in any field of an event."""
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fake-abcdefghijkl")
    event = {"event": "call failed: sk-fake-abcdefghijkl", "detail": {"h": "sk-fake-abcdefghijkl"}}
    out = redact_secrets(None, "info", event)
    assert "sk-fake" not in json.dumps(out)


async def test_one_canonical_line_per_attempt_with_escalation_reason() -> None:
    """Each attempt logs one line with tokens, cost, verdict and why it escalated."""
    with capture_logs() as logs:
        result = await run_review(subscribers=[LogSubscriber()])
    attempts = [e for e in logs if e["event"] == "attempt"]
    assert len(attempts) == sum(len(n.attempts) for n in result.nodes.values()) == 5
    critique = [e for e in attempts if e["node"] == "critique"]
    assert [(e["tier"], e["verdict"], e["escalation"]) for e in critique] == [
        (1, "fail", None),
        (2, "pass", "tier 1 answer failed its checks: regex: does not match /GOOD/"),
    ]
    first = critique[0]
    assert first["run_id"] == result.run_id
    assert first["task_key"] == "review/critique"
    assert first["model"] == "cheap" and first["provider"] == "python"
    assert first["input_tokens"] + first["output_tokens"] > 0
    assert first["cost"] == pytest.approx(result["critique"].attempts[0].cost)
    for kind in ("cache_read_tokens", "cache_write_tokens", "reasoning_tokens", "latency_s"):
        assert kind in first


async def test_run_and_node_lines() -> None:
    """Run started/finished and node started/finished are logged once each."""
    with capture_logs() as logs:
        result = await run_review(subscribers=[LogSubscriber()])
    events = [e["event"] for e in logs]
    assert events.count("run started") == 1
    assert events.count("run finished") == 1
    assert events.count("node started") == events.count("node finished") == 4
    finished = next(e for e in logs if e["event"] == "run finished")
    assert finished["status"] == "succeeded"
    assert finished["cost"] == pytest.approx(result.cost)
    node = next(e for e in logs if e["event"] == "node finished" and e["node"] == "critique")
    assert (node["status"], node["tier"], node["escalations"], node["attempts"]) == (
        "succeeded",
        2,
        1,
        2,
    )


async def test_json_file_gets_info_lines_while_console_stays_quiet() -> None:
    """With a JSON log file, INFO events land there as JSON lines, not on the console."""
    console, file = io.StringIO(), io.StringIO()
    configure_logging(level=logging.WARNING, stream=console, json_file=file)
    try:
        await run_review(subscribers=[LogSubscriber()])
    finally:
        structlog.reset_defaults()
    lines = [json.loads(line) for line in file.getvalue().splitlines()]
    assert [e["event"] for e in lines].count("attempt") == 5
    assert all("timestamp" in e and e["level"] == "info" for e in lines)
    assert console.getvalue() == ""
