"""Three real brokers on loopback, started and stopped by PID, on the real ZooKeeper of
the ``zookeeper`` fixture (tests/support/zookeeper_fixtures.py)."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support.broker_process import BrokerProcess
from tests.support.zookeeper_process import ZooKeeperEnsemble, ZooKeeperProcess

_CHROOTS = itertools.count()
CLUSTER_FLAGS = (
    "--default-replication-factor", "3",
    "--min-insync-replicas", "2",
    "--num-partitions", "3",
    "--replica-lag-time-max-ms", "3000",
    "--replica-fetch-wait-max-ms", "100",
    "--zookeeper-session-timeout-ms", "4000",
)  # fmt: skip


class Cluster:
    def __init__(
        self, zookeeper: ZooKeeperProcess | ZooKeeperEnsemble, root: Path, size: int = 3
    ) -> None:
        self.connect = f"{zookeeper.address}/cluster{next(_CHROOTS)}"
        self.brokers = [
            BrokerProcess(
                root / f"broker-{i}",
                flags=["--broker-id", str(i), *CLUSTER_FLAGS],
                env={"ZOOKEEPER_CONNECT": self.connect},
            )
            for i in range(size)
        ]

    @property
    def bootstrap(self) -> str:
        return ",".join(b.address for b in self.brokers if b.running)

    async def start(self) -> None:
        await asyncio.gather(*(b.start_async() for b in self.brokers))

    def close(self) -> None:
        for broker in self.brokers:
            broker.close()


@pytest.fixture
async def cluster(zookeeper: ZooKeeperProcess, tmp_path: Path) -> AsyncIterator[Cluster]:
    running = Cluster(zookeeper, tmp_path)
    try:
        await running.start()
        yield running
    finally:
        running.close()
