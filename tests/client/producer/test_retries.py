"""Produce errors: stale metadata is refreshed and the batch retried; the rest fail the send."""

from __future__ import annotations

import asyncio
import itertools

import pytest

from client.errors import (
    CorruptRecordError,
    InvalidRecordError,
    LogServerError,
    NetworkError,
    NotLeaderOrFollowerError,
    RecordTooLargeError,
    UnknownTopicOrPartitionError,
)
from client.protocol import ApiKey
from tests.client.producer.conftest import ProducerFactory
from tests.client.producer.fake_broker import FakeBroker

WAIT_S = 5


@pytest.mark.parametrize(
    "error", [NotLeaderOrFollowerError, UnknownTopicOrPartitionError], ids=lambda e: e.name
)
async def test_a_stale_metadata_error_refreshes_metadata_and_retries(
    make_producer: ProducerFactory, fake: FakeBroker, error: type[LogServerError]
) -> None:
    producer = await make_producer(retry_backoff_ms=10)
    await producer.partitions_for("t")
    metadata_before = fake.count(ApiKey.METADATA)
    fake.fail_produce(error.code, message="moved")

    metadata = await asyncio.wait_for(producer.send_and_wait("t", b"v"), WAIT_S)

    assert metadata.offset == 0
    assert [r.value for r in fake.records("t", 0)] == [b"v"]  # written once
    assert fake.count(ApiKey.PRODUCE) == 2
    # The retry asked for fresh metadata before going out again.
    produce_at = [i for i, (key, _) in enumerate(fake.requests) if key == ApiKey.PRODUCE]
    between = fake.requests[produce_at[0] + 1 : produce_at[1]]
    assert [key for key, _ in between] == [ApiKey.METADATA]
    assert fake.count(ApiKey.METADATA) == metadata_before + 1


async def test_a_retriable_error_waits_retry_backoff_ms_between_attempts(
    make_producer: ProducerFactory, fake: FakeBroker
) -> None:
    producer = await make_producer(retry_backoff_ms=100)
    fake.fail_produce(NotLeaderOrFollowerError.code, NotLeaderOrFollowerError.code)

    await asyncio.wait_for(producer.send_and_wait("t", b"v"), WAIT_S)

    times = fake.produce_times()
    assert len(times) == 3
    assert all(later - earlier >= 0.09 for earlier, later in itertools.pairwise(times))


async def test_retries_exhausted_fail_the_record_with_the_last_error(
    make_producer: ProducerFactory, fake: FakeBroker
) -> None:
    producer = await make_producer(retries=2, retry_backoff_ms=5)
    fake.fail_produce(*[NotLeaderOrFollowerError.code] * 5, message="still moving")

    with pytest.raises(NotLeaderOrFollowerError, match="t-0"):
        await asyncio.wait_for(producer.send_and_wait("t", b"v"), WAIT_S)

    assert fake.count(ApiKey.PRODUCE) == 3  # the first attempt and 2 retries
    assert fake.records("t", 0) == []


async def test_retries_0_fails_on_the_first_retriable_error(
    make_producer: ProducerFactory, fake: FakeBroker
) -> None:
    producer = await make_producer(retries=0)
    fake.fail_produce(NotLeaderOrFollowerError.code)

    with pytest.raises(NotLeaderOrFollowerError):
        await asyncio.wait_for(producer.send_and_wait("t", b"v"), WAIT_S)

    assert fake.count(ApiKey.PRODUCE) == 1


async def test_delivery_timeout_bounds_the_retrying(
    make_producer: ProducerFactory, fake: FakeBroker
) -> None:
    producer = await make_producer(retry_backoff_ms=50, delivery_timeout_ms=300)
    fake.fail_produce(*[NotLeaderOrFollowerError.code] * 100)
    loop = asyncio.get_running_loop()
    start = loop.time()

    with pytest.raises(NotLeaderOrFollowerError):
        await asyncio.wait_for(producer.send_and_wait("t", b"v"), WAIT_S)

    assert loop.time() - start < 1.0
    assert 2 <= fake.count(ApiKey.PRODUCE) <= 8


@pytest.mark.parametrize(
    "error", [RecordTooLargeError, InvalidRecordError, LogServerError], ids=lambda e: e.name
)
async def test_a_non_retriable_error_fails_at_once_and_names_the_partition(
    make_producer: ProducerFactory, fake: FakeBroker, error: type[LogServerError]
) -> None:
    producer = await make_producer(retry_backoff_ms=5)
    fake.fail_produce(error.code, message="refused by the fake")

    with pytest.raises(error, match="t-0: refused by the fake"):
        await asyncio.wait_for(producer.send_and_wait("t", b"v"), WAIT_S)

    assert fake.count(ApiKey.PRODUCE) == 1
    # The producer goes on working.
    assert (await asyncio.wait_for(producer.send_and_wait("t", b"w"), WAIT_S)).offset == 0


async def test_corrupt_message_from_the_broker_is_retried(
    make_producer: ProducerFactory, fake: FakeBroker
) -> None:
    # CORRUPT_MESSAGE is retriable in Kafka (a bit flipped on the way): send the bytes again.
    producer = await make_producer(retry_backoff_ms=5)
    fake.fail_produce(CorruptRecordError.code)

    assert (await asyncio.wait_for(producer.send_and_wait("t", b"v"), WAIT_S)).offset == 0
    # The retry sent the very same bytes.
    assert fake.count(ApiKey.PRODUCE) == 2


async def test_one_failing_partition_does_not_fail_its_request_mates(
    make_producer: ProducerFactory, fake: FakeBroker
) -> None:
    producer = await make_producer(linger_ms=60_000, retries=0)
    futures = [await producer.send("three", b"%d" % p, partition=p) for p in range(3)]
    fake.fail_produce(0, RecordTooLargeError.code, 0)  # 0: no error, append as usual

    await asyncio.wait_for(producer.flush(), WAIT_S)

    assert futures[0].result().offset == 0
    assert isinstance(futures[1].exception(), RecordTooLargeError)
    assert futures[2].result().offset == 0
    assert [len(fake.records("three", p)) for p in range(3)] == [1, 0, 1]
    assert fake.count(ApiKey.PRODUCE) == 1


async def test_a_connection_lost_in_flight_reconnects_and_retries(
    make_producer: ProducerFactory, fake: FakeBroker
) -> None:
    producer = await make_producer(retry_backoff_ms=10)
    await producer.partitions_for("t")
    fake.hold()
    future = await producer.send("t", b"v")
    for _ in range(5):
        await asyncio.sleep(0)
    assert fake.held == 1

    first = fake.connections[-1]
    first.close()  # the reply to the held request never comes
    fake.release()
    metadata = await asyncio.wait_for(future, WAIT_S)

    assert metadata.partition == 0
    assert len(fake.connections) == 2
    assert not fake.connections[-1].closed
    # The fake appended on arrival, so the lost reply means the record is there twice:
    # at-least-once, as in Kafka without idempotence.
    assert [r.value for r in fake.records("t", 0)] == [b"v", b"v"]
    assert metadata.offset == 1


async def test_an_unreachable_broker_fails_start_with_a_network_error(fake: FakeBroker) -> None:
    from client.producer import Producer

    fake.reachable = False
    producer = Producer(fake.address)

    with pytest.raises(NetworkError, match="fake:9092"):
        await asyncio.wait_for(producer.start(), WAIT_S)
