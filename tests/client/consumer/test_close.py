"""Closing a consumer ends its fetcher task, whatever that task was waiting for."""

from __future__ import annotations

import asyncio

from client.topic_partition import TopicPartition
from tests.client.consumer.conftest import ConsumerFactory
from tests.client.consumer.support import close_consumer

TP = TopicPartition("t", 0)


async def test_close_ends_the_fetcher_whenever_it_is_called(
    make_consumer: ConsumerFactory,
) -> None:
    # Was: assign() wakes the fetcher, which asks Metadata/ListOffsets/Fetch; a close()
    # whose cancel arrives just as an answer lands is lost. BrokerConnection.wait awaits
    # asyncio.wait_for(shield(future)), and Python 3.11's wait_for returns the result
    # instead of raising CancelledError when both happen together (cpython gh-86296), so
    # the fetcher goes on fetching and Consumer.close() awaits it forever. The fake
    # broker answers through the real BrokerConnection.wait; closing 0..9 loop ticks after
    # assign() hits that window on several of them.
    hung = []
    for ticks in range(10):
        consumer = await make_consumer()
        consumer.assign([TP])
        for _ in range(ticks):
            await asyncio.sleep(0)

        closing = asyncio.ensure_future(consumer.close())
        done, _ = await asyncio.wait([closing], timeout=0.5)

        if not done:
            hung.append(ticks)
            await close_consumer(consumer)  # cancels the fetcher again
        assert closing.done()
        assert consumer._task is not None
        assert consumer._task.done()

    assert hung == [], f"close() hung when called {hung} ticks after assign()"
