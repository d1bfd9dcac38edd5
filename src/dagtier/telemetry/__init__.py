"""Telemetry as event subscribers: structured logs (:class:`LogSubscriber`) and, with the
``dagtier[otel]`` extra, OpenTelemetry spans (:class:`dagtier.telemetry.otel.OtelSubscriber`).

Both are plain :mod:`dagtier.events` subscribers, so a program embedding dagtier opts in
with ``run(..., subscribers=[LogSubscriber()])``; the ``dagtier`` command always logs.
The OpenTelemetry module is not imported here: the SDK costs import time.
"""

from __future__ import annotations

from .logs import LogSubscriber

__all__ = ["LogSubscriber"]
