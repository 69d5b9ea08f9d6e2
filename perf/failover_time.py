"""Failover time: a partition leader killed with -9 -> the next acknowledged ``acks=all`` write.

Run from the repository root with the project's virtualenv::

    python perf/failover_time.py [--runs 5] [--partitions 1] [--linger-ms 5]
        [--victim leader|controller|not-controller] [--warmup-s 2]
        [--failover-timeout 90] [--broker-setting NAME=VALUE]
        [--dir DIR] [--keep-dir] [--json]

Issue 4's failover figure. The tool starts a real ZooKeeper and three brokers
on loopback (``perf/cluster_launcher.py``) with ``logserver/config.py``'s
default settings -- the ZooKeeper session timeout and replica lag settings in
force are printed -- and creates topic ``failover`` with ``--partitions``
partitions, replication factor 3 and ``min.insync.replicas=2``. One producer
of the client library (``acks=all``, retries on, ``linger.ms`` 5, the other
settings the client's defaults) writes one record at a time to one partition,
each send waiting for the previous acknowledgement, for the whole run.

Each of ``--runs`` rounds: after ``--warmup-s`` of acknowledged writes with a
full ISR, the tool finds the partition's leader (``Admin.describe_topics``),
kills it with SIGKILL and measures the time from the kill to the
acknowledgement of the first record *sent* after the kill (so not an answer
the dying leader sent just before). It then restarts the killed broker on the
same data dir and port and waits until it is back in the ISR of every
partition. Printed: each round's figure and their median; issue 4's bar is a
median under 6 s.

Which leader dies (``--victim``): ``leader`` (the default) kills partition 0's
leader, whoever it is. That broker may also be the controller, and then the
failover waits for a new controller, which ZooKeeper elects only once the
dead one's session has expired; the printout gives the median of both kinds
of round apart. ``controller`` and ``not-controller`` pick that case on
purpose: before each round the preferred leaders are restored
(``Admin.elect_leaders``; with ``--partitions 3`` every broker then leads one
partition) and the tool writes to, and kills the leader of, a partition that
the controller leads, or one that it does not.

Where the time goes, per round, from the kill:

* ``liveness probe``: the controller's log says the broker refuses
  connections (brokers that have ``controller.liveness.probe.interval.ms``);
* ``session expired``: the killed broker's ephemeral ``/brokers/ids/N``
  znode went (a kazoo watch of the tool's own; a broker killed with -9 says
  nothing, so ZooKeeper notices only when its session times out);
* ``new controller``: a survivor's log says it acts as controller (when the
  dead broker was the controller);
* ``leader written``: the controller wrote the new leader into the
  partition's state znode (the same watch);
* ``new leader leads``: the new leader's log says ``leader at epoch``;
* ``metadata shows it``: the Metadata the tool polls every 50 ms names it;
* ``first ack``: the producer's first acknowledgement after the kill (of the
  record that was in flight, retried), and of the first record sent after.

Every wait is bounded (``--failover-timeout``, ``--rejoin-timeout``, the
launchers' start and stop timeouts); every process started is stopped by its
PID at the end, on ^C, on SIGTERM and on an error. The bar is printed, never
enforced; the exit status is 1 when a record failed or a round did not finish.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import functools
import json
import logging
import os
import re
import signal
import statistics
import sys
import threading
import time
from typing import Any

from broker_launcher import progress
from cluster_launcher import (
    LaunchedCluster,
    add_cluster_arguments,
    log_time,
    print_cluster_environment,
    run_on_cluster,
    wait_for_topic,
)
from kazoo.client import KazooClient
from kazoo.recipe.watchers import DataWatch

from client.admin import Admin
from client.errors import LogServerError
from client.producer import Producer
from coordination.zk_paths import broker_path, decode_state, state_path

TOOL = "failover_time"
TOPIC = "failover"
BAR_MEDIAN_S = 6.0
READY_TIMEOUT_S = 60.0
POLL_S = 0.05
ZK_TIMEOUT_S = 10.0

clock = time.perf_counter


class Writer:
    """One record at a time to ``partition``, each send after the previous acknowledgement."""

    def __init__(self, producer: Producer, value: bytes) -> None:
        self.producer = producer
        self.value = value
        self.partition = 0  # the round's partition; takes effect at the next send
        self.sent: list[float] = []  # send time of each acknowledged record, in order
        self.acked: list[float] = []  # its acknowledgement time
        self.errors: list[tuple[float, str]] = []
        self._changed = asyncio.Event()

    async def run(self) -> None:
        while True:
            sent = clock()
            try:
                future = await self.producer.send(TOPIC, self.value, partition=self.partition)
                await future
            except LogServerError as exc:  # with retries on, the application should never see one
                self.errors.append((clock(), repr(exc)))
                progress(TOOL, f"a write failed: {exc!r}")
                await asyncio.sleep(0.1)
                continue
            self.sent.append(sent)
            self.acked.append(clock())
            self._changed.set()

    async def first_ack(self, *, sent_after: float, timeout_s: float) -> tuple[float, float]:
        """(send, ack) times of the first acknowledged record sent at/after ``sent_after``."""
        deadline = clock() + timeout_s
        while True:
            i = bisect.bisect_left(self.sent, sent_after)
            if i < len(self.sent):
                return self.sent[i], self.acked[i]
            left = deadline - clock()
            if left <= 0:
                raise TimeoutError(f"no record acknowledged within {timeout_s} s")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)

    def first_ack_after(self, moment: float) -> float | None:
        """The first acknowledgement at or after ``moment``, whenever its record was sent."""
        i = bisect.bisect_left(self.acked, moment)
        return self.acked[i] if i < len(self.acked) else None

    def latencies_ms(self, since: float, until: float) -> list[float]:
        lo = bisect.bisect_left(self.sent, since)
        hi = bisect.bisect_left(self.sent, until)
        return [(self.acked[i] - self.sent[i]) * 1000 for i in range(lo, hi)]


class Watcher:
    """The tool's own view of ZooKeeper, timed: who holds each broker's registration, and
    each partition's state. (kazoo calls back on its own thread.)"""

    def __init__(self, connect: str) -> None:
        self.zk = KazooClient(hosts=connect, timeout=ZK_TIMEOUT_S)
        # (time, broker id, the session owning /brokers/ids/<id>, None while it is missing)
        self.registrations: list[tuple[float, int, int | None]] = []
        # (time, partition, leader, leader epoch)
        self.states: list[tuple[float, int, int, int]] = []
        self._lock = threading.Lock()

    def start(self, broker_ids: range, partitions: int) -> None:
        self.zk.start(timeout=ZK_TIMEOUT_S)
        for broker_id in broker_ids:
            # A data watch, not a children watch: a broker that registers again at once
            # shows as a new owner even when the read after the deletion finds it back.
            DataWatch(
                self.zk,
                broker_path(broker_id),
                functools.partial(self._on_registration, broker_id),
            )
        for partition in range(partitions):
            path = state_path(TOPIC, partition)
            DataWatch(self.zk, path, functools.partial(self._on_state, path, partition))

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.zk.stop()
            self.zk.close()

    def _on_registration(self, broker_id: int, data: bytes | None, stat: Any) -> None:
        now = clock()
        owner = None if stat is None else stat.ephemeralOwner
        with self._lock:
            self.registrations.append((now, broker_id, owner))

    def _on_state(self, path: str, partition: int, data: bytes | None, stat: Any) -> None:
        now = clock()
        if data is None:
            return
        try:
            state, _ = decode_state(path, data)
        except LogServerError:  # a corrupt state is the broker tests' business, not this tool's
            return
        with self._lock:
            self.states.append((now, partition, state.leader, state.leader_epoch))

    def session_ended(self, broker_id: int, after: float) -> float | None:
        """When the registration ``broker_id`` had at ``after`` went (its session expired)."""
        with self._lock:
            mine = [(at, owner) for at, b, owner in self.registrations if b == broker_id]
        before = [owner for at, owner in mine if at < after]
        if not before or before[-1] is None:
            return None
        for at, owner in mine:
            if at >= after and owner != before[-1]:
                return at
        return None

    def new_leader(self, partition: int, old: int, after: float) -> tuple[float, int, int] | None:
        with self._lock:
            for at, p, leader, epoch in self.states:
                if at >= after and p == partition and leader not in (old, -1):
                    return at, leader, epoch
        return None


