"""The metrics port of a real standalone broker: /metrics, /health, /ready, a taken port.

Every name in docs/metrics.md's table must appear in a scrape, so the docs and
the code cannot drift apart.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from client.admin import Admin
from client.errors import TopicAlreadyExistsError
from tests.client.consumer.support import ClientSet, poll_records
from tests.support.broker_process import REPO_ROOT, BrokerProcess

METRICS_LINE = r"metrics on port (\d+)"
DOC = REPO_ROOT / "docs" / "metrics.md"


@pytest.fixture
async def clients() -> AsyncIterator[ClientSet]:
    opened = ClientSet()
    yield opened
    await opened.aclose()


def metrics_port(broker: BrokerProcess) -> int:
    line = broker.wait_for_line(METRICS_LINE)
    found = re.search(METRICS_LINE, line)
    assert found is not None
    return int(found.group(1))


async def http_get(port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    data = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = data.decode().partition("\r\n\r\n")
    return int(head.split()[1]), body


async def scrape(port: int) -> list[Sample]:
    status, body = await http_get(port, "/metrics")
    assert status == 200
    return [s for family in text_string_to_metric_families(body) for s in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float | None:
    for sample in samples:
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
            return sample.value
    return None


def documented_names() -> list[tuple[str, str]]:
    """``(name, type)`` of every row of the table in docs/metrics.md."""
    rows = re.findall(r"^\| `(logserver_\w+)` \| (\w+) \|", DOC.read_text(), flags=re.M)
    assert len(rows) > 20, "docs/metrics.md's table was not found"
    return rows


@pytest.mark.broker_flags("--metrics-port", "0", "--log-flush-interval-messages", "1")
async def test_produce_fetch_and_groups_move_the_metrics(
    broker: BrokerProcess, clients: ClientSet
) -> None:
    port = metrics_port(broker)
    async with Admin(broker.address) as admin:
        await admin.create_topic("orders", 2, 1)
    producer = await clients.producer(broker.address, acks="all")
    for i in range(20):
        await producer.send("orders", b"v" * 100, key=str(i).encode())
    await producer.flush()
    consumer = await clients.consumer(
        broker.address, group_id="g", enable_auto_commit=False, auto_offset_reset="earliest"
    )
    consumer.assign([("orders", 0), ("orders", 1)])
    got = await poll_records(consumer, 20)
    assert len(got) == 20
    await consumer.commit({("orders", 0): 1, ("orders", 1): 0})
    assert await consumer.committed(("orders", 0)) == 1

    samples = await scrape(port)
    assert value(samples, "logserver_records_in_total", topic="orders") == 20
    assert value(samples, "logserver_bytes_in_total", topic="orders") > 2000
    assert value(samples, "logserver_bytes_out_total", topic="orders") > 2000
    assert value(samples, "logserver_requests_total", api="PRODUCE") >= 1
    assert value(samples, "logserver_request_latency_seconds_count", api="FETCH") >= 1
    assert value(samples, "logserver_produce_latency_seconds_count", acks="all") >= 1
    assert value(samples, "logserver_fetch_latency_seconds_count", kind="consumer") >= 1
    assert value(samples, "logserver_fsync_latency_seconds_count") >= 1
    assert value(samples, "logserver_leader_partitions") >= 2
    assert value(samples, "logserver_active_controller") == 1
    assert value(samples, "logserver_zookeeper_session_state", state="standalone") == 1
    ends = [value(samples, "logserver_log_end_offset", topic="orders", partition=p) for p in "01"]
    assert sum(ends) == 20  # type: ignore[arg-type]
    assert value(samples, "logserver_log_size_bytes_total") > 2000
    key = {"group": "g", "topic": "orders", "partition": "0"}
    assert value(samples, "logserver_group_committed_offset", **key) == 1
    assert value(samples, "logserver_group_lag_records", **key) == ends[0] - 1
    assert value(samples, "logserver_group_lag_seconds", **key) >= 0
    assert value(samples, "logserver_broker_info", broker_id="0", mode="standalone") == 1


@pytest.mark.broker_flags("--metrics-port", "0")
async def test_errors_are_counted_by_api_and_name(broker: BrokerProcess, clients) -> None:
    port = metrics_port(broker)
    async with Admin(broker.address) as admin:
        await admin.create_topic("t", 1, 1)
        with pytest.raises(TopicAlreadyExistsError):
            await admin.create_topic("t", 1, 1)
    samples = await scrape(port)
    errors = [s for s in samples if s.name == "logserver_request_errors_total"]
    assert any(s.labels["api"] == "CREATE_TOPICS" and s.value >= 1 for s in errors), errors


@pytest.mark.broker_flags("--metrics-port", "0")
async def test_every_documented_name_is_exported(broker: BrokerProcess) -> None:
    port = metrics_port(broker)
    async with Admin(broker.address) as admin:
        await admin.create_topic("t", 1, 1)
    status, body = await http_get(port, "/metrics")
    assert status == 200
    families = {f.name: f.type for f in text_string_to_metric_families(body)}
    missing = []
    for name, kind in documented_names():
        family = name.removesuffix("_total") if kind == "counter" else name
        if families.get(family) != kind:
            missing.append(f"{name} ({kind}): exported as {families.get(family)}")
    assert not missing, missing


@pytest.mark.broker_flags("--metrics-port", "0")
async def test_health_and_ready(broker: BrokerProcess) -> None:
    port = metrics_port(broker)
    assert await http_get(port, "/health") == (200, "ok\n")
    assert await http_get(port, "/ready") == (200, "ready\n")
    assert (await http_get(port, "/other"))[0] == 404


def test_a_metrics_port_in_use_refuses_to_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        broker = BrokerProcess(tmp_path / "b", flags=["--metrics-port", str(port)])
        try:
            with pytest.raises(Exception, match="exited with 1"):
                broker.start()
            output = "\n".join(broker.lines)
            assert f"metrics port {port} is already in use" in output
            assert "metrics.port" in output
            assert "METRICS_PORT" in output
            assert not broker.tracebacks()
        finally:
            broker.close()
