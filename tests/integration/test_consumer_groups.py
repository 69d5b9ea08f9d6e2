"""Consumer groups against a real standalone broker: sharing, commits, static members, eviction.

The broker runs with ``group.initial.rebalance.delay.ms`` 0 and a low minimum
session timeout, so members join at once and a silent one is gone in seconds.
Every wait is bounded (``WAIT_S``); a broker that logs a traceback fails the
test (``tests/integration/conftest.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from client.admin import Admin
from client.consumer import Consumer, ConsumerRecord, MaxPollIntervalExceededError
from client.errors import OffsetOutOfRangeError
from client.group.dead_letter import DeadLetterQueue
from client.producer import Producer
from client.topic_partition import TopicPartition
from tests.client.consumer.support import ClientSet
from tests.support.broker_process import BrokerProcess

pytestmark = pytest.mark.broker_flags(
    "--group-initial-rebalance-delay-ms",
    "0",
    "--group-min-session-timeout-ms",
    "500",
    "--offsets-topic-num-partitions",
    "3",
)

WAIT_S = 20.0
FAST: dict[str, Any] = {
    "session_timeout_ms": 3_000,
    "heartbeat_interval_ms": 200,
    "max_poll_interval_ms": 10_000,
    "auto_offset_reset": "earliest",
    "fetch_max_wait_ms": 100,
    "retry_backoff_ms": 50,
    "request_timeout_ms": 10_000,
}


@pytest.fixture
async def clients() -> AsyncIterator[ClientSet]:
    opened = ClientSet()
    yield opened
    await opened.aclose()


async def create(broker: BrokerProcess, topic: str, partitions: int) -> None:
    async with Admin(broker.address) as admin:
        await admin.create_topic(topic, partitions, 1)


async def produce(producer: Producer, topic: str, partitions: int, per_partition: int) -> None:
    futures = [
        await producer.send(topic, b"%d:%d" % (p, i), partition=p)
        for p in range(partitions)
        for i in range(per_partition)
    ]
    await asyncio.gather(*futures)


class Members:
    """Group members polled together; records each got, and every wait bounded."""

    def __init__(self, *consumers: Consumer) -> None:
        self.consumers = list(consumers)
        self.got: list[list[ConsumerRecord]] = [[] for _ in consumers]

    def add(self, consumer: Consumer) -> int:
        self.consumers.append(consumer)
        self.got.append([])
        return len(self.consumers) - 1

    def seen(self) -> set[tuple[str, int, int]]:
        return {(r.topic, r.partition, r.offset) for got in self.got for r in got}

    async def poll_until(
        self, condition: Callable[[], object], what: str, *, skip: frozenset[int] = frozenset()
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + WAIT_S

        async def one(index: int) -> None:
            batch = await self.consumers[index].poll(timeout_ms=100)
            for (topic, partition), records in batch.items():
                self.got[index].extend(ConsumerRecord(topic, partition, *r) for r in records)

        while not condition():
            assert loop.time() < deadline, f"not within {WAIT_S} s: {what}"
            await asyncio.gather(*(one(i) for i in range(len(self.consumers)) if i not in skip))


def every(topic: str, partitions: int, count: int) -> set[tuple[str, int, int]]:
    return {(topic, p, o) for p in range(partitions) for o in range(count)}


async def test_two_members_split_a_topic_and_one_takes_over_when_the_other_closes(
    broker: BrokerProcess, clients: ClientSet
) -> None:
    await create(broker, "orders", 4)
    producer = await clients.producer(broker.address)
    await produce(producer, "orders", 4, 5)
    a = await clients.consumer(broker.address, group_id="g", **FAST)
    b = await clients.consumer(broker.address, group_id="g", **FAST)
    a.subscribe(["orders"])
    b.subscribe(["orders"])
    members = Members(a, b)

    await members.poll_until(
        lambda: len(a.assignment()) == 2 and len(b.assignment()) == 2, "a 2+2 split"
    )
    assert a.assignment() | b.assignment() == {TopicPartition("orders", p) for p in range(4)}
    await members.poll_until(lambda: members.seen() >= every("orders", 4, 5), "all 20 records")

    await b.close()  # commits what it read, and leaves
    await produce(producer, "orders", 4, 5)
    await members.poll_until(lambda: len(a.assignment()) == 4, "a takes all", skip=frozenset({1}))
    await members.poll_until(
        lambda: members.seen() >= every("orders", 4, 10), "all 40", skip=frozenset({1})
    )
    # b committed on close, so a did not read b's old records again.
    after = [r for r in members.got[0] if r.offset >= 5]
    assert len(after) == len({(r.partition, r.offset) for r in after}) == 20


async def test_committed_offsets_survive_a_consumer_and_a_broker_restart(
    broker: BrokerProcess, clients: ClientSet
) -> None:
    await create(broker, "orders", 2)
    producer = await clients.producer(broker.address)
    await produce(producer, "orders", 2, 6)
    first = await clients.consumer(broker.address, group_id="g", enable_auto_commit=False, **FAST)
    first.subscribe(["orders"])
    members = Members(first)
    await members.poll_until(lambda: len(members.seen()) >= 12, "12 records")
    await first.commit({("orders", 0): 4, ("orders", 1): 6})
    await first.close()

    await broker.restart_async()
    second = await clients.consumer(broker.address, group_id="g", **FAST)
    second.subscribe(["orders"])
    again = Members(second)
    await again.poll_until(lambda: len(again.seen()) >= 2, "the 2 uncommitted records")

    assert sorted(again.seen()) == [("orders", 0, 4), ("orders", 0, 5)]
    assert await second.committed(("orders", 1)) == 6


async def test_auto_offset_reset_none_names_what_has_no_committed_offset(
    broker: BrokerProcess, clients: ClientSet
) -> None:
    await create(broker, "orders", 2)
    setter = await clients.consumer(broker.address, group_id="g", **FAST)
    setter.assign([("orders", 1)])
    await setter.commit({("orders", 1): 0})  # a simple commit: the group has no members
    await setter.close()
    settings = dict(FAST, auto_offset_reset="none")
    consumer = await clients.consumer(broker.address, group_id="g", **settings)
    consumer.subscribe(["orders"])

    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    error: Exception | None = None
    while error is None and loop.time() < deadline:
        try:
            await consumer.poll(timeout_ms=200)
        except OffsetOutOfRangeError as exc:
            error = exc

    assert error is not None
    assert "orders-0" in str(error)
    assert "orders-1" not in str(error)
    assert "'g'" in str(error)


async def test_a_static_member_restarting_within_its_session_causes_no_rebalance(
    broker: BrokerProcess, clients: ClientSet
) -> None:
    await create(broker, "orders", 4)
    revoked: list[set[TopicPartition]] = []
    settings = dict(FAST, session_timeout_ms=6_000)
    a = await clients.consumer(broker.address, group_id="g", group_instance_id="a", **settings)
    b = await clients.consumer(broker.address, group_id="g", group_instance_id="b", **settings)
    a.subscribe(["orders"])
    b.subscribe(["orders"], on_revoke=revoked.append)
    members = Members(a, b)
    await members.poll_until(
        lambda: len(a.assignment()) == 2 and len(b.assignment()) == 2, "a 2+2 split"
    )
    revoked.clear()
    a_had, b_had = a.assignment(), b.assignment()
    generation = b._group.membership.generation_id  # type: ignore[union-attr]

    await a.close()  # a static member sends no LeaveGroup
    restarted = await clients.consumer(
        broker.address, group_id="g", group_instance_id="a", **settings
    )
    restarted.subscribe(["orders"])
    members.add(restarted)
    closed = frozenset({0})
    await members.poll_until(
        lambda: restarted.assignment(), "the restarted member's partitions", skip=closed
    )
    loop = asyncio.get_running_loop()
    quiet_until = loop.time() + 1.5  # several heartbeats: a rebalance would show by then
    await members.poll_until(lambda: loop.time() > quiet_until, "", skip=closed)

    assert restarted.assignment() == a_had
    assert b.assignment() == b_had
    assert revoked == []
    assert b._group.membership.generation_id == generation  # type: ignore[union-attr]


async def test_a_member_that_stops_polling_is_evicted_told_and_rejoins(
    broker: BrokerProcess, clients: ClientSet
) -> None:
    await create(broker, "orders", 2)
    slow = await clients.consumer(
        broker.address, group_id="g", **dict(FAST, max_poll_interval_ms=1_500)
    )
    other = await clients.consumer(broker.address, group_id="g", **FAST)
    slow.subscribe(["orders"])
    other.subscribe(["orders"])
    members = Members(slow, other)
    await members.poll_until(
        lambda: len(slow.assignment()) == 1 and len(other.assignment()) == 1, "a 1+1 split"
    )

    # The slow member "processes" for longer than max_poll_interval_ms; the other polls on.
    await members.poll_until(
        lambda: len(other.assignment()) == 2, "the other takes over", skip=frozenset({0})
    )

    with pytest.raises(MaxPollIntervalExceededError, match="max_poll_interval_ms=1500"):
        await slow.poll(timeout_ms=100)
    assert slow.assignment() == set()
    await members.poll_until(
        lambda: len(slow.assignment()) == 1 and len(other.assignment()) == 1, "split again"
    )


async def test_a_pattern_subscription_picks_up_a_new_topic(
    broker: BrokerProcess, clients: ClientSet
) -> None:
    await create(broker, "metrics-eu", 1)
    await create(broker, "other", 1)
    consumer = await clients.consumer(broker.address, group_id="g", metadata_max_age_ms=500, **FAST)
    consumer.subscribe(pattern=r"metrics-.*")
    members = Members(consumer)
    await members.poll_until(lambda: consumer.assignment(), "an assignment")
    assert consumer.assignment() == {TopicPartition("metrics-eu", 0)}

    await create(broker, "metrics-us", 2)
    producer = await clients.producer(broker.address)
    await produce(producer, "metrics-us", 2, 1)
    await members.poll_until(
        lambda: {("metrics-us", 0, 0), ("metrics-us", 1, 0)} <= members.seen(), "the new topic"
    )
    assert consumer.subscription() == {"metrics-eu", "metrics-us"}


async def test_the_dead_letter_helper_parks_a_poison_record_and_the_group_moves_on(
    broker: BrokerProcess, clients: ClientSet
) -> None:
    await create(broker, "orders", 1)
    await create(broker, "orders.dlq", 1)
    producer = await clients.producer(broker.address)
    for value in (b"ok-0", b"poison", b"ok-2"):
        await producer.send_and_wait("orders", value, partition=0)
    consumer = await clients.consumer(
        broker.address, group_id="g", enable_auto_commit=False, **FAST
    )
    consumer.subscribe(["orders"])
    dlq = DeadLetterQueue(producer, max_failures=2)
    processed: list[bytes] = []
    tp = TopicPartition("orders", 0)

    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while len(processed) < 2:
        assert loop.time() < deadline, f"not within {WAIT_S} s: processed {processed}"
        for _, records in (await consumer.poll(timeout_ms=100)).items():
            for record in records:
                try:
                    if record.value == b"poison":
                        raise ValueError("cannot parse 'poison'")
                    processed.append(record.value or b"")
                except ValueError as exc:
                    if not await dlq.failed(record, exc, tp=tp):
                        consumer.seek(tp, record.offset)  # try it again
                        break
                await consumer.commit({tp: record.offset + 1})

    assert processed == [b"ok-0", b"ok-2"]
    assert await consumer.committed(tp) == 3
    reader = await clients.consumer(broker.address, auto_offset_reset="earliest")
    reader.assign([("orders.dlq", 0)])
    [(_, [parked])] = (await reader.poll(timeout_ms=5_000)).items()
    headers = dict(parked.headers)
    assert parked.value == b"poison"
    assert headers["dlq.error.type"] == b"builtins.ValueError"
    assert headers["dlq.error.message"] == b"cannot parse 'poison'"
    assert headers["dlq.original.offset"] == b"1"
    assert headers["dlq.failures"] == b"2"
