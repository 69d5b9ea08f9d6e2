"""BrokerConnection against a tiny in-process server that answers however a test tells it."""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from client.connection import BrokerConnection
from client.errors import (
    LogServerError,
    NetworkError,
    RequestTimedOutError,
    UnknownServerError,
    UnknownTopicOrPartitionError,
)
from client.protocol import FrameReader, RequestHeader, decode_request, encode_response

Request = tuple[RequestHeader, dict[str, Any], bytes]


class ServerSide(asyncio.BufferedProtocol):
    """One accepted connection of the fake broker."""

    def __init__(self, broker: FakeBroker) -> None:
        self.broker = broker
        self.reader = FrameReader(self._on_frame, 64 * 1024 * 1024)
        self.transport: asyncio.Transport | None = None
        self.held: list[Request] = []  # requests a behaviour keeps for later
        self.closed = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.broker.sides.append(self)

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.reader.get_buffer(sizehint)

    def buffer_updated(self, nbytes: int) -> None:
        self.reader.buffer_updated(nbytes)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed.set()

    def _on_frame(self, frame: bytearray) -> None:
        header, body, tail = decode_request(frame)
        request = (header, body, bytes(tail))
        self.broker.requests.append(request)
        self.broker.behaviour(self, request)

    def reply(self, request: Request, body: dict[str, Any], tail: bytes = b"") -> None:
        assert self.transport is not None
        self.transport.write(encode_response(request[0].correlation_id, body, len(tail)) + tail)


Behaviour = Callable[[ServerSide, Request], None]


class FakeBroker:
    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.requests: list[Request] = []
        self.sides: list[ServerSide] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def connect(self, **kwargs: Any) -> BrokerConnection:
        return await BrokerConnection.open("127.0.0.1", self.port, client_id="tester", **kwargs)


@pytest.fixture
async def start_broker() -> AsyncIterator[Callable[[Behaviour], Awaitable[FakeBroker]]]:
    brokers: list[FakeBroker] = []

    async def start(behaviour: Behaviour) -> FakeBroker:
        broker = FakeBroker(behaviour)
        loop = asyncio.get_running_loop()
        broker.server = await loop.create_server(lambda: ServerSide(broker), "127.0.0.1", 0)
        broker.port = broker.server.sockets[0].getsockname()[1]
        brokers.append(broker)
        return broker

    yield start
    for broker in brokers:
        for side in broker.sides:
            if side.transport is not None:
                side.transport.abort()
        assert broker.server is not None
        broker.server.close()
        await broker.server.wait_closed()


# -- behaviours --------------------------------------------------------------------


def echo(side: ServerSide, request: Request) -> None:
    header, body, tail = request
    side.reply(request, {"api_key": header.api_key, "echo": body}, tail)


def never_answer(side: ServerSide, request: Request) -> None:
    pass


def swap_pairs(side: ServerSide, request: Request) -> None:
    """Hold every first request; answer the second, then the first (out of order)."""
    if not side.held:
        side.held.append(request)
        return
    side.reply(request, {"n": 2})
    side.reply(side.held.pop(), {"n": 1})


def answer_with(body: dict[str, Any]) -> Behaviour:
    def behaviour(side: ServerSide, request: Request) -> None:
        side.reply(request, body)

    return behaviour


# -- in order ------------------------------------------------------------------------


async def test_a_request_gets_its_response_body_and_tail(start_broker):
    broker = await start_broker(echo)
    async with await broker.connect() as conn:
        body, tail = await conn.request(3, {"topics": ["a"]}, [b"batch-1", b"batch-2"])
    assert body == {"api_key": 3, "echo": {"topics": ["a"]}}
    assert bytes(tail) == b"batch-1batch-2"
    header, _, _ = broker.requests[0]
    assert header == RequestHeader(3, 0, 1, "tester")


async def test_many_requests_in_flight_resolve_in_order(start_broker):
    broker = await start_broker(echo)
    async with await broker.connect() as conn:
        futures = [conn.send(0, {"i": i}, [bytes([i % 256]) * i]) for i in range(300)]
        assert conn.in_flight == 300
        replies = await asyncio.gather(*futures)
        assert conn.in_flight == 0
    for i, (body, tail) in enumerate(replies):
        assert body["echo"] == {"i": i}
        assert bytes(tail) == bytes([i % 256]) * i
    assert [h.correlation_id for h, _, _ in broker.requests] == list(range(1, 301))


async def test_concurrent_request_calls_each_get_their_own_reply(start_broker):
    broker = await start_broker(echo)
    async with await broker.connect() as conn:
        replies = await asyncio.gather(*(conn.request(1, {"i": i}) for i in range(50)))
    assert [body["echo"]["i"] for body, _ in replies] == list(range(50))


