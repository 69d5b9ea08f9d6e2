"""The blocking twins: the asyncio core on a loop thread, which ``close`` always ends.

Against the in-memory ``FakeBroker``; ``tests/integration/test_client_blocking.py``
runs the same round trip against a real broker.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable

import pytest

from client.blocking_consumer import BlockingConsumer
from client.blocking_producer import BlockingProducer
from client.errors import NetworkError, RecordTooLargeError
from client.producer import ProducerClosedError
from client.topic_partition import TopicPartition
from tests.client.producer.fake_broker import FakeBroker

TP = TopicPartition("t", 0)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeBroker:
    return FakeBroker({"t": 1}).install(monkeypatch)


def _client_threads() -> list[threading.Thread]:
    return [
        t
        for t in threading.enumerate()
        if t.name in ("logserver-producer", "logserver-consumer") and t.is_alive()
    ]


def _raised(call: Callable[[], object]) -> BaseException | None:
    """What ``call`` raised, cut from its traceback, after a garbage collection.

    A coroutine a blocking client created but never ran warns when it is collected; the
    traceback would keep it alive into some later test, so drop it and collect now.
    """
    try:
        call()
    except Exception as exc:  # noqa: BLE001 - returned for the assertion
        error: BaseException | None = exc
        exc.__traceback__ = exc.__context__ = exc.__cause__ = None
    else:
        error = None
    gc.collect()
    return error


@pytest.fixture(autouse=True)
def no_thread_left() -> object:
    assert _client_threads() == []
    yield
    assert _client_threads() == [], "a blocking client left its loop thread running"


def test_producer_round_trip_and_close_ends_its_thread(fake: FakeBroker) -> None:
    producer = BlockingProducer(fake.address, linger_ms=5)
    assert len(_client_threads()) == 1

    futures = [producer.send("t", b"%d" % i, key=b"k") for i in range(5)]
    producer.flush(timeout_s=5)
    offsets = [f.result(timeout=5).offset for f in futures]
    last = producer.send_and_wait("t", b"last")
    producer.close()

    assert offsets == [0, 1, 2, 3, 4]
    assert last.offset == 5
    assert [r.value for r in fake.records("t", 0)] == [b"0", b"1", b"2", b"3", b"4", b"last"]


def test_send_time_errors_surface_from_the_future(fake: FakeBroker) -> None:
    with BlockingProducer(fake.address, max_request_size=1_000) as producer:
        with pytest.raises(TypeError):
            producer.send("t", "text").result(timeout=5)  # type: ignore[arg-type]
        with pytest.raises(RecordTooLargeError, match="max_request_size"):
            producer.send("t", b"x" * 2_000).result(timeout=5)
        assert producer.send_and_wait("t", b"ok").offset == 0


def test_send_after_close_raises_producer_closed(fake: FakeBroker) -> None:
    # Was: the loop is closed, so run_coroutine_threadsafe raises RuntimeError("Event loop
    # is closed") and the never-awaited _send coroutine warns (an error under -W error).
    producer = BlockingProducer(fake.address)
    producer.close()

    error = _raised(lambda: producer.send("t", b"v").result(timeout=5))

    assert isinstance(error, ProducerClosedError), repr(error)


def test_a_producer_that_cannot_start_leaves_no_thread(fake: FakeBroker) -> None:
    fake.reachable = False

    with pytest.raises(NetworkError, match="fake:9092"):
        BlockingProducer(fake.address)


def test_a_consumer_that_cannot_start_leaves_no_thread(fake: FakeBroker) -> None:
    fake.reachable = False

    with pytest.raises(NetworkError, match="fake:9092"):
        BlockingConsumer(fake.address)


def test_consumer_round_trip_and_close_ends_its_thread(fake: FakeBroker) -> None:
    with BlockingProducer(fake.address) as producer:
        for i in range(5):
            producer.send_and_wait("t", b"%d" % i, timestamp_ms=1_000 * (i + 1))

    consumer = BlockingConsumer(fake.address, auto_offset_reset="earliest", fetch_max_wait_ms=20)
    consumer.assign([TP])
    assert consumer.assignment() == {TP}
    assert consumer.beginning_offsets([TP]) == {TP: 0}
    assert consumer.end_offsets([TP]) == {TP: 5}
    assert consumer.partitions_for_topic("t") == {0}

    values: list[bytes | None] = []
    deadline = time.monotonic() + 5
    while len(values) < 5 and time.monotonic() < deadline:
        values.extend(r.value for r in consumer.poll(timeout_ms=100).get(TP, []))
    assert values == [b"0", b"1", b"2", b"3", b"4"]
    assert consumer.position(TP) == 5

    found = consumer.offsets_for_times({TP: 3_000})
    consumer.seek(TP, found[TP].offset)  # type: ignore[union-attr]
    first = next(iter(consumer))
    assert (first.offset, first.value) == (2, b"2")
    consumer.seek_to_beginning(TP)
    assert consumer.position(TP) == 0
    consumer.seek_to_end()
    assert consumer.position(TP) == 5
    consumer.close()


def test_calling_a_blocking_client_from_its_own_loop_thread_is_refused(
    fake: FakeBroker,
) -> None:
    # Code on the loop thread (e.g. a done-callback) calling the blocking API would deadlock.
    seen: list[BaseException] = []
    done = threading.Event()
    with BlockingProducer(fake.address) as producer:

        def on_loop_thread() -> None:
            try:
                producer.flush(timeout_s=1)
            except BaseException as exc:  # noqa: BLE001 - recorded for the assertion
                seen.append(exc)
            done.set()

        # Scheduled on the loop itself: a future's done-callback would run on the caller's
        # thread instead whenever the send finished before the callback was added.
        producer._thread.loop.call_soon_threadsafe(on_loop_thread)
        assert done.wait(5)

    assert len(seen) == 1
    assert isinstance(seen[0], RuntimeError)
    assert "own loop thread" in str(seen[0])


@pytest.mark.parametrize("client", [BlockingProducer, BlockingConsumer])
def test_closing_twice_is_harmless(fake: FakeBroker, client: type) -> None:
    # ``with Client() as c: ... c.close()`` closes twice. Bug: the second close submits a
    # coroutine to the closed loop: RuntimeError and a never-awaited coroutine warning.
    opened = client(fake.address)
    opened.close()

    assert _raised(opened.close) is None
