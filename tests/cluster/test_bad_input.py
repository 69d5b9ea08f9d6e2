"""Issue 4's bad input, with real processes: a real ZooKeeper and real brokers on loopback.

- A second broker given a broker id that a live broker holds refuses to start and
  names the holder.
- ZooKeeper out of reach at start: the broker says it retries, then fails clearly
  within the session timeout, or starts when ZooKeeper comes up in time.
- A partition state znode written by hand with nonsense is logged and ignored; the
  other partitions keep working, through a failover and a restart too.
- A follower fetch beyond the leader's log end is OFFSET_OUT_OF_RANGE and moves nothing.
- A produce sent to a follower is NOT_LEADER_OR_FOLLOWER and appends nothing; a
  producer with stale metadata still delivers (the fake-broker unit test of the same
  rule is tests/client/producer/test_retries.py).

Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import signal
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import pytest
from kazoo.client import KazooClient

from client import Admin, Consumer, Producer, TopicPartition
from client.admin_types import PartitionDescription
from client.connection import BrokerConnection
from client.protocol import ApiKey
from client.record import build_batch
from coordination import PartitionState
from coordination.zk_paths import decode_state, encode_state, state_path
from logserver.log import PartitionLog
from tests.cluster.conftest import CLUSTER_FLAGS, Cluster
from tests.integration import wire
from tests.support.broker_process import BrokerProcess, BrokerStartError, connect
from tests.support.zookeeper_process import ZooKeeperProcess

TIMEOUT_S = 20.0
SHORT_SESSION_MS = 2_000
NOT_LEADER_OR_FOLLOWER = 6
_FAILED_TASK = re.compile(r"background task .* failed")  # a crash, not a handled error

_T = TypeVar("_T")


# -- helpers ---------------------------------------------------------------------------------


async def wait_for(
    predicate: Callable[[], Awaitable[_T]], what: str, timeout_s: float = TIMEOUT_S
) -> _T:
    deadline = time.monotonic() + timeout_s
    while True:
        result = await predicate()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.1)


def flags(broker_id: int, *, session_timeout_ms: int) -> list[str]:
    """The cluster's flags for ``broker_id``, with another ZooKeeper session timeout."""
    out = ["--broker-id", str(broker_id), *CLUSTER_FLAGS]
    at = out.index("--zookeeper-session-timeout-ms")
    out[at + 1] = str(session_timeout_ms)
    return out


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tracebacks(broker: BrokerProcess) -> list[str]:
    return [line for line in broker.lines if line.startswith("Traceback")]


def crashes(broker: BrokerProcess) -> list[str]:
    """Lines of background tasks that died: bad input must be handled, not crash a task."""
    return [line for line in broker.lines if _FAILED_TASK.search(line)]


def chroot(cluster: Cluster) -> str:
    return "/" + cluster.connect.partition("/")[2]


async def describe(cluster: Cluster, topic: str) -> tuple[PartitionDescription, ...]:
    async with Admin(cluster.bootstrap, request_timeout_ms=5_000) as admin:
        return (await admin.describe_topic(topic)).partitions


async def create_topic(cluster: Cluster, topic: str, partitions: int) -> None:
    """Create ``topic`` (replication factor 3) and wait until every ISR is full."""
    async with Admin(cluster.bootstrap, request_timeout_ms=5_000) as admin:
        await admin.create_topic(topic, num_partitions=partitions, replication_factor=3)

        async def full() -> bool:
            found = (await admin.describe_topic(topic)).partitions
            return len(found) == partitions and all(
                p.leader >= 0 and len(p.isr) == 3 for p in found
            )

        await wait_for(full, f"a full ISR for every partition of {topic}")


async def produce(bootstrap: str, topic: str, partition: int, values: list[bytes]) -> list[int]:
    """Send ``values`` to ``partition`` with acks=all; return their offsets."""
    async with Producer(
        bootstrap, acks="all", request_timeout_ms=5_000, delivery_timeout_ms=15_000
    ) as producer:
        futures = [await producer.send(topic, v, partition=partition) for v in values]
        done = await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT_S)
    return [m.offset for m in done]


