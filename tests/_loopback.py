"""A stdlib HTTP server on 127.0.0.1 at a free port, serving from a daemon thread: the base
of the scripted model servers the provider and agent tests point the real SDKs at."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class LoopbackServer:
    def __init__(self, handler: type[BaseHTTPRequestHandler], **attrs: Any) -> None:
        """Serve ``handler`` (a subclass is made carrying ``attrs``, e.g. the server object)."""
        bound = type("Handler", (handler,), attrs)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), bound)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
