"""A fake dispatcher and helpers for driving NetworkServer in-process.

The dispatcher answers by ``body["kind"]``: ``now`` (a Response at once), ``sleep``
(after ``delay_s``), ``gate`` (when the test opens gate ``i``), ``none`` and
``none-later`` (NO_RESPONSE, at once or later), ``raise`` and ``raise-now`` (a handler
bug, later or at once), ``slices`` (a Response with the FileSlices in ``slices[i]``).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from client.protocol import NO_RESPONSE, RequestHeader
from logserver.log import FileSlice
from logserver.network.connection import HandlerResult
from logserver.network.response import Response
from logserver.network.server import NetworkServer

__all__ = ["FakeDispatcher", "port_of", "start_server", "until"]


class FakeDispatcher:
    """Answers by ``body["kind"]``; records every request and the order handlers finish in."""

    def __init__(self) -> None:
        self.requests: list[tuple[RequestHeader, dict[str, Any], bytes]] = []
        self.peers: set[str] = set()
        self.finished: list[int] = []
        self.gates: defaultdict[int, asyncio.Event] = defaultdict(asyncio.Event)
        self.slices: dict[int, list[FileSlice]] = {}
        self.most_in_flight = 0  # the most requests dispatched and not yet finished at once

    def dispatch(
        self, header: RequestHeader, body: dict[str, Any], tail: memoryview, peer: str
    ) -> HandlerResult:
        self.requests.append((header, body, bytes(tail)))
        self.peers.add(peer)
        in_flight = len(self.requests) - len(self.finished)
        self.most_in_flight = max(self.most_in_flight, in_flight)
        i = body.get("i", -1)
        kind = body.get("kind", "now")
        if kind == "now":
            return Response({"i": i, "tail": bytes(tail)})
        if kind == "none":
            return NO_RESPONSE
        if kind == "raise":
            return self._raise()
        if kind == "raise-now":
            raise RuntimeError("dispatcher bug")
        if kind == "slices":
            return Response({"i": i}, self.slices[i])
        return self._later(i, kind, body.get("delay_s", 0.0))

    async def _later(self, i: int, kind: str, delay_s: float) -> Response | None:
        if kind == "gate":
            await self.gates[i].wait()
        else:
            await asyncio.sleep(delay_s)
        self.finished.append(i)
        return None if kind == "none-later" else Response({"i": i})

    async def _raise(self) -> Response:
        await asyncio.sleep(0)
        raise RuntimeError("handler bug")

    def open_gates(self, *indexes: int) -> None:
        for i in indexes:
            self.gates[i].set()


async def start_server(
    dispatcher: FakeDispatcher,
    *,
    max_request_bytes: int = 1 << 20,
    max_inflight: int = 100,
    idle_timeout_ms: int = 60_000,
) -> tuple[NetworkServer, int]:
    server = NetworkServer(
        dispatcher,
        max_request_bytes=max_request_bytes,
        max_inflight=max_inflight,
        idle_timeout_ms=idle_timeout_ms,
    )
    host, port = await server.listen("127.0.0.1", 0)
    assert host == "127.0.0.1"
    assert port > 0
    return server, port


def port_of(server: NetworkServer) -> int:
    return server._servers[0].sockets[0].getsockname()[1]


async def until(condition: Callable[[], object], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.005)
