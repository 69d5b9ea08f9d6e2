"""A 3-node ZooKeeper ensemble losing one node, with real processes: three ZooKeeper
servers and three brokers on loopback, the brokers' ``ZOOKEEPER_CONNECT`` naming every
server (and a chroot).

While producers write unique values with ``acks=all`` (the fault suite's workload) and a
consumer tails every partition, one ZooKeeper server is killed (-9): first a follower (the
one most brokers talk to), which comes back; then the ZooKeeper leader, which stays dead;
then, with two servers left, the leader of a partition (a broker that is not the
controller). After each fault the brokers stay registered, writes are still acknowledged
and the consumer still reads, and after the broker kill the controller elects another
leader. At the end every send was acknowledged (the producers' retries hid every
fault), nothing acknowledged is lost or moved, what the consumer saw while it tailed is
what the log holds, and the replicas are identical up to the high watermark.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from client import Admin, Consumer, TopicPartition
from coordination.zk_paths import BROKER_IDS
from tests.cluster import fault_history
from tests.cluster.conftest import Cluster
from tests.cluster.test_faults import (
    PARTITIONS,
    REQUEST_TIMEOUT_MS,
    SESSION_TIMEOUT_S,
    TOPIC,
    Run,
    Workload,
    read_everything,
    read_replicas,
)
from tests.support.zookeeper_process import (
    ZooKeeperEnsemble,
    ZooKeeperNotInstalledError,
    ZooKeeperProcess,
)

log = logging.getLogger(__name__)

ENSEMBLE_START_TIMEOUT_S = 30.0
QUORUM_TIMEOUT_S = 20.0
PROGRESS_RECORDS = 100  # the consumer reads this many more after each fault ...
PROGRESS_TIMEOUT_S = 20.0  # ... within this
FAILOVER_TIMEOUT_S = 3 * SESSION_TIMEOUT_S + 5
DEAD_FOR_S = SESSION_TIMEOUT_S + 1  # a broker that did not reconnect would have lost its session
RUN_AFTER_FAULT_S = 3.0
NEW_SESSION = re.compile(r"session expired|registered again in a new session")
DROPPED = re.compile(r"zookeeper connection .* lost")


@pytest.fixture
async def ensemble(tmp_path: Path) -> AsyncIterator[ZooKeeperEnsemble]:
    servers = ZooKeeperEnsemble(tmp_path / "zookeeper", startup_timeout_s=ENSEMBLE_START_TIMEOUT_S)
    try:
        await asyncio.to_thread(servers.start)
    except ZooKeeperNotInstalledError as exc:
        servers.close()
        pytest.fail(str(exc), pytrace=False)
    try:
        yield servers
    finally:
        servers.close()


@pytest.fixture
async def cluster(ensemble: ZooKeeperEnsemble, tmp_path: Path) -> AsyncIterator[Cluster]:
    running = Cluster(ensemble, tmp_path)
    try:
        await running.start()
        yield running
    finally:
        running.close()


class Tail:
    """A consumer reading every partition from the start as long as the test runs."""

    def __init__(self, bootstrap: str) -> None:
        self.records: list[tuple[int, int, bytes]] = []  # (partition, offset, value)
        self.errors: list[str] = []
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(bootstrap), name="tail")

    async def _run(self, bootstrap: str) -> None:
        async with Consumer(
            bootstrap, auto_offset_reset="earliest", request_timeout_ms=REQUEST_TIMEOUT_MS
        ) as consumer:
            consumer.assign([TopicPartition(TOPIC, p) for p in range(PARTITIONS)])
            while not self._stop.is_set():
                try:
                    polled = await consumer.poll(timeout_ms=200)
                except Exception as exc:  # noqa: BLE001 (recorded: the test fails on any)
                    self.errors.append(f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(0.2)
                    continue
                for tp, records in polled.items():
                    self.records += [(tp.partition, r.offset, r.value or b"") for r in records]

    async def progress(self, count: int, timeout_s: float) -> float:
        """Wait until ``count`` more records have been read; the seconds it took."""
        started = time.monotonic()
        target = len(self.records) + count
        while len(self.records) < target:
            if self._task.done():
                self._task.result()
                raise AssertionError("the consumer stopped")
            if time.monotonic() - started > timeout_s:
                raise AssertionError(
                    f"the consumer read {len(self.records) - target + count} records in "
                    f"{timeout_s} s, not {count} (errors: {self.errors[-3:]})"
                )
            await asyncio.sleep(0.1)
        return time.monotonic() - started

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.wait_for(self._task, 15)


def registered_in_zookeeper(connect: str) -> list[int]:
    client = KazooClient(hosts=connect, timeout=10)
    client.start(timeout=10)
    try:
        return sorted(int(child) for child in client.get_children(BROKER_IDS))
    finally:
        client.stop()
        client.close()


def client_connections(server: ZooKeeperProcess) -> int:
    """Client connections the server has (``cons``), less the one asking."""
    answer = server.four_letter_word("cons")
    return sum(1 for line in answer.splitlines() if line.strip().startswith("/")) - 1


async def assert_brokers_registered(run: Run, what: str) -> None:
    in_zookeeper = await asyncio.to_thread(registered_in_zookeeper, run.cluster.connect)
    async with Admin(run.bootstrap(), request_timeout_ms=REQUEST_TIMEOUT_MS) as admin:
        described = await admin.describe_cluster()
    listed = [b.broker_id for b in described.brokers]
    run.note(f"{what}: registered {in_zookeeper}, Metadata lists {listed}")
    expected = [i for i, b in enumerate(run.brokers) if b.running]
    assert in_zookeeper == listed == expected, run.explain()


async def test_brokers_ride_through_the_loss_of_a_zookeeper_server(
    ensemble: ZooKeeperEnsemble, cluster: Cluster
) -> None:
    run = Run(cluster)
    await run.create_topic()
    await assert_brokers_registered(run, "at the start")
    workload = Workload(run.bootstrap())
    tail = Tail(run.bootstrap())
    run.note("workload and consumer started")
    failovers: dict[str, float] = {}
    try:
        took = await tail.progress(PROGRESS_RECORDS, PROGRESS_TIMEOUT_S)
        run.note(f"consumer progressing ({took:.1f} s for {PROGRESS_RECORDS} records)")

        # 1. A ZooKeeper follower: the one with the most clients.
        leader = await asyncio.to_thread(ensemble.wait_for_quorum, QUORUM_TIMEOUT_S)
        followers = [m for m in ensemble.members if m is not leader]
        counts = {m.server_id: await asyncio.to_thread(client_connections, m) for m in followers}
        victim = max(followers, key=lambda m: counts[m.server_id])
        run.note(f"ZooKeeper leader {leader.server_id}; clients per follower {counts}")
        run.note(f"kill -9 ZooKeeper follower {victim.server_id}")
        await asyncio.to_thread(victim.kill)
        failovers["zookeeper follower"] = await tail.progress(PROGRESS_RECORDS, PROGRESS_TIMEOUT_S)
        await asyncio.sleep(DEAD_FOR_S)
        await assert_brokers_registered(run, f"ZooKeeper {victim.server_id} dead")
        await asyncio.to_thread(victim.start)
        await asyncio.to_thread(ensemble.wait_for_quorum, QUORUM_TIMEOUT_S)
        run.note(f"ZooKeeper {victim.server_id} back as a {victim.mode}")

        # 2. The ZooKeeper leader, for good.
        leader = await asyncio.to_thread(ensemble.wait_for_quorum, QUORUM_TIMEOUT_S)
        run.note(f"kill -9 ZooKeeper leader {leader.server_id}")
        killed_at = time.monotonic()
        await asyncio.to_thread(leader.kill)
        new_leader = await asyncio.to_thread(ensemble.wait_for_quorum, QUORUM_TIMEOUT_S)
        run.note(
            f"ZooKeeper {new_leader.server_id} leads after {time.monotonic() - killed_at:.1f} s"
        )
        failovers["zookeeper leader"] = await tail.progress(PROGRESS_RECORDS, PROGRESS_TIMEOUT_S)
        await asyncio.sleep(DEAD_FOR_S)
        await assert_brokers_registered(run, f"ZooKeeper {leader.server_id} dead")
        # Registered all along: every broker kept its session (kazoo moved it to a live server).
        renewed = {
            i: [line for line in b.lines if NEW_SESSION.search(line)]
            for i, b in enumerate(run.brokers)
        }
        assert not any(renewed.values()), f"sessions lost: {renewed}\n{run.explain()}"
        # ... though each had its connection cut (a ZooKeeper leader's death cuts every one).
        dropped = [i for i, b in enumerate(run.brokers) if any(map(DROPPED.search, b.lines))]
        assert dropped == [0, 1, 2], f"only brokers {dropped} lost their connection"

        # 3. With two ZooKeeper servers left, a partition leader that is not the controller.
        controller = await run.controller()
        description = await run.describe()
        partition = next(p for p in description.partitions if p.leader != controller)
        broker = partition.leader
        await run.kill(broker)
        killed_at = time.monotonic()

        async def moved() -> bool:
            now = (await run.describe()).partitions[partition.partition]
            return now.leader not in (-1, broker) and now.leader_epoch > partition.leader_epoch

        await run.wait(
            moved, f"a new leader for partition {partition.partition}", FAILOVER_TIMEOUT_S
        )
        moved_after = time.monotonic() - killed_at
        now = (await run.describe()).partitions[partition.partition]
        run.note(
            f"partition {partition.partition}: broker {now.leader} leads (epoch "
            f"{now.leader_epoch}) {moved_after:.1f} s after broker {broker} was killed"
        )
        failovers["broker"] = await tail.progress(PROGRESS_RECORDS, PROGRESS_TIMEOUT_S)
        await run.start(broker)  # serving once registered, its old session expired
        await assert_brokers_registered(run, f"broker {broker} back")
        await asyncio.sleep(RUN_AFTER_FAULT_S)

        sends = await workload.stop()
        await tail.stop()
    except BaseException:
        await workload.abort()
        await asyncio.gather(tail.stop(), return_exceptions=True)
        log.error("the run failed:\n%s", run.explain())
        raise
    run.note(f"workload stopped: {len(sends)} sends; consumer read {len(tail.records)}")
    took = {fault: round(seconds, 1) for fault, seconds in failovers.items()}
    run.note(f"seconds for the consumer to read {PROGRESS_RECORDS} more after each fault: {took}")

    await run.heal()
    reads, high_watermarks = await read_everything(run.bootstrap())
    await run.stop_all()
    replicas = await asyncio.to_thread(read_replicas, cluster)
    report = fault_history.check(sends, reads, replicas, high_watermarks)
    run.note(report.summary())
    assert not report.problems, run.explain(report)
    failed = [s for s in sends if not s.acknowledged]
    assert not failed, f"{len(failed)} sends failed, e.g. {failed[:3]}\n{run.explain(report)}"
    assert not tail.errors, f"the consumer saw errors: {tail.errors[:5]}"
    final = {(p, o): v for p, records in reads.items() for o, v in records}
    changed = [(p, o, v, final.get((p, o))) for p, o, v in tail.records if final.get((p, o)) != v]
    assert not changed, f"the consumer read values the log does not hold: {changed[:5]}"
    assert not run.health(), run.explain(report)
