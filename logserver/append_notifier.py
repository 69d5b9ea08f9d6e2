"""Wakes long-polling fetches when a partition they wait on gets new data."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

__all__ = ["AppendNotifier"]

TopicPartition = tuple[str, int]


class AppendNotifier:
    def __init__(self) -> None:
        self._waiters: dict[TopicPartition, set[asyncio.Future[None]]] = {}

    def register(self, partitions: Iterable[TopicPartition]) -> asyncio.Future[None]:
        """A future resolved at the next append to any of ``partitions``."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for tp in partitions:
            self._waiters.setdefault(tp, set()).add(future)
        return future

    def unregister(
        self, future: asyncio.Future[None], partitions: Iterable[TopicPartition]
    ) -> None:
        for tp in partitions:
            waiting = self._waiters.get(tp)
            if waiting is not None:
                waiting.discard(future)
                if not waiting:
                    del self._waiters[tp]

    def notify(self, tp: TopicPartition) -> None:
        waiting = self._waiters.pop(tp, None)
        if waiting:
            for future in waiting:
                if not future.done():
                    future.set_result(None)

    def notify_topic(self, topic: str) -> None:
        for tp in [tp for tp in self._waiters if tp[0] == topic]:
            self.notify(tp)
