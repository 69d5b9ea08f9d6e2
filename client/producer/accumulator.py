"""Open batches per partition, and the queue of closed ones waiting for the sender.

A batch closes when it is full (``batch_size``), when it has lingered
``linger_ms``, on ``flush()``, or — with ``linger_ms=0`` — whenever the sender
looks: records sent while the previous request was in flight travel together,
which is how Kafka batches without lingering.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable

from client.producer.batch import ProducerBatch

__all__ = ["RecordAccumulator"]


class RecordAccumulator:
    def __init__(self, *, batch_size: int, linger_ms: int, buffer_memory: int) -> None:
        self.batch_size = batch_size
        self.linger_s = linger_ms / 1000
        self.buffer_memory = buffer_memory
        self.open: dict[tuple[str, int], ProducerBatch] = {}
        self.ready: deque[ProducerBatch] = deque()
        self.incomplete: set[ProducerBatch] = set()
        self.buffered_bytes = 0
        self.wakeup = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._loop = asyncio.get_running_loop()
        self.on_close: Callable[[ProducerBatch], None] | None = None

    def new_batch(self, topic: str, partition: int, deadline_s: float) -> ProducerBatch:
        loop = self._loop
        now = loop.time()
        batch = ProducerBatch(topic, partition, loop.create_future(), now, now + deadline_s)
        self.open[(topic, partition)] = batch
        self.incomplete.add(batch)
        batch.future.add_done_callback(lambda _: self._finished(batch))
        if self.linger_s > 0:
            loop.call_later(self.linger_s, self._linger_expired, batch)
        else:
            self.wakeup.set()
        return batch

    def close(self, batch: ProducerBatch) -> None:
        """Move an open batch to the ready queue."""
        key = (batch.topic, batch.partition)
        if self.open.get(key) is batch:
            del self.open[key]
            self.ready.append(batch)
            self.wakeup.set()
            if self.on_close is not None:
                self.on_close(batch)

    def _linger_expired(self, batch: ProducerBatch) -> None:
        self.close(batch)

    def close_all(self) -> None:
        for batch in list(self.open.values()):
            self.close(batch)

    def drain(self) -> list[ProducerBatch]:
        """Every batch ready to go; with no linger, the open ones too."""
        if self.linger_s <= 0 and self.open:
            self.close_all()
        ready = list(self.ready)
        self.ready.clear()
        return ready

    def requeue(self, batch: ProducerBatch) -> None:
        """A batch back for a retry, ahead of newer ones."""
        if not batch.future.done():
            self.ready.appendleft(batch)
            self.wakeup.set()

    def _finished(self, batch: ProducerBatch) -> None:
        self.incomplete.discard(batch)
        self.buffered_bytes -= batch.size
        if self.buffered_bytes < self.buffer_memory:
            self._space.set()

    async def wait_for_space(self) -> None:
        """Back-pressure: wait until buffered records fall under ``buffer_memory``."""
        while self.buffered_bytes >= self.buffer_memory:
            self._space.clear()
            self.wakeup.set()
            await self._space.wait()
