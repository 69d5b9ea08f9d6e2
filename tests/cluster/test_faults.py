"""Jepsen-style fault tests: a real ZooKeeper, three real brokers, concurrent producers, faults.

Each test runs the same workload: a topic of 3 partitions, replication factor
3, ``min.insync.replicas`` 2; three asyncio producers (acks=all, retries on,
``delivery_timeout_ms`` 60 s, ``request_timeout_ms`` 5 s) send unique values
(producer id + sequence, keyed by themselves) while a nemesis hurts the
cluster: kill -9 a leader, SIGSTOP a follower, kill the controller, expire a
broker's ZooKeeper session, restart every broker in turn, or all of it (plus a
ZooKeeper pause) in the combined test. Every send's outcome is recorded.

Then the cluster heals (every broker up, every ISR full, bounded waits), every
partition is read from offset 0 to its end, the brokers are stopped cleanly
and every replica's log is opened from disk. ``tests/cluster/fault_history.py``
checks the history: nothing acknowledged lost or moved, no value in two
partitions or twice without a retry, nothing refused before append visible,
and replicas identical below the high watermark.

``FAULT_SEED`` picks the victims of the combined test (the seed is in every
failure message); ``-o log_cli=true --log-cli-level=INFO`` shows each run's
timeline and summary.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import re
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from client import Admin, Consumer, Producer, TopicPartition
from client.admin_types import PartitionDescription, TopicDescription
from client.errors import LogServerError
from client.producer.record_metadata import RecordFuture
from coordination import PartitionState
from coordination.zk_paths import CONTROLLER, decode_controller, decode_state, state_path
from logserver.append_notifier import AppendNotifier
from logserver.log import PartitionLog
from logserver.replication.replica_fetcher import ReplicaFetcher
from logserver.replication.replica_manager import ReplicaManager
from tests.cluster import fault_history
from tests.cluster.conftest import Cluster
from tests.cluster.fault_history import Reads, ReplicaLogs, Report, Send
from tests.support.batches import make_batch
from tests.support.broker_process import BrokerProcess
from tests.support.zookeeper_process import ZooKeeperProcess

log = logging.getLogger(__name__)

TOPIC = "faults"
PARTITIONS = 3
TOPIC_CONFIG = {"min.insync.replicas": "2"}
SESSION_TIMEOUT_S = 4.0  # --zookeeper-session-timeout-ms in CLUSTER_FLAGS
REQUEST_TIMEOUT_MS = 5_000
DELIVERY_TIMEOUT_MS = 60_000
SEND_INTERVAL_S = 0.01  # per producer
PRODUCERS = 3
HEAL_TIMEOUT_S = 30.0
RESCUE_TIMEOUT_S = 15.0
RESCUE_ROUNDS = 3
STOP_GRACE_S = 2.5
READ_TIMEOUT_S = 30.0
SEED = int(os.environ.get("FAULT_SEED", "1729"))
_FAILED_TASK = re.compile(r"background task .* failed|replica-fetcher-\d+ failed")


# -- the cluster under test, and the faults --------------------------------------------------


class Run:
    """One fault run: the cluster, what the nemesis did (a timeline), and how to undo it."""

    def __init__(self, cluster: Cluster, zookeeper: ZooKeeperProcess | None = None) -> None:
        self.cluster = cluster
        self.zookeeper = zookeeper
        self.paused: set[int] = set()
        self.starting: set[int] = set()
        self.unclean_exits: list[tuple[int, int]] = []
        self._serving_lines: list[int] | None = None
        self.rescues = 0
        self.faults = 0  # kills, pauses, clean stops, ZooKeeper pauses
        self.timeline: list[str] = []
        self._t0 = time.monotonic()

    @property
    def brokers(self) -> list[BrokerProcess]:
        return self.cluster.brokers

    def note(self, what: str) -> None:
        entry = f"{time.monotonic() - self._t0:6.1f} s  {what}"
        self.timeline.append(entry)
        log.info("%s", entry)

    def bootstrap(self) -> str:
        """Brokers that serve: running, not paused (it would stall a client), not starting."""
        return ",".join(
            b.address
            for i, b in enumerate(self.brokers)
            if b.running and i not in self.paused and i not in self.starting
        )

    async def describe(self) -> TopicDescription:
        """The topic as Metadata and its leaders see it, asked again while a broker that just
        died or came back makes the question fail (bounded)."""
        deadline = time.monotonic() + REQUEST_TIMEOUT_MS / 1000 * 3
        while True:
            try:
                async with Admin(self.bootstrap(), request_timeout_ms=REQUEST_TIMEOUT_MS) as a:
                    return await a.describe_topic(TOPIC)
            except (LogServerError, OSError):
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.25)

    async def leader_of(self, partition: int) -> int:
        return (await self.describe()).partitions[partition].leader

    async def controller(self) -> int:
        """The controller as Metadata names it, else (-1: the answering broker has not heard
        of one yet, or no broker answered) as ZooKeeper's /controller says; -1: none."""
        try:
            async with Admin(self.bootstrap(), request_timeout_ms=REQUEST_TIMEOUT_MS) as admin:
                named = (await admin.describe_cluster()).controller_id
        except (LogServerError, OSError):
            named = -1
        if named >= 0:
            return named
        return await asyncio.to_thread(zookeeper_controller, self.cluster.connect)

    async def wait(
        self, predicate: Callable[[], Awaitable[bool]], what: str, timeout_s: float
    ) -> None:
        deadline = time.monotonic() + timeout_s
        last: BaseException | None = None
        while time.monotonic() < deadline:
            try:
                if await predicate():
                    return
            except (LogServerError, OSError) as exc:  # a broker died or came back: ask again
                last = exc
            await asyncio.sleep(0.25)
        raise AssertionError(f"timed out ({timeout_s} s) waiting for {what} (last error: {last})")

    async def full_isr(self) -> bool:
        partitions = (await self.describe()).partitions
        return all(p.leader >= 0 and len(p.isr) == len(self.brokers) for p in partitions)

    async def in_every_isr(self, broker: int) -> bool:
        return all(broker in p.isr and p.leader >= 0 for p in (await self.describe()).partitions)

    async def create_topic(self) -> None:
        async with Admin(self.bootstrap(), request_timeout_ms=10_000) as admin:
            await admin.create_topic(TOPIC, PARTITIONS, 3, TOPIC_CONFIG)
        await self.wait(self.full_isr, "a full ISR after creating the topic", 20)
        self.note(f"topic {TOPIC!r} created, leaders {await self._leaders()}")

    async def _leaders(self) -> list[int]:
        return [p.leader for p in (await self.describe()).partitions]

    # faults

    async def kill(self, broker: int) -> None:
        self.faults += 1
        self.note(f"kill -9 broker {broker}")
        await self.brokers[broker].kill9_async()

    async def start(self, broker: int) -> None:
        self.note(f"start broker {broker}")
        self.starting.add(broker)
        try:
            await self.brokers[broker].start_async()
        finally:
            self.starting.discard(broker)
        self.note(f"broker {broker} serving on {self.brokers[broker].address}")

    async def stop(self, broker: int) -> None:
        """SIGTERM, and SIGKILL after ``STOP_GRACE_S`` (an orchestrator's grace period).

        A leader drains the acks=all requests in flight, which wait until they time out
        (followers are no longer served): the grace period keeps restarts short. It once
        also hid a bug (``test_a_clean_shutdown_of_a_leader_hands_its_partitions_over``).
        """
        self.faults += 1
        self.note(f"SIGTERM broker {broker}")
        try:
            code = await self.brokers[broker].stop_async(timeout=STOP_GRACE_S)
        except TimeoutError:
            self.note(f"broker {broker} still draining after {STOP_GRACE_S} s: SIGKILLed")
            return
        if code != 0:
            self.note(f"broker {broker} exited with {code}")
            self.unclean_exits.append((broker, code))

    async def clean_restart(self, broker: int) -> None:
        await self.stop(broker)
        await self.start(broker)

    def pause(self, broker: int) -> None:
        self.faults += 1
        self.note(f"SIGSTOP broker {broker}")
        pid = self.brokers[broker].pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        self.paused.add(broker)

    def resume(self, broker: int) -> None:
        if broker in self.paused:
            self.note(f"SIGCONT broker {broker}")
            pid = self.brokers[broker].pid
            if pid is not None and self.brokers[broker].running:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGCONT)
            self.paused.discard(broker)

    def pause_zookeeper(self) -> None:
        assert self.zookeeper is not None
        self.faults += 1
        self.note("SIGSTOP ZooKeeper")
        self.zookeeper.pause()

    def resume_zookeeper(self) -> None:
        if self.zookeeper is not None and self.zookeeper.paused:
            self.note("SIGCONT ZooKeeper")
            self.zookeeper.resume()

    async def heal(self) -> None:
        """Every process running and unpaused, then every ISR full (bounded).

        A liveness bug can leave a partition stuck (one did: a broker that missed a leader
        change while it started,
        ``test_a_restarting_broker_hears_a_leader_change_made_while_it_registers``). Then
        the brokers the stuck partitions name are restarted, a few rounds at most, so that
        the history can still be checked; each rescue is in the timeline, and fails the
        test after the checks (``assert_safe``).
        """
        self.resume_zookeeper()
        for broker in list(self.paused):
            self.resume(broker)
        for i, broker in enumerate(self.brokers):
            if not broker.running:
                await self.start(i)
        for rescue in range(RESCUE_ROUNDS + 1):
            try:
                timeout_s = HEAL_TIMEOUT_S if rescue == 0 else RESCUE_TIMEOUT_S
                await self.wait(self.full_isr, "every ISR full after healing", timeout_s)
                break
            except AssertionError:
                if rescue == RESCUE_ROUNDS:
                    raise
            states = await asyncio.to_thread(zookeeper_states, self.cluster.connect)
            stuck = sorted(
                {s.leader for s in states if s.leader >= 0 and len(s.isr) < len(self.brokers)}
                | {b for s in states if s.leader < 0 for b in s.isr}
            )
            self.note(f"ISR not full; states {states}; rescue {rescue + 1}: restart {stuck}")
            self.rescues += 1
            for broker in stuck:
                await self.clean_restart(broker)
        self.note(f"healed: every ISR full, leaders {await self._leaders()}")

    async def stop_all(self) -> None:
        self._serving_lines = [len(b.lines) for b in self.brokers]
        codes = await asyncio.gather(*(b.stop_async() for b in self.brokers))
        self.note(f"every broker stopped (exit codes {codes})")
        self.unclean_exits += [(i, c) for i, c in enumerate(codes) if c != 0]

    def health(self) -> list[str]:
        """Unclean exits on SIGTERM, and background tasks that died while the brokers served
        (output up to ``stop_all``: stopping all three at once is checked by exit codes)."""
        found = [f"broker {i} exited with {code} on SIGTERM" for i, code in self.unclean_exits]
        for i, broker in enumerate(self.brokers):
            lines = broker.lines
            if self._serving_lines is not None:
                lines = lines[: self._serving_lines[i]]
            found += [f"broker {i}: {line}" for line in lines if _FAILED_TASK.search(line)]
        return found

    def dump_logs(self) -> list[Path]:
        """Each broker's whole output, next to its data dir, for a post-mortem."""
        paths = []
        for i, broker in enumerate(self.brokers):
            path = broker.data_dir.parent / f"broker-{i}.out"
            path.write_text("\n".join(broker.lines) + "\n")
            paths.append(path)
        return paths

    def explain(self, report: Report | None = None) -> str:
        """The seed, the timeline, the findings and each broker's last lines, for a failure."""
        parts = [f"FAULT_SEED={SEED}", "timeline:", *(f"  {t}" for t in self.timeline)]
        if report is not None:
            parts += [f"summary: {report.summary()}", "problems:"]
            parts += [f"  - {p}" for p in report.problems]
        parts += ["broker health:", *(f"  - {p}" for p in self.health())]
        parts += ["whole broker output:", *(f"  {p}" for p in self.dump_logs())]
        for i, broker in enumerate(self.brokers):
            parts.append(f"broker {i} ({len(broker.tracebacks())} tracebacks), last lines:")
            parts.append(broker.output(40))
        return "\n".join(parts)