def first_log_line(
    cluster: LaunchedCluster, broker_ids: list[int], pattern: re.Pattern[str], after_wall: float
) -> tuple[float, int, str] | None:
    """(wall time, broker, line) of the earliest line matching ``pattern`` after ``after_wall``."""
    found: list[tuple[float, int, str]] = []
    for broker_id in broker_ids:
        for line in cluster.broker_log(broker_id):
            at = log_time(line)
            # log lines have millisecond resolution: a line of the kill's millisecond counts
            if at is not None and at >= after_wall - 0.001 and pattern.search(line):
                found.append((at, broker_id, line))
                break
    return min(found) if found else None


async def wait_until_leader_changes(
    admin: Admin, partition: int, old: int, timeout_s: float
) -> tuple[float, int, int] | None:
    """Poll Metadata: (time, leader, epoch) once ``partition`` is led by another broker."""
    deadline = clock() + timeout_s
    while clock() < deadline:
        with contextlib.suppress(LogServerError, OSError):
            p = (await admin.describe_topics([TOPIC]))[TOPIC].partitions[partition]
            if p.leader not in (old, -1):
                return clock(), p.leader, p.leader_epoch
        await asyncio.sleep(POLL_S)
    return None


async def wait_until_in_isr(admin: Admin, broker_id: int, timeout_s: float) -> float:
    deadline = clock() + timeout_s
    last: Any = None
    while True:
        with contextlib.suppress(LogServerError, OSError):
            last = (await admin.describe_topics([TOPIC]))[TOPIC]
            if all(broker_id in p.isr for p in last.partitions):
                return clock()
        if clock() > deadline:
            raise TimeoutError(
                f"broker {broker_id} not back in the ISR within {timeout_s} s: {last}"
            )
        await asyncio.sleep(0.1)


