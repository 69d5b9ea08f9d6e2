"""How records become batches and requests: linger, batch_size, flush, in-flight, partitions."""

from __future__ import annotations

import asyncio
import collections

import pytest

from client.partitioner import default_partition
from client.protocol import ApiKey
from tests.client.producer.conftest import ProducerFactory
from tests.client.producer.fake_broker import FakeBroker
from tests.client.test_partitioner import KAFKA_PYTHON_PARTITION_VECTORS

WAIT_S = 5


async def _ticks(n: int = 5) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_records_sent_within_linger_share_one_batch_and_one_request(
    make_producer: ProducerFactory, fake: FakeBroker
) -> None:
    producer = await make_producer(linger_ms=50)

    futures = [await producer.send("t", b"%d" % i) for i in range(5)]
    await asyncio.sleep(0.02)
    assert fake.count(ApiKey.PRODUCE) == 0  # still lingering
    metadata = [await asyncio.wait_for(f, WAIT_S) for f in futures]

    assert fake.count(ApiKey.PRODUCE) == 1
    assert len(fake.batches("t", 0)) == 1
    assert [m.offset for m in metadata] == [0, 1, 2, 3, 4]


async def test_with_no_linger_the_first_record_goes_out_at_once(
    make_producer: ProducerFactory, fake: FakeBroker
) -> None:
    producer = await make_producer(linger_ms=0)

    future = await producer.send("t", b"first")
    await _ticks()

    assert fake.count(ApiKey.PRODUCE) == 1
    assert (await asyncio.wait_for(future, WAIT_S)).offset == 0


async def test_with_no_linger_records_sent_while_a_request_is_out_travel_together(
    make_producer: ProducerFactory, fake: FakeBroker
) -> None:
    producer = await make_producer(linger_ms=0, max_in_flight_requests_per_connection=1)
    fake.hold()
    first = await producer.send("t", b"0")
    await _ticks()
    rest = [await producer.send("t", b"%d" % i) for i in range(1, 6)]
    await _ticks()
    assert fake.count(ApiKey.PRODUCE) == 1

    fake.release()
    await asyncio.wait_for(producer.flush(), WAIT_S)

    assert fake.count(ApiKey.PRODUCE) == 2
    assert [b.record_count for b in fake.batches("t", 0)] == [1, 5]
    assert [(await f).offset for f in [first, *rest]] == [0, 1, 2, 3, 4, 5]


async def test_a_full_batch_is_closed_and_the_next_record_starts_another(
    make_producer: ProducerFactory, fake: FakeBroker
) -> None:
    producer = await make_producer(linger_ms=10_000, batch_size=1_000)

    futures = [await producer.send("t", b"x" * 100) for _ in range(25)]
    await asyncio.wait_for(producer.flush(), WAIT_S)

    batches = fake.batches("t", 0)
    assert len(batches) >= 3
    assert all(len(bytes(b)) <= 1_000 for b in batches)
    assert sum(b.record_count for b in batches) == 25
    assert [(await f).offset for f in futures] == list(range(25))


async def test_flush_sends_a_lingering_batch_now(
    make_producer: ProducerFactory, fake: FakeBroker
) -> None:
    producer = await make_producer(linger_ms=60_000)
    future = await producer.send("t", b"v")

    await asyncio.wait_for(producer.flush(), 1)

    assert future.done()
    assert (await future).offset == 0


async def test_close_flushes_what_is_queued(
    make_producer: ProducerFactory, fake: FakeBroker
) -> None:
    producer = await make_producer(linger_ms=60_000)
    futures = [await producer.send("three", b"%d" % i, partition=i % 3) for i in range(6)]

    await asyncio.wait_for(producer.close(), WAIT_S)

    assert all(f.done() and f.exception() is None for f in futures)
    assert sum(len(fake.records("three", p)) for p in range(3)) == 6


async def test_in_flight_requests_per_connection_are_bounded(
    make_producer: ProducerFactory, fake: FakeBroker
) -> None:
    producer = await make_producer(linger_ms=0, max_in_flight_requests_per_connection=2)
    fake.hold()

    futures = []
    for i in range(6):
        futures.append(await producer.send("three", b"%d" % i, partition=i % 3))
        await _ticks()

    assert fake.count(ApiKey.PRODUCE) == 2
    assert fake.held == 2
    fake.release()
    await asyncio.sleep(0.05)
    fake.release()
    await asyncio.wait_for(producer.flush(), WAIT_S)
    assert all(f.exception() is None for f in futures)


async def test_batches_for_one_leader_share_a_request_up_to_max_request_size(
    make_producer: ProducerFactory, fake: FakeBroker
) -> None:
    producer = await make_producer(linger_ms=60_000, max_request_size=1_500)
    for partition in range(3):
        for _ in range(5):
            await producer.send("three", b"x" * 100, partition=partition)

    await asyncio.wait_for(producer.flush(), WAIT_S)

    # Three ~600-byte batches: two fit one 1500-byte request, the third needs another.
    requests = fake.produce_requests()
    assert len(requests) == 2
    assert sorted(p for r in requests for _, parts in r["topics"] for p, _ in parts) == [0, 1, 2]


