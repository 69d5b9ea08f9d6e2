"""An in-memory broker behind fake connections: client unit tests without sockets.

``FakeBroker({"t": 3}).install(monkeypatch)`` makes every ``BrokerConnection.open``
that ``client.cluster`` performs return a ``FakeConnection`` to this broker. It
answers Metadata, Produce, ListOffsets and Fetch with the shapes the real
broker uses (``logserver/api/*.py``), keeps every request it was sent
(``requests``), and lets a test script trouble:

* ``fail_produce(code, ...)``: answer the next produced partitions with these
  error codes instead of appending (one code per partition answer; 0 appends);
* ``topic_errors``: answer Metadata for a topic with an error code;
* ``hold()`` / ``release()``: keep produce replies back, to see what is in flight;
* ``corrupt(topic, partition, index, at)``: flip a byte of a stored batch;
* ``delete_before(topic, partition, offset)``: what retention does to the log start.

The consumer tests use it too (``tests/client/consumer``); it lives here because
the producer's tests came first.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Sequence
from typing import Any

import pytest

from client import cluster as cluster_module
from client.connection import BrokerConnection
from client.errors import (
    LogServerError,
    NetworkError,
    OffsetOutOfRangeError,
    UnknownTopicOrPartitionError,
    error_for_code,
)
from client.protocol import ApiKey
from client.record import Record, RecordBatch, iter_batches, stamp_batch

__all__ = ["FakeBroker", "FakeConnection"]

Reply = tuple[dict[str, Any], memoryview]

UNKNOWN_TOPIC_OR_PARTITION = UnknownTopicOrPartitionError.code
OFFSET_OUT_OF_RANGE = OffsetOutOfRangeError.code


class FakeBroker:
    def __init__(
        self, topics: dict[str, int] | None = None, *, host: str = "fake", port: int = 9092
    ) -> None:
        self.host = host
        self.port = port
        self.node_id = 0
        self.topics: dict[str, int] = dict(topics or {})
        self.logs: dict[tuple[str, int], list[bytearray]] = {}
        self.log_start: dict[tuple[str, int], int] = {}
        self.topic_errors: dict[str, int] = {}
        self.requests: list[tuple[ApiKey, dict[str, Any]]] = []
        self.request_times: list[float] = []  # loop time of each request, as ``requests``
        self.connections: list[FakeConnection] = []
        self.reachable = True
        self._produce_errors: deque[tuple[int, str | None]] = deque()
        self._held: list[tuple[asyncio.Future[Reply], Reply]] | None = None

    # -- wiring ---------------------------------------------------------------------

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeBroker:
        broker = self

        class _Opener:
            @staticmethod
            async def open(host: str, port: int, *, client_id: str, **_: Any) -> FakeConnection:
                if not broker.reachable or (host, port) != (broker.host, broker.port):
                    raise NetworkError(f"cannot connect to {host}:{port}: fake refuses")
                connection = FakeConnection(broker, client_id)
                broker.connections.append(connection)
                return connection

        monkeypatch.setattr(cluster_module, "BrokerConnection", _Opener)
        return self

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    # -- scripting ------------------------------------------------------------------

    def fail_produce(self, *codes: int, message: str | None = None) -> None:
        self._produce_errors.extend((code, message) for code in codes)

    def hold(self) -> None:
        """Keep produce replies back until ``release`` (other requests are answered)."""
        if self._held is None:
            self._held = []

    def release(self) -> None:
        held, self._held = self._held or [], None
        for future, reply in held:
            if not future.done():
                future.set_result(reply)

    @property
    def held(self) -> int:
        return len(self._held or ())

    def corrupt(self, topic: str, partition: int, index: int = 0, at: int = -1) -> None:
        """Flip one byte of the ``index``-th stored batch (default: its last, in the body)."""
        batch = self.logs[(topic, partition)][index]
        batch[at] ^= 0xFF

    def delete_before(self, topic: str, partition: int, offset: int) -> None:
        """Retention: drop whole batches below ``offset`` and make it the log start."""
        end = self.end_offset(topic, partition)
        key = (topic, partition)
        self.logs[key] = [
            b
            for b in self.logs.get(key, [])
            if RecordBatch(bytes(b), validate=False).last_offset >= offset
        ]
        self.log_start[key] = min(offset, end)

    def append(self, topic: str, partition: int, data: bytes) -> int:
        """Append the batches in ``data`` as a produce would; return the first base offset."""
        log = self.logs.setdefault((topic, partition), [])
        first = offset = self.end_offset(topic, partition)
        for batch in iter_batches(data):
            stored = bytearray(bytes(batch))
            stamp_batch(stored, 0, offset, 0)
            log.append(stored)
            offset += batch.record_count
        return first

    # -- what arrived ---------------------------------------------------------------

    def count(self, api_key: ApiKey) -> int:
        return sum(1 for key, _ in self.requests if key == api_key)

    def produce_requests(self) -> list[dict[str, Any]]:
        return [body for key, body in self.requests if key == ApiKey.PRODUCE]

    def produce_times(self) -> list[float]:
        return [
            t
            for (key, _), t in zip(self.requests, self.request_times, strict=True)
            if key == ApiKey.PRODUCE
        ]

    def batches(self, topic: str, partition: int, *, validate: bool = True) -> list[RecordBatch]:
        return [
            RecordBatch(bytes(b), validate=validate) for b in self.logs.get((topic, partition), [])
        ]

    def records(self, topic: str, partition: int) -> list[Record]:
        return [r for b in self.batches(topic, partition) for r in b.records()]

    def end_offset(self, topic: str, partition: int) -> int:
        batches = self.batches(topic, partition, validate=False)  # damage is for clients
        return batches[-1].next_offset if batches else self.log_start.get((topic, partition), 0)

    # -- answering ------------------------------------------------------------------

    def answer(self, api_key: int, body: dict[str, Any], tail: bytes) -> Reply | None:
        key = ApiKey(api_key)
        self.requests.append((key, body))
        self.request_times.append(asyncio.get_running_loop().time())
        if key == ApiKey.METADATA:
            return self._metadata(body), memoryview(b"")
        if key == ApiKey.PRODUCE:
            out = self._produce(body, tail)
            return None if body["acks"] == 0 else (out, memoryview(b""))
        if key == ApiKey.LIST_OFFSETS:
            return self._list_offsets(body), memoryview(b"")
        if key == ApiKey.FETCH:
            return self._fetch(body)
        raise AssertionError(f"the fake broker does not speak {key.name}")

    def _metadata(self, body: dict[str, Any]) -> dict[str, Any]:
        names = body["topics"] if body["topics"] is not None else sorted(self.topics)
        topics = []
        for name in names:
            error = self.topic_errors.get(name, 0)
            if not error and name not in self.topics:
                error = UNKNOWN_TOPIC_OR_PARTITION
            if error:
                topics.append([name, error, []])
                continue
            partitions = [
                [p, 0, self.node_id, 0, [self.node_id], [self.node_id]]
                for p in range(self.topics[name])
            ]
            topics.append([name, 0, partitions])
        brokers = [[self.node_id, self.host, self.port, None]]
        return {"brokers": brokers, "controller_id": self.node_id, "topics": topics}

    def _produce(self, body: dict[str, Any], tail: bytes) -> dict[str, Any]:
        pos = 0
        results = []
        for topic, partitions in body["topics"]:
            out = []
            for partition, size in partitions:
                chunk = tail[pos : pos + size]
                pos += size
                code, message = (
                    self._produce_errors.popleft() if self._produce_errors else (0, None)
                )
                if code:
                    out.append([partition, code, -1, -1, message])
                elif partition >= self.topics.get(topic, 0):
                    out.append([partition, UNKNOWN_TOPIC_OR_PARTITION, -1, -1, "not here"])
                else:
                    out.append([partition, 0, self.append(topic, partition, chunk), 0, None])
            results.append([topic, out])
        assert pos == len(tail), "the produce tail holds bytes no partition claims"
        return {"topics": results}

    def _list_offsets(self, body: dict[str, Any]) -> dict[str, Any]:
        results = []
        for topic, partitions in body["topics"]:
            out = []
            for partition, timestamp in partitions:
                if partition >= self.topics.get(topic, 0):
                    out.append([partition, UNKNOWN_TOPIC_OR_PARTITION, -1, -1])
                elif timestamp == -2:
                    out.append([partition, 0, -1, self.log_start.get((topic, partition), 0)])
                elif timestamp == -1:
                    out.append([partition, 0, -1, self.end_offset(topic, partition)])
                else:
                    found = [r for r in self.records(topic, partition) if r.timestamp >= timestamp]
                    row = [found[0].timestamp, found[0].offset] if found else [-1, -1]
                    out.append([partition, 0, *row])
            results.append([topic, out])
        return {"topics": results}

    def _fetch(self, body: dict[str, Any]) -> Reply:
        results = []
        tail = bytearray()
        for topic, partitions in body["topics"]:
            out = []
            for partition, offset, _max_bytes in partitions:
                if partition >= self.topics.get(topic, 0):
                    out.append([partition, UNKNOWN_TOPIC_OR_PARTITION, -1, -1, 0, "not here"])
                    continue
                start = self.log_start.get((topic, partition), 0)
                end = self.end_offset(topic, partition)
                if not start <= offset <= end:
                    out.append([partition, OFFSET_OUT_OF_RANGE, end, start, 0, "out of range"])
                    continue
                data = b"".join(
                    bytes(b)
                    for b in self.logs.get((topic, partition), [])
                    if RecordBatch(bytes(b), validate=False).last_offset >= offset
                )
                tail += data
                out.append([partition, 0, end, start, len(data), None])
            results.append([topic, out])
        return {"topics": results}, memoryview(bytes(tail))


class FakeConnection:
    """What ``client.connection.BrokerConnection`` offers, answered by a ``FakeBroker``."""

    _ids = itertools.count(1)

    def __init__(self, broker: FakeBroker, client_id: str) -> None:
        self.broker = broker
        self.client_id = client_id
        self.host, self.port, self.node_id = broker.host, broker.port, broker.node_id
        self.id = next(self._ids)
        self._closed: LogServerError | None = None
        self._waiting: list[asyncio.Future[Reply]] = []

    def __repr__(self) -> str:
        return f"FakeConnection#{self.id}"

    @property
    def closed(self) -> bool:
        return self._closed is not None

    @property
    def in_flight(self) -> int:
        return sum(1 for f in self._waiting if not f.done())

    def send(
        self,
        api_key: int,
        body: dict[str, Any],
        tail: Sequence[bytes | bytearray | memoryview] = (),
        *,
        expect_response: bool = True,
        api_version: int = 0,
    ) -> asyncio.Future[Reply] | None:
        if self._closed is not None:
            raise self._closed
        reply = self.broker.answer(api_key, body, b"".join(bytes(t) for t in tail))
        if not expect_response:
            return None
        assert reply is not None
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Reply] = loop.create_future()
        self._waiting.append(future)
        held = self.broker._held
        if held is not None and api_key == ApiKey.PRODUCE:
            held.append((future, reply))
        else:
            delay = 0.0
            if api_key == ApiKey.FETCH and not len(reply[1]):
                delay = min(body.get("max_wait_ms", 0), 50) / 1000  # a short long poll
            loop.call_later(delay, _resolve, future, reply)
        return future

    async def request(
        self,
        api_key: int,
        body: dict[str, Any],
        tail: Sequence[bytes | bytearray | memoryview] = (),
        *,
        timeout_ms: int = 30_000,
    ) -> Reply:
        future = self.send(api_key, body, tail)
        assert future is not None
        # The real connection's wait, so its timeout and cancellation behaviour is under test.
        reply = await BrokerConnection.wait(self, future, timeout_ms)  # type: ignore[arg-type]
        code = reply[0].get("error")
        if code:
            raise error_for_code(code, reply[0].get("error_message"))
        return reply

    def close(self) -> None:
        self._fail(NetworkError(f"{self}: closed by the client"))

    def _fail(self, error: LogServerError) -> None:
        if self._closed is None:
            self._closed = error
        for future in self._waiting:
            if not future.done():
                future.set_exception(error)
                future.exception()
        self._waiting.clear()


def _resolve(future: asyncio.Future[Reply], reply: Reply) -> None:
    if not future.done():
        future.set_result(reply)
