"""Where a consumer reads: auto_offset_reset, seek, pause/resume, offsets by time, iteration."""

from __future__ import annotations

import asyncio

import pytest

from client.consumer import Consumer, ConsumerRecord
from client.errors import LogServerError, OffsetOutOfRangeError
from client.record import BatchBuilder, build_batch
from client.topic_partition import OffsetAndTimestamp, TopicPartition
from tests.client.consumer.conftest import ConsumerFactory
from tests.client.producer.fake_broker import FakeBroker

TP = TopicPartition("t", 0)


def _fill(fake: FakeBroker, count: int, *, partition: int = 0, topic: str = "t") -> None:
    """``count`` records with values ``v<offset>`` and timestamps ``1000 * (offset + 1)``."""
    start = fake.end_offset(topic, partition)
    for offset in range(start, start + count):
        builder = BatchBuilder()
        builder.append(b"v%d" % offset, timestamp_ms=1000 * (offset + 1))
        fake.append(topic, partition, builder.build())


async def _offsets(consumer: Consumer, want: int, timeout_s: float = 3.0) -> list[int]:
    """Offsets of the next ``want`` records (fewer if ``timeout_s`` passes)."""
    got: list[int] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while len(got) < want and loop.time() < deadline:
        polled = await consumer.poll(timeout_ms=100)
        got.extend(r.offset for records in polled.values() for r in records)
    return got


@pytest.mark.parametrize(("reset", "first"), [("earliest", 0), ("latest", 5)])
async def test_a_new_assignment_starts_where_auto_offset_reset_says(
    make_consumer: ConsumerFactory, fake: FakeBroker, reset: str, first: int
) -> None:
    _fill(fake, 5)
    consumer = await make_consumer(auto_offset_reset=reset)
    consumer.assign([TP])

    assert await consumer.position(TP) == first
    _fill(fake, 2)
    assert await _offsets(consumer, 7 - first) == list(range(first, 7))


async def test_none_without_a_position_raises_from_poll_until_a_seek(
    make_consumer: ConsumerFactory, fake: FakeBroker
) -> None:
    _fill(fake, 3)
    consumer = await make_consumer(auto_offset_reset="none")
    consumer.assign([TP])

    with pytest.raises(OffsetOutOfRangeError, match="t-0"):
        await consumer.poll(timeout_ms=2_000)
    with pytest.raises(LogServerError, match="t-0"):
        await consumer.position(TP)

    consumer.seek(TP, 1)
    assert await _offsets(consumer, 2) == [1, 2]


@pytest.mark.parametrize(("reset", "expected"), [("earliest", [4, 5]), ("latest", [6])])
async def test_a_position_below_the_log_start_is_reset(
    make_consumer: ConsumerFactory, fake: FakeBroker, reset: str, expected: list[int]
) -> None:
    _fill(fake, 6)
    consumer = await make_consumer(auto_offset_reset=reset)
    consumer.assign([TP])
    consumer.seek(TP, 1)
    fake.delete_before("t", 0, 4)  # retention removed 0-3
    loop = asyncio.get_running_loop()
    loop.call_later(0.3, _fill, fake, 1)  # offset 6, after the reset

    assert await _offsets(consumer, len(expected)) == expected


async def test_none_below_the_log_start_names_partition_and_offset(
    make_consumer: ConsumerFactory, fake: FakeBroker
) -> None:
    _fill(fake, 6)
    fake.delete_before("t", 0, 4)
    consumer = await make_consumer(auto_offset_reset="none")
    consumer.assign([TP])
    consumer.seek(TP, 1)

    with pytest.raises(OffsetOutOfRangeError, match=r"offset 1 is out of range for t-0"):
        await consumer.poll(timeout_ms=2_000)
    assert await consumer.poll(timeout_ms=100) == {}  # raised once, then stopped

    await consumer.seek_to_beginning(TP)
    assert await _offsets(consumer, 2) == [4, 5]


async def test_seek_position_and_the_offsets_of_the_log(
    make_consumer: ConsumerFactory, fake: FakeBroker
) -> None:
    _fill(fake, 10)
    fake.delete_before("t", 0, 2)
    consumer = await make_consumer(auto_offset_reset="earliest")
    consumer.assign([TP])

    assert await consumer.beginning_offsets([TP]) == {TP: 2}
    assert await consumer.end_offsets([TP]) == {TP: 10}
    consumer.seek(TP, 7)
    assert await consumer.position(TP) == 7
    assert await _offsets(consumer, 3) == [7, 8, 9]
    assert await consumer.position(TP) == 10
    await consumer.seek_to_beginning()
    assert await consumer.position(TP) == 2
    await consumer.seek_to_end(TP)
    assert await consumer.position(TP) == 10


