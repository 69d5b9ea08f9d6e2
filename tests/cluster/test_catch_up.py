"""Catch-up of a broker whose disk was wiped, with real processes: a ZooKeeper and three
brokers on loopback.

A broker is killed (-9) and its whole data directory deleted: its segments, its
leader-epoch checkpoints, its partition checkpoints and clean-shutdown markers all go.
Restarted with the same id, it must recreate its replicas, fetch everything from the
leaders and rejoin every ISR. Then it leads: first its preferred partition (a
preferred-leader election, with every broker up, so ``min.insync.replicas`` 2 still
holds and ``acks=all`` writes go on), then every partition, once the two other brokers
have been killed one at a time (each time the controller elects from the ISR, and the
wiped broker is in it). Every acknowledged record is read back from it alone at the
offset it was acknowledged at, and its replicas equal the others' up to the high
watermark.
"""

from __future__ import annotations

import asyncio
import shutil
import time

from client import Admin
from coordination import PartitionState
from logserver.log import PartitionLog
from tests.cluster import fault_history
from tests.cluster.conftest import Cluster
from tests.cluster.fault_history import Send
from tests.cluster.test_faults import (
    HEAL_TIMEOUT_S,
    PARTITIONS,
    REQUEST_TIMEOUT_MS,
    SESSION_TIMEOUT_S,
    TOPIC,
    TOPIC_CONFIG,
    Run,
    read_everything,
    read_replicas,
    zookeeper_states,
)
from tests.cluster.test_replication import produce

RECORDS = 3000
MORE_RECORDS = 300
PADDING = b"." * 100
SEGMENT_BYTES = 32 * 1024  # a few segments per replica to fetch, not one
CATCH_UP_TIMEOUT_S = 30.0
FAILOVER_TIMEOUT_S = 3 * SESSION_TIMEOUT_S + 5


def as_sends(acknowledged: dict[bytes, tuple[int, int]]) -> list[Send]:
    return [Send(value, position) for value, position in acknowledged.items()]


async def leaders(bootstrap: str) -> list[int]:
    async with Admin(bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS) as admin:
        described = (await admin.describe_topics([TOPIC]))[TOPIC]
    return [p.leader for p in described.partitions]


def epoch_caches(cluster: Cluster) -> dict[int, dict[int, list[tuple[int, int]]]]:
    """partition → broker → its leader-epoch cache ``(epoch, start offset)``, from disk."""
    caches: dict[int, dict[int, list[tuple[int, int]]]] = {p: {} for p in range(PARTITIONS)}
    for broker_id, broker in enumerate(cluster.brokers):
        assert not broker.running, f"broker {broker_id} still runs"
        for partition in range(PARTITIONS):
            with PartitionLog.open(broker.data_dir / f"{TOPIC}-{partition}") as partition_log:
                entries = partition_log.leader_epochs.entries
            caches[partition][broker_id] = [(e.epoch, e.start_offset) for e in entries]
    return caches


async def create_and_fill(run: Run) -> dict[bytes, tuple[int, int]]:
    """The topic (small segments), and ``RECORDS`` records acknowledged with acks=all."""
    async with Admin(run.bootstrap(), request_timeout_ms=10_000) as admin:
        config = {**TOPIC_CONFIG, "segment.bytes": str(SEGMENT_BYTES)}
        await admin.create_topic(TOPIC, PARTITIONS, 3, config)
    await run.wait(run.full_isr, "a full ISR after creating the topic", HEAL_TIMEOUT_S)
    values = [b"v%d%s" % (i, PADDING) for i in range(RECORDS)]
    acknowledged = await produce(run.bootstrap(), TOPIC, values)
    run.note(f"{len(acknowledged)} records acknowledged (acks=all)")
    return acknowledged


async def kill_and_wipe(run: Run, victim: int) -> None:
    await run.kill(victim)
    shutil.rmtree(run.brokers[victim].data_dir)
    run.note(f"deleted {run.brokers[victim].data_dir}")