class NoVictimError(RuntimeError):
    """No partition is led the way ``--victim`` asks."""


async def choose_partition(admin: Admin, victim: str, partitions: int) -> tuple[int, Any, int]:
    """(partition, its description, the controller) for this round, per ``--victim``.

    ``leader`` is partition 0 as it is. The other two first restore the preferred
    leaders (``Admin.elect_leaders``, what ``logctl cluster elect-leaders`` does), so
    that with three partitions every broker leads one, then take the first partition
    led (``controller``) or not led (``not-controller``) by the controller.
    """
    if victim != "leader":
        with contextlib.suppress(LogServerError):
            await admin.elect_leaders([TOPIC])  # per-partition errors come back as values
        await wait_for_topic(admin, TOPIC, READY_TIMEOUT_S)
    described = (await admin.describe_topics([TOPIC]))[TOPIC].partitions
    controller = (await admin.describe_cluster()).controller_id
    for p in described:
        if (
            victim == "leader"
            or (victim == "controller" and p.leader == controller)
            or (victim == "not-controller" and p.leader != controller)
        ):
            return p.partition, p, controller
    leaders = {p.partition: p.leader for p in described}
    raise NoVictimError(
        f"--victim {victim}: no partition fits (leaders {leaders}, controller {controller}); "
        f"with --partitions 3 every broker leads one ({partitions} now)"
    )


async def steady(writer: Writer, admin: Admin, args: argparse.Namespace) -> None:
    """Full ISR, then ``--warmup-s`` of acknowledged writes."""
    await wait_for_topic(admin, TOPIC, READY_TIMEOUT_S)
    start = clock()
    await writer.first_ack(sent_after=start, timeout_s=READY_TIMEOUT_S)
    await asyncio.sleep(max(0.0, args.warmup_s - (clock() - start)))
    await writer.first_ack(sent_after=clock(), timeout_s=READY_TIMEOUT_S)