async def consume(bootstrap: str, topic: str, partition: int) -> list[bytes | None]:
    """Every value of ``partition`` below its high watermark, read with a Consumer."""
    tp = TopicPartition(topic, partition)
    values: list[bytes | None] = []
    async with Consumer(bootstrap, auto_offset_reset="earliest") as consumer:
        consumer.assign([tp])
        end = (await consumer.end_offsets([tp]))[tp]
        deadline = time.monotonic() + TIMEOUT_S
        while await consumer.position(tp) < end:
            assert time.monotonic() < deadline, f"timed out reading {topic}-{partition}"
            for records in (await consumer.poll(timeout_ms=500)).values():
                values += [r.value for r in records]
    return values


def disk_values(broker: BrokerProcess, topic: str, partition: int) -> list[tuple[int, bytes]]:
    """The replica of a stopped broker, opened from its files."""
    assert not broker.running
    out: list[tuple[int, bytes]] = []
    with PartitionLog.open(broker.data_dir / f"{topic}-{partition}") as partition_log:
        offset = partition_log.log_start_offset
        while offset < partition_log.log_end_offset:
            records = partition_log.read_records(offset)
            if not records:
                break
            out += [(r.offset, r.value or b"") for r in records]
            offset = records[-1].offset + 1
    return out


@contextlib.asynccontextmanager
async def connection(broker: BrokerProcess) -> AsyncIterator[BrokerConnection]:
    conn = await connect(broker)
    try:
        yield conn
    finally:
        conn.close()


async def follower_fetch(
    conn: BrokerConnection, replica_id: int, topic: str, partition: int, offset: int
) -> list[object]:
    """A follower's Fetch (``replica_id`` set); the partition row."""
    body = {**wire.fetch_body(topic, partition, offset), "replica_id": replica_id}
    reply, tail = await conn.request(ApiKey.FETCH, body, timeout_ms=wire.REPLY_TIMEOUT_MS)
    [[_, [row]]] = reply["topics"]
    assert row[4] == len(tail)
    return row


class StateZnode:
    """One partition's state znode, read and written behind the brokers' backs."""

    def __init__(self, zk: KazooClient, cluster: Cluster, topic: str, partition: int) -> None:
        self.zk = zk
        self.path = chroot(cluster) + state_path(topic, partition)

    async def read(self) -> tuple[PartitionState, int]:
        raw, _ = await asyncio.to_thread(self.zk.get, self.path)
        return decode_state(self.path, raw)

    async def write_raw(self, value: bytes) -> None:
        await asyncio.to_thread(self.zk.set, self.path, value)

    async def write(self, state: PartitionState, controller_epoch: int) -> None:
        await self.write_raw(encode_state(state, controller_epoch))


# -- 1. a broker id that is already registered -----------------------------------------------


async def test_a_broker_id_held_by_a_live_broker_is_refused(
    cluster: Cluster, tmp_path: Path
) -> None:
    holder = cluster.brokers[1]
    await create_topic(cluster, "claimed", 3)
    twin = BrokerProcess(
        tmp_path / "twin",
        flags=flags(1, session_timeout_ms=SHORT_SESSION_MS),
        env={"ZOOKEEPER_CONNECT": cluster.connect},
    )
    started = time.monotonic()
    try:
        with pytest.raises(BrokerStartError, match="exited with"):
            await twin.start_async()
        elapsed = time.monotonic() - started
        code = await twin.kill9_async()
    finally:
        twin.close()
    output = twin.output(last=30)
    assert code == 1, output
    assert elapsed < 15, f"took {elapsed:.1f} s to give up\n{output}"
    refusal = [line for line in twin.lines if "broker.id 1 is taken" in line]
    assert refusal, output
    assert holder.address in refusal[-1], f"the holder's address is not named\n{output}"
    assert not tracebacks(twin), f"a traceback instead of a message\n{output}"

    # The holder was not disturbed: still registered, at its own address, and serving.
    async with Admin(cluster.bootstrap) as admin:
        brokers = (await admin.describe_cluster()).brokers
    assert [(b.broker_id, f"{b.host}:{b.port}") for b in brokers] == [
        (i, b.address) for i, b in enumerate(cluster.brokers)
    ]
    assert await produce(cluster.bootstrap, "claimed", 0, [b"still-fine"]) == [0]

    # Refused means it never acted as broker 1 either: no partition role taken, so no
    # replica fetches in broker 1's name that its leaders would count as broker 1's.
    roles = [line for line in twin.lines if re.search(r"following broker|leader at epoch", line)]
    assert not roles, (
        "the refused broker took partition roles as broker 1 before it found the id "
        "taken:\n" + "\n".join(roles)
    )


