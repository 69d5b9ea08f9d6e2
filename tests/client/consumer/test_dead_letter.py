"""The dead-letter helper: N failures of one record park a copy in ``<topic>.dlq``."""

from __future__ import annotations

import pytest

from client.blocking_producer import BlockingProducer
from client.consumer import ConsumerRecord
from client.errors import InvalidTopicError
from client.group.dead_letter import BlockingDeadLetterQueue, DeadLetterQueue
from client.producer import Producer
from client.record import Record
from client.topic_partition import TopicPartition
from tests.client.producer.fake_broker import FakeBroker

RECORD = ConsumerRecord("orders", 2, 41, 1_700_000_000_000, b"k", b"bad", (("trace", b"t1"),))


class Poison(ValueError):
    pass


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeBroker:
    return FakeBroker({"orders": 3, "orders.dlq": 1}).install(monkeypatch)


async def test_the_nth_failure_parks_the_record_with_the_error_in_its_headers(
    fake: FakeBroker,
) -> None:
    async with Producer(fake.address) as producer:
        dlq = DeadLetterQueue(producer, max_failures=3)

        assert [await dlq.failed(RECORD, Poison("no price")) for _ in range(3)] == [
            False,
            False,
            True,
        ]

    [parked] = fake.records("orders.dlq", 0)
    assert (parked.key, parked.value, parked.timestamp) == (b"k", b"bad", RECORD.timestamp)
    assert dict(parked.headers) == {
        "trace": b"t1",
        "dlq.error.type": f"{__name__}.Poison".encode(),
        "dlq.error.message": b"no price",
        "dlq.original.topic": b"orders",
        "dlq.original.partition": b"2",
        "dlq.original.offset": b"41",
        "dlq.failures": b"3",
    }
    assert dlq.failures(("orders", 2), 41) == 0  # parked: forgotten


async def test_success_forgets_the_failures_and_records_are_counted_apart(
    fake: FakeBroker,
) -> None:
    async with Producer(fake.address) as producer:
        dlq = DeadLetterQueue(producer, max_failures=2)
        record = Record(7, 0, None, b"v")
        tp = TopicPartition("orders", 0)

        assert not await dlq.failed(record, Poison("once"), tp=tp)
        dlq.succeeded(record, tp=tp)
        assert not await dlq.failed(record, Poison("again"), tp=tp)
        assert not await dlq.failed(RECORD, Poison("another record"))
        assert dlq.failures(tp, 7) == 1
        assert dlq.failures(("orders", 2), 41) == 1

        with pytest.raises(TypeError, match="tp="):
            await dlq.failed(record, Poison("where from?"))
    assert fake.records("orders.dlq", 0) == []


async def test_it_remembers_at_most_max_tracked_records(fake: FakeBroker) -> None:
    async with Producer(fake.address) as producer:
        dlq = DeadLetterQueue(producer, max_failures=5, max_tracked=2)
        tp = TopicPartition("orders", 0)
        for offset in range(3):
            await dlq.failed(Record(offset, 0, None, b""), Poison(), tp=tp)

        assert [dlq.failures(tp, o) for o in range(3)] == [0, 1, 1]


async def test_bad_settings_and_names_are_refused(fake: FakeBroker) -> None:
    async with Producer(fake.address) as producer:
        with pytest.raises(ValueError, match="max_failures"):
            DeadLetterQueue(producer, max_failures=0)
        dlq = DeadLetterQueue(producer, max_failures=1)
        assert dlq.dlq_topic("orders") == "orders.dlq"
        with pytest.raises(InvalidTopicError, match="249"):
            dlq.dlq_topic("x" * 249)


def test_the_blocking_twin_parks_the_same_way(fake: FakeBroker) -> None:
    with BlockingProducer(fake.address) as producer:
        dlq = BlockingDeadLetterQueue(producer, max_failures=2)

        assert [dlq.failed(RECORD, Poison("no price")) for _ in range(2)] == [False, True]

    [parked] = fake.records("orders.dlq", 0)
    assert dict(parked.headers)["dlq.failures"] == b"2"
