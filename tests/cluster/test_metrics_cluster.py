"""Metrics of a real three-broker cluster: one active controller, readiness, and the
replication gauges while a broker dies (scrapes during the election never fail)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from client.admin import Admin
from tests.cluster.conftest import Cluster
from tests.support.broker_process import BrokerProcess
from tests.support.zookeeper_process import ZooKeeperProcess

WAIT_S = 30


@pytest.fixture
async def metered(zookeeper: ZooKeeperProcess, tmp_path: Path) -> AsyncIterator[Cluster]:
    running = Cluster(zookeeper, tmp_path)
    for broker in running.brokers:
        broker.flags += ["--metrics-port", "0"]
    try:
        await running.start()
        yield running
    finally:
        running.close()


def metrics_port(broker: BrokerProcess) -> int:
    found = re.search(r"metrics on port (\d+)", broker.wait_for_line(r"metrics on port \d+"))
    assert found is not None
    return int(found.group(1))


async def http_get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


async def gauges(port: int) -> dict[str, float]:
    """Unlabelled samples of one scrape, which must succeed."""
    status, body = await http_get(port, "/metrics")
    assert status == 200, body
    return {
        s.name: s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if not s.labels
    }


async def eventually(check, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + WAIT_S
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"not within {WAIT_S} s: {what}")
        await asyncio.sleep(0.2)


async def test_one_controller_and_under_replicated_after_a_broker_dies(metered: Cluster) -> None:
    ports = [metrics_port(b) for b in metered.brokers]
    async with Admin(metered.bootstrap) as admin:
        await admin.create_topic("m", 6, 3)

    async def settled() -> bool:
        scrapes = [await gauges(p) for p in ports]
        ready = [(await http_get(p, "/ready"))[0] for p in ports]
        return (
            sum(s["logserver_active_controller"] for s in scrapes) == 1
            and sum(s["logserver_leader_partitions"] for s in scrapes) == 6
            and sum(s["logserver_under_replicated_partitions"] for s in scrapes) == 0
            and ready == [200, 200, 200]
        )

    await eventually(settled, "one controller, 6 partitions led, all in sync, all ready")
    scrapes = [await gauges(p) for p in ports]
    controller = next(i for i, s in enumerate(scrapes) if s["logserver_active_controller"] == 1)
    victim = (controller + 1) % 3
    survivors = [p for i, p in enumerate(ports) if i != victim]
    await metered.brokers[victim].kill9_async()

    async def degraded() -> bool:
        # every scrape during the election must answer (gauges() asserts 200)
        scrapes = [await gauges(p) for p in survivors]
        return (
            sum(s["logserver_under_replicated_partitions"] for s in scrapes) == 6
            and sum(s["logserver_leader_partitions"] for s in scrapes) == 6
            and sum(s["logserver_active_controller"] for s in scrapes) == 1
        )

    await eventually(degraded, "the 6 partitions led by the survivors, all under-replicated")
    status, body = await http_get(ports[controller], "/metrics")
    assert status == 200
    elections = {
        s.labels["kind"]: s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
        if s.name == "logserver_leader_elections_total"
    }
    assert elections["clean"] >= 1  # the victim's partitions moved
    assert elections["unclean"] == 0
