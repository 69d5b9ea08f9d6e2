"""Requests as the integration tests speak them: one helper per API, plus raw frames.

The helpers send exactly the bodies documented in ``logserver/api/*.py`` over a
``BrokerConnection`` and return the one partition row a test asserts on, so a
test reads as the protocol does. The raw helpers (``frame``, ``RawClient``)
build and read frames by hand, for the tests that send what no client would.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Sequence
from typing import Any

import msgpack

from client.connection import BrokerConnection
from client.protocol import ApiKey, decode_response
from client.record import build_batch, iter_batches
from client.record.layout import BytesLike

# Every wait in these tests is bounded by one of these.
REPLY_TIMEOUT_MS = 10_000
REPLY_TIMEOUT_S = REPLY_TIMEOUT_MS / 1000

EARLIEST = -2
LATEST = -1

# Error codes (client/errors.py), named as Kafka names them.
NONE = 0
OFFSET_OUT_OF_RANGE = 1
CORRUPT_MESSAGE = 2
UNKNOWN_TOPIC_OR_PARTITION = 3
UNSUPPORTED_VERSION = 35
INVALID_REQUEST = 42
INVALID_CONFIG = 40


# -- admin --------------------------------------------------------------------------------


async def create_topic(
    conn: BrokerConnection, name: str, *, partitions: int = 1, configs: dict[str, str] | None = None
) -> None:
    body, _ = await conn.request(
        ApiKey.CREATE_TOPICS,
        {
            "topics": [
                {
                    "name": name,
                    "num_partitions": partitions,
                    "replication_factor": 1,
                    "configs": configs or {},
                }
            ]
        },
        timeout_ms=REPLY_TIMEOUT_MS,
    )
    assert body["topics"] == [[name, NONE, None]], body


async def alter_topic(
    conn: BrokerConnection, name: str, to_set: dict[str, str], *, delete: Sequence[str] = ()
) -> dict[str, Any]:
    body, _ = await conn.request(
        ApiKey.ALTER_CONFIGS,
        {"resources": [{"type": "topic", "name": name, "set": to_set, "delete": list(delete)}]},
        timeout_ms=REPLY_TIMEOUT_MS,
    )
    [entry] = body["resources"]
    return entry


async def describe_topic(conn: BrokerConnection, name: str) -> dict[str, tuple[str, str]]:
    """``{key: (value, source)}`` of every config of topic ``name``."""
    body, _ = await conn.request(
        ApiKey.DESCRIBE_CONFIGS,
        {"resources": [{"type": "topic", "name": name, "keys": None}]},
        timeout_ms=REPLY_TIMEOUT_MS,
    )
    [entry] = body["resources"]
    assert entry["error"] == NONE, entry
    return {key: (value, source) for key, value, source, _read_only in entry["configs"]}


async def metadata(
    conn: BrokerConnection, topics: list[str] | None, *, auto_create: bool = False
) -> dict[str, Any]:
    body, _ = await conn.request(
        ApiKey.METADATA,
        {"topics": topics, "allow_auto_topic_creation": auto_create},
        timeout_ms=REPLY_TIMEOUT_MS,
    )
    return body


# -- produce, fetch, list offsets ------------------------------------------------------


def produce_body(
    topic: str, partition: int, batches: Sequence[BytesLike], *, acks: int = 1
) -> tuple[dict[str, Any], list[BytesLike]]:
    """A produce request body and tail for one partition's ``batches``."""
    size = sum(len(b) for b in batches)
    body = {"acks": acks, "timeout_ms": 5_000, "topics": [[topic, [[partition, size]]]]}
    return body, list(batches)


async def produce(
    conn: BrokerConnection,
    topic: str,
    partition: int,
    batches: BytesLike | Sequence[BytesLike],
    *,
    acks: int = 1,
) -> list[Any]:
    """The partition row ``[partition, error, base_offset, log_start_offset, error_message]``."""
    if isinstance(batches, bytes | bytearray | memoryview):
        batches = [batches]
    body, tail = produce_body(topic, partition, batches, acks=acks)
    reply, _ = await conn.request(ApiKey.PRODUCE, body, tail, timeout_ms=REPLY_TIMEOUT_MS)
    [[name, [row]]] = reply["topics"]
    assert name == topic
    return row


async def produce_values(
    conn: BrokerConnection, topic: str, partition: int, values: Sequence[bytes], **kw: Any
) -> int:
    """Produce one batch of ``values``; return its base offset (asserting no error)."""
    row = await produce(conn, topic, partition, build_batch(values, **kw))
    assert row[1] == NONE, row
    return row[2]


