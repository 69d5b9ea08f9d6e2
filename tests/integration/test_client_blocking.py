"""The blocking twins against a real broker: a round trip, and no thread left after close.

Plain (non-async) tests: the blocking clients run their own loop on a thread.
"""

from __future__ import annotations

import threading
import time

import pytest

from client.blocking_admin import BlockingAdmin
from client.blocking_consumer import BlockingConsumer
from client.blocking_producer import BlockingProducer
from client.consumer import ConsumerRecord
from client.topic_partition import TopicPartition
from tests.support.broker_process import BrokerProcess

TP0, TP1 = TopicPartition("blocking", 0), TopicPartition("blocking", 1)


def _client_threads() -> list[str]:
    return [
        t.name for t in threading.enumerate() if t.name.startswith("logserver-") and t.is_alive()
    ]


@pytest.fixture(autouse=True)
def no_thread_left() -> object:
    assert _client_threads() == []
    yield
    assert _client_threads() == [], "a blocking client left its loop thread running"


def test_blocking_round_trip(broker: BrokerProcess) -> None:
    with BlockingAdmin(broker.address) as admin:
        admin.create_topic("blocking", 2, 1)

    producer = BlockingProducer(broker.address, acks="all", compression_type="lz4", linger_ms=5)
    futures = [
        producer.send("blocking", b"v%d" % i, key=b"k%d" % i, partition=i % 2, timestamp_ms=i)
        for i in range(20)
    ]
    producer.flush(timeout_s=10)
    metadata = [f.result(timeout=10) for f in futures]
    producer.close()
    assert "logserver-producer" not in _client_threads()

    consumer = BlockingConsumer(broker.address, auto_offset_reset="earliest", fetch_max_wait_ms=50)
    consumer.assign([TP0, TP1])
    assert consumer.end_offsets([TP0, TP1]) == {TP0: 10, TP1: 10}
    got: list[ConsumerRecord] = []
    deadline = time.monotonic() + 10
    while len(got) < 20 and time.monotonic() < deadline:
        for tp, records in consumer.poll(timeout_ms=200).items():
            got.extend(ConsumerRecord(tp.topic, tp.partition, *r) for r in records)
    consumer.close()

    by_position = {(r.partition, r.offset): r for r in got}
    assert len(by_position) == 20
    for i, m in enumerate(metadata):
        record = by_position[(m.partition, m.offset)]
        assert (record.key, record.value, record.timestamp) == (b"k%d" % i, b"v%d" % i, i)


def test_blocking_consumer_iterates_and_replays_by_time(broker: BrokerProcess) -> None:
    with BlockingProducer(broker.address) as producer:
        for i in range(10):
            producer.send_and_wait("bytime", b"%d" % i, timestamp_ms=1_000 * (i + 1))

    with BlockingConsumer(broker.address, fetch_max_wait_ms=50) as consumer:
        tp = TopicPartition("bytime", 0)
        consumer.assign([tp])
        found = consumer.offsets_for_times({tp: 7_000})
        consumer.seek(tp, found[tp].offset)  # type: ignore[union-attr]
        values = []
        for record in consumer:
            values.append(record.value)
            if len(values) == 4:
                break

    assert values == [b"6", b"7", b"8", b"9"]