async def one_round(
    number: int,
    cluster: LaunchedCluster,
    admin: Admin,
    writer: Writer,
    watcher: Watcher,
    args: argparse.Namespace,
) -> dict[str, Any]:
    index, partition, controller = await choose_partition(admin, args.victim, args.partitions)
    writer.partition = index
    await steady(writer, admin, args)
    partition = (await admin.describe_topics([TOPIC]))[TOPIC].partitions[index]
    if args.victim != "leader" and (partition.leader == controller) != (
        args.victim == "controller"
    ):
        raise NoVictimError(f"--victim {args.victim}: leadership moved during the warm-up")
    victim = partition.leader
    broker = cluster.brokers[victim]
    tp = f"{TOPIC}-{index}"
    steady_ms = statistics.median(writer.latencies_ms(clock() - args.warmup_s, clock()) or [0.0])
    role = " and the controller" if victim == controller else ""
    progress(TOOL, f"round {number}: kill -9 broker {victim} (leader of {tp}{role})")

    kill_wall = time.time()
    kill = clock()
    os.kill(broker.pid, signal.SIGKILL)  # type: ignore[arg-type]
    reaping = asyncio.ensure_future(asyncio.to_thread(broker.kill))
    metadata = asyncio.ensure_future(
        wait_until_leader_changes(admin, index, victim, args.failover_timeout)
    )
    try:
        first_sent, first_acked = await writer.first_ack(
            sent_after=kill, timeout_s=args.failover_timeout
        )
        seen = await metadata
    finally:
        metadata.cancel()
        await reaping
    any_ack = writer.first_ack_after(kill)

    # Restart first: the killed broker's session may outlive the failover (when the
    # controller's liveness probe found it dead), and its end belongs in the timeline.
    progress(TOOL, f"round {number}: restart broker {victim}")
    restart = clock()
    await asyncio.to_thread(broker.start)
    serving = clock()
    back = await wait_until_in_isr(admin, victim, args.rejoin_timeout)

    survivors = [i for i in range(len(cluster.brokers)) if i != victim]
    new_state = watcher.new_leader(index, victim, kill)
    new_leader = new_state[1] if new_state else (seen[1] if seen else None)
    epoch = new_state[2] if new_state else (seen[2] if seen else None)
    leads = None
    if new_leader is not None and epoch is not None:
        pattern = re.compile(rf"{tp}: leader at epoch {epoch}\b")
        leads = first_log_line(cluster, [new_leader], pattern, kill_wall)
    elected = first_log_line(
        cluster, survivors, re.compile(rf"controller: {tp}: leader {victim} -> "), kill_wall
    )
    takeover = first_log_line(cluster, survivors, re.compile(r"acting as controller"), kill_wall)
    # the controller's liveness probe (controller.liveness.probe.interval.ms), where built
    refused = first_log_line(
        cluster, survivors, re.compile(rf"broker {victim} refuses connections"), kill_wall
    )

    def since_kill_wall(found: tuple[float, int, str] | None) -> float | None:
        return None if found is None else found[0] - kill_wall

    def since_kill(at: float | None) -> float | None:
        return None if at is None else at - kill

    timeline = {
        "session_expired_s": since_kill(watcher.session_ended(victim, kill)),
        "controller_takeover_s": since_kill_wall(takeover) if victim == controller else None,
        "probe_found_dead_s": since_kill_wall(refused),
        "controller_wrote_leader_s": since_kill(new_state[0] if new_state else None),
        "controller_log_s": since_kill_wall(elected),
        "new_leader_leads_s": since_kill_wall(leads),
        "metadata_shows_new_leader_s": since_kill(seen[0] if seen else None),
        "first_ack_any_record_s": since_kill(any_ack),
        "first_ack_sent_after_kill_s": first_acked - kill,
    }
    return {
        "round": number,
        "partition": index,
        "killed": victim,
        "killed_was_controller": victim == controller,
        "leader_epoch_before": partition.leader_epoch,
        "new_leader": new_leader,
        "leader_epoch_after": epoch,
        "failover_s": first_acked - kill,
        "first_record_sent_after_kill_s": first_sent - kill,
        "timeline": timeline,
        "steady_ack_latency_ms_p50": steady_ms,
        "restart_s": serving - restart,
        "back_in_isr_s": back - restart,
    }