async def test_a_request_without_response_does_not_disturb_the_matching(start_broker):
    def answer_unless_acks_0(side: ServerSide, request: Request) -> None:
        if request[1].get("acks") != 0:
            echo(side, request)

    broker = await start_broker(answer_unless_acks_0)
    async with await broker.connect() as conn:
        assert conn.send(0, {"acks": 0}, expect_response=False) is None
        assert conn.in_flight == 0
        first = conn.send(0, {"acks": 1})
        assert conn.send(0, {"acks": 0}, expect_response=False) is None
        second = conn.send(0, {"acks": -1})
        assert (await first)[0]["echo"] == {"acks": 1}
        assert (await second)[0]["echo"] == {"acks": -1}
    assert [h.correlation_id for h, _, _ in broker.requests] == [1, 2, 3, 4]


async def test_api_version_travels_in_the_header(start_broker):
    broker = await start_broker(echo)
    async with await broker.connect() as conn:
        await conn.send(18, {}, api_version=3)
    assert broker.requests[0][0].api_version == 3


# -- broken streams ------------------------------------------------------------------


async def test_out_of_order_response_fails_every_pending_request(start_broker):
    broker = await start_broker(swap_pairs)
    conn = await broker.connect()
    futures = [conn.send(0, {"i": i}) for i in range(4)]

    results = await asyncio.gather(*futures, return_exceptions=True)

    assert all(isinstance(r, NetworkError) for r in results), results
    assert "response 2 out of order" in str(results[0])
    assert conn.closed
    assert conn.in_flight == 0
    with pytest.raises(NetworkError, match="out of order"):
        conn.send(0, {})
    await asyncio.wait_for(broker.sides[0].closed.wait(), 5)  # the client hung up


async def test_a_response_nobody_asked_for_closes_the_connection(start_broker):
    broker = await start_broker(never_answer)
    conn = await broker.connect()
    conn.send(0, {}, expect_response=False)
    await _until(lambda: broker.sides)
    broker.sides[0].transport.write(encode_response(77, {}))
    await _until(lambda: conn.closed)
    with pytest.raises(NetworkError, match="response 77 out of order"):
        await conn.request(0, {})


async def test_connection_closed_by_the_broker_fails_pending_requests(start_broker):
    def close_at_third(side: ServerSide, request: Request) -> None:
        if request[0].correlation_id == 3:
            side.transport.close()

    broker = await start_broker(close_at_third)
    conn = await broker.connect()
    futures = [conn.send(0, {}) for _ in range(3)]
    results = await asyncio.gather(*futures, return_exceptions=True)
    assert all(isinstance(r, NetworkError) for r in results), results
    assert "connection closed" in str(results[0])
    assert conn.closed


