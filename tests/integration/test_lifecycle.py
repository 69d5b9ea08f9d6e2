"""A broker process stopped, killed and restarted, and retention running on its own."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from pathlib import Path

import pytest

from client.connection import BrokerConnection
from client.errors import LogServerError
from client.protocol import ApiKey
from client.record import build_batch
from logserver.log.files import CLEAN_SHUTDOWN_FILE
from tests.integration import wire
from tests.integration.conftest import BrokerFactory, Clients
from tests.support.broker_process import BrokerProcess

Acked = dict[int, bytes]  # offset -> value, for one partition


def partition_dirs(broker: BrokerProcess, topic: str) -> list[Path]:
    return sorted(broker.data_dir.glob(f"{topic}-*"))


async def assert_serves(conn: BrokerConnection, topic: str, partition: int, acked: Acked) -> None:
    """Every acknowledged record is there with its value; offsets run without gaps."""
    stored = await wire.fetch_values(conn, topic, partition)
    offsets = [offset for offset, _ in stored]
    assert offsets == list(range(len(stored))), "offsets are not contiguous from 0"
    by_offset = dict(stored)
    missing = sorted(set(acked) - set(by_offset))
    assert not missing, f"{topic}-{partition}: acknowledged offsets lost: {missing[:20]}"
    wrong = [o for o, v in acked.items() if by_offset[o] != v]
    assert not wrong, f"{topic}-{partition}: acknowledged offsets changed: {wrong[:20]}"


# -- SIGTERM ------------------------------------------------------------------------------


async def test_sigterm_with_requests_in_flight_stops_cleanly_and_restart_serves_all(
    broker: BrokerProcess, clients: Clients
) -> None:
    conn = await clients.conn(broker)
    await wire.create_topic(conn, "t", partitions=2)
    acked: Acked = {}
    for i in range(20):
        base = await wire.produce_values(conn, "t", 0, [f"before-{i}".encode()])
        acked[base] = f"before-{i}".encode()

    poll = conn.send(ApiKey.FETCH, wire.fetch_body("t", 1, 0, max_wait_ms=1500))
    values = [f"in-flight-{i}".encode() for i in range(300)]
    produces = []
    for value in values:
        body, tail = wire.produce_body("t", 0, [build_batch([value])], acks=-1)
        produces.append(conn.send(ApiKey.PRODUCE, body, tail))
    started = time.monotonic()
    code = await broker.stop_async(timeout=15)
    assert code == 0, broker.output()
    assert time.monotonic() - started < 10

    # The long poll that was in flight was answered (empty) before the broker closed.
    assert poll is not None
    assert poll.done()
    reply, tail = poll.result()
    assert (reply["topics"][0][1][0][1], bytes(tail)) == (wire.NONE, b"")
    answered = 0
    for value, future in zip(values, produces, strict=True):
        assert future is not None
        assert future.done()
        if future.exception() is None:
            [[_, [[_, error, base, _, _]]]] = future.result()[0]["topics"]
            assert error == wire.NONE
            acked[base] = value
            answered += 1
        else:
            assert isinstance(future.exception(), LogServerError)
    assert answered > 0

    for directory in partition_dirs(broker, "t"):
        assert (directory / CLEAN_SHUTDOWN_FILE).exists(), (
            f"no clean-shutdown marker in {directory}"
        )

    await broker.restart_async()
    conn = await clients.conn(broker)
    await assert_serves(conn, "t", 0, acked)
    await assert_serves(conn, "t", 1, {})
    log_end = (await wire.list_offset(conn, "t", 0, wire.LATEST))[3]
    assert await wire.produce_values(conn, "t", 0, [b"after-restart"]) == log_end
    for directory in partition_dirs(broker, "t"):
        assert not (directory / CLEAN_SHUTDOWN_FILE).exists(), "a running broker left its marker"


# -- kill -9 ------------------------------------------------------------------------------


async def _produce_until_killed(
    conn: BrokerConnection, topic: str, partition: int, acked: Acked, prefix: str
) -> int:
    """Produce acks=-1 one-, two- or three-record batches until the connection dies."""
    rng = random.Random(f"{prefix}-{partition}")
    sent = 0
    with contextlib.suppress(LogServerError):
        while True:
            values = [f"{prefix}-{partition}-{sent + i}".encode() for i in range(rng.randint(1, 3))]
            sent += len(values)
            row = await wire.produce(conn, topic, partition, build_batch(values), acks=-1)
            assert row[1] == wire.NONE, row
            for i, value in enumerate(values):
                acked[row[2] + i] = value
    return sent


@pytest.mark.slow
async def test_kill9_while_producing_loses_no_acknowledged_record(
    broker_factory: BrokerFactory, clients: Clients
) -> None:
    flags = ["--log-flush-interval-messages", "1", "--log-segment-bytes", "20000"]
    broker = broker_factory(flags=flags)
    conn = await clients.conn(broker)
    await wire.create_topic(conn, "t", partitions=2)
    conn.close()
    acked: dict[int, Acked] = {0: {}, 1: {}}
    rng = random.Random(20261122)
    for cycle in range(4):
        conns = [await clients.conn(broker, f"producer-{cycle}-{p}") for p in (0, 1)]
        producers = [
            asyncio.ensure_future(
                _produce_until_killed(conns[p], "t", p, acked[p], prefix=f"c{cycle}")
            )
            for p in (0, 1)
        ]
        await asyncio.sleep(rng.uniform(0.2, 0.7))
        assert not any(p.done() for p in producers), [p for p in producers if p.done()]
        await broker.kill9_async()
        sent = await asyncio.wait_for(asyncio.gather(*producers), wire.REPLY_TIMEOUT_S)
        for c in conns:
            c.close()
        assert all(n > 0 for n in sent)
        for directory in partition_dirs(broker, "t"):
            assert not (directory / CLEAN_SHUTDOWN_FILE).exists()
        await broker.start_async()
        check = await clients.conn(broker, f"checker-{cycle}")
        for partition in (0, 1):
            await assert_serves(check, "t", partition, acked[partition])
        check.close()
    assert min(len(a) for a in acked.values()) > 50, {p: len(a) for p, a in acked.items()}


# -- retention ----------------------------------------------------------------------------

HOUR_MS = 3_600_000


def segment_files(directory: Path) -> tuple[list[int], list[str]]:
    """Base offsets of the ``.log`` files and names of files awaiting deletion."""
    bases = sorted(int(p.name.split(".")[0]) for p in directory.glob("*.log"))
    doomed = sorted(p.name for p in directory.iterdir() if p.name.endswith(".deleted"))
    return bases, doomed


@pytest.mark.broker_flags(
    "--log-retention-check-interval-ms", "100", "--log-segment-delete-delay-ms", "0"
)
async def test_retention_deletes_old_segments(broker: BrokerProcess, clients: Clients) -> None:
    conn = await clients.conn(broker)
    await wire.create_topic(conn, "r")
    entry = await wire.alter_topic(conn, "r", {"segment.bytes": "2048"})
    assert entry["error"] == wire.NONE
    directory = broker.data_dir / "r-0"

    now_ms = int(time.time() * 1000)
    values: dict[int, bytes] = {}
    for i in range(30):  # two hours old, several segments' worth
        value = f"old-{i:02d}-".encode() + b"o" * 250
        values[
            await wire.produce_values(conn, "r", 0, [value], timestamp_ms=now_ms - 2 * HOUR_MS)
        ] = value
    for i in range(5):
        value = f"new-{i}-".encode() + b"n" * 250
        values[await wire.produce_values(conn, "r", 0, [value], timestamp_ms=now_ms)] = value
    bases, _ = segment_files(directory)
    assert len(bases) >= 4, bases

    # The default retention (7 days) keeps everything.
    await asyncio.sleep(0.5)
    assert segment_files(directory)[0] == bases
    assert (await wire.list_offset(conn, "r", 0, wire.EARLIEST))[3] == 0

    entry = await wire.alter_topic(conn, "r", {"retention.ms": str(HOUR_MS)})
    assert entry["error"] == wire.NONE
    deadline = time.monotonic() + 10
    while (await wire.list_offset(conn, "r", 0, wire.EARLIEST))[3] == 0:
        assert time.monotonic() < deadline, "retention deleted nothing within 10 s"
        await asyncio.sleep(0.1)
    while segment_files(directory)[1]:
        assert time.monotonic() < deadline, f"files left behind: {segment_files(directory)}"
        await asyncio.sleep(0.1)

    earliest = (await wire.list_offset(conn, "r", 0, wire.EARLIEST))[3]
    kept, _ = segment_files(directory)
    assert kept[0] == earliest
    assert kept == [b for b in bases if b >= earliest]
    first_new = min(o for o, v in values.items() if v.startswith(b"new-"))
    assert earliest <= first_new, "retention deleted recent records"
    # Only segments whose newest record is old go: the one before the first kept is all old.
    assert earliest > 0

    row, tail = await wire.fetch(conn, "r", 0, 0)
    assert row[:4] == [0, wire.OFFSET_OUT_OF_RANGE, len(values), earliest], row
    assert bytes(tail) == b""
    row, _ = await wire.fetch(conn, "r", 0, earliest - 1)
    assert row[1] == wire.OFFSET_OUT_OF_RANGE
    stored = await wire.fetch_values(conn, "r", 0, earliest)
    assert stored == sorted((o, v) for o, v in values.items() if o >= earliest)
    assert await wire.produce_values(conn, "r", 0, [b"later"]) == len(values)
