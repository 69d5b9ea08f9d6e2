"""``BlockingConsumer`` in a group: the same API, callbacks in the thread that polls."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from client.blocking_consumer import BlockingConsumer
from client.protocol import ApiKey
from client.topic_partition import OffsetAndMetadata, TopicPartition
from tests.client.consumer.fake_coordinator import FakeCoordinatorBroker
from tests.client.consumer.group_helpers import fill

U0, U1 = TopicPartition("u", 0), TopicPartition("u", 1)
FAST = {
    "group_id": "g",
    "fetch_max_wait_ms": 20,
    "retry_backoff_ms": 10,
    "heartbeat_interval_ms": 50,
    "session_timeout_ms": 2_000,
    "max_poll_interval_ms": 3_000,
    "auto_offset_reset": "earliest",
}


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeCoordinatorBroker:
    return FakeCoordinatorBroker({"u": 2}).install(monkeypatch)


@pytest.fixture
def blocking(fake: FakeCoordinatorBroker) -> Iterator[list[BlockingConsumer]]:
    made: list[BlockingConsumer] = []
    yield made
    for consumer in made:
        consumer.close()


def poll_until(consumer: BlockingConsumer, condition, what: str) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    got: list[tuple[int, int]] = []
    deadline = time.monotonic() + 5
    while not condition(got):
        assert time.monotonic() < deadline, f"not within 5 s: {what}; got {got}"
        for tp, records in consumer.poll(timeout_ms=50).items():
            got.extend((tp.partition, r.offset) for r in records)
    return got


def test_callbacks_run_in_the_polling_thread_and_may_call_the_consumer(
    fake: FakeCoordinatorBroker, blocking: list[BlockingConsumer]
) -> None:
    consumer = BlockingConsumer(fake.address, enable_auto_commit=False, **FAST)
    blocking.append(consumer)
    threads: list[tuple[str, threading.Thread]] = []

    def on_assign(partitions: set[TopicPartition]) -> None:
        threads.append(("assign", threading.current_thread()))
        consumer.seek(U1, 1)  # a blocking call from inside the callback

    def on_revoke(partitions: set[TopicPartition]) -> None:
        threads.append(("revoke", threading.current_thread()))
        consumer.commit()

    consumer.subscribe(["u"], on_assign=on_assign, on_revoke=on_revoke)
    fill(fake, "u", 0, 2)
    fill(fake, "u", 1, 2)
    got = poll_until(consumer, lambda g: len(g) >= 3, "3 records")
    assert sorted(got) == [(0, 0), (0, 1), (1, 1)]
    assert consumer.assignment() == {U0, U1}
    assert consumer.subscription() == {"u"}

    consumer.unsubscribe()

    assert threads == [
        ("assign", threading.current_thread()),
        ("revoke", threading.current_thread()),
    ]
    assert fake.groups["g"].offsets == {("u", 0): (2, ""), ("u", 1): (2, "")}
    assert consumer.committed(U0) == 2
    assert fake.count(ApiKey.LEAVE_GROUP) == 1


def test_commit_async_callbacks_run_at_a_later_call_in_the_callers_thread(
    fake: FakeCoordinatorBroker, blocking: list[BlockingConsumer]
) -> None:
    consumer = BlockingConsumer(fake.address, enable_auto_commit=False, **FAST)
    blocking.append(consumer)
    consumer.subscribe(["u"])
    poll_until(consumer, lambda g: consumer.assignment(), "an assignment")
    seen: list[tuple[object, object, threading.Thread]] = []

    future = consumer.commit_async(
        {U0: OffsetAndMetadata(1, "m")},
        lambda offsets, error: seen.append((offsets, error, threading.current_thread())),
    )
    future.result(timeout=5)
    assert seen == []  # not yet: it runs inside this thread's next call
    consumer.poll(timeout_ms=0)

    assert seen == [({U0: OffsetAndMetadata(1, "m")}, None, threading.current_thread())]
    assert consumer.committed(U0, metadata=True) == OffsetAndMetadata(1, "m")
    consumer.pause(U0)
    consumer.resume(U0)
    assert consumer.lag(U0) == 0


def test_close_commits_and_calls_on_revoke_in_the_closing_thread(
    fake: FakeCoordinatorBroker,
) -> None:
    consumer = BlockingConsumer(fake.address, **FAST)
    revoked: list[threading.Thread] = []
    consumer.subscribe(["u"], on_revoke=lambda ps: revoked.append(threading.current_thread()))
    fill(fake, "u", 0, 3)
    poll_until(consumer, lambda g: len(g) >= 3, "3 records")

    consumer.close()

    assert revoked == [threading.current_thread()]
    assert fake.groups["g"].offsets[("u", 0)] == (3, "")
    assert fake.count(ApiKey.LEAVE_GROUP) == 1
