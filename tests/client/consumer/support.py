"""Client helpers shared by the unit tests here and ``tests/integration/test_client_*.py``.

``ClientSet`` starts producers and consumers for one test and closes them all at
its end, each close bounded, so a test against a broker never hangs in teardown.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from client.consumer import Consumer, ConsumerRecord
from client.producer import Producer

__all__ = ["ClientSet", "close_consumer", "poll_records"]

Bootstrap = str | Sequence[str]


async def close_consumer(consumer: Consumer) -> None:
    """Close, cancelling the fetcher again if the first cancel was lost.

    ``Consumer.close`` can wait forever for a fetcher whose cancellation was
    swallowed (see ``tests/client/consumer/test_close.py``); teardown must not.
    """
    closing = asyncio.ensure_future(consumer.close())
    await asyncio.wait([closing], timeout=0.5)
    task = consumer._task
    if task is not None and not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=5)
    await asyncio.wait_for(closing, 5)


async def poll_records(
    consumer: Consumer, count: int, *, timeout_s: float = 10.0
) -> list[ConsumerRecord]:
    """The next ``count`` records over all assigned partitions (fewer after ``timeout_s``)."""
    got: list[ConsumerRecord] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while len(got) < count:
        remaining_ms = int((deadline - loop.time()) * 1000)
        if remaining_ms <= 0:
            break
        polled = await consumer.poll(timeout_ms=min(remaining_ms, 200))
        for (topic, partition), records in polled.items():
            got.extend(ConsumerRecord(topic, partition, *r) for r in records)
    return got


class ClientSet:
    def __init__(self) -> None:
        self._producers: list[Producer] = []
        self._consumers: list[Consumer] = []

    async def producer(self, bootstrap: Bootstrap, **settings: Any) -> Producer:
        producer = Producer(bootstrap, **settings)
        self._producers.append(producer)
        await asyncio.wait_for(producer.start(), 10)
        return producer

    async def consumer(self, bootstrap: Bootstrap, **settings: Any) -> Consumer:
        settings.setdefault("fetch_max_wait_ms", 100)
        consumer = Consumer(bootstrap, **settings)
        self._consumers.append(consumer)
        await asyncio.wait_for(consumer.start(), 10)
        return consumer

    async def aclose(self) -> None:
        for consumer in self._consumers:
            await close_consumer(consumer)
        for producer in self._producers:
            await asyncio.wait_for(producer.close(), 15)