async def test_connection_closed_mid_frame_fails_pending_requests(start_broker):
    def half_a_response(side: ServerSide, request: Request) -> None:
        whole = encode_response(request[0].correlation_id, {"x": 1}, 1000) + b"t" * 1000
        side.transport.write(whole[: len(whole) // 2])
        side.transport.close()

    broker = await start_broker(half_a_response)
    conn = await broker.connect()
    first, second = conn.send(0, {}), conn.send(0, {})
    for future in (first, second):
        with pytest.raises(NetworkError, match="connection closed"):
            await future
    assert conn.closed


async def test_an_earlier_answer_then_a_close_mid_frame(start_broker):
    def answer_one_then_cut(side: ServerSide, request: Request) -> None:
        if request[0].correlation_id == 1:
            side.reply(request, {"ok": True})
        else:
            side.transport.write(encode_response(request[0].correlation_id, {})[:5])
            side.transport.close()

    broker = await start_broker(answer_one_then_cut)
    conn = await broker.connect()
    first, second = conn.send(0, {}), conn.send(0, {})
    assert (await first)[0] == {"ok": True}
    with pytest.raises(NetworkError):
        await second


async def test_an_undecodable_response_closes_the_connection(start_broker):
    def garbage(side: ServerSide, request: Request) -> None:
        side.transport.write(struct.pack(">ii", 5, 1) + b"\xc1")

    broker = await start_broker(garbage)
    conn = await broker.connect()
    with pytest.raises(NetworkError, match="undecodable response"):
        await conn.request(0, {})
    assert conn.closed


async def test_a_response_over_max_response_bytes_closes_the_connection(start_broker):
    def big(side: ServerSide, request: Request) -> None:
        side.reply(request, {}, b"x" * 5000)

    broker = await start_broker(big)
    conn = await broker.connect(max_response_bytes=1000)
    with pytest.raises(NetworkError, match="bad response frame"):
        await conn.request(0, {})
    assert conn.closed


async def test_a_negative_response_length_closes_the_connection(start_broker):
    def negative(side: ServerSide, request: Request) -> None:
        side.transport.write(struct.pack(">i", -5))

    broker = await start_broker(negative)
    conn = await broker.connect()
    with pytest.raises(NetworkError, match="negative frame length"):
        await conn.request(0, {})


# -- timeouts ------------------------------------------------------------------------


async def test_a_timeout_raises_and_closes_the_connection(start_broker):
    broker = await start_broker(never_answer)
    conn = await broker.connect()
    other = conn.send(0, {"i": 1})

    with pytest.raises(RequestTimedOutError, match="no response within 50 ms"):
        await conn.request(0, {"i": 2}, timeout_ms=50)

    assert conn.closed
    assert conn.in_flight == 0
    with pytest.raises(RequestTimedOutError):
        await other  # the stream position is lost for everyone
    with pytest.raises(RequestTimedOutError):
        conn.send(0, {})
    await asyncio.wait_for(broker.sides[0].closed.wait(), 5)


async def test_wait_gives_up_on_one_future(start_broker):
    broker = await start_broker(never_answer)
    conn = await broker.connect()
    future = conn.send(0, {})
    with pytest.raises(RequestTimedOutError):
        await conn.wait(future, 20)
    assert future.done()
    assert isinstance(future.exception(), RequestTimedOutError)


async def test_a_timeout_error_is_retriable():
    assert RequestTimedOutError.retriable
    assert NetworkError.retriable
    assert NetworkError.invalid_metadata


# -- error codes ---------------------------------------------------------------------


async def test_a_top_level_error_code_is_raised_as_its_class(start_broker):
    broker = await start_broker(answer_with({"error": 3, "error_message": "orders-7 not here"}))
    async with await broker.connect() as conn:
        with pytest.raises(UnknownTopicOrPartitionError, match="orders-7 not here") as info:
            await conn.request(3, {})
        assert info.value.retriable
        assert not conn.closed  # an error response is a sound frame: the connection stays
        with pytest.raises(UnknownTopicOrPartitionError):
            await conn.request(3, {})


async def test_an_unknown_error_code_keeps_the_code(start_broker):
    broker = await start_broker(answer_with({"error": 999}))
    async with await broker.connect() as conn:
        with pytest.raises(UnknownServerError, match="unknown error code 999"):
            await conn.request(3, {})


async def test_error_zero_and_missing_error_are_success(start_broker):
    broker = await start_broker(answer_with({"error": 0, "x": 1}))
    async with await broker.connect() as conn:
        body, _ = await conn.request(3, {})
    assert body == {"error": 0, "x": 1}


async def test_send_returns_error_bodies_without_raising(start_broker):
    broker = await start_broker(answer_with({"error": 3}))
    async with await broker.connect() as conn:
        body, _ = await conn.send(3, {})
    assert body == {"error": 3}


# -- opening and closing -------------------------------------------------------------


async def test_cannot_connect_raises_network_error():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(NetworkError, match=f"cannot connect to 127.0.0.1:{port}"):
            await BrokerConnection.open("127.0.0.1", port, client_id="t", timeout_ms=2000)


async def test_close_fails_pending_requests_and_later_sends(start_broker):
    broker = await start_broker(never_answer)
    conn = await broker.connect(node_id=4)
    future = conn.send(0, {})
    conn.close()
    with pytest.raises(NetworkError, match=r"broker 4 at 127\.0\.0\.1:\d+: closed by the client"):
        await future
    with pytest.raises(NetworkError, match="closed by the client"):
        conn.send(0, {})
    conn.close()  # twice is harmless
    await asyncio.wait_for(broker.sides[0].closed.wait(), 5)


async def test_async_with_closes(start_broker):
    broker = await start_broker(echo)
    async with await broker.connect() as conn:
        await conn.request(0, {})
    assert conn.closed


async def test_drained_waits_while_the_broker_does_not_read(start_broker):
    broker = await start_broker(never_answer)
    conn = await broker.connect()
    await _until(lambda: broker.sides)
    side = broker.sides[0]
    side.transport.pause_reading()
    chunk = b"x" * (1 << 20)
    for _ in range(64):  # far more than the socket buffers hold
        conn.send(0, {}, [chunk], expect_response=False)
        if not conn._writable.is_set():
            break
    drained = asyncio.ensure_future(conn.drained())
    await asyncio.sleep(0.05)
    assert not drained.done()

    side.transport.resume_reading()
    await asyncio.wait_for(drained, 10)
    conn.close()


async def _until(condition: Callable[[], object], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.005)


def test_errors_raised_here_share_the_root():
    assert issubclass(NetworkError, LogServerError)
    assert issubclass(RequestTimedOutError, LogServerError)
