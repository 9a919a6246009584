"""A process's Prometheus endpoint: GET /metrics (text format, from a registry of its own) and
GET /health (200 "ok", or 503 with one reason a line), served from a daemon thread.

prometheus_client's WSGI app renders the registry; its collectors read the process's state when a
scrape asks, on the server's thread, so the process's own work never waits for a scrape.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Self
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

log = logging.getLogger(__name__)

HealthCheck = Callable[[], list[str]]  # why the process is unhealthy; empty while healthy


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # a scrape every few seconds is no news
        pass


def health_app(check: HealthCheck) -> Callable:
    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        try:
            reasons = check()
        except Exception as error:  # a broken check is itself a reason to be looked at
            log.exception("health check failed")
            reasons = [f"health check failed: {type(error).__name__}: {error}"]
        status = "503 Service Unavailable" if reasons else "200 OK"
        body = ("\n".join(reasons) if reasons else "ok").encode() + b"\n"
        start_response(status, [("Content-Type", "text/plain; charset=utf-8"),
                                ("Content-Length", str(len(body)))])
        return [body]

    return app


class MetricsServer:
    """`/metrics` of `registry` and `/health` of `check` on host:port (port 0: a free one)."""

    def __init__(self, registry: CollectorRegistry, check: HealthCheck, host: str, port: int) -> None:
        metrics, health = make_wsgi_app(registry), health_app(check)

        def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
            if environ.get("PATH_INFO", "").rstrip("/") == "/health":
                return health(environ, start_response)
            return metrics(environ, start_response)

        self._server = make_server(host, port, app, ThreadingWSGIServer, handler_class=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"metrics-{self.port}",
                                        daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> MetricsServer:
        self._thread.start()
        return self

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
