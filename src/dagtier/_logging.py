"""structlog set-up. Processors are plain functions; secrets are redacted before rendering.

Two outputs share one pipeline: a console line for people (stderr, WARNING and up unless
``--verbose``) and, with ``--log-json FILE``, every event at INFO and up as one JSON object
per line. Redaction runs before both, so neither can ever see an API key.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from collections.abc import Iterable
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

REDACTED = "[REDACTED]"

# Shapes of provider keys and bearer tokens. Deliberately broad: a false positive costs a
# log line some characters, a false negative leaks a key that then lives forever in a file.
_KEY_PATTERN = re.compile(
    r"(?<![A-Za-z0-9])("
    # OpenAI, Anthropic (sk-ant-...), DeepSeek, OpenRouter (sk-or-...); providers echo masked
    # keys ("sk-abc1***wxyz") in 401 bodies, so '*' counts and 6 characters are enough
    r"sk-[A-Za-z0-9_\-*]{6,}"
    r"|AIza[0-9A-Za-z_\-]{20,}"  # Google
    r"|xai-[A-Za-z0-9_\-]{16,}"  # xAI
    r"|gsk_[A-Za-z0-9]{16,}"  # Groq
    r"|hf_[A-Za-z0-9]{16,}"  # Hugging Face
    r"|gh[pousr]_[A-Za-z0-9]{20,}"  # GitHub
    r"|AKIA[0-9A-Z]{16}"  # AWS access key id
    r"|eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}"  # JWT
    r")"
)
# "Authorization: Bearer X", "x-api-key: X", "api_key=X", '"api_key": "X"': the value goes.
# The separator is required so that prose like "api_key_env" or "API key" stays readable.
_KEY_ASSIGNMENT = re.compile(
    r"(?i)((?:\bbearer\s+)|(?:(?:authorization|x-api-key|api[_-]?key|access[_-]?token"
    r"|secret|password)[\"']?\s*[:=]\s*[\"']?(?:bearer\s+)?))([A-Za-z0-9_\-\.+/=]{8,})"
)
_SECRET_ENV = re.compile(r"(API_KEY|_KEY|_TOKEN|_SECRET|_PASSWORD|_PASS)$")
# Field names whose values are secrets whatever they look like ("api_key", "x-api-key",
# "access_token"); "api_key_env" or "input_tokens" name no secret and stay.
_SECRET_FIELD = re.compile(r"(?i)^(?:.*[_-])?(api[_-]?key|authorization|password|secret|token)$")
_MIN_SECRET_LEN = 8


_secret_names: tuple[tuple[str, ...], list[str]] = ((), [])


def secret_values() -> list[str]:
    """Values of environment variables that hold secrets (named like *_API_KEY, *_TOKEN),
    longest first so a key that contains another is replaced whole.

    Runs for every log line: the names are matched again only when the environment's
    names change, the values are read fresh every time. Keyed on the names themselves,
    not their count: a variable unset and a secret one set since the last call keep
    the count, and the new secret would have gone out unredacted.
    """
    global _secret_names
    keys = tuple(os.environ)
    seen, names = _secret_names
    if keys != seen:
        names = [k for k in keys if _SECRET_ENV.search(k)]
        _secret_names = (keys, names)
    values = {v for k in names if len(v := os.environ.get(k, "")) >= _MIN_SECRET_LEN}
    return sorted(values, key=len, reverse=True)


def redact_text(text: str, secrets: Iterable[str] | None = None) -> str:
    """``text`` with every known secret value and every key-shaped string replaced."""
    for value in secrets if secrets is not None else secret_values():
        if value in text:
            text = text.replace(value, REDACTED)
    text = _KEY_PATTERN.sub(REDACTED, text)
    return _KEY_ASSIGNMENT.sub(lambda m: m.group(1) + REDACTED, text)


def redact_value(value: Any, secrets: list[str] | None = None) -> Any:
    """Redact recursively inside strings, exceptions, dicts, lists and tuples. Other
    values whose text form could hold a key (objects with a custom repr) become their
    redacted repr; numbers, booleans and None pass through unchanged."""
    if secrets is None:
        secrets = secret_values()
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        return redact_text(value, secrets)
    if isinstance(value, BaseException):
        return redact_text(f"{type(value).__name__}: {value}", secrets)
    if isinstance(value, dict):
        return {
            k: REDACTED
            if isinstance(k, str) and _SECRET_FIELD.search(k) and v
            else redact_value(v, secrets)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [redact_value(v, secrets) for v in value]
    return redact_text(repr(value), secrets)


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: no API key, or anything shaped like one, reaches a log line.

    Runs after ``format_exc_info`` so that tracebacks are redacted too.
    """
    secrets = secret_values()
    for key in list(event_dict):
        value = event_dict[key]
        if isinstance(key, str) and _SECRET_FIELD.search(key) and key != "event" and value:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = redact_value(value, secrets)
    return event_dict


