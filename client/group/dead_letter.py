"""A dead-letter queue for poison records: retry a record N times, then park it.

At-least-once processing retries a record that failed, and a record that can
never succeed (bad data, a bug) would stop its partition forever. This helper
counts failures per record — ``(topic, partition, offset)`` — and once a record
has failed ``max_failures`` times sends a copy to ``<topic>.dlq`` (same key,
value, headers and timestamp) with headers saying what went wrong:

    dlq.error.type         the exception's class, ``module.QualName``
    dlq.error.message      ``str(exception)``, cut at 4096 characters
    dlq.original.topic     where the record came from
    dlq.original.partition
    dlq.original.offset
    dlq.failures           how many times it failed

(all UTF-8 text), after the record's own headers. The application then moves
past it and commits as usual. ``failed`` returns whether the record went to the
DLQ; the send is awaited, so the record is safely parked before the offset
past it is committed. Counts live in memory (at most ``max_tracked`` records;
the oldest are forgotten first): after a restart or a rebalance a record gets
``max_failures`` fresh tries, so it is parked late, never lost.

Create the ``.dlq`` topics beforehand (``logctl topic create orders.dlq``)
unless the brokers auto-create topics. See docs/groups.md, "At-least-once".
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Protocol

from client.record import Record
from client.topic_partition import TopicPartition
from client.topics import validate_topic_name

if TYPE_CHECKING:
    from client.blocking_producer import BlockingProducer
    from client.consumer import ConsumerRecord
    from client.producer import Producer

__all__ = ["BlockingDeadLetterQueue", "DeadLetterQueue", "dead_letter_headers"]

HEADER_PREFIX = "dlq."
_MAX_MESSAGE_CHARS = 4096


class _RecordLike(Protocol):
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


def dead_letter_headers(
    tp: TopicPartition, record: _RecordLike, error: BaseException, failures: int
) -> list[tuple[str, bytes | None]]:
    """The record's own headers, then the ``dlq.*`` ones (module doc)."""
    kind = type(error)
    message = str(error)[:_MAX_MESSAGE_CHARS]
    added = {
        "error.type": f"{kind.__module__}.{kind.__qualname__}",
        "error.message": message,
        "original.topic": tp.topic,
        "original.partition": str(tp.partition),
        "original.offset": str(record.offset),
        "failures": str(failures),
    }
    return list(record.headers) + [(HEADER_PREFIX + k, v.encode()) for k, v in added.items()]


class _FailureCounts:
    def __init__(self, *, max_failures: int, suffix: str, max_tracked: int) -> None:
        if type(max_failures) is not int or max_failures < 1:
            raise ValueError(f"max_failures must be an int >= 1, not {max_failures!r}")
        if max_tracked < 1:
            raise ValueError(f"max_tracked must be >= 1, not {max_tracked!r}")
        self.max_failures = max_failures
        self.suffix = suffix
        self._max_tracked = max_tracked
        self._counts: OrderedDict[tuple[str, int, int], int] = OrderedDict()

    def dlq_topic(self, topic: str) -> str:
        """``<topic><suffix>``; raises ``InvalidTopicError`` if that is no legal name."""
        return validate_topic_name(topic + self.suffix)

    def failures(self, tp: TopicPartition | tuple[str, int], offset: int) -> int:
        """How many times the record at ``offset`` of ``tp`` has failed (and is remembered)."""
        topic, partition = tp
        return self._counts.get((topic, partition, offset), 0)

    def succeeded(
        self, record: ConsumerRecord | Record, *, tp: TopicPartition | tuple[str, int] | None = None
    ) -> None:
        """Forget the record's failures (it was processed after all)."""
        topic, partition = _partition_of(record, tp)
        self._counts.pop((topic, partition, record.offset), None)

    def _count(self, tp: TopicPartition, offset: int) -> int:
        key = (tp.topic, tp.partition, offset)
        count = self._counts.pop(key, 0) + 1
        self._counts[key] = count
        while len(self._counts) > self._max_tracked:
            self._counts.popitem(last=False)
        return count

    def _letter(
        self, tp: TopicPartition, record: _RecordLike, error: BaseException, count: int
    ) -> tuple[str, dict[str, Any]]:
        self._counts.pop((tp.topic, tp.partition, record.offset), None)
        return self.dlq_topic(tp.topic), {
            "key": record.key,
            "headers": dead_letter_headers(tp, record, error, count),
            "timestamp_ms": record.timestamp if record.timestamp >= 0 else None,
        }


class DeadLetterQueue(_FailureCounts):
    """Counts failures and parks poison records, with an asyncio ``Producer``.

    ::

        dlq = DeadLetterQueue(producer, max_failures=3)
        async for record in consumer:
            try:
                await handle(record)
            except Exception as exc:
                if not await dlq.failed(record, exc):
                    consumer.seek((record.topic, record.partition), record.offset)
                    continue  # not yet: read it again
            else:
                dlq.succeeded(record)
    """

    def __init__(
        self,
        producer: Producer,
        *,
        max_failures: int = 3,
        suffix: str = ".dlq",
        max_tracked: int = 10_000,
    ) -> None:
        super().__init__(max_failures=max_failures, suffix=suffix, max_tracked=max_tracked)
        self._producer = producer

    async def failed(
        self,
        record: ConsumerRecord | Record,
        error: BaseException,
        *,
        tp: TopicPartition | tuple[str, int] | None = None,
    ) -> bool:
        """Count a failure; at ``max_failures``, send the record to the DLQ and return True.

        ``tp`` is needed for a ``Record`` from ``poll`` (a ``ConsumerRecord``
        knows its partition). Raises what the producer raises if the DLQ send
        fails: then the record is not parked, and must not be committed past.
        """
        where = TopicPartition(*_partition_of(record, tp))
        count = self._count(where, record.offset)
        if count < self.max_failures:
            return False
        topic, fields = self._letter(where, record, error, count)
        await self._producer.send_and_wait(topic, record.value, **fields)
        return True


class BlockingDeadLetterQueue(_FailureCounts):
    """``DeadLetterQueue`` for scripts, with a ``BlockingProducer``; ``failed`` blocks."""

    def __init__(
        self,
        producer: BlockingProducer,
        *,
        max_failures: int = 3,
        suffix: str = ".dlq",
        max_tracked: int = 10_000,
    ) -> None:
        super().__init__(max_failures=max_failures, suffix=suffix, max_tracked=max_tracked)
        self._producer = producer

    def failed(
        self,
        record: ConsumerRecord | Record,
        error: BaseException,
        *,
        tp: TopicPartition | tuple[str, int] | None = None,
    ) -> bool:
        where = TopicPartition(*_partition_of(record, tp))
        count = self._count(where, record.offset)
        if count < self.max_failures:
            return False
        topic, fields = self._letter(where, record, error, count)
        self._producer.send_and_wait(topic, record.value, **fields)
        return True


def _partition_of(
    record: ConsumerRecord | Record, tp: TopicPartition | tuple[str, int] | None
) -> tuple[str, int]:
    if tp is not None:
        topic, partition = tp
        return topic, partition
    topic = getattr(record, "topic", None)
    partition = getattr(record, "partition", None)
    if not isinstance(topic, str) or not isinstance(partition, int):
        raise TypeError("a Record does not know its partition: pass tp=(topic, partition)")
    return topic, partition
