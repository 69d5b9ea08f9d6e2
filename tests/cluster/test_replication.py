"""Replication factor 3 with real processes: a ZooKeeper and three brokers on loopback."""

from __future__ import annotations

import asyncio
import time

from client import Admin, Consumer, Producer, TopicPartition
from tests.cluster.conftest import Cluster

TIMEOUT_S = 30.0


async def wait_for(predicate, what: str, timeout_s: float = TIMEOUT_S):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while True:
        result = await predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.2)


async def full_isr(admin: Admin, topic: str, size: int) -> bool:
    description = await admin.describe_topic(topic)
    return all(len(p.isr) == size and p.leader >= 0 for p in description.partitions)


async def produce(bootstrap: str, topic: str, values: list[bytes]) -> dict[bytes, tuple[int, int]]:
    async with Producer(
        bootstrap, acks="all", request_timeout_ms=5_000, delivery_timeout_ms=60_000
    ) as producer:
        futures = [await producer.send(topic, value, key=value) for value in values]
        metadata = [await f for f in futures]
    return {v: (m.partition, m.offset) for v, m in zip(values, metadata, strict=True)}


async def read_all(bootstrap: str, topic: str, partitions: int) -> dict[bytes, tuple[int, int]]:
    seen: dict[bytes, tuple[int, int]] = {}
    async with Consumer(bootstrap, auto_offset_reset="earliest") as consumer:
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + TIMEOUT_S
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            assert time.monotonic() < deadline, "timed out reading the topic back"
            for tp, records in (await consumer.poll(timeout_ms=500)).items():
                for record in records:
                    assert record.value not in seen, f"{record.value!r} appears twice"
                    seen[record.value] = (tp.partition, record.offset)  # type: ignore[index]
    return seen


async def test_every_partition_gets_three_in_sync_replicas(cluster: Cluster) -> None:
    async with Admin(cluster.bootstrap) as admin:
        await admin.create_topic("replicated", num_partitions=3)
        await wait_for(lambda: full_isr(admin, "replicated", 3), "a full ISR")
        description = await admin.describe_topic("replicated")
    assert sorted(p.leader for p in description.partitions) == [0, 1, 2]  # leaders spread
    assert all(sorted(p.replicas) == [0, 1, 2] for p in description.partitions)


async def test_acks_all_loses_nothing_when_the_leader_is_killed(cluster: Cluster) -> None:
    async with Admin(cluster.bootstrap) as admin:
        await admin.create_topic("safe", num_partitions=3)
        await wait_for(lambda: full_isr(admin, "safe", 3), "a full ISR")
        leader = (await admin.describe_topic("safe")).partitions[0].leader

    first = await produce(cluster.bootstrap, "safe", [b"a%d" % i for i in range(300)])
    victim = cluster.brokers[leader]
    victim.kill9()
    survivors = ",".join(b.address for b in cluster.brokers if b is not victim)

    async with Admin(survivors) as admin:

        async def moved() -> bool:
            partitions = (await admin.describe_topic("safe")).partitions
            return all(p.leader not in (-1, leader) for p in partitions)

        await wait_for(moved, "leadership to leave the killed broker")
    second = await produce(survivors, "safe", [b"b%d" % i for i in range(300)])

    seen = await read_all(survivors, "safe", 3)
    acknowledged = {**first, **second}
    missing = [v for v in acknowledged if v not in seen]
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {missing[:3]}"
    moved_offsets = {v: (p, o) for v, (p, o) in acknowledged.items() if seen[v] != (p, o)}
    assert not moved_offsets, f"records served at other offsets: {list(moved_offsets)[:3]}"
