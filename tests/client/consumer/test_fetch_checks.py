"""Every fetched batch is checked: CRC32C and offset continuity, reported by ``poll``.

The fake broker serves stored batches as they are; a test damages them first
(a flipped byte, a base offset out of line) and the consumer must report it as
``CorruptRecordError`` from ``poll``, never hand out the damaged records nor
skip over them.
"""

from __future__ import annotations

import asyncio

import pytest

from client.consumer import Consumer
from client.errors import CorruptRecordError
from client.protocol import ApiKey
from client.record import build_batch, stamp_batch
from client.record.layout import ATTRIBUTES_AT, LENGTH_AT
from client.topic_partition import TopicPartition
from tests.client.consumer.conftest import ConsumerFactory
from tests.client.producer.fake_broker import FakeBroker

TP = TopicPartition("t", 0)
MAX_TIMESTAMP_AT = ATTRIBUTES_AT + 2 + 4 + 8  # covered by the CRC, not used to decode


def _three_batches(fake: FakeBroker) -> None:
    """Offsets 0-1, 2-3, 4-5 in three batches."""
    for first in (0, 2, 4):
        fake.append("t", 0, build_batch([b"v%d" % first, b"v%d" % (first + 1)]))


async def _consumer(make_consumer: ConsumerFactory, **settings: object) -> Consumer:
    consumer = await make_consumer(auto_offset_reset="earliest", **settings)
    consumer.assign([TP])
    return consumer


async def _drain(consumer: Consumer, timeout_s: float = 3.0) -> tuple[list[int], Exception | None]:
    """Offsets polled until the first error or ``timeout_s``; and that error."""
    offsets: list[int] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        try:
            polled = await consumer.poll(timeout_ms=100)
        except CorruptRecordError as exc:
            return offsets, exc
        offsets.extend(r.offset for records in polled.values() for r in records)
    return offsets, None


async def test_sound_batches_arrive_in_order(
    make_consumer: ConsumerFactory, fake: FakeBroker
) -> None:
    _three_batches(fake)
    consumer = await _consumer(make_consumer)

    offsets, error = await _drain(consumer, timeout_s=0.5)

    assert error is None
    assert offsets == [0, 1, 2, 3, 4, 5]


async def test_a_flipped_byte_is_a_corrupt_record_error_from_poll(
    make_consumer: ConsumerFactory, fake: FakeBroker
) -> None:
    _three_batches(fake)
    fake.corrupt("t", 0, index=0, at=-1)  # the last body byte of the first batch
    consumer = await _consumer(make_consumer)

    offsets, error = await _drain(consumer)

    assert isinstance(error, CorruptRecordError)
    assert offsets == []


async def test_the_crc_error_names_the_partition(
    make_consumer: ConsumerFactory, fake: FakeBroker
) -> None:
    # Bug (minor): the CRC failure is raised with iter_batches' message ("batch at position
    # 0 (offset 0): ..."), which names no topic or partition; the continuity errors do.
    _three_batches(fake)
    fake.corrupt("t", 0, index=0, at=-1)
    consumer = await _consumer(make_consumer)

    _, error = await _drain(consumer)

    assert error is not None
    assert "t-0" in str(error), str(error)


async def test_records_before_the_damage_arrive_and_nothing_after_it(
    make_consumer: ConsumerFactory, fake: FakeBroker
) -> None:
    _three_batches(fake)
    fake.corrupt("t", 0, index=1, at=-1)
    consumer = await _consumer(make_consumer)

    before, error = await _drain(consumer)
    after, again = await _drain(consumer, timeout_s=0.3)

    assert isinstance(error, CorruptRecordError)
    assert again is None  # raised once; the partition stays stopped
    assert before + after == [0, 1]
    assert await consumer.position(TP) == 2  # where the damage starts


