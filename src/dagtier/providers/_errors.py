"""The one choke point where SDK and HTTP errors become dagtier's error taxonomy.

Every provider calls :func:`translate` (SDK exceptions) or :func:`from_status` (a status code
and body it read itself, e.g. the embedded model's error dicts). Both key on the HTTP status
code and on the body, never on SDK class names: some SDK versions deliver 529 as a plain
``InternalServerError``, and OpenAI-compatible servers pick their own error classes.

:func:`decide_retryable` is the only place that decides whether an error is worth retrying,
and it logs why (like openai's ``_should_retry``). The server's ``x-should-retry`` header
overrides the status-code rule.

Secrets: every message that leaves this module passes through :func:`redact`, which removes
the API key values the provider knows about and anything shaped like a key. Translated
status errors are *not* chained to the SDK exception, because the SDK's message may quote
the response body, and some providers echo part of the key in a 401 body.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Iterable, Mapping
from typing import Any

from .._exceptions import (
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
from .._logging import get_logger, redact_text, secret_values

_CONTEXT_HINTS = (
    "context_length_exceeded",
    "exceed_context_size",
    "context length",
    "context window",
    "maximum context",
    "prompt is too long",
    "too many tokens",
    "input is too long",
)
_FILTER_HINTS = ("content_filter", "content_policy", "safety", "responsible_ai_policy")

MAX_RETRY_AFTER_S = 4_294_967.0


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with this provider's key (``secrets``), every secret in the environment and
    anything shaped like an API key replaced: :func:`dagtier._logging.redact_text`."""
    known = [s for s in secrets if s and len(s) >= 4]
    return redact_text(text, [*known, *secret_values()])


def parse_retry_after(
    headers: Mapping[str, str] | Any, *, now: float | None = None
) -> float | None:
    """Seconds the server asks us to wait, from ``retry-after-ms`` or ``retry-after``.

    ``retry-after`` may be seconds (integer or, non-standard, float) or an HTTP date. A date
    in the past gives 0. Unparseable or missing headers give None.

    Args:
        headers: any object with a case-insensitive ``get`` (httpx headers) or a plain mapping.
        now: the wall-clock time for HTTP dates (seconds since the epoch); default ``time.time()``.
    """
    if headers is None:
        return None
    get = getattr(headers, "get", None)
    if get is None:
        return None

    def header(name: str) -> str | None:
        value = get(name)
        if value is None and isinstance(headers, Mapping):
            for k, v in headers.items():
                if isinstance(k, str) and k.lower() == name:
                    return str(v)
        return None if value is None else str(value)

    ms = header("retry-after-ms")
    if ms is not None:
        try:
            seconds = float(ms) / 1000.0
        except ValueError:
            seconds = -1.0
        if seconds >= 0 and seconds == seconds:  # not NaN
            return min(seconds, MAX_RETRY_AFTER_S)
    raw = header("retry-after")
    if raw is None:
        return None
    raw = raw.strip()
    try:
        seconds = float(raw)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(raw)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        current = time.time() if now is None else now
        return max(0.0, min(when.timestamp() - current, MAX_RETRY_AFTER_S))
    if seconds != seconds or seconds < 0:  # NaN or negative
        return None
    return min(seconds, MAX_RETRY_AFTER_S)


def decide_retryable(
    status_code: int | None,
    headers: Mapping[str, str] | Any = None,
    *,
    kind: str = "status",
) -> tuple[bool, str]:
    """Whether a failed call may succeed if tried again, and why.

    The rule: connection errors and timeouts, 408, 409, 429 and every status >= 500 (529
    included) are retryable; everything else is not. A server's ``x-should-retry: true|false``
    header overrides the rule either way.

    Args:
        status_code: the HTTP status, or None when no response arrived.
        headers: the response headers, if any.
        kind: ``status``, ``connection``, ``timeout`` or ``response`` (a 200 with an unusable body).
    """
    should = None
    get = getattr(headers, "get", None) if headers is not None else None
    if get is not None:
        should = get("x-should-retry")
    if isinstance(should, str) and should.strip().lower() in ("true", "false"):
        verdict = should.strip().lower() == "true"
        reason = f"server sent x-should-retry: {should.strip().lower()}"
    elif kind in ("connection", "timeout"):
        verdict, reason = True, f"{kind} error: no usable response arrived"
    elif kind == "response":
        verdict, reason = True, "a 200 with an unusable body is usually transient"
    elif status_code is None:
        verdict, reason = False, "no status code"
    elif status_code in (408, 409, 429) or status_code >= 500:
        verdict, reason = True, f"status {status_code} is transient"
    else:
        verdict, reason = False, f"status {status_code} will not change on retry"
    get_logger().debug("retryable", verdict=verdict, reason=reason)
    return verdict, reason


def _body_text(body: Any) -> str:
    if body is None:
        return ""
    if isinstance(body, bytes | bytearray):
        return body.decode("utf-8", "replace")
    if isinstance(body, str):
        return body
    try:
        return json.dumps(body, default=str)
    except (TypeError, ValueError):
        return str(body)