# -- 2. ZooKeeper unreachable at start -------------------------------------------------------


async def test_zookeeper_out_of_reach_at_start_is_retried_then_fails_clearly(
    tmp_path: Path,
) -> None:
    closed = f"127.0.0.1:{free_port()}"
    broker = BrokerProcess(
        tmp_path / "lonely",
        flags=flags(0, session_timeout_ms=SHORT_SESSION_MS),
        env={"ZOOKEEPER_CONNECT": closed},
    )
    started = time.monotonic()
    try:
        with pytest.raises(BrokerStartError, match="exited with"):
            await broker.start_async()
        elapsed = time.monotonic() - started
        code = await broker.kill9_async()
    finally:
        broker.close()
    lines, output = broker.lines, broker.output(last=30)
    assert code == 1, output
    assert elapsed < 2 * SHORT_SESSION_MS / 1000 + 3, f"took {elapsed:.1f} s\n{output}"
    address = re.escape(closed)
    retrying = [
        i for i, line in enumerate(lines) if re.search(rf"WARNING .*{address}.*retry", line)
    ]
    failed = [
        i for i, line in enumerate(lines) if re.search(rf"ERROR .*{address}.*giving up", line)
    ]
    assert retrying, f"no line says it retries\n{output}"
    assert failed, f"no line says it gave up\n{output}"
    assert retrying[0] < failed[-1], output
    assert not tracebacks(broker), output


class Forwarder:
    """A loopback port that refuses connections until ``open()``, then forwards them."""

    def __init__(self, target: str) -> None:
        self.port = free_port()
        host, _, port = target.rpartition(":")
        self._target = (host, int(port))
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self._target)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(_pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._pipes):
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except ConnectionError:
        pass
    finally:
        sink.close()


async def test_zookeeper_coming_up_within_the_retry_window_lets_the_broker_start(
    zookeeper: ZooKeeperProcess, tmp_path: Path
) -> None:
    forwarder = Forwarder(zookeeper.address)
    broker = BrokerProcess(
        tmp_path / "patient",
        flags=flags(0, session_timeout_ms=6_000),
        env={"ZOOKEEPER_CONNECT": f"127.0.0.1:{forwarder.port}/late-zookeeper"},
    )
    try:
        starting = asyncio.create_task(broker.start_async())
        await asyncio.to_thread(broker.wait_for_line, "not reachable yet; retrying", timeout_s=5)
        await asyncio.sleep(1.0)  # a few more failed attempts
        await forwarder.open()
        await asyncio.wait_for(starting, TIMEOUT_S)
        assert broker.running
        async with Admin(broker.address) as admin:
            brokers = (await admin.describe_cluster()).brokers
        assert [(b.broker_id, b.port) for b in brokers] == [(0, broker.port)]
        assert await broker.stop_async() == 0
    finally:
        broker.close()
        await forwarder.close()
    assert not tracebacks(broker), broker.output()


# -- 3. a partition state znode written by hand with nonsense --------------------------------

NONSENSE = [
    b"\xff\xfe not even json {",
    json.dumps(
        {"version": 1, "leader": "zero", "leader_epoch": [1], "isr": "all", "controller_epoch": 1}
    ).encode(),
]


async def scrawl(cluster: Cluster, znode: StateZnode) -> None:
    """Write each piece of nonsense; every broker must log it, naming the znode."""
    for junk in NONSENSE:
        marks = [len(b.lines) for b in cluster.brokers]
        await znode.write_raw(junk)
        for broker, mark in zip(cluster.brokers, marks, strict=True):
            await asyncio.to_thread(
                broker.wait_for_line, re.escape(znode.path), timeout_s=10, since=mark
            )


