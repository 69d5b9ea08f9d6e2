"""Real brokers with ``log.format=json``: every line they write is one JSON object.

The brokers' stdout and stderr (merged by ``BrokerProcess``) are read whole,
through start, produce, a consumer group, SIGTERM, kill -9 and the recovery
after it, and in a three-broker cluster on a real ZooKeeper (kazoo's lines, the
controller's decisions, ISR changes); any line that is not a JSON object with the
documented fields fails.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from client.admin import Admin
from client.producer import Producer
from tests.client.consumer.support import ClientSet, poll_records
from tests.integration.conftest import BrokerFactory
from tests.support.broker_process import BrokerProcess
from tests.support.zookeeper_process import ZooKeeperProcess

ISO_MS_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
GROUP = "gr\u00fcppe \u4e2d\u6587"


@pytest.fixture
async def clients() -> AsyncIterator[ClientSet]:
    opened = ClientSet()
    yield opened
    await opened.aclose()


def json_lines(broker: BrokerProcess) -> list[dict[str, Any]]:
    """Every output line parsed, skipping ``BrokerProcess``'s own ``--- start`` markers."""
    entries = []
    for line in broker.lines:
        if line.startswith("--- start #"):
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            pytest.fail(f"not a JSON line: {line!r}\n{broker.output()}")
        assert isinstance(entry, dict), line
        assert ISO_MS_UTC.fullmatch(entry["ts"]), line
        assert entry["level"] in LEVELS, line
        assert isinstance(entry["logger"], str), line
        assert isinstance(entry["message"], str), line
        assert "traceback" not in entry, line
        entries.append(entry)
    return entries


async def produce_and_consume(broker: BrokerProcess, clients: ClientSet, topic: str) -> None:
    async with Admin(broker.address) as admin:
        await admin.create_topic(topic, 2, 1)
    producer = await clients.producer(broker.address)
    for i in range(20):
        await (await producer.send(topic, b"v%d" % i, partition=i % 2))
    consumer = await clients.consumer(broker.address, group_id=GROUP, auto_offset_reset="earliest")
    consumer.subscribe([topic])
    assert len(await poll_records(consumer, 20)) == 20


async def test_log_format_json_from_the_environment(
    broker_factory: BrokerFactory, clients: ClientSet
) -> None:
    broker = broker_factory(flags=["--broker-id", "3"], env={"LOG_FORMAT": "json"})
    await produce_and_consume(broker, clients, "json-logs")
    await clients.aclose()
    assert await broker.stop_async() == 0

    entries = json_lines(broker)
    assert {e["broker_id"] for e in entries} == {3}
    messages = [e["message"] for e in entries]
    assert any(re.match(r"broker 3 serving on 127\.0\.0\.1:\d+", m) for m in messages)
    assert "broker 3 stopped cleanly" in messages
    assert any(GROUP in m for m in messages), "the group's rebalance, its name intact"
    leaders = [e for e in entries if "leader at epoch" in e["message"]]
    assert {(e["topic"], e["partition"]) for e in leaders} >= {("json-logs", 0), ("json-logs", 1)}


async def test_log_format_json_flag_covers_recovery_after_kill9(
    broker_factory: BrokerFactory, clients: ClientSet
) -> None:
    broker = broker_factory(flags=["--log-format", "json", "--broker-id", "4"])
    await produce_and_consume(broker, clients, "json-recovery")
    await clients.aclose()
    await broker.kill9_async()
    await broker.restart_async()
    assert await broker.stop_async() == 0

    entries = json_lines(broker)
    assert {e["broker_id"] for e in entries} == {4}
    recovered = [
        e
        for e in entries
        if e["message"].startswith("recovery: ") and "unclean shutdown" in e["message"]
    ]
    assert {(e["topic"], e["partition"]) for e in recovered} >= {
        ("json-recovery", 0),
        ("json-recovery", 1),
    }
    assert all(e["offset"] == 10 for e in recovered if e["topic"] == "json-recovery")


async def test_log_format_json_in_a_cluster(
    zookeeper: ZooKeeperProcess, tmp_path: Path, clients: ClientSet
) -> None:
    flags = ["--default-replication-factor", "3", "--zookeeper-session-timeout-ms", "4000"]
    env = {"ZOOKEEPER_CONNECT": f"{zookeeper.address}/json-logs", "LOG_FORMAT": "json"}
    brokers = [
        BrokerProcess(tmp_path / f"broker-{i}", flags=["--broker-id", str(i), *flags], env=env)
        for i in range(3)
    ]
    try:
        for broker in brokers:
            await broker.start_async()
        bootstrap = ",".join(b.address for b in brokers)
        async with Admin(bootstrap) as admin:
            await admin.create_topic("replicated", 3, 3)
        async with Producer(bootstrap, acks="all", delivery_timeout_ms=30_000) as producer:
            for i in range(30):
                await (await producer.send("replicated", b"v%d" % i, partition=i % 3))
        await brokers[2].kill9_async()
        moved = re.compile(r'"logger": "logserver.controller".*leader 2 -> .*"topic": "replicated"')
        deadline = asyncio.get_running_loop().time() + 20
        while not any(moved.search(line) for b in brokers[:2] for line in b.lines):
            assert asyncio.get_running_loop().time() < deadline, "no controller line moving leaders"
            await asyncio.sleep(0.1)
        for broker in brokers[:2]:
            assert await broker.stop_async() == 0
    finally:
        for broker in brokers:
            broker.close()

    entries = {i: json_lines(broker) for i, broker in enumerate(brokers)}
    for i, lines in entries.items():
        assert {e["broker_id"] for e in lines} == {i}
        assert any(e["logger"].startswith("kazoo") for e in lines), f"broker {i}: no kazoo line"
    survivors = entries[0] + entries[1]
    changes = [e for e in survivors if e["logger"] == "logserver.controller" and "topic" in e]
    assert any(e["topic"] == "replicated" for e in changes), "the controller's leader moves"
