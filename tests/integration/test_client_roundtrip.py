"""Producer to broker to consumer: every codec and acks level, and Kafka's partitioning.

Everything a record carries (key, value, headers, timestamp, None values) must
come back as sent, at the offset the producer's ``RecordMetadata`` named.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator

import pytest

from client.admin import Admin
from client.consumer import ConsumerRecord
from client.partitioner import default_partition
from client.record import Compression, iter_batches
from client.topic_partition import TopicPartition
from tests.client.consumer.support import ClientSet, poll_records
from tests.integration import wire
from tests.support.broker_process import BrokerProcess, connect

WAIT_S = 10

# apache/kafka UtilsTest.testMurmur2 (also in tests/client/test_partitioner.py): Kafka's own
# signed murmur2 of each key. Kafka puts a key on toPositive(murmur2) % partitions.
KAFKA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.fixture
async def clients() -> AsyncIterator[ClientSet]:
    opened = ClientSet()
    yield opened
    await opened.aclose()


async def _create(broker: BrokerProcess, topic: str, partitions: int) -> None:
    async with Admin(broker.address) as admin:
        await admin.create_topic(topic, partitions, 1)


def _records() -> list[tuple[int, bytes | None, bytes | None, list[tuple[str, bytes | None]], int]]:
    """(partition, key, value, headers, timestamp) covering what a record may carry."""
    big = b"compressible " * 1_000
    return [
        (0, b"k0", b"plain", [], 1_600_000_000_000),
        (0, None, b"no key", [("h1", b"x"), ("h2", None)], 1_600_000_000_001),
        (1, b"k2", None, [("only-header", b"")], 1_600_000_000_002),  # a tombstone
        (1, b"", b"", [], 1_500_000_000_000),  # empty key and value, an older timestamp
        (0, b"k4", big, [("repeat", b"a"), ("repeat", b"b")], 1_600_000_000_004),
        (1, bytes(range(256)), bytes(range(256)) * 4, [("bin", bytes(range(256)))], 0),
    ]


@pytest.mark.parametrize("acks", [0, 1, "all"], ids=lambda a: f"acks={a}")
@pytest.mark.parametrize("codec", ["none", "lz4", "snappy"])
async def test_round_trip(
    broker: BrokerProcess, clients: ClientSet, codec: str, acks: int | str
) -> None:
    await _create(broker, "rt", 2)
    producer = await clients.producer(
        broker.address, acks=acks, compression_type=codec, linger_ms=20
    )
    sent = _records()

    futures = [
        await producer.send("rt", v, key=k, headers=h, partition=p, timestamp_ms=ts)
        for p, k, v, h, ts in sent
    ]
    metadata = [await asyncio.wait_for(f, WAIT_S) for f in futures]

    assert [(m.topic, m.partition, m.timestamp) for m in metadata] == [
        ("rt", p, ts) for p, _, _, _, ts in sent
    ]
    if acks == 0:
        assert {m.offset for m in metadata} == {-1}
        expected_offsets = [0, 1, 0, 1, 2, 2]  # the order each partition received them
    else:
        expected_offsets = [m.offset for m in metadata]
        assert expected_offsets == [0, 1, 0, 1, 2, 2]
    consumer = await clients.consumer(broker.address, auto_offset_reset="earliest")
    consumer.assign([("rt", 0), ("rt", 1)])

    got = {(r.partition, r.offset): r for r in await poll_records(consumer, len(sent))}

    for (p, k, v, h, ts), offset in zip(sent, expected_offsets, strict=True):
        assert got[(p, offset)] == ConsumerRecord("rt", p, offset, ts, k, v, tuple(h))
    assert len(got) == len(sent)


async def _stored_codecs(broker: BrokerProcess, topic: str, partitions: int) -> set[Compression]:
    conn = await connect(broker)
    try:
        codecs = set()
        for partition in range(partitions):
            _, tail = await wire.fetch(conn, topic, partition, 0)
            codecs.update(b.compression for b in iter_batches(tail))
        return codecs
    finally:
        conn.close()


@pytest.mark.parametrize("codec", ["none", "lz4", "snappy"])
async def test_batches_are_stored_with_the_producers_codec(
    broker: BrokerProcess, clients: ClientSet, codec: str
) -> None:
    await _create(broker, "codec", 1)
    producer = await clients.producer(broker.address, compression_type=codec, linger_ms=10)
    futures = [await producer.send("codec", b"value %d " % i * 50) for i in range(20)]
    for future in futures:
        await asyncio.wait_for(future, WAIT_S)

    assert await _stored_codecs(broker, "codec", 1) == {Compression.parse(codec)}


async def test_keys_land_on_kafkas_murmur2_partitions(
    broker: BrokerProcess, clients: ClientSet
) -> None:
    await _create(broker, "keyed", 12)
    producer = await clients.producer(broker.address, linger_ms=10)
    keys = [*KAFKA_MURMUR2, *(b"user-%d" % i for i in range(100))]

    futures = [await producer.send("keyed", b"v-" + key, key=key) for key in keys]
    metadata = [await asyncio.wait_for(f, WAIT_S) for f in futures]

    for key, murmur in KAFKA_MURMUR2.items():
        # Kafka's published hash, not ours: the partition a Java producer picks.
        assert default_partition(key, 12) == (murmur & 0x7FFFFFFF) % 12, key
    for key, m in zip(keys, metadata, strict=True):
        assert m.partition == default_partition(key, 12), key
    consumer = await clients.consumer(broker.address, auto_offset_reset="earliest")
    consumer.assign([("keyed", p) for p in range(12)])
    landed = {r.key: r.partition for r in await poll_records(consumer, len(keys))}
    assert landed == {key: default_partition(key, 12) for key in keys}
    assert len(set(landed.values())) == 12


async def test_a_key_always_lands_on_the_same_partition(
    broker: BrokerProcess, clients: ClientSet
) -> None:
    await _create(broker, "same", 12)
    producer = await clients.producer(broker.address)

    partitions = set()
    for i in range(10):
        m = await asyncio.wait_for(producer.send_and_wait("same", b"%d" % i, key=b"k"), WAIT_S)
        partitions.add(m.partition)

    assert partitions == {default_partition(b"k", 12)}


async def test_a_burst_of_keyless_records_stays_on_one_partition(
    broker: BrokerProcess, clients: ClientSet
) -> None:
    await _create(broker, "burst", 12)
    producer = await clients.producer(broker.address, linger_ms=50)

    futures = [await producer.send("burst", b"%d" % i) for i in range(30)]
    metadata = [await asyncio.wait_for(f, WAIT_S) for f in futures]

    assert len({m.partition for m in metadata}) == 1
    assert [m.offset for m in metadata] == list(range(30))


async def test_keyless_records_spread_over_partitions_across_many_batches(
    broker: BrokerProcess, clients: ClientSet
) -> None:
    await _create(broker, "spread", 12)
    producer = await clients.producer(broker.address, linger_ms=1_000, batch_size=1_000)

    futures = [await producer.send("spread", b"x" * 100) for _ in range(400)]
    await asyncio.wait_for(producer.flush(), WAIT_S)

    counts = collections.Counter([(await f).partition for f in futures])
    assert len(counts) >= 6, counts
    consumer = await clients.consumer(broker.address, auto_offset_reset="earliest")
    consumer.assign([TopicPartition("spread", p) for p in range(12)])
    stored = collections.Counter(r.partition for r in await poll_records(consumer, 400))
    assert stored == counts
