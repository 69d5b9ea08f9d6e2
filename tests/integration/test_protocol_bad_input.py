"""What a real broker does with input no well-behaved client sends.

Each test seeds a topic, opens a bystander connection, sends something bad,
asserts the broker's answer (an error response, or closing that connection),
and then ``assert_still_serving``: the bystander and a new client still
produce and fetch, and every record stored before is still there, unchanged.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import struct
import time
from typing import Any

import msgpack
import pytest

from client.connection import BrokerConnection
from client.errors import InvalidRequestError
from client.protocol import ApiKey
from client.record import BatchBuilder, build_batch
from tests.integration import wire
from tests.integration.conftest import Clients
from tests.support.broker_process import BrokerProcess

TOPIC = "data"


@dataclasses.dataclass
class Stored:
    """A topic with known contents, and a connection opened before the bad input."""

    broker: BrokerProcess
    bystander: BrokerConnection
    expected: list[tuple[int, bytes | None]]

    async def log_end(self, partition: int = 0) -> int:
        return (await wire.list_offset(self.bystander, TOPIC, partition, wire.LATEST))[3]


@pytest.fixture
async def stored(broker: BrokerProcess, clients: Clients) -> Stored:
    conn = await clients.conn(broker, "bystander")
    await wire.create_topic(conn, TOPIC, partitions=2)
    expected: list[tuple[int, bytes | None]] = []
    for i, codec in enumerate(["none", "lz4", "snappy", "none"]):
        values = [f"seed-{i}-{j}".encode() * (j + 1) for j in range(3)]
        base = await wire.produce_values(conn, TOPIC, 0, values, compression=codec)
        expected.extend((base + j, v) for j, v in enumerate(values))
    return Stored(broker, conn, expected)


async def assert_still_serving(
    stored: Stored, clients: Clients, *, partition_1_end: int = 0
) -> None:
    """Old data untouched; the bystander and a new client both produce and fetch."""
    fresh = await clients.conn(stored.broker, "after")
    assert not stored.bystander.closed, "the bad input closed another client's connection"
    for conn in (stored.bystander, fresh):
        assert await wire.fetch_values(conn, TOPIC) == stored.expected
        value = f"after-{len(stored.expected)}".encode()
        base = await wire.produce_values(conn, TOPIC, 0, [value])
        assert base == len(stored.expected)
        stored.expected.append((base, value))
        assert await wire.fetch_values(conn, TOPIC, offset=base) == [(base, value)]
    assert await stored.log_end(1) == partition_1_end


def produce_frame(batch: bytes, *, partition: int = 0, correlation_id: int = 1) -> bytes:
    body = {"acks": 1, "timeout_ms": 1000, "topics": [[TOPIC, [[partition, len(batch)]]]]}
    meta = wire.request_meta(ApiKey.PRODUCE, body, correlation_id=correlation_id)
    return wire.frame(meta, batch)


API_VERSIONS_META = wire.request_meta(ApiKey.API_VERSIONS, {}, correlation_id=77)


async def assert_answers_api_versions(raw: wire.RawClient, correlation_id: int = 77) -> None:
    """The raw connection is still in step: an ApiVersions request gets its answer."""
    meta = wire.request_meta(ApiKey.API_VERSIONS, {}, correlation_id=correlation_id)
    await raw.send(wire.frame(meta))
    got_id, body, _ = await raw.read_response()
    assert (got_id, body["error"]) == (correlation_id, wire.NONE)


# -- truncated and oversized frames ----------------------------------------------------


@pytest.mark.parametrize("how", ["fin", "rst"])
@pytest.mark.parametrize("cut", [2, 4, 6, 20, -1], ids=lambda c: f"cut{c}")
async def test_client_closing_mid_frame_appends_nothing(
    stored: Stored, clients: Clients, cut: int, how: str
) -> None:
    data = produce_frame(build_batch([b"never-stored"] * 5))
    raw = await clients.raw(stored.broker)
    await raw.send(data[:cut])
    await asyncio.sleep(0.05)
    if how == "fin":
        raw.writer.close()
        await raw.writer.wait_closed()
    else:
        raw.close()
    await asyncio.sleep(0.1)
    assert await stored.log_end() == len(stored.expected)
    await assert_still_serving(stored, clients)


async def test_stalled_partial_frame_does_not_block_others(
    stored: Stored, clients: Clients
) -> None:
    data = produce_frame(build_batch([b"never-stored"] * 5))
    stalled = await clients.raw(stored.broker)
    await stalled.send(data[:-10])
    started = time.monotonic()
    await assert_still_serving(stored, clients)
    assert time.monotonic() - started < 5
    # The stalled request completes late: it is appended then, and only then.
    await stalled.send(data[-10:])
    correlation_id, body, _ = await stalled.read_response()
    [[_, [[_, error, base, _, _]]]] = body["topics"]
    assert (correlation_id, error, base) == (1, wire.NONE, len(stored.expected))


@pytest.mark.broker_flags("--socket-request-max-bytes", "4096")
@pytest.mark.parametrize(
    "length", [4097, 1 << 20, 2**31 - 1, -1, -(2**31)], ids=lambda n: f"len{n}"
)
async def test_frame_length_over_the_limit_closes_the_connection(
    stored: Stored, clients: Clients, length: int
) -> None:
    raw = await clients.raw(stored.broker)
    # Only the prefix: the broker must not wait for (or allocate) the announced bytes.
    await raw.send(struct.pack(">i", length))
    assert await raw.closed_by_peer(5)
    await assert_still_serving(stored, clients)


@pytest.mark.broker_flags("--socket-request-max-bytes", "4096")
async def test_whole_oversized_produce_is_refused_and_nothing_appended(
    stored: Stored, clients: Clients
) -> None:
    data = produce_frame(build_batch([os.urandom(3000), os.urandom(3000)]))
    raw = await clients.raw(stored.broker)
    with contextlib.suppress(ConnectionError):  # the broker may reset before we finish
        await raw.send(data)
    assert await raw.closed_by_peer(5)
    assert await stored.log_end() == len(stored.expected)
    await assert_still_serving(stored, clients)


@pytest.mark.broker_flags("--socket-request-max-bytes", "4096")
async def test_frame_of_exactly_the_limit_is_served(stored: Stored, clients: Clients) -> None:
    pad = 3900
    while True:
        data = produce_frame(build_batch([b"x" * pad], timestamp_ms=1))
        length = len(data) - 4
        if length == 4096:
            break
        pad += 4096 - length
    raw = await clients.raw(stored.broker)
    await raw.send(data)
    _, body, _ = await raw.read_response()
    [[_, [[_, error, base, _, _]]]] = body["topics"]
    assert (error, base) == (wire.NONE, len(stored.expected))
    stored.expected.append((base, b"x" * pad))
    await assert_still_serving(stored, clients)


# -- frames that do not decode -----------------------------------------------------------

_GOOD_META = wire.request_meta(ApiKey.API_VERSIONS, {})

NOT_MSGPACK = {
    "reserved-byte": wire.frame(b"\xc1"),
    "truncated-array": wire.frame(b"\x95\x12\x00"),
    "trailing-garbage": wire.frame(_GOOD_META + b"\xc0\xc0"),
    "bad-utf8-client-id": wire.frame(b"\x95\x12\x00\x01\xa2\xff\xfe\x80"),
    "unhashable-map-key": wire.frame(b"\x95\x12\x00\x01\xc0\x81\x91\x01\x02"),
    "meta-length-over-frame": struct.pack(">ii", 8, 100) + b"\x90\x90\x90\x90",
    "meta-length-zero": struct.pack(">ii", 8, 0) + _GOOD_META[:4],
    "meta-length-negative": struct.pack(">ii", 8, -5) + b"\x90\x90\x90\x90",
    "frame-without-meta-length": struct.pack(">i", 2) + b"\x00\x00",
    "empty-frame": struct.pack(">i", 0),
}


@pytest.mark.parametrize("data", list(NOT_MSGPACK.values()), ids=list(NOT_MSGPACK))
async def test_undecodable_frame_closes_only_that_connection(
    stored: Stored, clients: Clients, data: bytes
) -> None:
    raw = await clients.raw(stored.broker)
    await raw.send(data)
    assert await raw.closed_by_peer(5)
    await assert_still_serving(stored, clients)


WRONG_SHAPES: dict[str, Any] = {
    "map": {"api_key": 18, "api_version": 0, "correlation_id": 1},
    "four-fields": [18, 0, 1, "c"],
    "six-fields": [18, 0, 1, "c", {}, {}],
    "api-key-string": ["18", 0, 1, "c", {}],
    "api-key-bool": [True, 0, 1, "c", {}],
    "version-null": [18, None, 1, "c", {}],
    "correlation-float": [18, 0, 1.0, "c", {}],
    "client-id-int": [18, 0, 1, 5, {}],
    "body-list": [18, 0, 1, "c", []],
    "body-null": [18, 0, 1, "c", None],
    "scalar": 18,
}


@pytest.mark.parametrize("meta", list(WRONG_SHAPES.values()), ids=list(WRONG_SHAPES))
async def test_meta_of_the_wrong_shape_closes_only_that_connection(
    stored: Stored, clients: Clients, meta: Any
) -> None:
    raw = await clients.raw(stored.broker)
    await raw.send(wire.frame(msgpack.packb(meta)))
    assert await raw.closed_by_peer(5)
    await assert_still_serving(stored, clients)


async def test_null_client_id_is_a_valid_header(stored: Stored, clients: Clients) -> None:
    raw = await clients.raw(stored.broker)
    await raw.send(wire.frame(wire.request_meta(ApiKey.API_VERSIONS, {}, client_id=None)))
    _, body, _ = await raw.read_response()
    assert body["error"] == wire.NONE
    await assert_still_serving(stored, clients)


# -- unknown API keys and versions ------------------------------------------------------


@pytest.mark.parametrize(
    ("api_key", "version"),
    [
        (999, 0),
        (-1, 0),
        (2**40, 0),
        (22, 0),  # InitProducerId: a Kafka API this broker does not implement
        (int(ApiKey.API_VERSIONS), 1),
        (int(ApiKey.METADATA), -1),
        (int(ApiKey.FETCH), 2**31),
    ],
)
async def test_unknown_api_key_or_version_is_unsupported_version(
    stored: Stored, clients: Clients, api_key: int, version: int
) -> None:
    raw = await clients.raw(stored.broker)
    meta = wire.request_meta(api_key, {}, version=version, correlation_id=41)
    await raw.send(wire.frame(meta))
    correlation_id, body, tail = await raw.read_response()
    assert (correlation_id, body["error"], tail) == (41, wire.UNSUPPORTED_VERSION, b"")
    await assert_answers_api_versions(raw, 42)
    await assert_still_serving(stored, clients)


async def test_produce_of_an_unknown_version_appends_nothing(
    stored: Stored, clients: Clients
) -> None:
    batch = build_batch([b"never-stored"])
    body = {"acks": 1, "timeout_ms": 1000, "topics": [[TOPIC, [[0, len(batch)]]]]}
    raw = await clients.raw(stored.broker)
    await raw.send(wire.frame(wire.request_meta(ApiKey.PRODUCE, body, version=9), batch))
    _, reply, _ = await raw.read_response()
    assert reply["error"] == wire.UNSUPPORTED_VERSION
    assert await stored.log_end() == len(stored.expected)
    await assert_still_serving(stored, clients)


# -- produce errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("topic", "partition"),
    [(TOPIC, 2), (TOPIC, -1), (TOPIC, 2**40), (TOPIC, "0"), ("no-such-topic", 0), (7, 0)],
)
async def test_produce_to_an_invalid_partition(
    stored: Stored, clients: Clients, topic: Any, partition: Any
) -> None:
    batch = build_batch([b"never-stored"])
    body = {"acks": 1, "timeout_ms": 1000, "topics": [[topic, [[partition, len(batch)]]]]}
    reply, _ = await stored.bystander.request(ApiKey.PRODUCE, body, [batch])
    assert reply["topics"] == [
        [topic, [[partition, wire.UNKNOWN_TOPIC_OR_PARTITION, -1, -1, reply_message(reply)]]]
    ]
    assert await stored.log_end() == len(stored.expected)
    await assert_still_serving(stored, clients)


def reply_message(reply: dict[str, Any]) -> Any:
    return reply["topics"][0][1][0][4]


async def test_bad_partition_does_not_stop_the_good_one_in_the_same_request(
    stored: Stored, clients: Clients
) -> None:
    good, bad = build_batch([b"good"]), build_batch([b"bad"])
    body = {
        "acks": -1,
        "timeout_ms": 1000,
        "topics": [[TOPIC, [[9, len(bad)], [1, len(good)]]]],
    }
    reply, _ = await stored.bystander.request(ApiKey.PRODUCE, body, [bad, good])
    [[_, [row_bad, row_good]]] = reply["topics"]
    assert row_bad[:3] == [9, wire.UNKNOWN_TOPIC_OR_PARTITION, -1]
    assert row_good[:3] == [1, wire.NONE, 0]
    assert await wire.fetch_values(stored.bystander, TOPIC, 1) == [(0, b"good")]
    assert await wire.fetch_values(stored.bystander, TOPIC, 0) == stored.expected
    await assert_still_serving(stored, clients, partition_1_end=1)


def _corrupt(batch: bytes, position: int) -> bytes:
    data = bytearray(batch)
    data[position] ^= 0x40
    return bytes(data)


def _two_batches_second_corrupt() -> bytes:
    first = build_batch([b"first-ok"])
    second = build_batch([b"second-bad"])
    return first + _corrupt(second, len(second) - 1)


def _good_batch() -> bytes:
    builder = BatchBuilder("none")
    for i in range(4):
        builder.append(f"value-{i}".encode(), key=b"k", timestamp_ms=1_700_000_000_000 + i)
    return builder.build()


GOOD_BATCH = _good_batch()

CORRUPT = {
    "body-byte": _corrupt(GOOD_BATCH, len(GOOD_BATCH) - 3),
    "crc-field": _corrupt(GOOD_BATCH, 18),
    "record-count": _corrupt(GOOD_BATCH, 60),
    "attributes": _corrupt(GOOD_BATCH, 22),
    "lz4-body": _corrupt(build_batch([b"z" * 500], compression="lz4"), 70),
    "second-of-two": _two_batches_second_corrupt(),
}


@pytest.mark.parametrize("batch", list(CORRUPT.values()), ids=list(CORRUPT))
async def test_batch_failing_its_crc_is_corrupt_message_and_nothing_appended(
    stored: Stored, clients: Clients, batch: bytes
) -> None:
    row = await wire.produce(stored.bystander, TOPIC, 0, batch, acks=-1)
    assert row[:3] == [0, wire.CORRUPT_MESSAGE, -1], row
    assert await stored.log_end() == len(stored.expected)
    await assert_still_serving(stored, clients)


@pytest.mark.parametrize(
    "sizes",
    [
        "over-the-tail",  # one partition claims more bytes than the tail holds
        "under-the-tail",  # bytes are left over after every partition took its share
        "second-over",  # the first partition's share fits, the second's does not
        "negative",
        "not-an-int",
    ],
)
async def test_produce_whose_tail_sizes_do_not_add_up_is_invalid_and_appends_nothing(
    stored: Stored, clients: Clients, sizes: str
) -> None:
    batch = build_batch([b"never-stored"])
    n = len(batch)
    partitions, tail = {
        "over-the-tail": ([[0, n + 1]], [batch]),
        "under-the-tail": ([[0, n]], [batch, b"junk"]),
        "second-over": ([[0, n], [1, n]], [batch, batch[:-1]]),
        "negative": ([[0, -n]], [batch]),
        "not-an-int": ([[0, str(n)]], [batch]),
    }[sizes]
    body = {"acks": 1, "timeout_ms": 1000, "topics": [[TOPIC, partitions]]}
    with pytest.raises(InvalidRequestError):
        await stored.bystander.request(ApiKey.PRODUCE, body, tail)
    assert await stored.log_end(0) == len(stored.expected), "an invalid request appended data"
    await assert_still_serving(stored, clients)


# -- fetch errors ---------------------------------------------------------------------


@pytest.mark.parametrize("beyond", [1, 1000, 2**62])
async def test_fetch_beyond_the_log_end_is_offset_out_of_range(
    stored: Stored, clients: Clients, beyond: int
) -> None:
    log_end = len(stored.expected)
    started = time.monotonic()
    row, tail = await wire.fetch(
        stored.bystander, TOPIC, 0, log_end + beyond, max_wait_ms=3000, min_bytes=1
    )
    assert time.monotonic() - started < 2, "an error must not wait for max_wait_ms"
    assert row[:4] == [0, wire.OFFSET_OUT_OF_RANGE, log_end, 0], row
    assert tail == b""
    await assert_still_serving(stored, clients)


async def test_fetch_below_zero_is_offset_out_of_range_and_at_the_end_is_empty(
    stored: Stored, clients: Clients
) -> None:
    row, _ = await wire.fetch(stored.bystander, TOPIC, 0, -1)
    assert row[1] == wire.OFFSET_OUT_OF_RANGE
    row, tail = await wire.fetch(stored.bystander, TOPIC, 0, len(stored.expected))
    assert (row[1], row[2], bytes(tail)) == (wire.NONE, len(stored.expected), b"")
    await assert_still_serving(stored, clients)


# -- clients that misbehave in time -------------------------------------------------------


async def _keep_busy(conn: BrokerConnection, stop: asyncio.Event) -> int:
    """ApiVersions every 50 ms until ``stop``: a connection that is never idle."""
    sent = 0
    while not stop.is_set():
        await conn.request(ApiKey.API_VERSIONS, {}, timeout_ms=wire.REPLY_TIMEOUT_MS)
        sent += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.05)
    return sent


@pytest.mark.broker_flags("--connections-max-idle-ms", "400")
async def test_silent_client_is_closed_after_max_idle(stored: Stored, clients: Clients) -> None:
    stop = asyncio.Event()
    busy = asyncio.create_task(_keep_busy(stored.bystander, stop))
    try:
        silent = await clients.raw(stored.broker)
        started = time.monotonic()
        assert await silent.closed_by_peer(5), "a silent connection was never closed"
        elapsed = time.monotonic() - started
        assert 0.3 <= elapsed < 3, elapsed
        await assert_still_serving(stored, clients)
    finally:
        stop.set()
        await asyncio.wait_for(busy, wire.REPLY_TIMEOUT_S)


@pytest.mark.broker_flags("--connections-max-idle-ms", "400")
async def test_client_stalled_mid_frame_is_closed_after_max_idle(
    stored: Stored, clients: Clients
) -> None:
    stop = asyncio.Event()
    busy = asyncio.create_task(_keep_busy(stored.bystander, stop))
    try:
        stalled = await clients.raw(stored.broker)
        await stalled.send(produce_frame(build_batch([b"never-stored"]))[:30])
        started = time.monotonic()
        assert await stalled.closed_by_peer(2.5), "a client stalled mid-frame is never closed"
        assert time.monotonic() - started < 3
        assert await stored.log_end() == len(stored.expected)
        await assert_still_serving(stored, clients)
    finally:
        stop.set()
        await asyncio.wait_for(busy, wire.REPLY_TIMEOUT_S)


@pytest.mark.broker_flags("--connections-max-idle-ms", "400")
async def test_long_poll_longer_than_max_idle_is_answered(stored: Stored, clients: Clients) -> None:
    started = time.monotonic()
    row, tail = await wire.fetch(stored.bystander, TOPIC, 0, len(stored.expected), max_wait_ms=1200)
    assert (row[1], bytes(tail)) == (wire.NONE, b"")
    assert 1.0 <= time.monotonic() - started < 5


def _rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


async def test_client_that_never_reads_does_not_slow_others(
    stored: Stored, clients: Clients
) -> None:
    big = [os.urandom(200_000) for _ in range(5)]
    for value in big:
        base = await wire.produce_values(stored.bystander, TOPIC, 0, [value])
        stored.expected.append((base, value))
    stuck = await clients.raw(stored.broker)
    request = wire.frame(
        wire.request_meta(
            ApiKey.FETCH,
            wire.fetch_body(TOPIC, 0, 0, max_bytes=1 << 20, partition_max_bytes=1 << 20),
        )
    )
    stuck.writer.write(request * 400)  # 400 MB of responses asked for, none read
    await asyncio.sleep(1.0)
    worst = 0.0
    for i in range(20):
        started = time.monotonic()
        value = f"while-stuck-{i}".encode()
        base = await wire.produce_values(stored.bystander, TOPIC, 0, [value])
        stored.expected.append((base, value))
        _, tail = await wire.fetch(stored.bystander, TOPIC, 0, base)
        assert wire.records_of(tail) == [(base, value)]
        worst = max(worst, time.monotonic() - started)
    assert worst < 1.5, f"a round trip took {worst:.2f} s while one client did not read"
    rss = _rss_bytes(stored.broker.pid or 0)
    assert rss < 300 << 20, f"broker holds {rss >> 20} MiB for a client that does not read"
    stuck.close()
    await assert_still_serving(stored, clients)


# -- big requests ---------------------------------------------------------------------


async def test_metadata_for_ten_thousand_unknown_topics(stored: Stored, clients: Clients) -> None:
    names = [f"missing-{i:05d}" for i in range(10_000)]
    started = time.monotonic()
    body = await wire.metadata(stored.bystander, names, auto_create=False)
    elapsed = time.monotonic() - started
    assert elapsed < 5, f"metadata for 10,000 topics took {elapsed:.1f} s"
    assert [t[0] for t in body["topics"]] == names
    assert {(t[1], len(t[2])) for t in body["topics"]} == {(wire.UNKNOWN_TOPIC_OR_PARTITION, 0)}
    listed = await wire.metadata(stored.bystander, None)
    assert [t[0] for t in listed["topics"]] == [TOPIC]
    assert sorted(p.name for p in stored.broker.data_dir.iterdir() if p.is_dir()) == [
        "__coordinator",
        f"{TOPIC}-0",
        f"{TOPIC}-1",
    ]
    await assert_still_serving(stored, clients)