async def test_offsets_for_times_then_seek_replays_from_a_time(
    make_consumer: ConsumerFactory, fake: FakeBroker
) -> None:
    _fill(fake, 10)  # offset n has timestamp 1000 * (n + 1)
    consumer = await make_consumer(auto_offset_reset="latest")
    consumer.assign([TP])

    found = await consumer.offsets_for_times({TP: 6_500})
    assert found == {TP: OffsetAndTimestamp(6, 7_000)}
    consumer.seek(TP, found[TP].offset)

    assert await _offsets(consumer, 4) == [6, 7, 8, 9]
    assert await consumer.offsets_for_times({TP: 99_000}) == {TP: None}


@pytest.mark.parametrize("offset", [-1, "3", 1.0, None])
async def test_seek_refuses_what_is_not_an_offset(
    make_consumer: ConsumerFactory, offset: object
) -> None:
    consumer = await make_consumer()
    consumer.assign([TP])

    with pytest.raises(ValueError, match="offset"):
        consumer.seek(TP, offset)  # type: ignore[arg-type]


async def test_a_partition_not_assigned_is_named(make_consumer: ConsumerFactory) -> None:
    consumer = await make_consumer()
    consumer.assign([TP])

    with pytest.raises(LogServerError, match="two-1 is not assigned"):
        consumer.seek(("two", 1), 0)


async def test_pause_stops_one_partition_and_resume_restarts_it(
    make_consumer: ConsumerFactory, fake: FakeBroker
) -> None:
    _fill(fake, 3, topic="two", partition=0)
    _fill(fake, 3, topic="two", partition=1)
    consumer = await make_consumer(auto_offset_reset="earliest")
    a, b = TopicPartition("two", 0), TopicPartition("two", 1)
    consumer.assign([a, b])
    consumer.pause(b)

    polled: dict[TopicPartition, list[int]] = {a: [], b: []}
    for _ in range(5):
        for tp, records in (await consumer.poll(timeout_ms=100)).items():
            polled[tp].extend(r.offset for r in records)
    assert polled == {a: [0, 1, 2], b: []}

    consumer.resume(b)
    assert await _offsets(consumer, 3) == [0, 1, 2]


async def test_records_already_fetched_are_held_while_paused(
    make_consumer: ConsumerFactory, fake: FakeBroker
) -> None:
    """Kafka's pause: what was fetched before the pause is not returned until resume."""
    _fill(fake, 3, topic="two", partition=0)
    consumer = await make_consumer(auto_offset_reset="earliest")
    a = TopicPartition("two", 0)
    consumer.assign([a])
    for _ in range(50):  # until the fetcher has buffered the records
        if consumer._fetcher.states[a].buffer:
            break
        await asyncio.sleep(0.02)
    assert consumer._fetcher.states[a].buffer, "nothing was fetched"

    consumer.pause(a)
    assert consumer.paused() == {a}
    assert await consumer.poll(timeout_ms=200) == {}
    assert await consumer.position(a) == 0

    consumer.resume(a)
    assert consumer.paused() == set()
    assert await _offsets(consumer, 3) == [0, 1, 2]


async def test_max_records_bounds_one_poll_without_losing_any(
    make_consumer: ConsumerFactory, fake: FakeBroker
) -> None:
    fake.append("t", 0, build_batch([b"%d" % i for i in range(10)]))
    consumer = await make_consumer(auto_offset_reset="earliest")
    consumer.assign([TP])
    await asyncio.sleep(0.1)

    sizes, offsets = [], []
    for _ in range(20):
        polled = await consumer.poll(timeout_ms=100, max_records=3)
        records = polled.get(TP, [])
        sizes.append(len(records))
        offsets.extend(r.offset for r in records)
        if len(offsets) == 10:
            break

    assert max(sizes) == 3
    assert offsets == list(range(10))


async def test_async_iteration_yields_consumer_records(
    make_consumer: ConsumerFactory, fake: FakeBroker
) -> None:
    builder = BatchBuilder()
    builder.append(b"v", key=b"k", timestamp_ms=42, headers=[("h", b"x")])
    fake.append("t", 0, builder.build())
    consumer = await make_consumer(auto_offset_reset="earliest")
    consumer.assign([TP])

    async def first() -> ConsumerRecord:
        async for record in consumer:
            return record
        raise AssertionError("the iteration ended")

    record = await asyncio.wait_for(first(), 3)

    assert record == ConsumerRecord("t", 0, 0, 42, b"k", b"v", (("h", b"x"),))


async def test_a_closed_consumer_refuses_calls(make_consumer: ConsumerFactory) -> None:
    consumer = await make_consumer()
    await consumer.close()

    with pytest.raises(LogServerError, match="closed"):
        consumer.assign([TP])
    with pytest.raises(LogServerError, match="closed"):
        await consumer.poll(timeout_ms=10)
    await consumer.close()  # twice is harmless


def test_bad_auto_offset_reset_is_refused() -> None:
    with pytest.raises(ValueError, match="auto_offset_reset"):
        Consumer("fake:9092", auto_offset_reset="smallest")
