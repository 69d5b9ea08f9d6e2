"""What a send resolves to, and the lightweight per-record future that carries it.

A record's future is a view on its batch's future (offset = batch base offset
+ the record's delta), as in Kafka's ``FutureRecordMetadata``: sending a
record creates one small object, not an ``asyncio.Future`` with callbacks.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator
from typing import Any, NamedTuple

__all__ = ["RecordFuture", "RecordMetadata"]


class RecordMetadata(NamedTuple):
    topic: str
    partition: int
    offset: int  # -1 with acks=0: the broker does not say
    timestamp: int


class RecordFuture:
    __slots__ = ("_batch", "_delta", "_partition", "_timestamp", "_topic")

    def __init__(
        self,
        batch: asyncio.Future[int],
        topic: str,
        partition: int,
        delta: int,
        timestamp: int,
    ) -> None:
        self._batch = batch
        self._topic = topic
        self._partition = partition
        self._delta = delta
        self._timestamp = timestamp

    def __repr__(self) -> str:
        state = "done" if self._batch.done() else "pending"
        return f"<RecordFuture {self._topic}-{self._partition} {state}>"

    def _metadata(self, base_offset: int) -> RecordMetadata:
        offset = base_offset + self._delta if base_offset >= 0 else -1
        return RecordMetadata(self._topic, self._partition, offset, self._timestamp)

    def __await__(self) -> Generator[Any, None, RecordMetadata]:
        # Shielded: a caller that gives up (a timeout, a cancel) must not cancel the
        # batch its record shares with others.
        base_offset = yield from asyncio.shield(self._batch).__await__()
        return self._metadata(base_offset)

    def done(self) -> bool:
        return self._batch.done()

    def result(self) -> RecordMetadata:
        """The metadata; raises the send's error, or ``InvalidStateError`` while pending."""
        return self._metadata(self._batch.result())

    def exception(self) -> BaseException | None:
        return self._batch.exception()

    def add_done_callback(self, callback: Callable[[RecordFuture], object]) -> None:
        self._batch.add_done_callback(lambda _: callback(self))
