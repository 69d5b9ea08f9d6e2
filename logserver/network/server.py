"""The listening sockets and the set of open connections."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time

from logserver.network.connection import BrokerConnection, Dispatcher

__all__ = ["NetworkServer"]

log = logging.getLogger(__name__)


class NetworkServer:
    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        max_request_bytes: int,
        max_inflight: int,
        idle_timeout_ms: int,
    ) -> None:
        self._dispatcher = dispatcher
        self._max_request_bytes = max_request_bytes
        self._max_inflight = max_inflight
        self._idle_timeout_s = idle_timeout_ms / 1000
        self._servers: list[asyncio.Server] = []
        self.connections: set[BrokerConnection] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._use_sendfile = False

    async def listen(self, host: str, port: int) -> tuple[str, int]:
        """Start accepting on ``host:port``; return the bound address (port 0 picks one)."""
        loop = asyncio.get_running_loop()
        # uvloop's transports cannot sendfile; the standard loop's plain TCP ones can.
        self._use_sendfile = isinstance(loop, asyncio.BaseEventLoop)
        server = await loop.create_server(
            self._new_connection,
            host or None,
            port,
            reuse_address=True,
            backlog=1024,
            family=socket.AF_INET if host in ("", "0.0.0.0") else socket.AF_UNSPEC,
        )
        self._servers.append(server)
        if self._sweeper is None:
            self._sweeper = asyncio.create_task(self._sweep_idle(), name="idle-connection-sweeper")
            self._sweeper.add_done_callback(_log_failure)
        bound = server.sockets[0].getsockname()
        return bound[0], bound[1]

    def _new_connection(self) -> BrokerConnection:
        connection = BrokerConnection(
            self._dispatcher,
            max_request_bytes=self._max_request_bytes,
            max_inflight=self._max_inflight,
            on_close=self.connections.discard,
            use_sendfile=self._use_sendfile,
        )
        self.connections.add(connection)
        return connection

    async def _sweep_idle(self) -> None:
        """Close connections silent for ``connections.max.idle.ms`` with nothing in flight."""
        period = max(0.05, min(self._idle_timeout_s / 4, 30.0))
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for connection in list(self.connections):
                if connection.idle and now - connection.last_active > self._idle_timeout_s:
                    connection.abort("idle for longer than connections.max.idle.ms")

    def stop_accepting(self) -> None:
        for server in self._servers:
            server.close()

    async def shutdown(self, timeout_s: float) -> None:
        """Stop accepting, answer requests in flight (up to ``timeout_s``), close everything."""
        self.stop_accepting()
        connections = list(self.connections)
        for connection in connections:
            connection.close()
        if connections:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*(c.drain() for c in connections)), timeout_s)
        for connection in list(self.connections):
            if connection.idle:
                connection.close()  # answered everything: a graceful close flushes the socket
            else:
                connection.abort("broker shutting down")
        for server in self._servers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(server.wait_closed(), 1.0)
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper


def _log_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("%s failed", task.get_name(), exc_info=task.exception())
