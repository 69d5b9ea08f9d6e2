"""The blocking twin of ``Consumer``, for scripts: the same core on a background loop."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from client.consumer import Consumer, ConsumerRecord
from client.loop_thread import LoopThread
from client.record import Record
from client.topic_partition import OffsetAndTimestamp, TopicPartition

__all__ = ["BlockingConsumer"]

TP = TopicPartition | tuple[str, int]


class BlockingConsumer:
    def __init__(self, bootstrap_servers: str | Sequence[str] | None = None, **settings: Any):
        self._thread = LoopThread("logserver-consumer")
        self._consumer = Consumer(bootstrap_servers, **settings)
        try:
            self._thread.run(self._consumer.start())
        except BaseException:
            self._thread.stop()
            raise

    def _call(self, method: Any, *args: Any) -> Any:
        async def call() -> Any:
            return method(*args)

        return self._thread.run(call())

    def assign(self, partitions: Iterable[TP]) -> None:
        self._call(self._consumer.assign, list(partitions))

    def assignment(self) -> set[TopicPartition]:
        return self._call(self._consumer.assignment)  # type: ignore[no-any-return]

    def seek(self, tp: TP, offset: int) -> None:
        self._call(self._consumer.seek, tp, offset)

    def seek_to_beginning(self, *tps: TP) -> None:
        self._thread.run(self._consumer.seek_to_beginning(*tps))

    def seek_to_end(self, *tps: TP) -> None:
        self._thread.run(self._consumer.seek_to_end(*tps))

    def position(self, tp: TP) -> int:
        return self._thread.run(self._consumer.position(tp))

    def beginning_offsets(self, tps: Iterable[TP]) -> dict[TopicPartition, int]:
        return self._thread.run(self._consumer.beginning_offsets(list(tps)))

    def end_offsets(self, tps: Iterable[TP]) -> dict[TopicPartition, int]:
        return self._thread.run(self._consumer.end_offsets(list(tps)))

    def offsets_for_times(
        self, timestamps: Mapping[TP, int]
    ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        return self._thread.run(self._consumer.offsets_for_times(dict(timestamps)))

    def partitions_for_topic(self, topic: str) -> set[int]:
        return self._thread.run(self._consumer.partitions_for_topic(topic))

    def poll(
        self, timeout_ms: int = 1000, max_records: int | None = None
    ) -> dict[TopicPartition, list[Record]]:
        return self._thread.run(self._consumer.poll(timeout_ms, max_records))

    def __iter__(self) -> Iterator[ConsumerRecord]:
        while True:
            for tp, records in self.poll().items():
                for record in records:
                    yield ConsumerRecord(tp.topic, tp.partition, *record)

    def close(self) -> None:
        if self._thread.loop.is_closed():
            return
        try:
            self._thread.run(self._consumer.close(), 30)
        finally:
            self._thread.stop()

    def __enter__(self) -> BlockingConsumer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
