"""The asyncio producer: ``send`` puts a record in its partition's batch and returns at once.

``await producer.send(...)`` returns a ``RecordFuture`` without waiting for the
broker (it waits only for metadata of a new topic, or for buffer space when
``buffer_memory`` is full); awaiting that future gives the ``RecordMetadata``.
One background ``Sender`` task ships batches. Partitioning is Kafka's: murmur2
of the key modulo the partition count, sticky for records without a key.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from client.cluster import Cluster
from client.errors import (
    InvalidTimestampError,
    LogServerError,
    RecordTooLargeError,
    RequestTimedOutError,
    UnknownTopicOrPartitionError,
)
from client.partitioner import StickyPartitioner, default_partition
from client.producer.accumulator import RecordAccumulator
from client.producer.batch import ProducerBatch
from client.producer.record_metadata import RecordFuture, RecordMetadata
from client.producer.sender import Sender
from client.record.compression import Compression
from client.topics import validate_topic_name

__all__ = ["Producer", "ProducerClosedError"]

_BYTES = (bytes, bytearray, memoryview)
_NONE = type(None)
_OK_PAYLOAD = {bytes, bytearray, memoryview, _NONE}
_TIMESTAMP_LIMIT = 2**63
_RECORD_OVERHEAD = 1 + 9 + 9 + 5 + 5 + 1  # array header, two ints, two bin headers, headers


class ProducerClosedError(LogServerError):
    """``send`` after ``close``."""


def _parse_acks(acks: int | str) -> int:
    if acks in ("all", -1):
        return -1
    if acks in (0, 1, "0", "1"):
        return int(acks)
    raise ValueError(f"acks must be 0, 1, -1 or 'all', not {acks!r}")


class Producer:
    def __init__(
        self,
        bootstrap_servers: str | Sequence[str] | None = None,
        *,
        client_id: str = "logserver-producer",
        acks: int | str = 1,
        compression_type: str | Compression | None = "none",
        batch_size: int = 16384,
        linger_ms: int = 0,
        max_request_size: int = 1048576,
        buffer_memory: int = 32 * 1024 * 1024,
        retries: int = 2**31 - 1,
        retry_backoff_ms: int = 100,
        max_in_flight_requests_per_connection: int = 5,
        request_timeout_ms: int = 30_000,
        delivery_timeout_ms: int = 120_000,
        max_block_ms: int = 60_000,
    ) -> None:
        if batch_size < 1 or max_request_size < 1 or linger_ms < 0:
            raise ValueError("batch_size and max_request_size must be >= 1, linger_ms >= 0")
        self._bootstrap = bootstrap_servers
        self._client_id = client_id
        self.acks = _parse_acks(acks)
        self.compression = Compression.parse(compression_type)
        self._batch_size = batch_size
        self._linger_ms = linger_ms
        self._max_request_size = max_request_size
        self._buffer_memory = buffer_memory
        self._retries = retries
        self._retry_backoff_ms = retry_backoff_ms
        self._max_in_flight = max_in_flight_requests_per_connection
        self._request_timeout_ms = request_timeout_ms
        self._delivery_timeout_s = delivery_timeout_ms / 1000
        self._max_block_s = max_block_ms / 1000
        self._partition_counts: dict[str, int] = {}
        self._sticky = StickyPartitioner()
        self._sticky_now: dict[str, int] = {}  # the sticky choice, read without a call
        self._closed = False
        self._started = False
        self._cluster: Cluster
        self._acc: RecordAccumulator
        self._sender: Sender
        self._sender_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect and fetch metadata (fails fast when no broker is reachable)."""
        if self._started:
            return
        self._cluster = Cluster(
            self._bootstrap, client_id=self._client_id, request_timeout_ms=self._request_timeout_ms
        )
        self._acc = RecordAccumulator(
            batch_size=self._batch_size,
            linger_ms=self._linger_ms,
            buffer_memory=self._buffer_memory,
        )
        self._acc.on_close = self._batch_closed
        self._sender = Sender(
            self._cluster,
            self._acc,
            acks=self.acks,
            compression=self.compression,
            max_request_size=self._max_request_size,
            max_in_flight=self._max_in_flight,
            retries=self._retries,
            retry_backoff_ms=self._retry_backoff_ms,
            request_timeout_ms=self._request_timeout_ms,
        )
        await self._cluster.any_connection()
        self._sender_task = asyncio.create_task(self._sender.run(), name="producer-sender")
        self._sender_task.add_done_callback(self._sender_done)
        self._started = True

    def _batch_closed(self, batch: ProducerBatch) -> None:
        """Keyless records move to another partition with every new batch (KIP-480)."""
        topic = batch.topic
        if self._sticky_now.get(topic) == batch.partition:
            count = self._partition_counts.get(topic)
            if count:
                self._sticky_now[topic] = self._sticky.next_batch(topic, count, batch.partition)

    def _sender_done(self, task: asyncio.Task[None]) -> None:
        """If the sender dies, nothing may wait forever: fail every pending record."""
        if task.cancelled():
            error: BaseException = ProducerClosedError("the producer was closed")
        else:
            exc = task.exception()
            if exc is None:
                return
            error = exc
        for batch in list(self._acc.incomplete):
            batch.fail(error)

    async def __aenter__(self) -> Producer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def partitions_for(self, topic: str) -> int:
        """The partition count of ``topic``, waiting up to ``max_block_ms`` for metadata."""
        count = self._partition_counts.get(topic)
        if count is not None:
            return count
        validate_topic_name(topic)
        deadline = time.monotonic() + self._max_block_s
        delay = self._retry_backoff_ms / 1000
        while True:
            try:
                partitions = await self._cluster.partitions_for(topic)
            except LogServerError as exc:
                remaining = deadline - time.monotonic()
                if not exc.retriable or remaining <= 0:
                    raise
                self._cluster.invalidate()
                await asyncio.sleep(min(delay, remaining))
                delay = min(delay * 2, 1.0)
                continue
            count = len(partitions)
            self._partition_counts[topic] = count
            return count

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        headers: Iterable[tuple[str, bytes | None]] | Mapping[str, bytes | None] | None = None,
        partition: int | None = None,
        timestamp_ms: int | None = None,
    ) -> RecordFuture:
        """Queue a record; the returned future resolves to its ``RecordMetadata``.

        Raises at once for what can never succeed: a closed producer,
        ``TypeError`` for a key/value/header that is not bytes,
        ``RecordTooLargeError`` (naming the size) past ``max_request_size``, and
        ``UnknownTopicOrPartitionError`` for a partition the topic lacks.
        """
        if self._closed or not self._started:
            raise ProducerClosedError("the producer is closed" if self._closed else "call start()")
        if type(value) not in _OK_PAYLOAD or type(key) not in _OK_PAYLOAD:
            raise TypeError("key and value must be bytes or None")
        count = self._partition_counts.get(topic)
        if count is None:
            count = await self.partitions_for(topic)
        if partition is None:
            if key is None:
                partition = self._sticky_now.get(topic)
                if partition is None:
                    partition = self._sticky_now[topic] = self._sticky.partition(topic, count)
            else:
                partition = default_partition(bytes(key), count)
        elif type(partition) is not int or not 0 <= partition < count:
            raise UnknownTopicOrPartitionError(
                f"{topic} has {count} partitions; there is no partition {partition!r}"
            )
        if timestamp_ms is None:
            timestamp_ms = int(time.time() * 1000)
        elif type(timestamp_ms) is not int or not 0 <= timestamp_ms < _TIMESTAMP_LIMIT:
            raise InvalidTimestampError(
                f"timestamp {timestamp_ms!r} is not an int64 millisecond time >= 0"
            )
        size = _RECORD_OVERHEAD + (0 if value is None else len(value))
        if key is not None:
            size += len(key)
        if headers:
            headers = _headers(headers)
            for name, header_value in headers:
                size += 10 + len(name) + (0 if header_value is None else len(header_value))
        else:
            headers = ()
        if size > self._max_request_size - 100:
            raise RecordTooLargeError(
                f"the record is {size} bytes when serialized, which is larger than "
                f"max_request_size ({self._max_request_size})"
            )
        acc = self._acc
        if acc.buffered_bytes >= acc.buffer_memory:
            await self._wait_for_space()
        batch = acc.open.get((topic, partition))
        if batch is None:
            batch = acc.new_batch(topic, partition, self._delivery_timeout_s)
        elif batch.size + size > self._batch_size:
            acc.close(batch)
            batch = acc.new_batch(topic, partition, self._delivery_timeout_s)
        rows = batch.rows
        delta = len(rows)
        if delta:
            rows.append((delta, timestamp_ms - batch.first_timestamp, key, value, headers))
            if timestamp_ms > batch.max_timestamp:
                batch.max_timestamp = timestamp_ms
        else:
            rows.append((0, 0, key, value, headers))
            batch.first_timestamp = batch.max_timestamp = timestamp_ms
        batch.size += size
        acc.buffered_bytes += size
        return RecordFuture(batch.future, topic, partition, delta, timestamp_ms)

    async def _wait_for_space(self) -> None:
        try:
            await asyncio.wait_for(self._acc.wait_for_space(), self._max_block_s)
        except TimeoutError:
            raise RequestTimedOutError(
                f"buffer_memory ({self._buffer_memory} bytes) still full after max_block_ms"
            ) from None

    async def send_and_wait(
        self, topic: str, value: bytes | None = None, **kwargs: Any
    ) -> RecordMetadata:
        """Send one record and wait for the broker's answer."""
        return await (await self.send(topic, value, **kwargs))

    async def flush(self) -> None:
        """Send everything queued now and wait until each record is answered (or failed)."""
        if not self._started:
            return
        self._acc.close_all()
        pending = [batch.future for batch in self._acc.incomplete]
        if pending:
            await asyncio.wait(pending)

    async def close(self) -> None:
        """Flush, then stop the sender and close the connections."""
        if self._closed or not self._started:
            self._closed = True
            return
        self._closed = True
        try:
            await self.flush()
        finally:
            self._sender.stop()
            task = self._sender_task
            if task is not None:
                try:
                    await asyncio.wait_for(task, 5)
                except (TimeoutError, asyncio.CancelledError):
                    task.cancel()
            await self._cluster.close()


def _headers(
    headers: Iterable[tuple[str, bytes | None]] | Mapping[str, bytes | None],
) -> tuple[tuple[str, bytes | None], ...]:
    pairs = tuple(headers.items() if isinstance(headers, Mapping) else headers)
    for pair in pairs:
        if (
            len(pair) != 2
            or type(pair[0]) is not str
            or not (pair[1] is None or isinstance(pair[1], _BYTES))
        ):
            raise TypeError(f"header {pair!r} must be a (str, bytes or None) pair")
    return pairs
