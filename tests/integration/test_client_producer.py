"""The producer against a real broker: batching into requests, size limits, and its errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from client.admin import Admin
from client.connection import BrokerConnection
from client.errors import RecordTooLargeError, UnknownTopicOrPartitionError
from client.producer import ProducerClosedError
from client.protocol import ApiKey
from tests.client.consumer.support import ClientSet, poll_records
from tests.support.broker_process import BrokerProcess

WAIT_S = 10


@pytest.fixture
async def clients() -> AsyncIterator[ClientSet]:
    opened = ClientSet()
    yield opened
    await opened.aclose()


@pytest.fixture
def produce_requests(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """The body of every Produce request any connection writes, in order."""
    seen: list[dict[str, Any]] = []
    original = BrokerConnection.send

    def counting(self: BrokerConnection, api_key: int, body: dict[str, Any], *a: Any, **kw: Any):  # type: ignore[no-untyped-def]
        if api_key == ApiKey.PRODUCE:
            seen.append(body)
        return original(self, api_key, body, *a, **kw)

    monkeypatch.setattr(BrokerConnection, "send", counting)
    return seen


async def _create(broker: BrokerProcess, topic: str, partitions: int = 1) -> None:
    async with Admin(broker.address) as admin:
        await admin.create_topic(topic, partitions, 1)


# -- batching ----------------------------------------------------------------------------------


async def test_sends_within_linger_share_one_batch_and_one_request(
    broker: BrokerProcess, clients: ClientSet, produce_requests: list[dict[str, Any]]
) -> None:
    await _create(broker, "linger")
    producer = await clients.producer(broker.address, linger_ms=50)
    await producer.partitions_for("linger")

    futures = [await producer.send("linger", b"%d" % i) for i in range(10)]
    await asyncio.sleep(0.02)
    assert produce_requests == []  # lingering
    metadata = [await asyncio.wait_for(f, WAIT_S) for f in futures]

    assert [m.offset for m in metadata] == list(range(10))
    assert len(produce_requests) == 1
    [[topic, [[partition, _size]]]] = produce_requests[0]["topics"]  # one batch
    assert (topic, partition) == ("linger", 0)


async def test_with_no_linger_the_first_record_goes_out_at_once(
    broker: BrokerProcess, clients: ClientSet, produce_requests: list[dict[str, Any]]
) -> None:
    await _create(broker, "eager")
    producer = await clients.producer(broker.address, linger_ms=0)
    await producer.partitions_for("eager")
    loop = asyncio.get_running_loop()

    start = loop.time()
    future = await producer.send("eager", b"now")
    while not produce_requests and loop.time() - start < 1:
        await asyncio.sleep(0.001)

    assert len(produce_requests) == 1
    assert loop.time() - start < 0.05
    assert (await asyncio.wait_for(future, WAIT_S)).offset == 0


async def test_batch_size_splits_a_burst_into_several_batches(
    broker: BrokerProcess, clients: ClientSet
) -> None:
    await _create(broker, "split")
    producer = await clients.producer(broker.address, linger_ms=1_000, batch_size=2_000)

    futures = [await producer.send("split", b"x" * 300) for _ in range(30)]
    await asyncio.wait_for(producer.flush(), WAIT_S)

    offsets = [(await f).offset for f in futures]
    assert offsets == list(range(30))
    consumer = await clients.consumer(broker.address, auto_offset_reset="earliest")
    consumer.assign([("split", 0)])
    assert len(await poll_records(consumer, 30)) == 30


# -- sizes -------------------------------------------------------------------------------------


async def test_a_record_past_max_request_size_is_refused_naming_its_size(
    broker: BrokerProcess, clients: ClientSet, produce_requests: list[dict[str, Any]]
) -> None:
    await _create(broker, "big")
    producer = await clients.producer(broker.address, max_request_size=10_000)

    with pytest.raises(RecordTooLargeError, match=r"the record is 2\d{4} bytes.*10000"):
        await producer.send("big", b"x" * 20_000)

    assert produce_requests == []
    assert (await asyncio.wait_for(producer.send_and_wait("big", b"x" * 5_000), WAIT_S)).offset == 0


@pytest.mark.broker_flags("--message-max-bytes", "2000")
async def test_a_batch_the_broker_finds_too_large_fails_without_retries(
    broker: BrokerProcess, clients: ClientSet, produce_requests: list[dict[str, Any]]
) -> None:
    await _create(broker, "limited")
    producer = await clients.producer(broker.address, retry_backoff_ms=10)

    with pytest.raises(RecordTooLargeError, match="limited-0"):
        await asyncio.wait_for(producer.send_and_wait("limited", b"x" * 5_000), WAIT_S)

    assert len(produce_requests) == 1
    assert (await asyncio.wait_for(producer.send_and_wait("limited", b"ok"), WAIT_S)).offset == 0


# -- errors ------------------------------------------------------------------------------------


async def test_a_partition_the_topic_lacks(broker: BrokerProcess, clients: ClientSet) -> None:
    await _create(broker, "two", 2)
    producer = await clients.producer(broker.address)

    with pytest.raises(
        UnknownTopicOrPartitionError, match=r"two has 2 partitions; there is no partition 2"
    ):
        await producer.send("two", b"v", partition=2)


@pytest.mark.broker_flags("--auto-create-topics-enable", "false")
async def test_an_unknown_topic_fails_after_max_block_ms(
    broker: BrokerProcess, clients: ClientSet
) -> None:
    producer = await clients.producer(broker.address, max_block_ms=500, retry_backoff_ms=50)
    loop = asyncio.get_running_loop()
    start = loop.time()

    with pytest.raises(UnknownTopicOrPartitionError, match="nowhere"):
        await asyncio.wait_for(producer.send("nowhere", b"v"), WAIT_S)

    # Was: gives up once the next (doubling) backoff would pass the deadline, at ~0.35 s.
    elapsed = loop.time() - start
    assert 0.45 <= elapsed < 3, f"gave up after {elapsed:.2f} s of max_block_ms=0.5 s"
    async with Admin(broker.address) as admin:
        assert "nowhere" not in await admin.list_topics()


async def test_a_new_topic_is_auto_created_on_first_send(
    broker: BrokerProcess, clients: ClientSet
) -> None:
    producer = await clients.producer(broker.address, max_block_ms=5_000)

    metadata = await asyncio.wait_for(producer.send_and_wait("fresh", b"v"), WAIT_S)

    assert (metadata.partition, metadata.offset) == (0, 0)
    async with Admin(broker.address) as admin:
        assert "fresh" in await admin.list_topics()


async def test_bad_types_and_a_closed_producer(broker: BrokerProcess, clients: ClientSet) -> None:
    await _create(broker, "typed")
    producer = await clients.producer(broker.address)

    with pytest.raises(TypeError):
        await producer.send("typed", "text")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await producer.send("typed", b"v", key=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        await producer.send("typed", b"v", headers=[("h", "text")])  # type: ignore[list-item]
    assert (await asyncio.wait_for(producer.send_and_wait("typed", b"v"), WAIT_S)).offset == 0

    await asyncio.wait_for(producer.close(), WAIT_S)
    with pytest.raises(ProducerClosedError):
        await producer.send("typed", b"v")


async def test_a_topic_deleted_under_the_producer_is_refreshed_and_retried(
    broker: BrokerProcess, clients: ClientSet, produce_requests: list[dict[str, Any]]
) -> None:
    # The producer's cached metadata still has the topic; the broker answers
    # UNKNOWN_TOPIC_OR_PARTITION, the producer refreshes (which auto-creates it again) and
    # the retry lands at offset 0 of the new topic.
    await _create(broker, "gone", 1)
    producer = await clients.producer(broker.address, retry_backoff_ms=50, max_block_ms=5_000)
    assert (await asyncio.wait_for(producer.send_and_wait("gone", b"1"), WAIT_S)).offset == 0
    async with Admin(broker.address) as admin:
        await admin.delete_topic("gone")

    metadata = await asyncio.wait_for(producer.send_and_wait("gone", b"2"), WAIT_S)

    assert (metadata.partition, metadata.offset) == (0, 0)
    assert len(produce_requests) >= 3  # the first send, the refused one, the retry
