"""One TCP connection to a broker: pipelined requests, responses matched in order.

Many requests may be in flight (``max_in_flight``); the broker answers in
order, so a response must match the oldest outstanding correlation id —
anything else means the stream is broken and the connection is closed. A
closed or failed connection fails every outstanding request with
``NetworkError`` (retriable, and it invalidates metadata, so callers refresh).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import deque
from collections.abc import Sequence
from typing import Any

from client.errors import (
    InvalidRequestError,
    LogServerError,
    NetworkError,
    RequestTimedOutError,
    error_for_code,
)
from client.protocol import FrameReader, RequestHeader, decode_response, encode_request
from client.record.layout import BytesLike

__all__ = ["BrokerConnection", "Reply"]

log = logging.getLogger(__name__)

Reply = tuple[dict[str, Any], memoryview]


class _Protocol(asyncio.BufferedProtocol):
    def __init__(self, connection: BrokerConnection, max_response_bytes: int) -> None:
        self._connection = connection
        self._reader = FrameReader(connection._on_frame, max_response_bytes)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._reader.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        try:
            self._reader.buffer_updated(nbytes)
        except InvalidRequestError as exc:
            self._connection._fail(NetworkError(f"{self._connection}: bad response frame: {exc}"))

    def pause_writing(self) -> None:
        self._connection._writable.clear()

    def resume_writing(self) -> None:
        self._connection._writable.set()

    def connection_lost(self, exc: Exception | None) -> None:
        reason = f": {exc}" if exc else ""
        self._connection._fail(NetworkError(f"{self._connection}: connection closed{reason}"))


class BrokerConnection:
    def __init__(self, host: str, port: int, *, client_id: str, node_id: int = -1) -> None:
        self.host = host
        self.port = port
        self.node_id = node_id
        self._client_id = client_id
        self._transport: asyncio.Transport | None = None
        self._waiting: deque[tuple[int, asyncio.Future[Reply]]] = deque()
        self._correlation = itertools.count(1)
        self._writable = asyncio.Event()
        self._writable.set()
        self._closed: LogServerError | None = None

    def __repr__(self) -> str:
        return f"broker {self.node_id} at {self.host}:{self.port}"

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        client_id: str,
        node_id: int = -1,
        timeout_ms: int = 10_000,
        max_response_bytes: int = 200 * 1024 * 1024,
    ) -> BrokerConnection:
        connection = cls(host, port, client_id=client_id, node_id=node_id)
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await asyncio.wait_for(
                loop.create_connection(
                    lambda: _Protocol(connection, max_response_bytes), host, port
                ),
                timeout_ms / 1000,
            )
        except (OSError, TimeoutError) as exc:
            raise NetworkError(f"cannot connect to {host}:{port}: {exc or 'timed out'}") from exc
        connection._transport = transport  # type: ignore[assignment]
        return connection

    @property
    def closed(self) -> bool:
        return self._closed is not None

    @property
    def in_flight(self) -> int:
        return len(self._waiting)

    def send(
        self,
        api_key: int,
        body: dict[str, Any],
        tail: Sequence[BytesLike] = (),
        *,
        expect_response: bool = True,
        api_version: int = 0,
    ) -> asyncio.Future[Reply] | None:
        """Write a request now; the future resolves to the response's body and tail."""
        if self._closed is not None:
            raise self._closed
        assert self._transport is not None
        correlation_id = next(self._correlation)
        header = RequestHeader(api_key, api_version, correlation_id, self._client_id)
        self._transport.writelines(encode_request(header, body, tail))
        if not expect_response:
            return None
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._waiting.append((correlation_id, future))
        return future

    async def request(
        self,
        api_key: int,
        body: dict[str, Any],
        tail: Sequence[BytesLike] = (),
        *,
        timeout_ms: int = 30_000,
    ) -> Reply:
        """Send and wait; a top-level error in the response is raised as its class."""
        if not self._writable.is_set():
            await self._writable.wait()
        future = self.send(api_key, body, tail)
        assert future is not None
        reply = await self.wait(future, timeout_ms)
        code = reply[0].get("error")
        if code:
            raise error_for_code(code, reply[0].get("error_message"))
        return reply

    async def wait(self, future: asyncio.Future[Reply], timeout_ms: int) -> Reply:
        # asyncio.wait never cancels the future and always lets a cancel through
        # (wait_for on 3.11 can swallow one: cpython gh-86296).
        done, _ = await asyncio.wait((future,), timeout=timeout_ms / 1000)
        if not done:
            # The stream position is unknown once a response is abandoned: start afresh.
            error = RequestTimedOutError(f"{self}: no response within {timeout_ms} ms")
            self._fail(error)
            raise error
        return future.result()

    async def drained(self) -> None:
        """Wait until the socket takes more data (back-pressure for bulk senders)."""
        if not self._writable.is_set():
            await self._writable.wait()

    def _on_frame(self, frame: bytearray) -> None:
        try:
            correlation_id, body, tail = decode_response(frame)
        except InvalidRequestError as exc:
            self._fail(NetworkError(f"{self}: undecodable response: {exc}"))
            return
        if not self._waiting or self._waiting[0][0] != correlation_id:
            self._fail(NetworkError(f"{self}: response {correlation_id} out of order"))
            return
        _, future = self._waiting.popleft()
        if not future.done():
            future.set_result((body, tail))

    def _fail(self, error: LogServerError) -> None:
        if self._closed is None:
            self._closed = error
            if self._transport is not None:
                self._transport.abort()
        waiting, self._waiting = self._waiting, deque()
        for _, future in waiting:
            if not future.done():
                future.set_exception(error)
                future.exception()  # a caller gone after a timeout or cancel must not warn
        self._writable.set()

    def close(self) -> None:
        self._fail(NetworkError(f"{self}: closed by the client"))

    async def __aenter__(self) -> BrokerConnection:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
