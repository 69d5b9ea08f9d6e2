"""ISR shrink and expand with real processes: a ZooKeeper and three brokers on loopback.

``test_pause_a_follower`` (test_faults.py) SIGSTOPs a follower under load and checks the
history afterwards. This test watches the ISR itself, as clients see it (Metadata) and
as ZooKeeper has it: a follower that stops fetching leaves the ISR once
``replica.lag.time.max.ms`` has passed (and not before), ``acks=all`` writes go on with
the two replicas left, and the follower rejoins once it has caught up, with its log then
equal to the leader's up to the high watermark.

The brokers' ZooKeeper sessions outlive the pause here, so the paused broker stays
registered: the ISR shrinks because its leader saw it lag, not because the controller saw
it die.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from client import Admin, Producer
from client.producer.record_metadata import RecordFuture
from tests.cluster import fault_history
from tests.cluster.conftest import CLUSTER_FLAGS, Cluster
from tests.cluster.fault_history import Send
from tests.cluster.test_faults import (
    REQUEST_TIMEOUT_MS,
    TOPIC,
    Run,
    read_everything,
    read_replicas,
    zookeeper_states,
)
from tests.support.zookeeper_process import ZooKeeperProcess

LAG_S = int(CLUSTER_FLAGS[CLUSTER_FLAGS.index("--replica-lag-time-max-ms") + 1]) / 1000
ISR_CHECK_PERIOD_S = LAG_S / 2  # how often a leader looks for laggards (Broker._isr_loop)
SESSION_TIMEOUT_MS = 30_000  # longer than the pause: the paused broker stays registered
SHRINK_MARGIN_S = 2.5  # a ZooKeeper write, then the other brokers' watches and Metadata
EXPAND_TIMEOUT_S = 15.0
SEND_INTERVAL_S = 0.02
PAUSED_AFTER_SHRINK_S = 2.0


@pytest.fixture
async def cluster(zookeeper: ZooKeeperProcess, tmp_path: Path) -> AsyncIterator[Cluster]:
    running = Cluster(zookeeper, tmp_path)
    for broker in running.brokers:
        broker.flags += ["--zookeeper-session-timeout-ms", str(SESSION_TIMEOUT_MS)]
    try:
        await running.start()
        yield running
    finally:
        running.close()


class Writer:
    """acks=all writes of unique values to one partition, every ``SEND_INTERVAL_S``, each
    with the time it was sent and the time it was acknowledged (or its error)."""

    def __init__(self, bootstrap: str, partition: int) -> None:
        self.partition = partition
        self.sent: list[tuple[bytes, float, RecordFuture]] = []
        self.acked_at: dict[bytes, float] = {}
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(bootstrap), name="isr-writer")

    async def _run(self, bootstrap: str) -> None:
        async with Producer(
            bootstrap,
            acks="all",
            linger_ms=2,
            request_timeout_ms=REQUEST_TIMEOUT_MS,
            delivery_timeout_ms=60_000,
        ) as producer:
            while not self._stop.is_set():
                value = b"isr-%d" % len(self.sent)
                future = await producer.send(TOPIC, value, key=value, partition=self.partition)
                future.add_done_callback(lambda _, v=value: self._acked(v))  # type: ignore[misc]
                self.sent.append((value, time.monotonic(), future))
                await asyncio.sleep(SEND_INTERVAL_S)
            # close() waits for every send in flight

    def _acked(self, value: bytes) -> None:
        self.acked_at[value] = time.monotonic()

    def sent_between(self, start: float, end: float) -> list[tuple[bytes, float]]:
        return [(v, t) for v, t, _ in self.sent if start <= t <= end]

    async def stop(self) -> list[Send]:
        self._stop.set()
        await asyncio.wait_for(self._task, 70)
        sends = []
        for value, _, future in self.sent:
            error = future.exception()
            if error is None:
                metadata = future.result()
                sends.append(Send(value, (metadata.partition, metadata.offset)))
            else:
                sends.append(Send(value, error=str(getattr(error, "name", error))))
        return sends

    async def abort(self) -> None:
        self._stop.set()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def isrs(bootstrap: str) -> dict[int, tuple[int, tuple[int, ...]]]:
    """partition → (leader epoch, ISR), from Metadata."""
    async with Admin(bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS) as admin:
        described = (await admin.describe_topics([TOPIC]))[TOPIC]
    return {p.partition: (p.leader_epoch, tuple(sorted(p.isr))) for p in described.partitions}


async def zookeeper_isrs(connect: str) -> dict[int, tuple[int, tuple[int, ...]]]:
    """The same, as ZooKeeper has it."""
    states = await asyncio.to_thread(zookeeper_states, connect)
    return {p: (s.leader_epoch, tuple(sorted(s.isr))) for p, s in enumerate(states)}


async def registered(bootstrap: str) -> list[int]:
    async with Admin(bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS) as admin:
        return [b.broker_id for b in (await admin.describe_cluster()).brokers]


async def test_a_paused_follower_leaves_the_isr_after_the_lag_time_and_rejoins(
    cluster: Cluster,
) -> None:
    run = Run(cluster)
    await run.create_topic()
    description = await run.describe()
    p0 = description.partitions[0]
    controller = await run.controller()
    followers = [r for r in p0.replicas if r != p0.leader]
    victim = next((r for r in followers if r != controller), followers[0])
    healthy = next(r for r in followers if r != victim)
    # Partitions the victim follows (it leads one: that one just stalls while it is paused).
    followed = [p.partition for p in description.partitions if p.leader != victim]
    # Asked of the two brokers that are never paused: a broker's Metadata is what its watches
    # told it, and a paused broker's stays as it was until it runs again.
    others = ",".join(b.address for i, b in enumerate(cluster.brokers) if i != victim)
    before = await isrs(others)
    assert all(isr == (0, 1, 2) for _, isr in before.values()), before
    run.note(f"partition 0: leader {p0.leader}, victim {victim}, controller {controller}")

    writer = Writer(others, 0)
    seen: list[tuple[float, dict[int, tuple[int, tuple[int, ...]]]]] = []
    try:
        await asyncio.sleep(1.5)
        run.pause(victim)
        paused_at = time.monotonic()

        async def shrunk() -> bool:
            now = await isrs(others)
            seen.append((time.monotonic() - paused_at, now))
            return all(victim not in now[p][1] for p in followed)

        await run.wait(shrunk, f"broker {victim} out of the ISRs", LAG_S + 10)
        shrunk_after = seen[-1][0]
        shrunk_at = paused_at + shrunk_after
        run.note(f"ISRs without broker {victim} after {shrunk_after:.1f} s: {seen[-1][1]}")
        zk_shrunk = await zookeeper_isrs(cluster.connect)
        still_registered = await registered(others)

        await asyncio.sleep(PAUSED_AFTER_SHRINK_S)  # acks=all writes go on with two replicas
        run.resume(victim)
        resumed_at = time.monotonic()

        async def expanded() -> bool:
            if any(isr != (0, 1, 2) for _, isr in (await zookeeper_isrs(cluster.connect)).values()):
                return False
            now = await isrs(others)
            seen.append((time.monotonic() - paused_at, now))
            return all(isr == (0, 1, 2) for _, isr in now.values())

        await run.wait(expanded, f"broker {victim} back in every ISR", EXPAND_TIMEOUT_S)
        expanded_after = time.monotonic() - resumed_at
        run.note(f"every ISR full {expanded_after:.1f} s after SIGCONT: {seen[-1][1]}")
        await asyncio.sleep(1.0)  # writes with the victim back in the ISR
        sends = await writer.stop()
    except BaseException:
        await writer.abort()
        run.resume(victim)
        raise
    run.note(f"{len(sends)} acks=all writes to partition 0")

    # The ISR shrank once the lag time had passed, not before and not much later.
    early = [(round(t, 1), s) for t, s in seen if t < LAG_S - 0.5 and victim not in s[0][1]]
    assert not early, f"broker {victim} left the ISR before the lag time: {early}"
    bound = LAG_S + ISR_CHECK_PERIOD_S + SHRINK_MARGIN_S
    assert shrunk_after <= bound, f"ISR shrank after {shrunk_after:.1f} s (> {bound} s)"
    # ... to exactly the two others, in ZooKeeper too, by the same leader in the same epoch;
    # the healthy follower never left, and the paused broker stayed registered throughout.
    two = tuple(sorted({0, 1, 2} - {victim}))
    assert all(zk_shrunk[p] == (before[p][0], two) for p in followed), (zk_shrunk, before)
    assert all(healthy in s[0][1] for _, s in seen), f"broker {healthy} left the ISR: {seen}"
    assert all(s[0][0] == before[0][0] for _, s in seen), f"partition 0 changed epoch: {seen}"
    assert still_registered == [0, 1, 2], still_registered

    # acks=all writes kept succeeding: every one acknowledged, and those sent with the ISR at
    # two were acknowledged while the victim was still paused.
    failed = [s for s in sends if not s.acknowledged]
    assert not failed, f"{len(failed)} acks=all writes failed, e.g. {failed[:3]}"
    with_two = writer.sent_between(shrunk_at, resumed_at - 1.0)
    assert with_two, "no write was sent while the ISR had two replicas"
    late = [
        (v, round(writer.acked_at[v] - t, 2))
        for v, t in with_two
        if writer.acked_at[v] > resumed_at
    ]
    assert not late, f"writes with the ISR at two waited for the paused follower: {late[:5]}"
    assert expanded_after <= EXPAND_TIMEOUT_S

    # Every acknowledged write is where it was acknowledged, and the replicas are identical
    # up to the high watermark (read from disk with the brokers stopped).
    reads, high_watermarks = await read_everything(run.bootstrap())
    await run.stop_all()
    replicas = await asyncio.to_thread(read_replicas, cluster)
    report = fault_history.check(sends, reads, replicas, high_watermarks)
    run.note(report.summary())
    assert not report.problems, run.explain(report)
    assert len(replicas[victim][0]) >= high_watermarks[0] > 0, run.explain(report)
    assert not run.health(), run.explain(report)
