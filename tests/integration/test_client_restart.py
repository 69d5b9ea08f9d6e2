"""Clients across a broker restart: what was acknowledged is never lost, and clients recover.

``_pin_port`` makes the broker come back on the port it had (the harness restarts on
a fresh port otherwise; a later ``--listeners`` flag wins over the harness's own),
which is what lets a running producer or consumer ride the restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from client.admin import Admin
from client.consumer import ConsumerRecord
from client.errors import LogServerError
from client.producer import Producer, RecordMetadata
from tests.client.consumer.support import ClientSet, poll_records
from tests.support.broker_process import BrokerProcess

WAIT_S = 15


@pytest.fixture
async def clients() -> AsyncIterator[ClientSet]:
    opened = ClientSet()
    yield opened
    await opened.aclose()


def _pin_port(broker: BrokerProcess) -> None:
    broker.flags = [*broker.flags, "--listeners", f"PLAINTEXT://127.0.0.1:{broker.port}"]


async def _create(broker: BrokerProcess, topic: str, partitions: int) -> None:
    async with Admin(broker.address) as admin:
        await admin.create_topic(topic, partitions, 1)


async def _read_all(
    clients: ClientSet, broker: BrokerProcess, topic: str, partitions: int, count: int
) -> dict[tuple[int, int], ConsumerRecord]:
    consumer = await clients.consumer(broker.address, auto_offset_reset="earliest")
    consumer.assign([(topic, p) for p in range(partitions)])
    return {(r.partition, r.offset): r for r in await poll_records(consumer, count)}


class Outcomes:
    """Each background send's outcome: metadata when acknowledged, else the error."""

    def __init__(self) -> None:
        self.acked: dict[bytes, RecordMetadata] = {}
        self.failed: dict[bytes, BaseException] = {}

    async def produce(self, producer: Producer, topic: str, count: int, pause_s: float) -> None:
        futures = []
        for i in range(count):
            value = b"v%04d" % i
            future = await producer.send(topic, value, key=b"k%d" % (i % 7))
            futures.append((value, future))
            await asyncio.sleep(pause_s)
        for value, future in futures:
            try:
                self.acked[value] = await asyncio.wait_for(future, WAIT_S)
            except LogServerError as exc:
                self.failed[value] = exc


def _assert_acked_are_stored(
    outcomes: Outcomes, stored: dict[tuple[int, int], ConsumerRecord]
) -> None:
    for value, m in outcomes.acked.items():
        record = stored.get((m.partition, m.offset))
        assert record is not None, f"acknowledged {value!r} at {m} is gone"
        assert record.value == value, f"{m} holds {record.value!r}, not {value!r}"


async def test_replay_after_a_restart_reads_the_same_records(
    broker: BrokerProcess, clients: ClientSet
) -> None:
    await _create(broker, "kept", 2)
    producer = await clients.producer(broker.address, acks="all", linger_ms=5)
    futures = [
        await producer.send("kept", b"%d" % i, key=b"k%d" % i, timestamp_ms=1_000 + i)
        for i in range(60)
    ]
    for future in futures:
        await asyncio.wait_for(future, WAIT_S)
    before = await _read_all(clients, broker, "kept", 2, 60)

    assert await broker.stop_async() == 0
    await broker.start_async()  # a new port: new clients

    after = await _read_all(clients, broker, "kept", 2, 60)
    assert after == before
    assert len(after) == 60
    fresh = await clients.producer(broker.address)
    metadata = await asyncio.wait_for(fresh.send_and_wait("kept", b"next", partition=0), WAIT_S)
    assert metadata.offset == 1 + max(o for p, o in before if p == 0)


async def test_producer_and_consumer_ride_a_restart_on_the_same_port(
    broker: BrokerProcess, clients: ClientSet
) -> None:
    await _create(broker, "ride", 3)
    _pin_port(broker)
    producer = await clients.producer(
        broker.address, acks="all", retry_backoff_ms=50, request_timeout_ms=3_000
    )
    consumer = await clients.consumer(
        broker.address, auto_offset_reset="earliest", retry_backoff_ms=50
    )
    consumer.assign([("ride", p) for p in range(3)])
    outcomes = Outcomes()

    sending = asyncio.create_task(outcomes.produce(producer, "ride", 200, pause_s=0.005))
    await asyncio.sleep(0.3)
    assert await broker.stop_async() == 0
    await broker.start_async()
    await asyncio.wait_for(sending, WAIT_S * 2)

    assert outcomes.failed == {}
    assert len(outcomes.acked) == 200
    read = await poll_records(consumer, 200)
    stored = {(r.partition, r.offset): r for r in read}
    _assert_acked_are_stored(outcomes, stored)
    assert {r.value for r in read} >= set(outcomes.acked)


async def test_sends_across_a_restart_on_a_new_port_succeed_or_fail_retriably(
    broker: BrokerProcess, clients: ClientSet
) -> None:
    # The producer only knows the old address: what it sends while the broker is away
    # fails after delivery_timeout_ms with a retriable error; nothing acknowledged is lost.
    await _create(broker, "moved", 2)
    producer = await clients.producer(
        broker.address,
        acks="all",
        retry_backoff_ms=50,
        request_timeout_ms=1_000,
        delivery_timeout_ms=1_500,
    )
    outcomes = Outcomes()

    sending = asyncio.create_task(outcomes.produce(producer, "moved", 100, pause_s=0.005))
    await asyncio.sleep(0.2)
    assert await broker.stop_async() == 0
    await broker.start_async()
    await asyncio.wait_for(sending, WAIT_S * 2)

    assert len(outcomes.acked) + len(outcomes.failed) == 100
    assert outcomes.acked, "nothing was acknowledged before the restart"
    for value, error in outcomes.failed.items():
        assert error.retriable, f"{value!r} failed with a final error: {error!r}"  # type: ignore[attr-defined]
    stored = await _read_all(clients, broker, "moved", 2, len(outcomes.acked))
    _assert_acked_are_stored(outcomes, stored)


async def test_kill_9_loses_nothing_acknowledged_with_acks_all_and_flush_every_message(
    broker_factory: object, clients: ClientSet
) -> None:
    broker: BrokerProcess = broker_factory(  # type: ignore[operator]
        flags=["--log-flush-interval-messages", "1"]
    )
    await _create(broker, "durable", 2)
    _pin_port(broker)
    producer = await clients.producer(
        broker.address,
        acks="all",
        retry_backoff_ms=50,
        request_timeout_ms=1_000,
        delivery_timeout_ms=8_000,
    )
    outcomes = Outcomes()

    sending = asyncio.create_task(outcomes.produce(producer, "durable", 300, pause_s=0.002))
    await asyncio.sleep(0.4)
    await broker.kill9_async()
    await broker.start_async()
    await asyncio.wait_for(sending, WAIT_S * 2)

    assert len(outcomes.acked) > 50
    for value, error in outcomes.failed.items():
        assert error.retriable, f"{value!r} failed with a final error: {error!r}"  # type: ignore[attr-defined]
    stored = await _read_all(clients, broker, "durable", 2, len(outcomes.acked))
    _assert_acked_are_stored(outcomes, stored)
    # Offsets stay dense: recovery kept whole batches and appends went on after them.
    for partition in (0, 1):
        offsets = sorted(o for p, o in stored if p == partition)
        assert offsets == list(range(len(offsets)))
