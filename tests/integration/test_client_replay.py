"""Replaying a partition: from the start, an offset, a time, N before the end.

One broker holds ``replay`` (2 partitions, 100 records each, partition p's
record i has value ``p-i`` and timestamp ``BASE + 10 * i``); each test reads it
back from another starting point with a fresh consumer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from client.admin import Admin
from client.consumer import Consumer, ConsumerRecord
from client.topic_partition import OffsetAndTimestamp, TopicPartition
from tests.client.consumer.support import ClientSet, poll_records
from tests.support.broker_process import BrokerProcess

BASE = 1_700_000_000_000
COUNT = 100
TP0, TP1 = TopicPartition("replay", 0), TopicPartition("replay", 1)


@pytest.fixture
async def clients() -> AsyncIterator[ClientSet]:
    opened = ClientSet()
    yield opened
    await opened.aclose()


@pytest.fixture
async def filled(broker: BrokerProcess, clients: ClientSet) -> BrokerProcess:
    async with Admin(broker.address) as admin:
        await admin.create_topic("replay", 2, 1)
    producer = await clients.producer(broker.address, linger_ms=5, batch_size=2_000)
    for i in range(COUNT):
        for p in (0, 1):
            await producer.send(
                "replay", b"%d-%d" % (p, i), partition=p, timestamp_ms=BASE + 10 * i
            )
    await asyncio.wait_for(producer.flush(), 10)
    return broker


def _values(records: list[ConsumerRecord]) -> list[tuple[int, int, bytes | None]]:
    return [(r.partition, r.offset, r.value) for r in records]


def _expected(partition: int, start: int) -> list[tuple[int, int, bytes]]:
    return [(partition, i, b"%d-%d" % (partition, i)) for i in range(start, COUNT)]


async def _reader(clients: ClientSet, broker: BrokerProcess, tp: TopicPartition) -> Consumer:
    consumer = await clients.consumer(broker.address, auto_offset_reset="latest")
    consumer.assign([tp])
    return consumer


async def test_replay_from_the_start(filled: BrokerProcess, clients: ClientSet) -> None:
    consumer = await _reader(clients, filled, TP0)
    await consumer.seek_to_beginning()

    records = await poll_records(consumer, COUNT)

    assert _values(records) == _expected(0, 0)
    assert [r.timestamp for r in records] == [BASE + 10 * i for i in range(COUNT)]


async def test_replay_from_an_offset(filled: BrokerProcess, clients: ClientSet) -> None:
    consumer = await _reader(clients, filled, TP1)
    consumer.seek(TP1, 42)

    assert await consumer.position(TP1) == 42
    assert _values(await poll_records(consumer, COUNT - 42)) == _expected(1, 42)
    assert await consumer.position(TP1) == COUNT


async def test_replay_from_a_timestamp(filled: BrokerProcess, clients: ClientSet) -> None:
    consumer = await _reader(clients, filled, TP0)

    found = await consumer.offsets_for_times({TP0: BASE + 10 * 60 - 5, TP1: BASE + 10 * 30})
    assert found == {
        TP0: OffsetAndTimestamp(60, BASE + 600),  # the first record at or after the time
        TP1: OffsetAndTimestamp(30, BASE + 300),  # exactly at it
    }
    consumer.seek(TP0, found[TP0].offset)  # type: ignore[union-attr]

    assert _values(await poll_records(consumer, COUNT - 60)) == _expected(0, 60)


async def test_a_time_after_every_record_finds_nothing_and_before_finds_the_start(
    filled: BrokerProcess, clients: ClientSet
) -> None:
    consumer = await _reader(clients, filled, TP0)

    found = await consumer.offsets_for_times({TP0: BASE + 10 * COUNT, TP1: 0})

    assert found == {TP0: None, TP1: OffsetAndTimestamp(0, BASE)}


async def test_replay_the_last_n(filled: BrokerProcess, clients: ClientSet) -> None:
    consumer = await _reader(clients, filled, TP1)

    end = (await consumer.end_offsets([TP1]))[TP1]
    assert end == COUNT
    assert await consumer.beginning_offsets([TP0, TP1]) == {TP0: 0, TP1: 0}
    consumer.seek(TP1, end - 10)

    assert _values(await poll_records(consumer, 10)) == _expected(1, COUNT - 10)
    assert await consumer.poll(timeout_ms=200) == {}  # nothing past the end


async def test_latest_reads_only_what_comes_next(filled: BrokerProcess, clients: ClientSet) -> None:
    consumer = await _reader(clients, filled, TP0)
    assert await consumer.position(TP0) == COUNT
    producer = await clients.producer(filled.address)

    await producer.send_and_wait("replay", b"new", partition=0)

    assert _values(await poll_records(consumer, 1)) == [(0, COUNT, b"new")]


async def test_async_iteration_over_two_partitions(
    filled: BrokerProcess, clients: ClientSet
) -> None:
    consumer = await clients.consumer(filled.address, auto_offset_reset="earliest")
    consumer.assign([TP0, TP1])
    seen: dict[int, list[int]] = {0: [], 1: []}

    async def read() -> None:
        async for record in consumer:
            seen[record.partition].append(record.offset)
            if sum(map(len, seen.values())) == 2 * COUNT:
                return

    await asyncio.wait_for(read(), 10)

    assert seen == {0: list(range(COUNT)), 1: list(range(COUNT))}


async def test_pause_and_resume_one_partition(filled: BrokerProcess, clients: ClientSet) -> None:
    consumer = await clients.consumer(filled.address, auto_offset_reset="earliest")
    consumer.assign([TP0, TP1])
    consumer.pause(TP1)

    first = await poll_records(consumer, COUNT)
    assert {r.partition for r in first} == {0}
    assert await consumer.poll(timeout_ms=300) == {}

    consumer.resume(TP1)
    assert _values(await poll_records(consumer, COUNT)) == _expected(1, 0)
