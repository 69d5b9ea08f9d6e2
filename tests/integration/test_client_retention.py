"""A consumer whose position retention deleted: auto_offset_reset decides where it goes.

The broker checks retention every 100 ms; the topic rolls 2 KiB segments, and
``retention.ms`` (set through the Admin client once the records are in) removes
the ones holding two-hour-old records, moving the log start past offset 0.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from client.admin import Admin
from client.errors import OffsetOutOfRangeError
from client.topic_partition import TopicPartition
from tests.client.consumer.support import ClientSet, poll_records
from tests.support.broker_process import BrokerProcess

HOUR_MS = 3_600_000
OLD, NEW = 30, 5
TP = TopicPartition("ret", 0)

pytestmark = pytest.mark.broker_flags(
    "--log-retention-check-interval-ms", "100", "--log-segment-delete-delay-ms", "0"
)


@pytest.fixture
async def clients() -> AsyncIterator[ClientSet]:
    opened = ClientSet()
    yield opened
    await opened.aclose()


@pytest.fixture
async def log_start(broker: BrokerProcess, clients: ClientSet) -> int:
    """Fill ``ret``, let retention delete the old segments; the new log start offset."""
    async with Admin(broker.address) as admin:
        await admin.create_topic("ret", 1, 1, {"segment.bytes": "2048"})
        producer = await clients.producer(broker.address, acks="all")
        now_ms = int(time.time() * 1000)
        for i in range(OLD + NEW):
            timestamp = now_ms - 2 * HOUR_MS if i < OLD else now_ms
            await producer.send_and_wait("ret", b"%02d-" % i + b"x" * 250, timestamp_ms=timestamp)
        await admin.alter_configs("ret", {"retention.ms": str(HOUR_MS)})
        deadline = time.monotonic() + 10
        while True:
            start = (await admin.list_offsets({TP: "earliest"}))[TP]
            assert start is not None
            if start.offset > 0:
                break
            assert time.monotonic() < deadline, "retention deleted nothing within 10 s"
            await asyncio.sleep(0.1)
    assert 0 < start.offset <= OLD
    return start.offset


async def test_earliest_jumps_to_the_log_start(
    broker: BrokerProcess, clients: ClientSet, log_start: int
) -> None:
    consumer = await clients.consumer(broker.address, auto_offset_reset="earliest")
    consumer.assign([TP])
    consumer.seek(TP, 0)  # below the log start now

    records = await poll_records(consumer, OLD + NEW - log_start)

    assert [r.offset for r in records] == list(range(log_start, OLD + NEW))
    assert records[0].value.startswith(b"%02d-" % log_start)  # type: ignore[union-attr]
    assert await consumer.beginning_offsets([TP]) == {TP: log_start}


async def test_latest_jumps_to_the_end(
    broker: BrokerProcess, clients: ClientSet, log_start: int
) -> None:
    consumer = await clients.consumer(broker.address, auto_offset_reset="latest")
    consumer.assign([TP])
    consumer.seek(TP, 0)

    assert await consumer.poll(timeout_ms=500) == {}
    producer = await clients.producer(broker.address)
    await producer.send_and_wait("ret", b"after")

    records = await poll_records(consumer, 1)
    assert [(r.offset, r.value) for r in records] == [(OLD + NEW, b"after")]


async def test_none_raises_offset_out_of_range_naming_the_partition(
    broker: BrokerProcess, clients: ClientSet, log_start: int
) -> None:
    consumer = await clients.consumer(broker.address, auto_offset_reset="none")
    consumer.assign([TP])
    consumer.seek(TP, 0)

    with pytest.raises(OffsetOutOfRangeError, match=r"offset 0 is out of range for ret-0"):
        await poll_records(consumer, 1, timeout_s=5)
    assert await consumer.poll(timeout_ms=200) == {}  # stopped until the application seeks

    await consumer.seek_to_beginning(TP)
    records = await poll_records(consumer, 1)
    assert records[0].offset == log_start


async def test_none_also_refuses_a_position_past_the_end(
    broker: BrokerProcess, clients: ClientSet, log_start: int
) -> None:
    consumer = await clients.consumer(broker.address, auto_offset_reset="none")
    consumer.assign([TP])
    consumer.seek(TP, OLD + NEW + 10)

    with pytest.raises(OffsetOutOfRangeError, match="ret-0"):
        await poll_records(consumer, 1, timeout_s=5)
