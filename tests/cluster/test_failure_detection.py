"""A broker killed outright is found dead by the liveness probe, long before ZooKeeper would
expire its session: its partitions, and the controllership, move within seconds.

The brokers here run with a ZooKeeper session far longer than the bounds asserted, so only
the probe (logserver/liveness_probe.py) can explain a failover that fast.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from client import Admin, Producer
from client.errors import LogServerError
from tests.cluster.conftest import Cluster
from tests.support.zookeeper_process import ZooKeeperProcess

SESSION_MS = 30_000
BOUND_S = 6.0  # well inside the session: the probe, not the session, moved things
TOPIC = "detect"


@pytest.fixture
async def long_session_cluster(
    zookeeper: ZooKeeperProcess, tmp_path: Path
) -> AsyncIterator[Cluster]:
    cluster = Cluster(zookeeper, tmp_path)
    for broker in cluster.brokers:
        at = broker.flags.index("--min-insync-replicas")  # the default is under test too
        del broker.flags[at : at + 2]
        broker.flags += ["--zookeeper-session-timeout-ms", str(SESSION_MS)]
    try:
        await cluster.start()
        yield cluster
    finally:
        cluster.close()


async def _describe(bootstrap: str):  # type: ignore[no-untyped-def]
    async with Admin(bootstrap, request_timeout_ms=3_000) as admin:
        return await admin.describe_topic(TOPIC), (await admin.describe_cluster()).controller_id


async def _until(check, what: str, timeout_s: float) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    last: BaseException | None = None
    while time.monotonic() - started < timeout_s:
        try:
            if await check():
                return time.monotonic() - started
        except (LogServerError, OSError) as exc:
            last = exc
        await asyncio.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout_s} s (last error: {last})")


async def _ready(cluster: Cluster) -> None:
    async with Admin(cluster.bootstrap, request_timeout_ms=10_000) as admin:
        await admin.create_topic(TOPIC, 3, 3)
        await admin.create_topic("single", 1, 1)
        # No broker or topic setting: 2 for three replicas, 1 for one.
        assert (await admin.describe_configs(TOPIC))["min.insync.replicas"].value == "2"
        assert (await admin.describe_configs("single"))["min.insync.replicas"].value == "1"

    async def full() -> bool:
        topic, controller = await _describe(cluster.bootstrap)
        return controller >= 0 and all(len(p.isr) == 3 for p in topic.partitions)

    await _until(full, "a full ISR and a controller", 20)


async def _write(bootstrap: str, partition: int) -> None:
    async with Producer(bootstrap, acks="all", request_timeout_ms=5_000) as producer:
        await asyncio.wait_for(await producer.send(TOPIC, b"after", partition=partition), 15)


async def test_a_killed_leader_loses_its_partitions_before_its_session_ends(
    long_session_cluster: Cluster,
) -> None:
    cluster = long_session_cluster
    await _ready(cluster)
    topic, controller = await _describe(cluster.bootstrap)
    partition = next(p for p in topic.partitions if p.leader != controller)
    victim = partition.leader

    await cluster.brokers[victim].kill9_async()
    survivors = ",".join(b.address for i, b in enumerate(cluster.brokers) if i != victim)

    async def moved() -> bool:
        now, _ = await _describe(survivors)
        p = now.partitions[partition.partition]
        return p.leader not in (-1, victim) and victim not in p.isr

    elapsed = await _until(moved, f"partition {partition.partition} off broker {victim}", BOUND_S)
    assert elapsed < SESSION_MS / 1000
    await _write(survivors, partition.partition)


async def test_a_killed_controller_is_replaced_before_its_session_ends(
    long_session_cluster: Cluster,
) -> None:
    cluster = long_session_cluster
    await _ready(cluster)
    topic, victim = await _describe(cluster.bootstrap)
    led = [p.partition for p in topic.partitions if p.leader == victim]

    await cluster.brokers[victim].kill9_async()
    survivors = ",".join(b.address for i, b in enumerate(cluster.brokers) if i != victim)

    async def replaced() -> bool:
        now, controller = await _describe(survivors)
        return controller not in (-1, victim) and all(
            p.leader not in (-1, victim) and victim not in p.isr for p in now.partitions
        )

    await _until(replaced, f"a new controller, and broker {victim} out of every ISR", BOUND_S)
    for partition in led or [0]:
        await _write(survivors, partition)


@pytest.fixture
async def rebalancing_cluster(
    zookeeper: ZooKeeperProcess, tmp_path: Path
) -> AsyncIterator[Cluster]:
    cluster = Cluster(zookeeper, tmp_path)
    for broker in cluster.brokers:
        at = broker.flags.index("--min-insync-replicas")
        del broker.flags[at : at + 2]
        broker.flags += ["--leader-imbalance-check-interval-seconds", "1"]
    try:
        await cluster.start()
        yield cluster
    finally:
        cluster.close()


async def test_leadership_goes_back_to_the_preferred_replica_by_itself(
    rebalancing_cluster: Cluster,
) -> None:
    """auto.leader.rebalance.enable (default on), checked every second here: no
    `elect-leaders` call is needed once the preferred replica is back in sync."""
    cluster = rebalancing_cluster
    await _ready(cluster)
    topic, _ = await _describe(cluster.bootstrap)
    preferred = topic.partitions[0].replicas[0]
    assert topic.partitions[0].leader == preferred

    assert await cluster.brokers[preferred].stop_async(timeout=15) == 0
    others = ",".join(b.address for i, b in enumerate(cluster.brokers) if i != preferred)

    async def moved() -> bool:
        now, _ = await _describe(others)
        return now.partitions[0].leader not in (-1, preferred)

    await _until(moved, "partition 0 led by another broker", 10)
    await cluster.brokers[preferred].start_async()

    async def back() -> bool:
        now, _ = await _describe(cluster.bootstrap)
        return now.partitions[0].leader == preferred

    await _until(back, f"partition 0 led by broker {preferred} again", 20)
