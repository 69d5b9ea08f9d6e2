"""The metrics port: ``/metrics``, ``/health`` and ``/ready``, served on the broker's loop.

Why on the loop rather than prometheus-client's threaded HTTP server: the
gauges read dicts the loop owns (roles, partition states, groups). Read from
another thread they could change mid-iteration (``dict changed size``) or
show a half-applied election; snapshotting them on the loop periodically
would cost work between scrapes and serve stale values. Served here, a
scrape is one loop callback that reads consistent state with no lock. Its
cost is bounded: the state walk is linear in hosted partitions, the
per-partition series stop at ``metrics.partition.limit``, and they are rendered
without prometheus-client's per-sample checks (``exposition.py``). With 1,000
partitions (6,400 samples) that is about 3 ms of loop time on an idle core
(perf/metrics_scrape.py, figures in docs/metrics.md).

The HTTP is the minimum a Prometheus scraper and a Kubernetes probe need:
one GET per connection, answered and closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.registry import Collector

from client.errors import InvalidConfigurationError
from logserver.metrics.exposition import render

__all__ = ["MetricsServer"]

log = logging.getLogger(__name__)

_READ_TIMEOUT_S = 10.0
_MAX_HEADER_BYTES = 16 * 1024


class MetricsServer:
    def __init__(
        self,
        registry: CollectorRegistry,
        not_ready_reason: Callable[[], str | None],
        state: Collector | None = None,
    ) -> None:
        """``registry``: rendered by prometheus-client; ``state``: a collector of many
        series, rendered by ``exposition.render`` (docs there)."""
        self._registry = registry
        self._state = state
        self._not_ready_reason = not_ready_reason
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, port: int, host: str = "0.0.0.0") -> int:
        """Listen on ``port`` (0: a free one) and return the port bound.

        Raises ``InvalidConfigurationError`` naming the port and the setting when
        the port is taken, so the broker refuses to start with a clear message.
        """
        try:
            self._server = await asyncio.start_server(self._serve, host, port, reuse_address=True)
        except OSError as exc:
            why = "is already in use" if exc.errno == errno.EADDRINUSE else f"({exc.strerror})"
            raise InvalidConfigurationError(
                f"metrics port {port} {why}: choose another with metrics.port "
                f"(env METRICS_PORT, flag --metrics-port)"
            ) from exc
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT_S)
            method, path = _request_line(head)
            status, content_type, body = self._answer(method, path)
            writer.write(
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode("ascii")
            )
            if method != "HEAD":
                writer.write(body)
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # a silent, truncated or oversized request: just close
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    def _answer(self, method: str, path: str) -> tuple[str, str, bytes]:
        if method not in ("GET", "HEAD"):
            return "405 Method Not Allowed", "text/plain", b"GET only\n"
        path = path.split("?", 1)[0]
        if path == "/metrics":
            started = time.perf_counter()
            body = generate_latest(self._registry)
            if self._state is not None:
                body += render(self._state.collect())
            log.debug(
                "scrape: %d bytes in %.1f ms", len(body), (time.perf_counter() - started) * 1e3
            )
            return "200 OK", CONTENT_TYPE_LATEST, body
        if path == "/health":
            return "200 OK", "text/plain", b"ok\n"
        if path == "/ready":
            reason = self._not_ready_reason()
            if reason is None:
                return "200 OK", "text/plain", b"ready\n"
            return "503 Service Unavailable", "text/plain", f"not ready: {reason}\n".encode()
        return "404 Not Found", "text/plain", b"/metrics, /health or /ready\n"


def _request_line(head: bytes) -> tuple[str, str]:
    if len(head) > _MAX_HEADER_BYTES:
        return "", ""
    parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
    if len(parts) != 3:
        return "", ""
    return parts[0], parts[1]
