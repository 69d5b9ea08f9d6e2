"""Helpers for the consumer-group tests here: filling the fake's logs, polling members."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from client.consumer import Consumer, ConsumerRecord
from client.record import BatchBuilder
from tests.client.producer.fake_broker import FakeBroker

__all__ = ["WAIT_S", "Polled", "fill", "poll_until", "poll_until_raises"]

WAIT_S = 5.0


def fill(fake: FakeBroker, topic: str, partition: int, count: int) -> None:
    """``count`` records with values ``<topic>-<partition>:<offset>``."""
    start = fake.end_offset(topic, partition)
    for offset in range(start, start + count):
        builder = BatchBuilder()
        builder.append(b"%s-%d:%d" % (topic.encode(), partition, offset))
        fake.append(topic, partition, builder.build())


class Polled:
    """Records each consumer got, in order."""

    def __init__(self, consumers: Sequence[Consumer]) -> None:
        self.consumers = list(consumers)
        self.records: list[list[ConsumerRecord]] = [[] for _ in consumers]

    def of(self, index: int) -> list[tuple[str, int, int]]:
        return [(r.topic, r.partition, r.offset) for r in self.records[index]]

    def total(self) -> int:
        return sum(len(r) for r in self.records)


async def poll_until(
    consumers: Sequence[Consumer],
    condition: Callable[[Polled], object],
    *,
    what: str,
    timeout_s: float = WAIT_S,
    polled: Polled | None = None,
    max_records: int | None = None,
) -> Polled:
    """Poll every consumer (concurrently, 50 ms polls) until ``condition(polled)`` holds."""
    polled = polled or Polled(consumers)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s

    async def one(index: int, consumer: Consumer) -> None:
        for tp, records in (await consumer.poll(50, max_records)).items():
            polled.records[index].extend(
                ConsumerRecord(tp.topic, tp.partition, *r) for r in records
            )

    while not condition(polled):
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}; got {polled.records}")
        await asyncio.gather(*(one(i, c) for i, c in enumerate(consumers)))
    return polled


async def poll_until_raises(consumer: Consumer, *, timeout_s: float = WAIT_S) -> BaseException:
    """What the consumer's ``poll`` raises first (fails the test if nothing in ``timeout_s``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        try:
            await consumer.poll(timeout_ms=50)
        except Exception as exc:  # noqa: BLE001 - returned for the assertions
            return exc
    raise AssertionError(f"poll raised nothing within {timeout_s} s")