async def test_a_state_znode_full_of_nonsense_is_logged_and_ignored(
    cluster: Cluster, raw_zk: KazooClient
) -> None:
    topic = "scrawled"
    await create_topic(cluster, topic, 3)
    for p in range(3):
        assert await produce(cluster.bootstrap, topic, p, [b"before-%d" % p]) == [0]
    znode = StateZnode(raw_zk, cluster, topic, 0)
    good, controller_epoch = await znode.read()

    await scrawl(cluster, znode)

    # The other partitions work, and every broker is still up.
    for p in (1, 2):
        assert await produce(cluster.bootstrap, topic, p, [b"during-%d" % p]) == [1]
        assert await consume(cluster.bootstrap, topic, p) == [b"before-%d" % p, b"during-%d" % p]
    assert all(b.running for b in cluster.brokers)

    # A valid state again, naming another leader: the brokers follow it.
    new_leader = next(b for b in good.isr if b != good.leader)
    moved = PartitionState(new_leader, good.leader_epoch + 1, good.isr)
    await znode.write(moved, controller_epoch)

    async def taken() -> bool:
        p0 = (await describe(cluster, topic))[0]
        return p0.leader == new_leader and p0.leader_epoch == moved.leader_epoch

    await wait_for(taken, f"broker {new_leader} to lead {topic}-0")
    assert await produce(cluster.bootstrap, topic, 0, [b"after-0"]) == [1]
    assert await consume(cluster.bootstrap, topic, 0) == [b"before-0", b"after-0"]
    for broker in cluster.brokers:
        assert broker.running, broker.output()
        assert not crashes(broker), f"{broker!r}\n{broker.output()}"


async def test_a_state_znode_full_of_nonsense_stops_no_failover_nor_restart(
    cluster: Cluster, raw_zk: KazooClient
) -> None:
    topic = "scrawled"
    await create_topic(cluster, topic, 3)
    znode = StateZnode(raw_zk, cluster, topic, 0)
    await scrawl(cluster, znode)

    # The leader of partition 1 stops: partition 1 gets another leader, as it would
    # without the nonsense (the stop ends its session at once: about a second).
    victim_id = (await describe(cluster, topic))[1].leader
    victim = cluster.brokers[victim_id]
    marks = [len(b.lines) for b in cluster.brokers]
    assert await victim.stop_async() == 0
    survivors = ",".join(b.address for b in cluster.brokers if b.running)

    async def failed_over() -> bool:
        async with Admin(survivors, request_timeout_ms=5_000) as admin:
            p1 = (await admin.describe_topic(topic)).partitions[1]
        return p1.leader not in (-1, victim_id)

    with contextlib.suppress(AssertionError):
        await wait_for(failed_over, f"a new leader for {topic}-1", timeout_s=8)
    stalled = [
        line
        for broker, mark in zip(cluster.brokers, marks, strict=True)
        for line in broker.lines[mark:]
        if "reconciliation failed" in line and znode.path in line
    ]
    assert not stalled, (
        f"one corrupt state znode fails the controller's whole reconciliation:\n{stalled[0]}"
    )
    assert await failed_over(), f"{topic}-1 has no new leader 8 s after broker {victim_id} stopped"
    assert await produce(survivors, topic, 1, [b"failed-over"]) == [0]

    # And it starts again, with the nonsense still there.
    await victim.start_async()
    assert await produce(cluster.bootstrap, topic, 2, [b"restarted"]) == [0]
    for broker in cluster.brokers:
        assert broker.running, broker.output()
        assert not crashes(broker), f"{broker!r}\n{broker.output()}"


# -- 4. a follower asking for offsets beyond the leader's log --------------------------------


