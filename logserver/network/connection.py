"""One client connection: frames in, responses out in request order.

Requests are dispatched as soon as their frame is complete, so several may be
in flight at once (a long-polling fetch does not hold up the produce behind
it); responses leave in request order, as Kafka clients expect. Back-pressure
is per connection: when the client stops reading (``pause_writing``) or has
``max_inflight`` requests unanswered, the broker stops reading from it, and
nobody else notices.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from client.errors import InvalidRequestError, LogServerError, StorageError
from client.protocol import NO_RESPONSE, FrameReader, RequestHeader, decode_request
from client.protocol.frames import encode_response
from logserver.log import FileSlice
from logserver.network.response import Response

__all__ = ["BrokerConnection", "Dispatcher"]

log = logging.getLogger(__name__)

# Slices up to this size are read on the loop (page-cache reads take microseconds);
# larger ones in a worker thread, so a cold read never stalls other clients.
_INLINE_READ_BYTES = 256 * 1024

HandlerResult = Response | Awaitable[Response | None] | None


class Dispatcher(Protocol):
    def dispatch(
        self, header: RequestHeader, body: dict[str, Any], tail: memoryview, peer: str
    ) -> HandlerResult: ...


class _Pending:
    """A response slot in request order: filled now or when its handler finishes."""

    __slots__ = ("correlation_id", "future", "response")

    def __init__(
        self, correlation_id: int, response: Response | None, future: asyncio.Future[Any] | None
    ) -> None:
        self.correlation_id = correlation_id
        self.response = response
        self.future = future


class BrokerConnection(asyncio.BufferedProtocol):
    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        max_request_bytes: int,
        max_inflight: int,
        on_close: Callable[[BrokerConnection], None],
        use_sendfile: bool,
    ) -> None:
        self._dispatcher = dispatcher
        self._reader = FrameReader(self._on_frame, max_request_bytes)
        self._max_inflight = max_inflight
        self._on_close = on_close
        self._use_sendfile = use_sendfile
        self._queue: deque[_Pending] = deque()
        self._backlog: deque[bytearray] = deque()  # frames read while max_inflight was reached
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._writable = True
        self._reading_paused = False
        self._eof = False
        self._closing = False  # shutting down: never resume reading
        self._sending_file = False
        self._closed = False
        self.peer = "?"
        self.last_active = time.monotonic()
        self.closed_event = asyncio.Event()

    # -- asyncio callbacks ----------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer)
        # Bound what a client that stops reading can make us hold.
        transport.set_write_buffer_limits(high=4 * 1024 * 1024)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self._reader.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self.last_active = time.monotonic()
        try:
            self._reader.buffer_updated(nbytes)
        except InvalidRequestError as exc:
            self.abort(f"bad frame: {exc}")

    def eof_received(self) -> bool:
        # Half-close: answer what is in flight, then close.
        if not self._queue and not self._backlog:
            return False
        self._eof = True
        self._pause_reading()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        for pending in self._queue:
            if pending.future is not None:
                pending.future.cancel()
        self._queue.clear()
        self.closed_event.set()
        self._on_close(self)

    def pause_writing(self) -> None:
        self._writable = False

    def resume_writing(self) -> None:
        self._writable = True
        self._pump()

    # -- requests -------------------------------------------------------------------

    def _on_frame(self, frame: bytearray) -> None:
        if self._closed:
            return
        if len(self._queue) >= self._max_inflight:
            # One socket read can hold many small requests: park them until answers
            # leave (reading is paused, so this holds at most one read's worth).
            self._backlog.append(frame)
            self._pause_reading()
            return
        self._handle(frame)

    def _handle(self, frame: bytearray, *, pump: bool = True) -> None:
        try:
            header, body, tail = decode_request(frame)
        except InvalidRequestError as exc:
            self.abort(f"undecodable request: {exc}")
            return
        try:
            result = self._dispatcher.dispatch(header, body, tail, self.peer)
        except Exception:  # a handler bug: this connection's stream can no longer be trusted
            log.exception("%s: request handler failed", self.peer)
            self.abort("internal error")
            return
        if result is NO_RESPONSE:
            return  # acks=0: nothing to send, and nothing to wait for
        if isinstance(result, Response):
            self._queue.append(_Pending(header.correlation_id, result, None))
        else:
            future = asyncio.ensure_future(result)
            self._queue.append(_Pending(header.correlation_id, None, future))
            future.add_done_callback(self._on_handler_done)
        if len(self._queue) >= self._max_inflight:
            self._pause_reading()
        if pump:
            self._pump()

    def _on_handler_done(self, future: asyncio.Future[Any]) -> None:
        if not future.cancelled():
            exc = future.exception()
            if exc is not None:
                log.error("%s: request handler failed", self.peer, exc_info=exc)
                self.abort("internal error")
                return
        self._pump()

    # -- responses ------------------------------------------------------------------

    def _pump(self) -> None:
        """Write every leading response that is ready, in order."""
        transport = self._transport
        queue = self._queue
        while queue and self._writable and not self._sending_file and not self._closed:
            head = queue[0]
            if head.response is None:
                future = head.future
                assert future is not None
                if not future.done():
                    break
                if future.cancelled():
                    queue.popleft()
                    continue
                result = future.result()
                if result is None:  # NO_RESPONSE from an async handler
                    queue.popleft()
                    continue
                head.response = result
            queue.popleft()
            response = head.response
            slices = response.slices
            tail_size = sum(s.size for s in slices) if slices else 0
            assert transport is not None
            header = encode_response(head.correlation_id, response.body, tail_size)
            self.last_active = time.monotonic()
            if tail_size and not self._use_sendfile and tail_size <= _INLINE_READ_BYTES:
                # Small tail: one write, so the client wakes once (the low-latency path).
                try:
                    parts = [header, *(piece.read_bytes() for piece in slices if piece.size)]
                except LogServerError as exc:
                    log.error("%s: reading fetched data failed: %s", self.peer, exc)
                    self.abort("fetch read failed")
                    return
                transport.write(b"".join(parts))
                continue
            transport.write(header)
            if tail_size:
                self._sending_file = True
                task = self._loop.create_task(self._send_slices(slices))
                task.add_done_callback(self._on_file_sent)
        backlog = self._backlog
        if backlog and len(queue) < self._max_inflight and not self._closed:
            while backlog and len(queue) < self._max_inflight and not self._closed:
                self._handle(backlog.popleft(), pump=False)
            self._loop.call_soon(self._pump)  # answer those that are ready, without recursion
        if self._reading_paused and not backlog and len(queue) < self._max_inflight // 2 + 1:
            if self._eof or self._closing:
                if not queue and not self._sending_file and transport is not None:
                    transport.close()
            else:
                self._resume_reading()

    async def _send_slices(self, slices: Any) -> None:
        transport = self._transport
        assert transport is not None
        for piece in slices:
            if transport.is_closing():
                return
            if not piece.size:
                continue
            if self._use_sendfile and await self._sendfile(transport, piece):
                continue
            if piece.size <= _INLINE_READ_BYTES:
                data = piece.read_bytes()
            else:
                data = await self._loop.run_in_executor(None, piece.read_bytes)
            transport.write(data)

    async def _sendfile(self, transport: asyncio.Transport, piece: FileSlice) -> bool:
        """Zero-copy send by path (a fresh file description: sendfile moves its offset)."""
        try:
            file = open(piece.path, "rb", buffering=0)  # noqa: SIM115 - closed below
        except OSError:
            return False  # renamed by retention meanwhile: the caller reads the held slice
        with file:
            sent = await self._loop.sendfile(transport, file, piece.position, piece.size)
        if sent != piece.size:
            raise StorageError(f"{piece.path}: sent {sent} of {piece.size} bytes")
        return True

    def _on_file_sent(self, task: asyncio.Task[None]) -> None:
        self._sending_file = False
        if not task.cancelled() and task.exception() is not None:
            # The frame's length is already on the wire: the stream cannot continue.
            log.error("%s: sending fetched data failed: %s", self.peer, task.exception())
            self.abort("fetch send failed")
            return
        self._pump()

    # -- flow control and closing ----------------------------------------------------

    def _pause_reading(self) -> None:
        if not self._reading_paused and self._transport is not None:
            self._reading_paused = True
            self._transport.pause_reading()

    def _resume_reading(self) -> None:
        if self._reading_paused and self._transport is not None and not self._closed:
            self._reading_paused = False
            self._transport.resume_reading()

    @property
    def idle(self) -> bool:
        """Nothing in flight: silence now means the client stalled (maybe mid-frame)."""
        return not self._queue and not self._backlog and not self._sending_file

    def abort(self, reason: str) -> None:
        if self._closed:
            return
        log.info("%s: closing connection: %s", self.peer, reason)
        self._closed = True
        if self._transport is not None:
            self._transport.abort()

    def close(self) -> None:
        """Stop reading; close once the responses in flight are written."""
        self._closing = True
        self._pause_reading()
        if self._transport is not None and not self._queue and not self._sending_file:
            self._transport.close()

    async def drain(self) -> None:
        """Wait until every request in flight has been answered."""
        while self._queue or self._sending_file:
            if self._closed:
                return
            await asyncio.sleep(0.01)


def error_body(exc: LogServerError) -> dict[str, Any]:
    return {"error": exc.code, "error_message": exc.message}