class _JsonTee:
    """Processor: writes the event as a JSON line to a file, then passes it on unchanged.

    Sits before the console renderer; the console's own level is applied afterwards by
    :class:`_ConsoleLevel`, so the file can hold INFO lines that the console does not show.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, _: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        self.stream.write(json.dumps(event_dict, default=str, ensure_ascii=False) + "\n")
        self.stream.flush()  # a crash must not lose the lines that explain it
        return event_dict


class _ConsoleLevel:
    def __init__(self, level: int) -> None:
        self.level = level

    def __call__(self, _: WrappedLogger, method: str, event_dict: EventDict) -> EventDict:
        if logging.getLevelName(method.upper()) < self.level:
            raise structlog.DropEvent
        return event_dict


def configure_logging(
    *,
    level: int = logging.WARNING,
    stream: TextIO | None = None,
    json: bool = False,
    json_file: TextIO | None = None,
) -> None:
    """Configure dagtier's structlog pipeline (the CLI calls this; libraries embedding
    dagtier may configure structlog themselves instead).

    Args:
        level: the console's threshold.
        stream: where console lines go (default stderr).
        json: render the console as JSON lines instead of text.
        json_file: also write every event at INFO and up to this file as JSON lines.
    """
    renderer: Any = (
        structlog.processors.JSONRenderer(default=str)
        if json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redact_secrets,
    ]
    threshold = level
    if json_file is not None:
        processors.append(_JsonTee(json_file))
        threshold = min(level, logging.INFO)
        if level > threshold:
            processors.append(_ConsoleLevel(level))
    processors.append(renderer)
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(threshold),
        # no stream: the current sys.stderr at each write, not the one at configure time
        logger_factory=structlog.PrintLoggerFactory(stream)
        if stream is not None
        else (lambda *args: _StderrLogger()),
        cache_logger_on_first_use=False,  # reconfigured per CLI call (and per test)
    )


class _StderrLogger:
    """Writes each line to whatever ``sys.stderr`` is *now*: test runners and the CLI's
    in-process runner swap it, and a stream captured once goes stale (closed), turning
    every later log line into 'I/O operation on closed file' inside a run."""

    def msg(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    log = debug = info = warn = warning = err = error = critical = exception = fatal = msg


_quiet_default: Any = None


def get_logger() -> Any:
    """dagtier's logger.

    When nobody has configured structlog (a program embedding dagtier that does not use
    structlog), structlog's own default would print every INFO line to stdout. A library
    should be quiet unless asked, as stdlib logging is: so the default here logs warnings
    and errors to stderr only. The CLI and any program that calls ``structlog.configure``
    (or :func:`configure_logging`) get whatever they configured.
    """
    if structlog.is_configured():
        return structlog.get_logger("dagtier")
    global _quiet_default
    if _quiet_default is None:
        _quiet_default = structlog.wrap_logger(
            _StderrLogger(),
            processors=[
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
                redact_secrets,
                structlog.dev.ConsoleRenderer(colors=False),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        )
    return _quiet_default


def info_enabled(log: Any) -> bool:
    """Whether ``log`` would emit an INFO line: hot paths skip building the line otherwise.

    Loggers without structlog's ``is_enabled_for`` (a stdlib ``BoundLogger`` wrapper class,
    say) are assumed to be enabled; their own filtering then decides.
    """
    check = getattr(log, "is_enabled_for", None)
    return True if check is None else bool(check(logging.INFO))