async def test_a_broker_whose_disk_was_wiped_catches_up_and_leads(cluster: Cluster) -> None:
    run = Run(cluster)
    first = await create_and_fill(run)
    controller = await run.controller()
    victim = next(b for b in range(len(run.brokers)) if b != controller)
    wiped = run.brokers[victim]
    await kill_and_wipe(run, victim)
    started = time.monotonic()
    await run.start(victim)  # it registers once its old session has expired
    try:
        await run.wait(
            lambda: run.in_every_isr(victim), f"broker {victim} in every ISR", CATCH_UP_TIMEOUT_S
        )
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{run.explain()}") from None
    caught_up_s = time.monotonic() - started
    run.note(f"broker {victim} back in every ISR {caught_up_s:.1f} s after its restart")
    recreated = sorted(p.name for p in wiped.data_dir.iterdir() if p.is_dir())
    assert recreated == [f"{TOPIC}-{p}" for p in range(PARTITIONS)], recreated
    segments = [len(list((wiped.data_dir / name).glob("*.log"))) for name in recreated]
    run.note(f"broker {victim} fetched {segments} segments")
    assert min(segments) > 1, segments
    description = await run.describe()
    assert all(len(p.isr) == 3 for p in description.partitions), description

    # Its preferred partition comes back to it, with every broker up.
    preferred = [p.partition for p in description.partitions if p.replicas[0] == victim]
    assert preferred, f"broker {victim} is no partition's preferred leader: {description}"
    async with Admin(run.bootstrap(), request_timeout_ms=REQUEST_TIMEOUT_MS) as admin:
        elected = await admin.elect_leaders([TOPIC])
    run.note(f"preferred-leader election: {elected}")

    async def leads_preferred() -> bool:
        led = await leaders(run.bootstrap())
        return all(led[p] == victim for p in preferred)

    await run.wait(leads_preferred, f"broker {victim} leading {preferred}", HEAL_TIMEOUT_S)
    run.note(f"broker {victim} leads partitions {preferred}")
    second = await produce(run.bootstrap(), TOPIC, [b"w%d" % i for i in range(MORE_RECORDS)])
    assert {second[v][0] for v in second} >= set(preferred), "nothing written to its partition"

    # Then every partition: the two other brokers killed one at a time.
    survivors = {b for b in range(len(run.brokers)) if b != victim}
    for other in sorted(survivors, key=lambda b: b == controller):  # the controller last
        await run.kill(other)
        survivors.discard(other)
        alive = {victim, *survivors}

        async def moved(alive: set[int] = alive) -> bool:
            return all(leader in alive for leader in await leaders(run.bootstrap()))

        await run.wait(moved, f"leaders among {sorted(alive)}", FAILOVER_TIMEOUT_S)
        run.note(f"leaders {await leaders(run.bootstrap())}")
    assert await leaders(wiped.address) == [victim] * PARTITIONS

    reads, high_watermarks = await read_everything(wiped.address)
    run.note(f"read {sum(map(len, reads.values()))} records from broker {victim} alone")
    assert sum(high_watermarks.values()) == RECORDS + MORE_RECORDS, high_watermarks
    code = await wiped.stop_async()
    replicas = await asyncio.to_thread(read_replicas, cluster)
    report = fault_history.check(as_sends({**first, **second}), reads, replicas, high_watermarks)
    run.note(report.summary())
    assert not report.problems, run.explain(report)
    # It learnt the leader epochs from the batches it fetched: its cache is the others'.
    caches = await asyncio.to_thread(epoch_caches, cluster)
    differ = {p: c for p, c in caches.items() if len({tuple(e) for e in c.values()}) != 1}
    assert not differ, f"leader-epoch caches differ: {differ}"
    # No crash on what the wipe took (leader-epoch checkpoints, clean-shutdown markers).
    assert (code, wiped.tracebacks(), run.health()) == (0, [], []), run.explain(report)


async def test_a_wiped_broker_does_not_lead_before_it_has_caught_up(cluster: Cluster) -> None:
    """The wiped broker registers again and is frozen (SIGSTOP) before it has fetched its
    replicas; then the two brokers that hold the data are killed. Resumed, it is the only
    live replica of every partition, with an empty log and in no ISR: with unclean leader
    election off (the default) the partitions go offline rather than to it. Once the others
    are back it catches up, and nothing acknowledged is lost."""
    run = Run(cluster)
    acknowledged = await create_and_fill(run)
    controller = await run.controller()
    victim = next(b for b in range(len(run.brokers)) if b != controller)
    others = [b for b in range(len(run.brokers)) if b != victim]
    wiped = run.brokers[victim]
    await kill_and_wipe(run, victim)

    async def states() -> list[PartitionState]:
        return await asyncio.to_thread(zookeeper_states, cluster.connect)

    async def out_of_every_isr() -> bool:
        return all(victim not in s.isr for s in await states())

    await run.wait(out_of_every_isr, f"broker {victim} out of every ISR", FAILOVER_TIMEOUT_S)
    mark = len(wiped.lines)
    starting = asyncio.create_task(run.start(victim))
    try:
        await asyncio.to_thread(
            wiped.wait_for_line, rf"broker {victim} registered at", timeout_s=20, since=mark
        )
        run.pause(victim)  # registered, but (almost certainly) nothing fetched yet
        before = await states()
        assert all(victim not in s.isr for s in before), (
            f"in an ISR already: {before}\n{run.explain()}"
        )
        for other in others:
            await run.kill(other)
    finally:
        run.resume(victim)
        await asyncio.wait_for(starting, 30)

    async def offline() -> bool:
        return all(s.leader == -1 for s in await states())

    try:
        await run.wait(offline, "every partition offline", FAILOVER_TIMEOUT_S)
    except AssertionError as exc:
        raise AssertionError(f"{exc}: {await states()}\n{run.explain()}") from None
    seen: list[list[PartitionState]] = []
    led: list[list[int]] = []
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # and they stay offline
        seen.append(await states())
        led.append(await leaders(wiped.address))
        await asyncio.sleep(0.25)
    run.note(f"offline: {seen[-1]}; broker {victim} names leaders {led[-1]}")
    assert all(s.leader == -1 for found in seen for s in found), seen
    assert all(leader == -1 for found in led for leader in found), led

    await asyncio.gather(*(run.start(other) for other in others))
    await run.wait(run.full_isr, "every ISR full again", CATCH_UP_TIMEOUT_S)
    run.note(f"every ISR full; leaders {await leaders(run.bootstrap())}")
    reads, high_watermarks = await read_everything(run.bootstrap())
    await run.stop_all()
    replicas = await asyncio.to_thread(read_replicas, cluster)
    report = fault_history.check(as_sends(acknowledged), reads, replicas, high_watermarks)
    run.note(report.summary())
    assert not report.problems, run.explain(report)
    assert sum(high_watermarks.values()) == RECORDS, high_watermarks
    assert (wiped.tracebacks(), run.health()) == ([], []), run.explain(report)