def fetch_body(
    topic: str,
    partition: int,
    offset: int,
    *,
    max_wait_ms: int = 0,
    min_bytes: int = 1,
    max_bytes: int = 50 << 20,
    partition_max_bytes: int = 50 << 20,
) -> dict[str, Any]:
    return {
        "replica_id": -1,
        "max_wait_ms": max_wait_ms,
        "min_bytes": min_bytes,
        "max_bytes": max_bytes,
        "topics": [[topic, [[partition, offset, partition_max_bytes]]]],
    }


async def fetch(
    conn: BrokerConnection, topic: str, partition: int, offset: int, **kw: Any
) -> tuple[list[Any], memoryview]:
    """The partition row ``[partition, error, hw, log_start, records_size, message]`` and tail."""
    timeout_ms = REPLY_TIMEOUT_MS + kw.get("max_wait_ms", 0)
    reply, tail = await conn.request(
        ApiKey.FETCH, fetch_body(topic, partition, offset, **kw), timeout_ms=timeout_ms
    )
    [[name, [row]]] = reply["topics"]
    assert name == topic
    assert row[4] == len(tail), (row, len(tail))
    return row, tail


def records_of(tail: BytesLike) -> list[tuple[int, bytes | None]]:
    """``(offset, value)`` of every record in a fetched tail (every CRC checked)."""
    return [(r.offset, r.value) for b in iter_batches(tail) for r in b.records()]


async def fetch_values(
    conn: BrokerConnection, topic: str, partition: int = 0, offset: int = 0
) -> list[tuple[int, bytes | None]]:
    """Every record from ``offset`` to the log end, fetching as often as needed."""
    out: list[tuple[int, bytes | None]] = []
    while True:
        row, tail = await fetch(conn, topic, partition, offset)
        assert row[1] == NONE, row
        got = [(o, v) for o, v in records_of(tail) if o >= offset]
        out.extend(got)
        if not got or got[-1][0] + 1 >= row[2]:
            return out
        offset = got[-1][0] + 1


async def list_offset(
    conn: BrokerConnection, topic: str, partition: int, timestamp: int
) -> list[Any]:
    """The partition row ``[partition, error, timestamp, offset]``."""
    reply, _ = await conn.request(
        ApiKey.LIST_OFFSETS,
        {"replica_id": -1, "topics": [[topic, [[partition, timestamp]]]]},
        timeout_ms=REPLY_TIMEOUT_MS,
    )
    [[name, [row]]] = reply["topics"]
    assert name == topic
    return row


# -- raw frames -----------------------------------------------------------------------


def frame(meta: bytes, tail: bytes = b"", *, length: int | None = None) -> bytes:
    """A frame with msgpack bytes ``meta``; ``length`` overrides the true frame length."""
    true_length = 4 + len(meta) + len(tail)
    return struct.pack(">ii", true_length if length is None else length, len(meta)) + meta + tail


def request_meta(
    api_key: int, body: Any, *, version: int = 0, correlation_id: int = 1, client_id: Any = "raw"
) -> bytes:
    return msgpack.packb([api_key, version, correlation_id, client_id, body], use_bin_type=True)


class RawClient:
    """A bare TCP stream to the broker, for bytes no well-behaved client sends."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, host: str, port: int) -> RawClient:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port), REPLY_TIMEOUT_S
        )
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await asyncio.wait_for(self.writer.drain(), REPLY_TIMEOUT_S)

    async def read_response(
        self, timeout_s: float = REPLY_TIMEOUT_S
    ) -> tuple[int, dict[str, Any], bytes]:
        """``(correlation_id, body, tail)`` of the next response frame."""
        prefix = await asyncio.wait_for(self.reader.readexactly(4), timeout_s)
        (length,) = struct.unpack(">i", prefix)
        data = await asyncio.wait_for(self.reader.readexactly(length), timeout_s)
        correlation_id, body, tail = decode_response(data)
        return correlation_id, body, bytes(tail)

    async def closed_by_peer(self, timeout_s: float = REPLY_TIMEOUT_S) -> bool:
        """True when the broker closes the stream (EOF or reset) within ``timeout_s``.

        Anything the broker sends before closing is read and discarded.
        """
        try:
            async with asyncio.timeout(timeout_s):
                while await self.reader.read(65536):
                    pass
        except TimeoutError:
            return False
        except ConnectionError:
            return True
        return True

    def close(self) -> None:
        self.writer.transport.abort()