async def test_a_follower_fetch_beyond_the_log_end_is_out_of_range_and_moves_nothing(
    cluster: Cluster,
) -> None:
    topic = "beyond"
    await create_topic(cluster, topic, 1)
    assert await produce(cluster.bootstrap, topic, 0, [b"a", b"b", b"c"]) == [0, 1, 2]
    [partition] = await describe(cluster, topic)
    leader = cluster.brokers[partition.leader]
    stopped_id = next(r for r in partition.replicas if r != partition.leader)
    stopped = cluster.brokers[stopped_id]

    async with connection(leader) as conn:
        row = await follower_fetch(conn, stopped_id, topic, 0, 1_000)
        assert row[1] == wire.OFFSET_OUT_OF_RANGE, row
        assert row[4] == 0, row
        # Nothing appended, and the leader serves as before.
        assert [v for _, v in await wire.fetch_values(conn, topic)] == [b"a", b"b", b"c"]
        assert (await wire.list_offset(conn, topic, 0, wire.LATEST))[3] == 3

        # The claim must not count as that follower's position. Freeze it (shorter
        # than its ZooKeeper session), write one record the other follower copies,
        # and claim again: the high watermark must wait for the frozen follower.
        os.kill(stopped.pid, signal.SIGSTOP)  # type: ignore[arg-type]
        try:
            await wire.produce_values(conn, topic, 0, [b"d"])  # acks=1
            await asyncio.sleep(0.5)  # the running follower fetches every 100 ms
            row = await follower_fetch(conn, stopped_id, topic, 0, 1_000)
            assert row[1] == wire.OFFSET_OUT_OF_RANGE, row
            row, _ = await wire.fetch(conn, topic, 0, 0)
            assert row[2] == 3, (
                f"the high watermark is {row[2]}: a follower fetch at offset 1000 counted as "
                f"broker {stopped_id} having offset 3, which it never fetched"
            )
        finally:
            os.kill(stopped.pid, signal.SIGCONT)  # type: ignore[arg-type]

        async def caught_up() -> bool:
            row, _ = await wire.fetch(conn, topic, 0, 0)
            return row[2] == 4

        await wait_for(caught_up, "the high watermark to reach 4 once the follower is back")
    assert all(b.running for b in cluster.brokers)


# -- 5. a client producing to a follower -----------------------------------------------------


async def test_a_produce_to_a_follower_is_refused_and_appends_nothing(
    cluster: Cluster, raw_zk: KazooClient, caplog: pytest.LogCaptureFixture
) -> None:
    topic = "misrouted"
    await create_topic(cluster, topic, 1)
    assert await produce(cluster.bootstrap, topic, 0, [b"good-0"]) == [0]
    [partition] = await describe(cluster, topic)
    followers = [r for r in partition.replicas if r != partition.leader]

    for acks, follower_id in zip((1, -1), followers, strict=True):
        async with connection(cluster.brokers[follower_id]) as conn:
            row = await wire.produce(conn, topic, 0, build_batch([b"misrouted"]), acks=acks)
        assert row[1] == NOT_LEADER_OR_FOLLOWER, row
        assert row[2] == -1, row

    # A producer whose metadata went stale: leadership moves (as the controller would
    # move it) after the producer learnt the old leader; it is refused, refreshes, delivers.
    znode = StateZnode(raw_zk, cluster, topic, 0)
    async with Producer(
        cluster.bootstrap, acks="all", request_timeout_ms=5_000, delivery_timeout_ms=15_000
    ) as producer:
        first = await producer.send(topic, b"good-1", partition=0)
        assert (await asyncio.wait_for(first, TIMEOUT_S)).offset == 1
        state, controller_epoch = await znode.read()
        new_leader = followers[0]
        await znode.write(
            PartitionState(new_leader, state.leader_epoch + 1, state.isr), controller_epoch
        )
        old_leader = cluster.brokers[partition.leader]

        async def stepped_down() -> bool:
            async with connection(old_leader) as conn:
                row, _ = await wire.fetch(conn, topic, 0, 0)
            return row[1] == NOT_LEADER_OR_FOLLOWER

        await wait_for(stepped_down, f"broker {partition.leader} to stop leading")
        with caplog.at_level(logging.DEBUG, logger="client.producer.sender"):
            second = await producer.send(topic, b"good-2", partition=0)
            assert (await asyncio.wait_for(second, TIMEOUT_S)).offset == 2
    retried = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert any("NOT_LEADER_OR_FOLLOWER" in m for m in retried), retried

    # Nothing refused was appended anywhere: the new leader serves the three good
    # records, and every replica holds exactly them on disk.
    async with connection(cluster.brokers[new_leader]) as conn:
        served = [v for _, v in await wire.fetch_values(conn, topic)]
    assert served == [b"good-0", b"good-1", b"good-2"]
    for broker in cluster.brokers:
        assert await broker.stop_async() == 0
    expected = [(0, b"good-0"), (1, b"good-1"), (2, b"good-2")]
    for broker_id, broker in enumerate(cluster.brokers):
        assert disk_values(broker, topic, 0) == expected, f"broker {broker_id}"