# -- ZooKeeper, read directly (the brokers' caches may lag) -------------------------------------


def zookeeper_controller(connect: str) -> int:
    """The broker id in ``<chroot>/controller``, or -1 when the znode is missing."""
    client = KazooClient(hosts=connect, timeout=10)
    client.start(timeout=10)
    try:
        raw, _ = client.get(CONTROLLER)
    except NoNodeError:
        return -1
    finally:
        client.stop()
        client.close()
    return decode_controller(CONTROLLER, raw)


def zookeeper_states(connect: str) -> list[PartitionState]:
    """Every partition's state as ZooKeeper has it."""
    client = KazooClient(hosts=connect, timeout=10)
    client.start(timeout=10)
    try:
        states = []
        for partition in range(PARTITIONS):
            path = state_path(TOPIC, partition)
            raw, _ = client.get(path)
            states.append(decode_state(path, raw)[0])
        return states
    finally:
        client.stop()
        client.close()


# -- the workload ----------------------------------------------------------------------------


def _trace_attempt_errors(producer: Producer) -> dict[Any, list[BaseException]]:
    """Every failed attempt's error, by batch future: a test-only peek into the sender.

    The producer retries inside; ``Sender._retry_or_fail`` sees each failed
    attempt (and the final failure). Wrapping it on this one instance is how
    the history learns which sends were retried, and with what errors.
    """
    errors: dict[Any, list[BaseException]] = {}
    sender = producer._sender
    original = sender._retry_or_fail

    def traced(batch: Any, error: Any) -> None:
        errors.setdefault(batch.future, []).append(error)
        original(batch, error)

    sender._retry_or_fail = traced  # type: ignore[method-assign]
    return errors


