"""structlog set-up. Processors are plain functions; secrets are redacted before rendering."""

from __future__ import annotations

import logging
import os
import re
import sys
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, WrappedLogger

_KEY_PATTERN = re.compile(
    r"\b(sk-[A-Za-z0-9_\-]{8,}|sk-ant-[A-Za-z0-9_\-]{8,}|AIza[0-9A-Za-z_\-]{20,})"
)
_SECRET_ENV = re.compile(r"(API_KEY|_TOKEN|_SECRET)$")


def secret_values() -> list[str]:
    """Values of environment variables that hold secrets (named like *_API_KEY)."""
    return [v for k, v in os.environ.items() if _SECRET_ENV.search(k) and len(v) >= 8]


def redact_text(text: str, secrets: list[str] | None = None) -> str:
    for value in secrets if secrets is not None else secret_values():
        if value in text:
            text = text.replace(value, "[REDACTED]")
    return _KEY_PATTERN.sub("[REDACTED]", text)


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """structlog processor: no API key, or anything shaped like one, reaches a log line."""
    secrets = secret_values()
    for key, value in event_dict.items():
        if isinstance(value, str):
            event_dict[key] = redact_text(value, secrets)
        elif isinstance(value, BaseException):
            event_dict[key] = redact_text(repr(value), secrets)
    return event_dict


def configure_logging(
    *, level: int = logging.WARNING, stream: TextIO | None = None, json: bool = False
) -> None:
    """Configure dagtier's structlog pipeline (the CLI calls this; libraries embedding
    dagtier may configure structlog themselves instead)."""
    renderer: Any = (
        structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_secrets,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream or sys.stderr),
        cache_logger_on_first_use=True,
    )


def get_logger() -> Any:
    return structlog.get_logger("dagtier")
