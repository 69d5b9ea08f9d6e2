"""NetworkServer and the broker's connections, driven by the client's BrokerConnection.

The dispatcher is a fake: each request's body says how to answer (now, later, behind a
gate the test opens, not at all, by raising), so the tests exercise only the network
layer: ordering, back-pressure, failures, idle sweeping and shutdown (file tails are in
test_file_tails.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct

import pytest

from client.connection import BrokerConnection as ClientConnection
from client.errors import NetworkError
from client.protocol import RequestHeader, decode_response, encode_request
from logserver.network.server import NetworkServer
from tests.logserver.network.harness import FakeDispatcher, port_of, until


def test_listen_on_a_wildcard_host_binds_ipv4():
    async def probe() -> tuple[str, int]:
        server = NetworkServer(
            FakeDispatcher(), max_request_bytes=100, max_inflight=1, idle_timeout_ms=1000
        )
        try:
            return await server.listen("", 0)
        finally:
            await server.shutdown(1.0)

    host, port = asyncio.run(probe())
    assert host == "0.0.0.0"
    assert port > 0
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # closed again


# -- order -------------------------------------------------------------------------


async def test_a_request_is_answered(start):
    _, dispatcher, connect = await start()
    client = await connect()
    body, tail = await client.request(0, {"i": 1}, [b"batch"])
    assert body == {"i": 1, "tail": b"batch"}
    assert len(tail) == 0
    header, _, _ = dispatcher.requests[0]
    assert header == RequestHeader(0, 0, 1, "test")
    (peer,) = dispatcher.peers
    assert peer.startswith("127.0.0.1:")


async def test_responses_leave_in_request_order_when_handlers_finish_out_of_order(start):
    _, dispatcher, connect = await start()
    client = await connect()
    n = 8
    futures = [client.send(0, {"i": i, "kind": "gate"}) for i in range(n)]
    await until(lambda: len(dispatcher.requests) == n)
    for i in reversed(range(n)):  # the last request's handler finishes first
        dispatcher.open_gates(i)
        await until(lambda i=i: dispatcher.finished[-1:] == [i])
        assert all(not f.done() for f in futures[:i])
    replies = await asyncio.gather(*futures)  # the client fails everything on a mismatch
    assert [body["i"] for body, _ in replies] == list(range(n))
    assert dispatcher.finished == list(reversed(range(n)))


async def test_handlers_finishing_at_random_still_answer_in_order(start):
    _, _, connect = await start()
    client = await connect()
    rng = random.Random(5)
    futures = [
        client.send(0, {"i": i, "kind": "sleep", "delay_s": rng.random() / 50}) for i in range(100)
    ]
    replies = await asyncio.wait_for(asyncio.gather(*futures), 10)
    assert [body["i"] for body, _ in replies] == list(range(100))


async def test_ready_responses_wait_behind_a_slow_one(start):
    _, dispatcher, connect = await start()
    client = await connect()
    slow = client.send(0, {"i": 0, "kind": "gate"})
    quick = [client.send(0, {"i": i}) for i in range(1, 6)]
    await until(lambda: len(dispatcher.requests) == 6)
    await asyncio.sleep(0.05)
    assert not any(f.done() for f in [slow, *quick])

    dispatcher.open_gates(0)
    replies = await asyncio.gather(slow, *quick)
    assert [body["i"] for body, _ in replies] == list(range(6))


async def test_no_response_is_skipped(start):
    _, dispatcher, connect = await start()
    client = await connect()
    kinds = ["now", "none", "gate", "none-later", "now", "none", "sleep", "none-later"]
    futures = []
    for i, kind in enumerate(kinds):
        silent = kind.startswith("none")
        future = client.send(0, {"i": i, "kind": kind}, expect_response=not silent)
        if not silent:
            futures.append((i, future))
    await until(lambda: len(dispatcher.requests) == len(kinds))
    dispatcher.open_gates(2)
    for i, future in futures:
        body, _ = await asyncio.wait_for(future, 5)
        assert body["i"] == i
    # Still in step afterwards.
    body, _ = await client.request(0, {"i": 99})
    assert body["i"] == 99


async def test_many_connections_each_get_their_own_answers(start):
    _, _, connect = await start()
    clients = [await connect() for _ in range(10)]

    async def talk(n: int, client: ClientConnection) -> list[int]:
        futures = [client.send(0, {"i": n * 1000 + i, "kind": "sleep"}) for i in range(20)]
        return [body["i"] for body, _ in await asyncio.gather(*futures)]

    results = await asyncio.gather(*(talk(n, c) for n, c in enumerate(clients)))
    for n, got in enumerate(results):
        assert got == [n * 1000 + i for i in range(20)]


# -- back-pressure -----------------------------------------------------------------


async def _fill_to_max_inflight(start, max_inflight: int, extra: int):
    """``max_inflight`` gated requests in flight, then ``extra`` more sent while not reading."""
    server, dispatcher, connect = await start(max_inflight=max_inflight)
    client = await connect()
    futures = [client.send(0, {"i": i, "kind": "gate"}) for i in range(max_inflight)]
    await until(lambda: len(dispatcher.requests) == max_inflight)
    (connection,) = server.connections
    assert connection._transport.is_reading() is False
    for i in range(max_inflight, max_inflight + extra):
        futures.append(client.send(0, {"i": i, "kind": "gate"}))
        await asyncio.sleep(0.002)
    await asyncio.sleep(0.1)
    assert len(dispatcher.requests) == max_inflight  # they wait in the socket
    return dispatcher, futures


async def test_max_inflight_stops_reading_and_loses_nothing(start):
    dispatcher, futures = await _fill_to_max_inflight(start, 4, 26)

    dispatcher.open_gates(0)
    await asyncio.sleep(0.1)
    assert len(dispatcher.requests) == 4  # three still in flight: more than half of four

    dispatcher.open_gates(*range(30))
    replies = await asyncio.wait_for(asyncio.gather(*futures), 10)
    assert [body["i"] for body, _ in replies] == list(range(30))
    assert [h.correlation_id for h, _, _ in dispatcher.requests] == list(range(1, 31))


async def test_reading_resumes_once_half_of_max_inflight_are_answered(start):
    dispatcher, futures = await _fill_to_max_inflight(start, 4, 6)
    try:
        dispatcher.open_gates(0, 1)  # two of four still in flight
        await until(lambda: len(dispatcher.requests) > 4, timeout_s=1.0)
    finally:
        dispatcher.open_gates(*range(10))
        await asyncio.gather(*futures)


async def test_max_inflight_with_slow_handlers_loses_nothing(start):
    _, dispatcher, connect = await start(max_inflight=3)
    client = await connect()
    rng = random.Random(9)
    futures = []
    for i in range(200):
        futures.append(client.send(0, {"i": i, "kind": "sleep", "delay_s": rng.random() / 500}))
        if i % 7 == 0:
            await asyncio.sleep(0.001)
    replies = await asyncio.wait_for(asyncio.gather(*futures), 30)
    assert [body["i"] for body, _ in replies] == list(range(200))
    assert sorted(dispatcher.finished) == list(range(200))


async def test_max_inflight_bounds_requests_in_flight(start):
    _, dispatcher, connect = await start(max_inflight=4)
    client = await connect()
    futures = [client.send(0, {"i": i, "kind": "gate"}) for i in range(40)]  # one read's worth
    await asyncio.sleep(0.1)
    assert len(dispatcher.requests) == 4
    for i in range(40):
        await until(lambda i=i: len(dispatcher.requests) > i)
        dispatcher.open_gates(i)
    replies = await asyncio.wait_for(asyncio.gather(*futures), 10)
    assert [body["i"] for body, _ in replies] == list(range(40))
    assert dispatcher.most_in_flight == 4


# -- failures ------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["raise", "raise-now"])
async def test_a_handler_raising_aborts_the_connection(start, kind):
    server, _, connect = await start()
    client = await connect()
    pending = client.send(0, {"i": 0, "kind": "gate"})
    with pytest.raises(NetworkError, match="connection closed"):
        await client.request(0, {"i": 1, "kind": kind})
    with pytest.raises(NetworkError):
        await pending
    await until(lambda: not server.connections)

    other = await connect()  # the server itself is fine
    assert (await other.request(0, {"i": 2}))[0]["i"] == 2


async def test_a_frame_over_max_request_bytes_aborts_the_connection(start):
    server, dispatcher, connect = await start(max_request_bytes=1000)
    client = await connect()
    with pytest.raises(NetworkError):
        await client.request(0, {"i": 0}, [b"x" * 2000])
    assert dispatcher.requests == []
    await until(lambda: not server.connections)


@pytest.mark.parametrize(
    "garbage",
    [
        pytest.param(struct.pack(">i", -1), id="negative-length"),
        pytest.param(struct.pack(">ii", 5, 1) + b"\xc1", id="meta-not-msgpack"),
        pytest.param(struct.pack(">ii", 5, 1) + b"\x90", id="meta-wrong-shape"),
    ],
)
async def test_a_malformed_frame_aborts_the_connection(start, garbage):
    server, dispatcher, _ = await start()
    port = port_of(server)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(garbage)
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed without an answer
    writer.close()
    await writer.wait_closed()
    assert dispatcher.requests == []


async def test_client_half_close_still_gets_its_answers(start):
    server, dispatcher, _ = await start()
    port = port_of(server)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for i in range(3):
        header = RequestHeader(0, 0, i + 1, "raw")
        writer.writelines(encode_request(header, {"i": i, "kind": "gate"}))
    await until(lambda: len(dispatcher.requests) == 3)
    writer.write_eof()
    await asyncio.sleep(0.05)
    dispatcher.open_gates(0, 1, 2)
    data = await asyncio.wait_for(reader.read(), 5)  # every answer, then the broker closes
    writer.close()
    await writer.wait_closed()
    ids = []
    while data:
        (length,) = struct.unpack_from(">i", data)
        ids.append(decode_response(data[4 : 4 + length])[0])
        data = data[4 + length :]
    assert ids == [1, 2, 3]


# -- idle connections --------------------------------------------------------------


async def test_idle_connections_are_closed_and_busy_ones_are_not(start):
    server, dispatcher, connect = await start(idle_timeout_ms=150)
    idle = await connect()
    busy = await connect()
    await idle.request(0, {"i": 0})
    pending = busy.send(0, {"i": 1, "kind": "gate"})

    await until(lambda: idle.closed, timeout_s=5)
    await asyncio.sleep(0.3)  # two timeouts more
    assert not busy.closed
    assert len(server.connections) == 1

    dispatcher.open_gates(1)
    body, _ = await pending
    assert body["i"] == 1


async def test_a_connection_in_use_is_not_idle(start):
    _, _, connect = await start(idle_timeout_ms=500)
    client = await connect()
    for i in range(25):  # over a second of traffic, a request every 50 ms
        await client.request(0, {"i": i})
        await asyncio.sleep(0.05)
    assert not client.closed


async def test_a_client_stalled_mid_frame_is_closed_as_idle(start):
    server, dispatcher, _ = await start(idle_timeout_ms=100)
    _, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
    writer.write(struct.pack(">i", 100) + b"partial")
    await until(lambda: not server.connections)
    assert dispatcher.requests == []
    writer.close()
    await writer.wait_closed()


# -- shutdown ------------------------------------------------------------------------


async def test_shutdown_answers_requests_in_flight_then_closes(start):
    server, dispatcher, connect = await start()
    client = await connect()
    futures = [client.send(0, {"i": i, "kind": "gate"}) for i in range(3)]
    await until(lambda: len(dispatcher.requests) == 3)

    shutdown = asyncio.ensure_future(server.shutdown(5.0))
    await asyncio.sleep(0.05)
    assert not shutdown.done()
    with pytest.raises(NetworkError, match="cannot connect"):
        await connect()  # no longer accepting

    dispatcher.open_gates(0, 1, 2)
    replies = await asyncio.wait_for(asyncio.gather(*futures), 5)
    assert [body["i"] for body, _ in replies] == [0, 1, 2]
    await asyncio.wait_for(shutdown, 5)
    await until(lambda: client.closed)
    assert not server.connections


async def test_requests_sent_after_shutdown_began_are_not_dispatched(start):
    server, dispatcher, connect = await start()
    client = await connect()
    first = client.send(0, {"i": 0, "kind": "gate"})
    await until(lambda: len(dispatcher.requests) == 1)
    shutdown = asyncio.ensure_future(server.shutdown(2.0))
    await asyncio.sleep(0.05)
    dispatcher.open_gates(0)
    await first
    late = client.send(0, {"i": 1})
    with contextlib.suppress(NetworkError):
        await asyncio.wait_for(late, 3)
    await shutdown
    assert len(dispatcher.requests) == 1


async def test_shutdown_gives_up_after_its_timeout(start):
    server, _, connect = await start()
    client = await connect()
    stuck = client.send(0, {"i": 0, "kind": "gate"})
    await asyncio.sleep(0.05)
    await asyncio.wait_for(server.shutdown(0.2), 5)
    with pytest.raises(NetworkError):
        await asyncio.wait_for(stuck, 5)
    assert not server.connections


async def test_shutdown_closes_idle_connections(start):
    server, _, connect = await start()
    clients = [await connect() for _ in range(3)]
    await asyncio.gather(*(c.request(0, {"i": 0}) for c in clients))
    await asyncio.wait_for(server.shutdown(5.0), 5)
    await until(lambda: all(c.closed for c in clients))