def _error_name(exc: BaseException) -> str:
    return str(getattr(exc, "name", type(exc).__name__))


def _outcome(value: bytes, future: RecordFuture, errors: dict[Any, list[BaseException]]) -> Send:
    batch_future = future._batch
    traced = list(errors.get(batch_future, ()))
    if not future.done():
        return Send(value, error="PENDING", attempt_errors=(*map(_error_name, traced), "PENDING"))
    if batch_future.cancelled():
        return Send(
            value, error="CANCELLED", attempt_errors=(*map(_error_name, traced), "CANCELLED")
        )
    exc = future.exception()
    if exc is None:
        metadata = future.result()
        names = tuple(map(_error_name, traced))
        return Send(value, (metadata.partition, metadata.offset), attempt_errors=names)
    if not traced or traced[-1] is not exc:
        traced.append(exc)
    return Send(value, error=_error_name(exc), attempt_errors=tuple(map(_error_name, traced)))


class Workload:
    """Producers sending unique values until ``stop``; ``stop`` returns every send's outcome.

    ``probe`` adds a producer with retries off, whose refusals before append
    (NOT_ENOUGH_REPLICAS) are definite: the history checks they stay invisible.
    """

    def __init__(self, bootstrap: str, *, producers: int = PRODUCERS, probe: bool = False) -> None:
        self._bootstrap = bootstrap
        self._stop = asyncio.Event()
        specs = [(f"p{i}", 2**31 - 1, SEND_INTERVAL_S) for i in range(producers)]
        if probe:
            specs.append(("probe", 0, 0.02))
        self._tasks = [
            asyncio.create_task(self._produce(name, retries, interval), name=f"workload-{name}")
            for name, retries, interval in specs
        ]

    async def _produce(self, name: str, retries: int, interval_s: float) -> list[Send]:
        producer = Producer(
            self._bootstrap,
            client_id=name,
            acks="all",
            retries=retries,
            linger_ms=5,
            request_timeout_ms=REQUEST_TIMEOUT_MS,
            delivery_timeout_ms=DELIVERY_TIMEOUT_MS,
            max_block_ms=10_000,
        )
        await producer.start()
        errors = _trace_attempt_errors(producer)
        sent: list[tuple[bytes, RecordFuture]] = []
        try:
            sequence = 0
            while not self._stop.is_set():
                value = b"%s-%d" % (name.encode(), sequence)
                sent.append((value, await producer.send(TOPIC, value, key=value)))
                sequence += 1
                await asyncio.sleep(interval_s)
        finally:
            try:
                await asyncio.wait_for(producer.close(), DELIVERY_TIMEOUT_MS / 1000 + 15)
            except TimeoutError:
                log.warning("producer %s: close timed out; pending sends stay PENDING", name)
        return [_outcome(value, future, errors) for value, future in sent]

    async def stop(self) -> list[Send]:
        self._stop.set()
        results = await asyncio.gather(*self._tasks)
        return [send for sends in results for send in sends]

    async def abort(self) -> None:
        self._stop.set()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


