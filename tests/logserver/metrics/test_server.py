"""MetricsServer: /metrics, /health and /ready over real HTTP on the loop; a taken port."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from client.errors import InvalidConfigurationError
from coordination import PartitionState
from logserver.metrics import BrokerStateCollector, MetricsServer, not_ready_reason
from tests.logserver.metrics.fake_broker import FakeBroker


async def get(port: int, path: str, method: str = "GET") -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    data = await reader.read()
    writer.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


@pytest.fixture
async def served(tmp_path: Path):
    broker = FakeBroker(tmp_path)
    collector = BrokerStateCollector(broker, partition_limit=2000)  # type: ignore[arg-type]
    server = MetricsServer(CollectorRegistry(), lambda: not_ready_reason(broker), collector)  # type: ignore[arg-type]
    port = await server.start(0, "127.0.0.1")
    yield broker, port
    await server.close()


async def test_health_metrics_and_unknown_paths(served) -> None:
    _, port = served
    assert await get(port, "/health") == (200, "ok\n")
    status, body = await get(port, "/metrics")
    assert status == 200
    names = {family.name for family in text_string_to_metric_families(body)}
    assert "logserver_leader_partitions" in names
    assert (await get(port, "/nope"))[0] == 404
    assert (await get(port, "/metrics", "POST"))[0] == 405
    assert await get(port, "/health", "HEAD") == (200, "")


async def test_ready_follows_registration_roles_and_the_isr(served) -> None:
    broker, port = served
    broker.registered = False
    assert await get(port, "/ready") == (
        503,
        "not ready: not registered with the coordinator yet\n",
    )
    broker.registered = True
    broker.host("a", 0, leader=2, isr=(2, 3))  # following, not in the ISR yet
    status, body = await get(port, "/ready")
    assert status == 503
    assert "a-0: catching up" in body
    broker.take_role("a", 0, PartitionState(2, 1, (2, 3, 1)))
    assert await get(port, "/ready") == (200, "ready\n")
    broker.partition_states[("a", 1)] = PartitionState(1, 4, (1,))  # a role not taken yet
    broker.topics["a"].replicas[1] = (1,)
    assert "a-1: not leading yet" in (await get(port, "/ready"))[1]
    broker.stopping = True
    assert await get(port, "/ready") == (503, "not ready: shutting down\n")


async def test_a_silent_or_garbage_client_does_not_break_the_server(served) -> None:
    _, port = served
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"\x00\xffgarbage\r\n\r\n")
    await writer.drain()
    writer.close()
    assert (await get(port, "/health"))[0] == 200


async def test_scrapes_while_leadership_moves(served) -> None:
    """Elections flip partitions between leader and follower while scrapes run: every
    scrape answers 200 with a parseable body."""
    broker, port = served
    for partition in range(200):
        broker.host("a", partition)
    stop = asyncio.Event()

    async def elections() -> None:
        epoch = 2
        while not stop.is_set():
            leader = 2 if epoch % 2 else 1
            for partition in range(200):
                broker.take_role("a", partition, PartitionState(leader, epoch, (leader,)))
                if partition % 20 == 0:
                    await asyncio.sleep(0)
            epoch += 1

    task = asyncio.create_task(elections())
    try:
        for _ in range(30):
            status, body = await get(port, "/metrics")
            assert status == 200
            families = {f.name: f for f in text_string_to_metric_families(body)}
            leading = families["logserver_leader_partitions"].samples[0].value
            assert 0 <= leading <= 200
    finally:
        stop.set()
        await task


async def test_a_port_in_use_is_refused_naming_the_port_and_the_setting() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = MetricsServer(CollectorRegistry(), lambda: None)
        with pytest.raises(
            InvalidConfigurationError,
            match=rf"metrics port {port} is already in use.*metrics.port.*METRICS_PORT",
        ):
            await server.start(port, "127.0.0.1")