async def test_acks_0_resolves_with_offset_minus_1_and_the_records_arrive(
    make_producer: ProducerFactory, fake: FakeBroker
) -> None:
    producer = await make_producer(acks=0, linger_ms=5)

    futures = [await producer.send("t", b"%d" % i) for i in range(3)]
    metadata = [await asyncio.wait_for(f, WAIT_S) for f in futures]

    assert [m.offset for m in metadata] == [-1, -1, -1]
    assert [r.value for r in fake.records("t", 0)] == [b"0", b"1", b"2"]
    assert fake.produce_requests()[0]["acks"] == 0


@pytest.mark.parametrize(("acks", "sent"), [(1, 1), ("all", -1), (-1, -1), ("1", 1), (0, 0)])
async def test_acks_reach_the_request(
    make_producer: ProducerFactory, fake: FakeBroker, acks: object, sent: int
) -> None:
    producer = await make_producer(acks=acks)

    await asyncio.wait_for(producer.send_and_wait("t", b"v"), WAIT_S)

    assert fake.produce_requests()[0]["acks"] == sent


async def test_waiting_on_one_record_with_a_timeout_leaves_its_batch_mates_alone(
    make_producer: ProducerFactory, fake: FakeBroker
) -> None:
    # Was: a RecordFuture awaits its batch's future directly, so cancelling one wait
    # (wait_for timing out) cancels the batch: every record in it fails with CancelledError.
    producer = await make_producer(linger_ms=200)
    first = await producer.send("t", b"1")
    second = await producer.send("t", b"2")

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(first, 0.01)

    assert (await asyncio.wait_for(second, WAIT_S)).offset == 1
    assert [r.value for r in fake.records("t", 0)] == [b"1", b"2"]


# -- partitions ------------------------------------------------------------------------------


async def test_keyed_records_land_on_kafkas_murmur2_partition(
    make_producer: ProducerFactory, fake: FakeBroker
) -> None:
    producer = await make_producer(linger_ms=5)
    keys = [b"key-%d" % i for i in range(200)]

    futures = [await producer.send("wide", b"v", key=key) for key in keys]
    metadata = [await asyncio.wait_for(f, WAIT_S) for f in futures]

    for key, m in zip(keys, metadata, strict=True):
        assert m.partition == default_partition(key, 12), key
        assert fake.records("wide", m.partition)[m.offset].key == key
    assert len({m.partition for m in metadata}) == 12


@pytest.mark.parametrize(("key", "partition"), KAFKA_PYTHON_PARTITION_VECTORS)
async def test_keys_land_where_the_java_client_puts_them_out_of_1000(
    make_producer: ProducerFactory, fake: FakeBroker, key: bytes, partition: int
) -> None:
    producer = await make_producer()

    metadata = await asyncio.wait_for(producer.send_and_wait("thousand", b"v", key=key), WAIT_S)

    assert metadata.partition == partition
    assert [r.key for r in fake.records("thousand", partition)] == [key]


async def test_an_explicit_partition_wins_over_the_key(
    make_producer: ProducerFactory, fake: FakeBroker
) -> None:
    producer = await make_producer()
    key = b"key-0"
    other = (default_partition(key, 12) + 1) % 12

    metadata = await asyncio.wait_for(
        producer.send_and_wait("wide", b"v", key=key, partition=other), WAIT_S
    )

    assert metadata.partition == other


async def test_a_burst_of_keyless_records_stays_on_one_partition(
    make_producer: ProducerFactory,
) -> None:
    producer = await make_producer(linger_ms=20)

    futures = [await producer.send("wide", b"v") for _ in range(50)]
    metadata = [await asyncio.wait_for(f, WAIT_S) for f in futures]

    assert len({m.partition for m in metadata}) == 1
    assert [m.offset for m in metadata] == list(range(50))


async def test_keyless_records_move_on_when_batches_fill(make_producer: ProducerFactory) -> None:
    producer = await make_producer(linger_ms=60_000, batch_size=1_000)

    futures = [await producer.send("wide", b"x" * 100) for _ in range(300)]
    await asyncio.wait_for(producer.flush(), WAIT_S)

    per_partition = collections.Counter([(await f).partition for f in futures])
    assert len(per_partition) >= 6  # ~35 batches over 12 partitions
    assert max(per_partition.values()) < 300 // 2


async def test_keyless_records_sent_one_batch_at_a_time_spread_over_partitions(
    make_producer: ProducerFactory,
) -> None:
    # Was: the sticky partition only moves when a batch *fills* (Producer.send). A producer
    # whose batches close on linger or because the sender took them (linger_ms=0) never
    # fills one, so all its keyless records go to one partition forever. KIP-480 (what
    # client/partitioner.py says it implements) moves on when the batch is closed; KIP-794
    # moves on after batch_size bytes. 100 records x ~110 bytes is ~11 batch_sizes here.
    producer = await make_producer(linger_ms=0, batch_size=1_000)

    partitions = set()
    for _ in range(100):
        metadata = await asyncio.wait_for(producer.send_and_wait("wide", b"x" * 100), WAIT_S)
        partitions.add(metadata.partition)

    assert len(partitions) > 1