async def run(cluster: LaunchedCluster, args: argparse.Namespace) -> dict[str, Any]:
    watcher = Watcher(cluster.connect)
    rounds: list[dict[str, Any]] = []
    error: str | None = None
    async with Admin(cluster.bootstrap, client_id=TOOL) as admin:
        await admin.create_topic(TOPIC, args.partitions, 3, {"min.insync.replicas": "2"})
        await wait_for_topic(admin, TOPIC, READY_TIMEOUT_S)
        await asyncio.to_thread(watcher.start, range(len(cluster.brokers)), args.partitions)
        producer = Producer(cluster.bootstrap, client_id=TOOL, acks="all", linger_ms=args.linger_ms)
        await producer.start()
        writer = Writer(producer, os.urandom(args.record_size))
        writing = asyncio.ensure_future(writer.run())
        try:
            for number in range(1, args.runs + 1):
                result = await one_round(number, cluster, admin, writer, watcher, args)
                rounds.append(result)
                progress(TOOL, f"round {number}: failover {result['failover_s']:.2f} s")
        except (TimeoutError, NoVictimError) as exc:
            error = str(exc)
            progress(TOOL, f"round {len(rounds) + 1} did not finish: {exc}")
        finally:
            writing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writing
            with contextlib.suppress(LogServerError, OSError, TimeoutError):
                await asyncio.wait_for(producer.close(), 30)
            await asyncio.to_thread(watcher.close)
    figures = [r["failover_s"] for r in rounds]
    by_controller = {
        key: [r["failover_s"] for r in rounds if r["killed_was_controller"] is was]
        for key, was in (("leader_and_controller", True), ("leader_only", False))
    }
    return {
        "rounds": rounds,
        "failover_s": figures,
        "median_s": statistics.median(figures) if figures else None,
        # the killed leader was also the controller, or not: two different paths
        "median_by_victim_s": {
            key: statistics.median(found) if found else None for key, found in by_controller.items()
        },
        "rounds_by_victim": {key: len(found) for key, found in by_controller.items()},
        "bar_median_max_s": BAR_MEDIAN_S,
        "met": bool(figures) and error is None and statistics.median(figures) < BAR_MEDIAN_S,
        "acknowledged": len(writer.acked),
        "errors": len(writer.errors),
        "first_error": writer.errors[0][1] if writer.errors else None,
        "unfinished": error,
        "producer": {"acks": "all", "linger_ms": args.linger_ms, "retries": "client default"},
    }


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def print_table(out: dict[str, Any]) -> None:
    print_cluster_environment(out["env"])
    result = out["failover"]
    print()
    print(
        f"Failover: topic {TOPIC}, {out['config']['partitions']} partition(s), replication "
        f"factor 3, min.insync.replicas=2; one producer, acks=all, linger.ms="
        f"{out['config']['linger_ms']}, one {out['config']['record_size']} B record at a time "
        f"to one partition; victim: {out['config']['victim']}"
    )
    for r in result["rounds"]:
        t = r["timeline"]
        controller = " (also the controller)" if r["killed_was_controller"] else ""
        print(
            f"  round {r['round']}: {TOPIC}-{r['partition']}: killed broker {r['killed']}"
            f"{controller}, leader at epoch "
            f"{r['leader_epoch_before']}; broker {r['new_leader']} leads at epoch "
            f"{r['leader_epoch_after']}: failover {r['failover_s']:.2f} s"
        )
        takeover = (
            f"new controller {fmt(t['controller_takeover_s'])}, "
            if r["killed_was_controller"]
            else ""
        )
        probe = (
            f"liveness probe found it dead {fmt(t['probe_found_dead_s'])}, "
            if t["probe_found_dead_s"] is not None
            else ""
        )
        print(
            f"    from the kill: {probe}session expired {fmt(t['session_expired_s'])}, {takeover}"
            f"leader written {fmt(t['controller_wrote_leader_s'])}, "
            f"new leader leads {fmt(t['new_leader_leads_s'])}, "
            f"metadata shows it {fmt(t['metadata_shows_new_leader_s'])}, "
            f"first ack {fmt(t['first_ack_any_record_s'])} (in-flight record), "
            f"{fmt(t['first_ack_sent_after_kill_s'])} (first record sent after the kill)"
        )
        print(
            f"    before: {r['steady_ack_latency_ms_p50']:.1f} ms per acknowledged write (p50); "
            f"restart {r['restart_s']:.2f} s, back in the ISR "
            f"{r['back_in_isr_s']:.2f} s after the restart"
        )
    print()
    if result["unfinished"]:
        print(f"  unfinished round: {result['unfinished']}")
    print(
        f"  {result['acknowledged']} records acknowledged, {result['errors']} failed"
        + (f" (first: {result['first_error']})" if result["first_error"] else "")
    )
    for key, what in (
        ("leader_and_controller", "the leader was also the controller"),
        ("leader_only", "the controller survived"),
    ):
        if result["rounds_by_victim"][key]:
            print(
                f"  {what}: {result['rounds_by_victim'][key]} round(s), median "
                f"{result['median_by_victim_s'][key]:.3f} s"
            )
    figures = ", ".join(f"{x:.2f}" for x in result["failover_s"])
    median = "-" if result["median_s"] is None else f"{result['median_s']:.3f} s"
    print(f"failover (kill -9 leader -> next acks=all ack): {figures} s; median {median}")
    settings = out["env"]["cluster"]["settings_in_force"]
    print(
        f"  bar median < {result['bar_median_max_s']:g} s: "
        f"{'met' if result['met'] else 'NOT MET'} (zookeeper.session.timeout.ms "
        f"{settings['zookeeper.session.timeout.ms']}, replica.lag.time.max.ms "
        f"{settings['replica.lag.time.max.ms']})"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="leader kills (5)")
    parser.add_argument(
        "--partitions",
        type=int,
        default=1,
        help="partitions of the topic (1); one of them is written, see --victim",
    )
    parser.add_argument(
        "--victim",
        choices=("leader", "controller", "not-controller"),
        default="leader",
        help="leader: kill partition 0's leader, whoever it is (default); controller / "
        "not-controller: restore the preferred leaders, then write to and kill the leader of "
        "a partition the controller leads / does not lead (use --partitions 3)",
    )
    parser.add_argument("--record-size", type=int, default=100, help="value bytes (100)")
    parser.add_argument("--linger-ms", type=int, default=5, help="the producer's linger.ms (5)")
    parser.add_argument(
        "--warmup-s",
        type=float,
        default=2.0,
        help="seconds of acknowledged writes with a full ISR before each kill (2)",
    )
    parser.add_argument(
        "--failover-timeout",
        type=float,
        default=90.0,
        help="seconds to wait for the first acknowledgement after a kill (90)",
    )
    parser.add_argument(
        "--rejoin-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for a restarted broker to be back in the ISR (120)",
    )
    add_cluster_arguments(parser)
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    if args.partitions < 1:
        parser.error("--partitions must be at least 1")
    if args.record_size < 0 or args.linger_ms < 0 or args.warmup_s < 0:
        parser.error("--record-size, --linger-ms and --warmup-s must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.getLogger("kazoo").setLevel(logging.ERROR)  # its reconnects are expected here
    ran = run_on_cluster(TOOL, args, lambda cluster: run(cluster, args))
    if ran is None:
        return 130
    result, env = ran
    config = {
        "runs": args.runs,
        "partitions": args.partitions,
        "victim": args.victim,
        "record_size": args.record_size,
        "linger_ms": args.linger_ms,
        "warmup_s": args.warmup_s,
        "failover_timeout_s": args.failover_timeout,
        "rejoin_timeout_s": args.rejoin_timeout,
    }
    out = {"failover": result, "config": config, "env": env}
    if args.json:
        print(json.dumps(out, sort_keys=True))
    else:
        print_table(out)
    return 1 if result["errors"] or result["unfinished"] else 0


if __name__ == "__main__":
    sys.exit(main())