# -- reading it all back ---------------------------------------------------------------------


async def read_everything(bootstrap: str) -> tuple[Reads, dict[int, int]]:
    """Every partition from offset 0 to its end (the high watermark), and those ends."""
    reads: dict[int, list[tuple[int, bytes]]] = {p: [] for p in range(PARTITIONS)}
    async with Consumer(
        bootstrap, auto_offset_reset="earliest", request_timeout_ms=10_000
    ) as consumer:
        tps = [TopicPartition(TOPIC, p) for p in range(PARTITIONS)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        deadline = time.monotonic() + READ_TIMEOUT_S
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            assert time.monotonic() < deadline, f"timed out reading the topic back to {ends}"
            for tp, records in (await consumer.poll(timeout_ms=500)).items():
                read = reads[tp.partition]
                for record in records:
                    assert record.value is not None
                    if record.offset >= ends[tp]:
                        continue
                    if read and record.offset <= read[-1][0]:  # served again: must be the same
                        earlier = dict(read).get(record.offset)
                        assert earlier == record.value, (
                            f"{tp} offset {record.offset}: {earlier!r}, then {record.value!r}"
                        )
                        continue
                    read.append((record.offset, record.value))
    return reads, {tp.partition: end for tp, end in ends.items()}


def read_replicas(cluster: Cluster) -> ReplicaLogs:
    """Every broker's replica of every partition, opened from disk (the brokers are stopped)."""
    replicas: dict[int, dict[int, list[tuple[int, bytes]]]] = {}
    for broker_id, broker in enumerate(cluster.brokers):
        assert not broker.running, f"broker {broker_id} still runs"
        replicas[broker_id] = {}
        for partition in range(PARTITIONS):
            directory = broker.data_dir / f"{TOPIC}-{partition}"
            records: list[tuple[int, bytes]] = []
            if directory.is_dir():
                with PartitionLog.open(directory) as partition_log:
                    offset = partition_log.log_start_offset
                    while offset < partition_log.log_end_offset:
                        batch = partition_log.read_records(offset)
                        if not batch:
                            break
                        records += [(r.offset, r.value or b"") for r in batch]
                        offset = batch[-1].offset + 1
            replicas[broker_id][partition] = records
    return replicas


# -- a scenario ------------------------------------------------------------------------------

Nemesis = Callable[[Run], Awaitable[None]]


async def run_scenario(
    cluster: Cluster,
    nemesis: Nemesis,
    *,
    duration_s: float,
    zookeeper: ZooKeeperProcess | None = None,
    probe: bool = False,
) -> tuple[Run, Report]:
    """Workload and nemesis side by side for at least ``duration_s``, then heal, read, check."""
    run = Run(cluster, zookeeper)
    await run.create_topic()
    workload = Workload(run.bootstrap(), probe=probe)
    run.note("workload started")
    try:
        await asyncio.gather(nemesis(run), asyncio.sleep(duration_s))
        run.note("nemesis done; stopping the workload")
        sends = await workload.stop()
    except BaseException:
        await workload.abort()
        run.resume_zookeeper()
        for broker in list(run.paused):
            run.resume(broker)
        log.error("the run failed:\n%s", run.explain())
        raise
    run.note(f"workload stopped: {len(sends)} sends")
    try:
        await run.heal()
        reads, high_watermarks = await read_everything(run.bootstrap())
        run.note(f"read back, high watermarks {high_watermarks}")
        await run.stop_all()
        replicas = await asyncio.to_thread(read_replicas, cluster)
    except BaseException:
        log.error("healing or reading back failed:\n%s", run.explain())
        raise
    report = fault_history.check(sends, reads, replicas, high_watermarks)
    run.note(f"{run.faults} faults injected; {report.summary()}")
    if run.rescues:
        log.warning("healing needed %d rescue round(s): see the timeline", run.rescues)
    for problem in run.health():
        log.warning("broker health: %s", problem)
    run.dump_logs()
    return run, report


def assert_safe(run: Run, report: Report) -> None:
    """The history checks out, no broker failed a background task or exited unclean, and
    the cluster healed without a rescue (a rescue is a liveness bug)."""
    assert report.acknowledged > 0, run.explain(report)
    assert not report.problems, run.explain(report)
    assert not run.health(), run.explain(report)
    assert not run.rescues, "healed only after restarting brokers:\n" + run.explain(report)


async def settle(seconds: float) -> None:
    await asyncio.sleep(seconds)


# -- the scenarios ---------------------------------------------------------------------------


async def test_kill_the_leader_of_a_partition(cluster: Cluster) -> None:
    async def nemesis(run: Run) -> None:
        await settle(3)
        victim = await run.leader_of(0)
        await run.kill(victim)
        await settle(5)
        await run.start(victim)

    run, report = await run_scenario(cluster, nemesis, duration_s=12)
    assert_safe(run, report)


async def test_pause_a_follower(cluster: Cluster) -> None:
    async def nemesis(run: Run) -> None:
        await settle(3)
        description = await run.describe()
        controller = await run.controller()
        p0 = description.partitions[0]
        followers = [r for r in p0.replicas if r != p0.leader]
        victim = next((r for r in followers if r != controller), followers[0])
        run.pause(victim)
        await settle(6)
        run.resume(victim)

    run, report = await run_scenario(cluster, nemesis, duration_s=12)
    assert_safe(run, report)


async def test_kill_the_controller(cluster: Cluster) -> None:
    async def nemesis(run: Run) -> None:
        await settle(3)
        victim = await run.controller()
        assert victim >= 0, "no controller"
        await run.kill(victim)
        await run.wait(
            lambda: _controller_moved(run, victim), "a new controller", 3 * SESSION_TIMEOUT_S
        )
        run.note(f"broker {await run.controller()} is the controller")
        await settle(2)
        await run.start(victim)

    run, report = await run_scenario(cluster, nemesis, duration_s=12)
    assert_safe(run, report)


async def _controller_moved(run: Run, old: int) -> bool:
    return (await run.controller()) not in (-1, old)


async def test_expire_the_session_of_the_controller(cluster: Cluster) -> None:
    """SIGSTOP for twice the session timeout: it comes back a zombie leader and controller."""

    async def nemesis(run: Run) -> None:
        await settle(3)
        victim = await run.controller()
        assert victim >= 0, "no controller"
        mark = len(run.brokers[victim].lines)
        run.pause(victim)
        await settle(2 * SESSION_TIMEOUT_S)
        run.resume(victim)
        line = await asyncio.to_thread(
            run.brokers[victim].wait_for_line,
            "zookeeper session expired",
            timeout_s=10,
            since=mark,
        )
        run.note(f"broker {victim}: {line.strip()}")

    run, report = await run_scenario(cluster, nemesis, duration_s=14)
    assert_safe(run, report)


async def test_restart_every_broker_in_turn(cluster: Cluster) -> None:
    async def nemesis(run: Run) -> None:
        for broker in range(len(run.brokers)):
            await settle(2)
            await run.clean_restart(broker)
            await run.wait(
                lambda b=broker: run.in_every_isr(b),  # type: ignore[misc]
                f"broker {broker} back in every ISR",
                HEAL_TIMEOUT_S,
            )
            run.note(f"broker {broker} is back in every ISR")

    run, report = await run_scenario(cluster, nemesis, duration_s=12)
    assert_safe(run, report)


NEMESIS_FAULTS = 20


async def test_nemesis(cluster: Cluster, zookeeper: ZooKeeperProcess) -> None:
    """At least ``NEMESIS_FAULTS`` faults, chosen and aimed by ``FAULT_SEED``: kill -9 a
    leader, a follower or the controller, SIGSTOP a broker (once past its session timeout),
    pause ZooKeeper, restart a broker cleanly, and a minority window (one broker killed while
    another is paused: NOT_ENOUGH_REPLICAS)."""
    rng = random.Random(SEED)
    brokers = range(len(cluster.brokers))

    async def nemesis(run: Run) -> None:
        async def kill_leader() -> None:
            victim = await run.leader_of(rng.randrange(PARTITIONS))
            await run.kill(victim)
            await settle(rng.uniform(0.5, 2.5))
            await run.start(victim)

        async def kill_follower() -> None:
            p = (await run.describe()).partitions[rng.randrange(PARTITIONS)]
            victim = rng.choice([r for r in p.replicas if r != p.leader])
            await run.kill(victim)
            await settle(rng.uniform(0.5, 2.5))
            await run.start(victim)

        async def kill_controller() -> None:
            victim = await run.controller()
            if victim < 0:
                return
            await run.kill(victim)
            await settle(rng.uniform(1, 3))
            await run.start(victim)

        async def pause_broker() -> None:
            victim = rng.choice(brokers)
            run.pause(victim)
            await settle(rng.uniform(0.5, 3))
            run.resume(victim)

        async def pause_zookeeper() -> None:
            run.pause_zookeeper()
            await settle(rng.uniform(0.5, 2.5))
            run.resume_zookeeper()

        async def clean_restart() -> None:
            await run.clean_restart(rng.choice(brokers))

        actions = [kill_leader, kill_follower, kill_controller, pause_broker] * 2 + [
            pause_zookeeper,
            clean_restart,
        ]
        await settle(2)
        # The two long ones, once each: a session expiry and a minority window.
        expired = rng.choice(brokers)
        run.pause(expired)
        await settle(2 * SESSION_TIMEOUT_S)
        run.resume(expired)
        await settle(2)
        killed = await run.leader_of(rng.randrange(PARTITIONS))
        await run.kill(killed)
        await settle(2)
        paused = rng.choice([b for b in brokers if b != killed])
        run.pause(paused)  # one broker left: its partitions refuse acks=all writes
        await settle(6)
        run.resume(paused)
        await run.start(killed)
        while run.faults < NEMESIS_FAULTS:
            await run.wait(run.full_isr, "a full ISR before the next fault", HEAL_TIMEOUT_S)
            await rng.choice(actions)()
            await settle(rng.uniform(0.2, 1.5))

    run, report = await run_scenario(
        cluster, nemesis, duration_s=24, zookeeper=zookeeper, probe=True
    )
    assert run.faults >= NEMESIS_FAULTS, run.explain(report)
    assert_safe(run, report)
    assert report.refused > 0, "the minority window refused nothing:\n" + run.explain(report)


# -- bugs the runs above show, pinned down on their own ------------------------------------


async def test_metadata_names_the_controller(cluster: Cluster) -> None:
    expected = await asyncio.to_thread(zookeeper_controller, cluster.connect)
    assert expected >= 0, "no /controller in ZooKeeper"
    async with Admin(cluster.bootstrap, request_timeout_ms=REQUEST_TIMEOUT_MS) as admin:
        named = (await admin.describe_cluster()).controller_id
    assert named == expected, f"Metadata names controller {named}; ZooKeeper says {expected}"


async def test_a_broker_survives_the_expiry_of_its_session(cluster: Cluster) -> None:
    """A leader stopped past its session timeout comes back with followers that look
    lagging, so its ISR loop asks ZooKeeper for a change while the session is gone."""
    run = Run(cluster)
    await run.create_topic()
    victim = await run.leader_of(0)
    broker = run.brokers[victim]
    mark = len(broker.lines)
    run.pause(victim)
    await asyncio.sleep(2 * SESSION_TIMEOUT_S)
    run.resume(victim)
    await asyncio.to_thread(
        broker.wait_for_line, "registered again in a new session", timeout_s=15, since=mark
    )
    await run.wait(run.full_isr, "every ISR full again", HEAL_TIMEOUT_S)
    code = await broker.stop_async()
    failures = [line for line in broker.lines[mark:] if _FAILED_TASK.search(line)]
    assert (code, failures) == (0, []), run.explain()


async def _produce_some(run: Run, count: int) -> None:
    async with Producer(run.bootstrap(), acks="all", request_timeout_ms=REQUEST_TIMEOUT_MS) as p:
        futures = [
            await p.send(TOPIC, b"warm-%d" % i, partition=i % PARTITIONS) for i in range(count)
        ]
        for future in futures:
            await future


async def test_acks_all_is_not_acknowledged_below_min_insync_replicas(cluster: Cluster) -> None:
    """Both followers of a partition stop: a write accepted before the ISR shrank must not be
    acknowledged once the leader alone is in sync (Kafka: NOT_ENOUGH_REPLICAS_AFTER_APPEND)."""
    run = Run(cluster)
    await run.create_topic()
    await _produce_some(run, 30)
    p0 = (await run.describe()).partitions[0]
    followers = [r for r in p0.replicas if r != p0.leader]
    async with Producer(
        run.brokers[p0.leader].address,
        acks="all",
        retries=0,
        request_timeout_ms=8_000,
        delivery_timeout_ms=10_000,
    ) as producer:
        for follower in followers:
            run.pause(follower)
        try:
            future = await producer.send(TOPIC, b"one copy", partition=0)
            try:
                metadata = await asyncio.wait_for(future, 12)
                outcome = f"acknowledged at offset {metadata.offset}"
            except LogServerError as exc:
                outcome = _error_name(exc)
            except TimeoutError:
                outcome = "no answer"
            run.note(f"the write: {outcome}")
            isr = (await run.describe()).partitions[0].isr
            run.note(f"partition 0: ISR {list(isr)}")
        finally:
            for follower in followers:
                run.resume(follower)
    assert not outcome.startswith("acknowledged"), run.explain()


async def test_a_dead_follower_does_not_rejoin_the_isr(cluster: Cluster) -> None:
    """Once a dead follower left the ISR, its leader must not add it back: it fetches nothing."""
    run = Run(cluster)
    await run.create_topic()
    await _produce_some(run, 30)
    p0 = (await run.describe()).partitions[0]
    victim = next(r for r in p0.replicas if r != p0.leader)
    await run.kill(victim)

    async def out_of_isr() -> bool:
        return victim not in (await run.describe()).partitions[0].isr

    await run.wait(out_of_isr, f"broker {victim} out of partition 0's ISR", 15)
    run.note(f"broker {victim} left partition 0's ISR")
    seen = []
    deadline = time.monotonic() + 4  # the leader's ISR loop runs every 1.5 s here
    while time.monotonic() < deadline:
        seen.append(tuple((await run.describe()).partitions[0].isr))
        await asyncio.sleep(0.2)
    run.note(f"ISRs seen over 4 s: {sorted(set(seen))}")
    assert all(victim not in isr for isr in seen), run.explain()


async def _keep_sending(run: Run, partition: int, stop: asyncio.Event) -> int:
    """acks=all writes to ``partition`` until ``stop``, several always in flight; the count."""
    sent = 0
    async with Producer(
        run.bootstrap(), acks="all", request_timeout_ms=REQUEST_TIMEOUT_MS, linger_ms=2
    ) as producer:
        futures = []
        while not stop.is_set():
            futures.append(await producer.send(TOPIC, b"w%d" % sent, partition=partition))
            sent += 1
            await asyncio.sleep(0.005)
        await asyncio.gather(*(_settled(f) for f in futures))
    return sent


async def _settled(future: RecordFuture) -> None:
    with contextlib.suppress(LogServerError):
        await future


async def _led_by_another(run: Run, partition: int, old: int) -> bool:
    return (await run.describe()).partitions[partition].leader not in (-1, old)


async def test_a_clean_shutdown_of_a_leader_hands_its_partitions_over(cluster: Cluster) -> None:
    """SIGTERM on a leader while a request is in flight (here a consumer's long poll; under
    load, acks=all writes do the same): the drain answers it, and another in-sync replica
    takes over."""
    run = Run(cluster)
    await run.create_topic()
    leader = await run.leader_of(0)
    tp = TopicPartition(TOPIC, 0)
    stop = asyncio.Event()
    sender = asyncio.create_task(_keep_sending(run, 0, stop))
    await asyncio.sleep(1.5)
    stop.set()
    run.note(f"{await asyncio.wait_for(sender, 30)} acks=all writes to partition 0")
    async with Consumer(run.bootstrap(), fetch_max_wait_ms=6_000) as consumer:
        consumer.assign([tp])
        await consumer.seek_to_end(tp)
        assert not await consumer.poll(timeout_ms=300)  # caught up: a long poll is in flight
        started = time.monotonic()
        code = await run.brokers[leader].stop_async(timeout=15)
        run.note(f"broker {leader} exited with {code} after {time.monotonic() - started:.1f} s")
    try:
        await run.wait(lambda: _led_by_another(run, 0, leader), "another leader for partition 0", 5)
    except AssertionError as exc:
        partition = (await run.describe()).partitions[0]
        run.note(f"partition 0: leader {partition.leader}, ISR {list(partition.isr)}")
        raise AssertionError(f"{exc}\n{run.explain()}") from None


LONG_SESSION_MS = 8_000


async def _partitions(run: Run) -> tuple[PartitionDescription, ...]:
    return (await run.describe()).partitions


async def test_a_restarting_broker_hears_a_leader_change_made_while_it_registers(
    cluster: Cluster,
) -> None:
    """A broker reads every partition's state when it starts, registers, and only then
    listens for changes: a change in between must not be lost.

    Registering waits while the broker's previous session (kill -9, not expired yet) holds
    its znode: a window of ``LONG_SESSION_MS``. A preferred-leader election moves a
    partition the broker follows to another leader inside that window.
    """
    run = Run(cluster)
    await run.create_topic()
    await _produce_some(run, 30)
    controller = await run.controller()
    # The controller stays up throughout: it is the partition's second replica.
    partition, (preferred, other, victim) = next(
        (p.partition, p.replicas) for p in await _partitions(run) if p.replicas[1] == controller
    )
    run.note(f"partition {partition}: preferred {preferred}, then {other}; victim {victim}")
    run.brokers[victim].flags += ["--zookeeper-session-timeout-ms", str(LONG_SESSION_MS)]
    await run.clean_restart(victim)
    await run.clean_restart(preferred)  # the partition moves to `other`
    await run.wait(run.full_isr, "every ISR full", HEAL_TIMEOUT_S)
    assert (await _partitions(run))[partition].leader == other, run.explain()

    await run.kill(victim)
    # A longer session than the old one: registering waits up to it for the old one to end.
    run.brokers[victim].flags += ["--zookeeper-session-timeout-ms", str(2 * LONG_SESSION_MS)]
    restarting = asyncio.create_task(run.start(victim))  # serves once its old session is gone

    async def isr() -> tuple[int, ...]:  # from ZooKeeper: a stale broker's metadata lags
        states = await asyncio.to_thread(zookeeper_states, cluster.connect)
        return states[partition].isr

    async def victim_out() -> bool:
        return victim not in await isr()

    await run.wait(victim_out, f"broker {victim} out of the ISR", LONG_SESSION_MS / 1000 - 2)
    async with Admin(run.bootstrap(), request_timeout_ms=REQUEST_TIMEOUT_MS) as admin:
        elected = await admin.elect_leaders([TOPIC])
    run.note(f"preferred leader election: {elected}")
    assert not restarting.done(), "the victim registered before the election: no window"
    await asyncio.wait_for(restarting, LONG_SESSION_MS / 1000 + 10)

    async def victim_back() -> bool:
        return victim in await isr()

    try:
        await run.wait(victim_back, f"broker {victim} back in partition {partition}'s ISR", 8)
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{run.explain()}") from None
    finally:
        run.dump_logs()


class _LeaderStub:
    """What a follower's fetcher sees of its leader: OffsetsForLeaderEpoch, answered from
    ``leader`` (a ``PartitionLog``) as its broker's handler would."""

    def __init__(self, topic: str, leader: PartitionLog) -> None:
        self.topic = topic
        self.leader = leader

    async def request(self, api_key: Any, body: dict[str, Any], timeout_ms: int) -> Any:
        rows = [[p, 0, *self.leader.end_offset_for_epoch(e)] for p, e in body["topics"][0][1]]
        return {"topics": [[self.topic, rows]]}, memoryview(b"")


def _records(partition_log: PartitionLog) -> list[tuple[int, bytes]]:
    found: list[tuple[int, bytes]] = []
    offset = partition_log.log_start_offset
    while offset < partition_log.log_end_offset:
        batch = partition_log.read_records(offset)
        found += [(r.offset, r.value or b"") for r in batch]
        offset = batch[-1].offset + 1
    return found


async def test_a_follower_drops_what_it_wrote_in_an_epoch_its_leader_never_had(
    open_log: Callable[..., PartitionLog], tmp_path: Path
) -> None:
    """The leader wrote [50, 100) in epoch 1 and leads epoch 3 from 100; the follower never
    saw epoch 1: it led epoch 2 (say it was elected while lagging, then died) and wrote
    [50, 150) there. Asked about epoch 2, the leader answers "epoch 1 ends at 100"; the
    follower's own epoch 1 ends where its epoch 2 starts, at 50: everything from 50 goes.

    Found by reading the fetcher while diagnosing the divergence the nemesis once showed;
    its home, with a fix, is a test of ``logserver/replication/replica_fetcher.py``.
    """
    leader = open_log(directory=tmp_path / "leader" / "t-0")
    follower = open_log(directory=tmp_path / "follower" / "t-0")
    for log_, tag, epoch in [(leader, "e0", 0), (follower, "e0", 0), (leader, "L-e1", 1)]:
        log_.append(bytearray(make_batch(50, tag=tag)), leader_epoch=epoch)
    for tag in ("F-e2a", "F-e2b"):  # two batches: truncation keeps whole batches
        follower.append(bytearray(make_batch(50, tag=tag)), leader_epoch=2)
    leader.append(bytearray(make_batch(100, tag="L-e3")), leader_epoch=3)

    tp = ("t", 0)
    replicas = ReplicaManager(2, AppendNotifier())
    replicas.become_follower(tp, leader_id=1, leader_epoch=4)
    logs = SimpleNamespace(get=lambda topic, partition: follower)  # LogManager.get
    fetcher = ReplicaFetcher(2, replicas, logs, lambda broker_id: None)  # type: ignore[arg-type]
    fetcher._by_leader[1].add(tp)
    await fetcher._truncate(_LeaderStub("t", leader), 1)  # type: ignore[arg-type]
    truncated_to = follower.log_end_offset
    if truncated_to < leader.log_end_offset:  # then fetch the rest, as a follower
        rest = leader.read(follower.log_end_offset, 1 << 20)
        assert rest is not None
        follower.append_as_follower(rest.read_bytes())
    found = fault_history.divergence(
        {1: {0: _records(leader)}, 2: {0: _records(follower)}}, {0: leader.log_end_offset}
    )
    assert found == [], f"truncated to {truncated_to}, not 50: {found}"


# -- the checks themselves (pure functions, no cluster) ---------------------------------------


def _send(value: bytes, at: tuple[int, int] | None = None, *errors: str) -> Send:
    return Send(value, at, None if at else (errors[-1] if errors else "X"), tuple(errors))


def test_check_passes_a_clean_history() -> None:
    sends = [_send(b"a", (0, 0)), _send(b"b", (0, 1)), _send(b"c", (1, 0))]
    reads = {0: [(0, b"a"), (1, b"b")], 1: [(0, b"c")]}
    replicas = {0: reads, 1: reads, 2: reads}
    report = fault_history.check(sends, reads, replicas, {0: 2, 1: 1})
    assert report.problems == []
    assert (report.acknowledged, report.read, report.retried) == (3, 3, 0)


def test_lost_and_misplaced_acknowledged_values() -> None:
    sends = [_send(b"a", (0, 0)), _send(b"b", (0, 1)), _send(b"c", (0, 2))]
    reads = {0: [(0, b"a"), (1, b"c")]}
    assert fault_history.lost(sends, reads) == [b"b"]
    assert fault_history.misplaced(sends, reads) == [(b"b", (0, 1), b"c"), (b"c", (0, 2), None)]
    problems = fault_history.check(sends, reads).problems
    assert len(problems) == 2
    assert "1 acknowledged values lost" in problems[0]


def test_duplicates_are_allowed_only_after_a_retry_and_in_one_partition() -> None:
    retried = _send(b"r", (0, 1), "REQUEST_TIMED_OUT")
    plain = _send(b"p", (0, 2))
    sends = [retried, plain, _send(b"x", (1, 0))]
    reads = {0: [(0, b"r"), (1, b"r"), (2, b"p"), (3, b"p")], 1: [(0, b"x"), (1, b"r")]}
    report = fault_history.check(sends, reads)
    assert report.duplicates == {b"r": [(0, 0), (0, 1), (1, 1)], b"p": [(0, 2), (0, 3)]}
    assert report.unexplained_duplicates == {b"p": [(0, 2), (0, 3)]}
    assert set(report.cross_partition_duplicates) == {b"r"}
    assert len(report.problems) == 2
    ok = fault_history.check(sends, {0: [(0, b"r"), (1, b"r"), (2, b"p")], 1: [(0, b"x")]})
    assert ok.problems == []
    assert len(ok.duplicates) == 1


def test_only_refusals_before_append_must_stay_invisible() -> None:
    refused = _send(b"n", None, "NOT_ENOUGH_REPLICAS")
    timed_out = _send(b"t", None, "NOT_ENOUGH_REPLICAS", "REQUEST_TIMED_OUT")
    not_leader = _send(b"l", None, "NOT_LEADER_OR_FOLLOWER")  # may come after the append
    assert refused.refused
    assert not timed_out.refused
    assert not not_leader.refused
    reads = {0: [(0, b"t"), (1, b"l")]}
    assert fault_history.check([refused, timed_out, not_leader], reads).problems == []
    reads = {0: [(0, b"n")]}
    assert fault_history.visible_refused([refused], reads) == [(b"n", (0, 0))]
    assert fault_history.check([refused], reads).refused == 1


def test_values_nobody_sent_are_reported() -> None:
    report = fault_history.check([_send(b"a", (0, 0))], {0: [(0, b"a"), (1, b"zz")]})
    assert report.unknown == [(b"zz", (0, 1))]
    assert len(report.problems) == 1


def test_divergence_below_and_above_the_high_watermark() -> None:
    good = {0: [(0, b"a"), (1, b"b"), (2, b"c")]}
    assert fault_history.divergence({0: good, 1: good, 2: good}, {0: 3}) == []
    other = {0: [(0, b"a"), (1, b"X"), (2, b"c")]}
    found = fault_history.divergence({0: good, 1: other}, {0: 3})
    assert len(found) == 1
    assert "broker 1 differs from broker 0 at record #1" in found[0]
    short = {0: [(0, b"a")]}
    found = fault_history.divergence({0: good, 1: short}, {0: 3})
    assert any("broker 1 ends at 1, below the high watermark 3" in p for p in found)
    longer = {0: [*good[0], (3, b"d")]}
    found = fault_history.divergence({0: good, 1: longer}, {0: 3})
    assert found == ["partition 0: replica log ends differ: {0: 3, 1: 4} (hw 3)"]