def _body_message(body: Any, fallback: str) -> str:
    """The human message inside an error body (``{"error": {"message": ...}}`` in both APIs)."""
    if isinstance(body, Mapping):
        err = body.get("error", body)
        if isinstance(err, Mapping):
            msg = err.get("message")
            if isinstance(msg, str) and msg:
                return msg
        elif isinstance(err, str) and err:
            return err
        msg = body.get("message")
        if isinstance(msg, str) and msg:
            return msg
    return fallback


def from_status(
    status_code: int,
    *,
    provider: str,
    model: str,
    message: str = "",
    body: Any = None,
    headers: Mapping[str, str] | Any = None,
    request_id: str | None = None,
    secrets: Iterable[str] = (),
    now: float | None = None,
) -> ProviderStatusError:
    """The taxonomy error for an HTTP error status (the most specific class that matches)."""
    secrets = tuple(secrets)
    text = _body_text(body).lower()
    msg = redact(_body_message(body, message) or f"HTTP {status_code}", secrets)
    retryable, _why = decide_retryable(status_code, headers)
    retry_after = parse_retry_after(headers, now=now)
    cls: type[ProviderStatusError]
    if status_code == 429:
        cls = RateLimited
    elif status_code in (503, 529):
        cls = Overloaded
    elif status_code in (401, 403):
        cls = AuthError
    elif status_code >= 500:
        cls = ServerError
    elif any(h in text for h in _CONTEXT_HINTS) or status_code == 413:
        cls = ContextTooLong
    elif any(h in text for h in _FILTER_HINTS):
        cls = ContentFiltered
    elif status_code in (400, 404, 422):
        cls = BadRequest
    else:
        cls = ProviderStatusError  # 402, 408, 409, ...
    return cls(
        msg,
        provider=provider,
        model=model,
        status_code=status_code,
        request_id=request_id,
        retry_after=retry_after,
        retryable=retryable,
    )


def _mro_names(exc: BaseException) -> set[str]:
    return {c.__name__ for c in type(exc).__mro__}


def translate(
    exc: BaseException,
    *,
    provider: str,
    model: str,
    secrets: Iterable[str] = (),
    now: float | None = None,
) -> ProviderError:
    """The taxonomy error for any exception an SDK (or our own code) raised during a call.

    Precedence: an existing :class:`ProviderError` is returned as is; anything carrying an
    integer ``status_code`` and a ``response`` is a status error (the status decides the
    class); timeouts and connection failures (no response) come next; a response that could
    not be decoded is a :class:`ProviderResponseError`. Anything else is a non-retryable
    :class:`ProviderError` that names the exception type, so a bug is not retried blindly.
    """
    secrets = tuple(secrets)
    if isinstance(exc, ProviderError):
        return exc
    status = getattr(exc, "status_code", None)
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None)
    names = _mro_names(exc)
    if isinstance(status, int) and status >= 400:
        body = getattr(exc, "body", None)
        if body is None and response is not None:
            try:
                body = response.text
            except Exception:  # a streamed, unread body
                body = None
        request_id = getattr(exc, "request_id", None)
        if request_id is None and headers is not None:
            request_id = headers.get("request-id") or headers.get("x-request-id")
        return from_status(
            status,
            provider=provider,
            model=model,
            message=str(getattr(exc, "message", "")) or type(exc).__name__,
            body=body,
            headers=headers,
            request_id=request_id,
            secrets=secrets,
            now=now,
        )
    if isinstance(exc, TimeoutError) or names & {"APITimeoutError", "TimeoutException"}:
        retryable, _ = decide_retryable(None, kind="timeout")
        return ProviderTimeout(
            "no response within the timeout", provider=provider, model=model, retryable=retryable
        )
    if isinstance(exc, ConnectionError | OSError) or names & {
        "APIConnectionError",
        "ConnectError",
        "RemoteProtocolError",
        "ReadError",
        "WriteError",
        "NetworkError",
        "TransportError",
    }:
        retryable, _ = decide_retryable(None, kind="connection")
        detail = redact(str(exc) or type(exc).__name__, secrets)
        cause = exc.__cause__ or exc.__context__
        if cause is not None and detail in ("Connection error.", type(exc).__name__):
            detail = f"{detail} ({type(cause).__name__}: {redact(str(cause), secrets)})"
        return ProviderConnectionError(
            f"connection failed: {detail}", provider=provider, model=model, retryable=retryable
        )
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError) or names & {
        "APIResponseValidationError",
        "DecodingError",
    }:
        code = status if isinstance(status, int) else None
        retryable, _ = decide_retryable(code, kind="response")
        return ProviderResponseError(
            f"the response could not be decoded: {redact(str(exc), secrets)[:200]}",
            provider=provider,
            model=model,
            status_code=status if isinstance(status, int) else None,
            retryable=retryable,
        )
    return ProviderError(
        f"unexpected {type(exc).__name__}: {redact(str(exc), secrets)[:300]}",
        provider=provider,
        model=model,
        retryable=False,
    )


__all__ = ["decide_retryable", "from_status", "parse_retry_after", "redact", "translate"]