async def test_seeking_past_the_damage_reads_on(
    make_consumer: ConsumerFactory, fake: FakeBroker
) -> None:
    _three_batches(fake)
    fake.corrupt("t", 0, index=1, at=-1)
    consumer = await _consumer(make_consumer)
    await _drain(consumer)

    consumer.seek(TP, 4)
    offsets, error = await _drain(consumer, timeout_s=0.5)

    assert error is None
    assert offsets == [4, 5]


async def test_a_base_offset_out_of_line_is_a_corrupt_record_error(
    make_consumer: ConsumerFactory, fake: FakeBroker
) -> None:
    # The base offset sits outside the CRC: a batch at 7 after one ending at 1 is damage.
    _three_batches(fake)
    stamp_batch(fake.logs[("t", 0)][1], 0, 7, 0)
    consumer = await _consumer(make_consumer)

    before, error = await _drain(consumer)
    after, _ = await _drain(consumer, timeout_s=0.3)

    assert isinstance(error, CorruptRecordError)
    assert "t-0" in str(error)
    assert "follows one ending at 1" in str(error)
    assert before + after == [0, 1]


async def test_a_first_batch_that_does_not_hold_the_fetch_offset_is_corrupt(
    make_consumer: ConsumerFactory, fake: FakeBroker
) -> None:
    _three_batches(fake)
    consumer = await _consumer(make_consumer)
    consumer.seek(TP, 2)
    stamp_batch(fake.logs[("t", 0)][1], 0, 3, 0)  # now 3..4, served for fetch offset 2

    offsets, error = await _drain(consumer)

    assert isinstance(error, CorruptRecordError)
    assert "does not hold offset 2" in str(error)
    assert offsets == []


async def test_a_waiting_poll_raises_as_soon_as_damage_arrives(
    make_consumer: ConsumerFactory, fake: FakeBroker
) -> None:
    # Was: the fetcher records the error but does not set data_ready, so a poll already
    # waiting sleeps out its whole timeout and returns {}; only the next poll raises.
    consumer = await _consumer(make_consumer)
    assert await consumer.position(TP) == 0
    loop = asyncio.get_running_loop()

    def damaged_append() -> None:
        fake.append("t", 0, build_batch([b"a", b"b"]))
        fake.corrupt("t", 0, index=0, at=-1)

    loop.call_later(0.1, damaged_append)
    start = loop.time()
    with pytest.raises(CorruptRecordError):
        await consumer.poll(timeout_ms=3_000)

    assert loop.time() - start < 1.5


async def test_check_crcs_false_skips_the_crc_check(
    make_consumer: ConsumerFactory, fake: FakeBroker
) -> None:
    _three_batches(fake)
    fake.corrupt("t", 0, index=0, at=MAX_TIMESTAMP_AT)  # covered by the CRC, decodes fine
    checking = await _consumer(make_consumer)
    trusting = await _consumer(make_consumer, check_crcs=False)

    _, error = await _drain(checking)
    offsets, no_error = await _drain(trusting, timeout_s=0.5)

    assert isinstance(error, CorruptRecordError)
    assert no_error is None
    assert offsets == [0, 1, 2, 3, 4, 5]


async def test_a_batch_length_past_the_data_is_reported_not_refetched_forever(
    make_consumer: ConsumerFactory, fake: FakeBroker
) -> None:
    # The length field is outside the CRC. The broker serves whole batches, so a first
    # batch claiming more bytes than were sent is damage. Bug: it is taken for a partial
    # tail, nothing is consumed and the same fetch goes out again and again, silently.
    _three_batches(fake)
    fake.logs[("t", 0)][0][LENGTH_AT] = 0x10  # batch_length += 256 MiB
    consumer = await _consumer(make_consumer)

    offsets, error = await _drain(consumer, timeout_s=1.0)

    assert offsets == []
    fetches = fake.count(ApiKey.FETCH)
    assert isinstance(error, CorruptRecordError), f"no error after {fetches} fetches"
