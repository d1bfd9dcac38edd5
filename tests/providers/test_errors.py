"""The error choke point: classification, Retry-After parsing, the retry decision, redaction."""

from __future__ import annotations

import email.utils
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dagtier._exceptions import (
    AuthError,
    BadRequest,
    ContentFiltered,
    ContextTooLong,
    Overloaded,
    ProviderConnectionError,
    ProviderError,
    ProviderResponseError,
    ProviderStatusError,
    ProviderTimeout,
    RateLimited,
    ServerError,
)
from dagtier.providers._errors import (
    decide_retryable,
    from_status,
    parse_retry_after,
    redact,
    translate,
)
from dagtier.providers._resilience import RetryPolicy

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"retry-after": "20"}, 20.0),
        ({"Retry-After": "1.5"}, 1.5),
        ({"retry-after-ms": "2500"}, 2.5),
        ({"retry-after-ms": "2500", "retry-after": "9"}, 2.5),
        ({"retry-after-ms": "junk", "retry-after": "9"}, 9.0),
        ({"retry-after": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),
        ({"retry-after": email.utils.formatdate(NOW - 30, usegmt=True)}, 0.0),
        ({"retry-after": "soon"}, None),
        ({"retry-after": "-3"}, None),
    ],
)
def test_retry_after_is_read_from_seconds_milliseconds_and_http_dates(
    headers: dict[str, str], expected: float | None
) -> None:
    """Retry-After in seconds, milliseconds or as an HTTP date gives the seconds to wait."""
    assert parse_retry_after(headers, now=NOW) == expected


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        (400, False),
        (401, False),
        (403, False),
        (404, False),
        (408, True),
        (409, True),
        (422, False),
        (429, True),
        (500, True),
        (502, True),
        (503, True),
        (529, True),
    ],
)
def test_status_codes_decide_retryable(status: int, retryable: bool) -> None:
    """408, 409, 429 and >= 500 are retryable; other statuses are not."""
    assert decide_retryable(status)[0] is retryable


def test_x_should_retry_overrides_the_status_rule() -> None:
    """The server's x-should-retry header wins over the status code, both ways."""
    assert decide_retryable(500, {"x-should-retry": "false"})[0] is False
    assert decide_retryable(400, {"x-should-retry": "true"})[0] is True
    assert decide_retryable(None, kind="connection")[0] is True
    assert decide_retryable(None, kind="timeout")[0] is True


@pytest.mark.parametrize(
    ("status", "body", "cls"),
    [
        (429, None, RateLimited),
        (529, None, Overloaded),
        (503, None, Overloaded),
        (500, None, ServerError),
        (502, None, ServerError),
        (401, None, AuthError),
        (403, None, AuthError),
        (400, {"error": {"message": "bad"}}, BadRequest),
        (400, {"error": {"code": "context_length_exceeded", "message": "x"}}, ContextTooLong),
        (400, {"error": {"type": "exceed_context_size_error", "message": "x"}}, ContextTooLong),
        (400, {"error": {"code": "content_filter", "message": "x"}}, ContentFiltered),
        (404, None, BadRequest),
        (402, None, ProviderStatusError),
    ],
)
def test_status_maps_to_the_most_specific_class(status: int, body: object, cls: type) -> None:
    """The status code and body pick the class, never the SDK's exception type."""
    err = from_status(status, provider="p", model="m", body=body)
    assert type(err) is cls
    assert err.status_code == status


class _FakeResponse:
    def __init__(self, headers: dict[str, str]) -> None:
        self.headers = headers


class _SdkLikeError(Exception):
    """Shaped like an SDK status error but with an unrelated class name."""

    def __init__(self, status: int, headers: dict[str, str]) -> None:
        super().__init__("Error code: 529")
        self.status_code = status
        self.response = _FakeResponse(headers)
        self.body = {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
        self.request_id = "req_1"


def test_translate_keys_on_status_code_not_class_name() -> None:
    """A 529 delivered as a generic 'InternalServerError' is still Overloaded."""
    err = translate(_SdkLikeError(529, {"retry-after": "3"}), provider="anthropic", model="m")
    assert isinstance(err, Overloaded)
    assert err.retryable
    assert err.retry_after == 3.0
    assert err.request_id == "req_1"


def test_translate_non_status_errors() -> None:
    """Timeouts, connection failures and undecodable bodies get their own classes."""
    assert type(translate(TimeoutError(), provider="p", model="m")) is ProviderTimeout
    assert type(translate(ConnectionResetError(), provider="p", model="m")) is (
        ProviderConnectionError
    )
    bad = translate(ValueError("boom"), provider="p", model="m")
    assert type(bad) is ProviderError and not bad.retryable
    import json

    try:
        json.loads("{")
    except json.JSONDecodeError as exc:
        assert type(translate(exc, provider="p", model="m")) is ProviderResponseError


def test_redact_removes_known_secrets_and_key_shapes() -> None:
    """Known key values and anything shaped like a key are replaced."""
    text = "key sk-ant-api03-AAAABBBBCCCC and custom-secret-value and Bearer abcdefghijkl"
    out = redact(text, ["custom-secret-value"])
    assert "sk-ant" not in out and "custom-secret-value" not in out and "abcdefghijkl" not in out


@given(
    attempt=st.integers(min_value=1, max_value=30),
    seed=st.integers(min_value=0, max_value=2**32),
    retry_after=st.one_of(st.none(), st.floats(min_value=0, max_value=200)),
)
def test_backoff_delay_lies_within_zero_and_the_cap(
    attempt: int, seed: int, retry_after: float | None
) -> None:
    """Every delay is in [0, max_delay] or is the server's Retry-After (up to its cap)."""
    policy = RetryPolicy()
    err = RateLimited("x", provider="p", model="m", retry_after=retry_after)
    d = policy.delay(attempt, err, random.Random(seed))
    if retry_after is not None and retry_after <= policy.max_retry_after_s:
        assert d == retry_after
    else:
        assert 0 <= d <= policy.max_delay_s
