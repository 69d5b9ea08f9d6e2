"""A consumer group of three processes on a cluster: records/s consumed, and rebalance time
after a member is killed with -9.

Run from the repository root with the project's virtualenv::

    python perf/group_perf.py [--num-records 5000000] [--record-size 100] [--rounds 5]
        [--session-timeout-ms 6000] [--heartbeat-interval-ms 1000]
        [--broker-setting NAME=VALUE] [--dir DIR] [--keep-dir] [--json]

Issue 5's benchmark. The tool starts a real ZooKeeper and three brokers on
loopback (``perf/cluster_launcher.py``, ``logserver/config.py``'s defaults;
the group settings in force are printed), creates topic ``group-perf`` with 6
partitions, replication factor 3 and ``min.insync.replicas=2``, and writes
``--num-records`` records of ``--record-size`` random bytes to it, record ``i``
to partition ``i % 6`` (``acks=all``), before any member starts.

**Throughput.** Three member processes (``perf/group_member.py --progress-ms``:
subscribe, poll, commit after each poll, ``auto_offset_reset=earliest``; no
line written per record, a progress line every 500 ms) start together and
join group ``group-perf``. The figure is the records of the topic divided by
the time from the first member's first assignment to the poll that returned
the last record (per partition, the members' progress lines show where each
stands; the time is that of the poll, not of the progress line). The members
run on ``--event-loop`` like the tool; their CPU time over the phase is printed.

**Rebalance time**, ``--rounds`` times: with the group settled (three members,
six partitions assigned), one member is killed with SIGKILL (member ``r % 3``
in round ``r``), and the figure is the time from the kill to the moment the two
survivors hold new assignments covering all six partitions (the ``assigned``
lines of their journals, written by ``on_assign`` inside ``poll``). The
killed member is then started again and the group left to settle before the
next round. Issue 5's bar is a median within the session timeout + 3 s.

The members heartbeat in step: each one's heartbeat clock starts at the
SyncGroup answer of the generation, which they all get at once. So where the
kill falls between two heartbeats decides much of the figure (the dead
member's session runs from its last heartbeat; the survivors hear of the
rebalance at their next one). The kill comes 0.2 s plus a fraction of
``--heartbeat-interval-ms`` (plus whole intervals) after the generation's
assignment, the fraction spread evenly over the rounds (0, 0.62, 0.24, 0.85,
0.47, ...: ``kill_phase``).

Where the time goes, per round, from the coordinator's log (the broker logs
each expiry and each generation) and the survivors' journals, in seconds from
the kill: ``last heartbeat`` (negative: when the dead member was last heard
from, the expiry line saying how long it had been silent); ``expired``, the
coordinator's sweep removed it (a member killed with -9 says nothing, so only
its session running out tells); ``revoked``, both survivors gave their
partitions up (they learn of the rebalance from a heartbeat answer, every
``--heartbeat-interval-ms``); ``generation``, the join phase ended with the
two survivors; ``assigned``, the figure.

Every member, broker and ZooKeeper is stopped by its PID at the end, on ^C, on
SIGTERM and on an error; every wait is bounded. Bars are printed, never
enforced; the exit status is 1 only when a phase did not finish.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from broker_launcher import CpuMeter, progress
from cluster_launcher import (
    LaunchedCluster,
    add_cluster_arguments,
    log_time,
    print_cluster_environment,
    run_on_cluster,
    wait_for_topic,
)

from client.admin import Admin
from client.producer import Producer
from client.topic_partition import TopicPartition
from logserver.config import load_config

TOOL = "group_perf"
TOPIC = "group-perf"
GROUP = "group-perf"
PARTITIONS = 6
MEMBERS = 3
BAR_MARGIN_S = 3.0
MEMBER_SCRIPT = Path(__file__).resolve().parent / "group_member.py"
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
_EXPIRED = re.compile(rf"group '{GROUP}': member \S+ expired \(silent for (\d+) ms\)")
_GENERATION = re.compile(rf"group '{GROUP}': generation \d+ with (\d+) member")
GOLDEN_RATIO_FRACTION = 0.6180339887  # round r kills at phase r * this (mod 1): evenly spread
WAIT_POLL_S = 0.05  # the journals
GROUP_SETTINGS = (
    "group.initial.rebalance.delay.ms",
    "group.min.session.timeout.ms",
    "group.max.session.timeout.ms",
    "offsets.topic.num.partitions",
)
_LIVE: set[Member] = set()


class Member:
    """One ``group_member.py`` process, its journal (JSON lines) and its stderr, by PID."""

    def __init__(self, name: str, journal: Path, argv: list[str]) -> None:
        self.name = name
        self.journal = journal
        self._argv = argv
        self._process: subprocess.Popen[bytes] | None = None
        self._stderr: IO[bytes] | None = None
        self._events: list[dict[str, Any]] = []
        self._read_at = 0
        self.started_at = 0.0

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> Member:
        self._stderr = self.journal.with_suffix(".err").open("wb")
        self.started_at = time.time()
        self._process = subprocess.Popen(
            [sys.executable, str(MEMBER_SCRIPT), *self._argv, "--out", str(self.journal)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
            start_new_session=True,  # a ^C aimed at the tool reaches it only through the tool
        )
        _LIVE.add(self)
        return self

    def exit_code(self) -> int | None:
        """None while it runs (or before it started)."""
        return None if self._process is None else self._process.poll()

    def kill(self) -> None:
        """SIGKILL by PID (what the rounds do to a member, and the last resort)."""
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(STOP_TIMEOUT_S)
        self._closed()

    def stop(self) -> None:
        """SIGTERM (the member commits and leaves the group), SIGKILL after a timeout."""
        process = self._process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                progress(TOOL, f"{self.name} did not stop within {STOP_TIMEOUT_S} s: killed")
        self.kill()

    def _closed(self) -> None:
        _LIVE.discard(self)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def stderr_tail(self, lines: int = 5) -> str:
        try:
            text = self.journal.with_suffix(".err").read_text("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def events(self) -> list[dict[str, Any]]:
        """Every complete line of the journal so far (read incrementally)."""
        try:
            with self.journal.open("rb") as f:
                f.seek(self._read_at)
                chunk = f.read()
        except FileNotFoundError:
            return self._events
        end = chunk.rfind(b"\n") + 1  # a line being written waits for the next read
        for line in chunk[:end].splitlines():
            with contextlib.suppress(json.JSONDecodeError):
                self._events.append(json.loads(line))
        self._read_at += end
        return self._events

    def assignment(self) -> tuple[float, list[int]] | None:
        """(time, partitions) of its latest assignment; None while revoked or not assigned."""
        current = None
        for event in self.events():
            if event["e"] == "assigned":
                current = (event["t"], event["partitions"])
            elif event["e"] == "revoked":
                current = None
        return current

    def last(self, kind: str) -> dict[str, Any] | None:
        return next((e for e in reversed(self.events()) if e["e"] == kind), None)

    def times(self, kind: str, since: float = 0.0) -> list[float]:
        return [e["t"] for e in self.events() if e["e"] == kind and e["t"] >= since]


@atexit.register
def _kill_leftovers() -> None:
    for member in list(_LIVE):
        with contextlib.suppress(Exception):
            member.kill()


class Group:
    """The three member slots; a killed member's slot gets a new process (a new journal)."""

    def __init__(self, root: Path, bootstrap: str, args: argparse.Namespace) -> None:
        self.root = root
        self.bootstrap = bootstrap
        self.args = args
        self.live: list[Member | None] = [None] * MEMBERS
        self.everyone: list[Member] = []

    def start(self, slot: int) -> Member:
        incarnation = sum(1 for m in self.everyone if m.name.startswith(f"member-{slot}."))
        name = f"member-{slot}.{incarnation}"
        argv = [
            "--bootstrap-server", self.bootstrap,
            "--group", GROUP,
            "--topic", TOPIC,
            "--session-timeout-ms", str(self.args.session_timeout_ms),
            "--heartbeat-interval-ms", str(self.args.heartbeat_interval_ms),
            "--progress-ms", str(self.args.progress_ms),
            "--event-loop", self.args.event_loop,
            *(["--verbose"] if self.args.verbose_members else []),
        ]  # fmt: skip
        member = Member(name, self.root / f"{name}.jsonl", argv).start()
        self.everyone.append(member)
        self.live[slot] = member
        return member

    def members(self) -> list[Member]:
        return [m for m in self.live if m is not None]

    def close(self) -> None:
        for member in self.everyone:
            member.stop()


def covering(members: Iterable[Member], since: float = 0.0) -> float | None:
    """When the current assignments of ``members`` (each one made at or after ``since``)
    came to cover every partition: the latest of their times; None if they do not."""
    found = [m.assignment() for m in members]
    if any(a is None or a[0] < since for a in found):
        return None
    held = sorted(p for a in found if a is not None for p in a[1])
    if held != list(range(PARTITIONS)):
        return None
    return max(a[0] for a in found if a is not None)


async def wait_for(check: Any, what: str, timeout_s: float, group: Group) -> Any:
    """Call ``check()`` every 50 ms until it returns something not None; bounded."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found is not None:
            return found
        for member in group.members():
            code = member.exit_code()
            if code is not None:
                raise RuntimeError(
                    f"{member.name} exited ({code}) while waiting for {what}:\n"
                    f"{member.stderr_tail()}"
                )
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {timeout_s} s")
        await asyncio.sleep(WAIT_POLL_S)


async def fill_topic(bootstrap: str, args: argparse.Namespace) -> dict[str, Any]:
    """``--num-records`` records, record ``i`` to partition ``i % 6``; the clock of the sends."""
    values = [os.urandom(args.record_size) for _ in range(256)]
    progress(TOOL, f"writing {args.num_records} records of {args.record_size} bytes to {TOPIC}")
    started = time.perf_counter()
    sampled = []
    async with Producer(bootstrap, client_id=TOOL, acks="all", linger_ms=5) as producer:
        send = producer.send
        for i in range(args.num_records):
            future = await send(TOPIC, values[i & 255], partition=i % PARTITIONS)
            if i % 1000 == 0:
                sampled.append(future)
                await asyncio.sleep(0)  # let the sender run (module doc of producer_perf.py)
        await producer.flush()
    elapsed = time.perf_counter() - started
    failed = [f.exception() for f in sampled if f.exception() is not None]
    if failed:
        raise RuntimeError(f"writing the topic failed: {failed[0]!r}")
    return {
        "records": args.num_records,
        "elapsed_s": elapsed,
        "records_per_s": args.num_records / elapsed,
    }


async def log_ends(admin: Admin) -> dict[int, int]:
    ends = await admin.list_offsets({TopicPartition(TOPIC, p): "latest" for p in range(PARTITIONS)})
    return {tp.partition: found.offset for tp, found in ends.items()}


def consumed_to(members: Iterable[Member]) -> tuple[dict[int, int], int, float | None]:
    """From the latest progress line of each member: per partition the furthest next offset,
    the records counted (duplicates included) and the time of the latest poll with records."""
    furthest = dict.fromkeys(range(PARTITIONS), 0)
    counted = 0
    last_t: float | None = None
    for member in members:
        line = member.last("progress")
        if line is None:
            continue
        counted += line["records"]
        for partition, offset in line["next"].items():
            furthest[int(partition)] = max(furthest[int(partition)], offset)
        if line["last_record_t"] is not None:
            last_t = max(last_t or 0.0, line["last_record_t"])
    return furthest, counted, last_t


def pids_of(cluster: LaunchedCluster, members: Iterable[Member]) -> dict[str, int | None]:
    pids: dict[str, int | None] = {m.name: m.pid for m in members}
    pids.update({f"broker {i}": b.pid for i, b in enumerate(cluster.brokers)})
    return pids


async def throughput(
    cluster: LaunchedCluster, admin: Admin, group: Group, args: argparse.Namespace
) -> dict[str, Any]:
    produced = await fill_topic(cluster.bootstrap, args)
    ends = await log_ends(admin)
    total = sum(ends.values())
    if total != args.num_records:
        raise RuntimeError(f"{TOPIC} holds {total} records, not the {args.num_records} written")
    rate = produced["records_per_s"]
    progress(TOOL, f"{total} records in {TOPIC} ({rate:.0f}/s); starting {MEMBERS} members")
    members = [group.start(slot) for slot in range(MEMBERS)]
    meter = CpuMeter(pids_of(cluster, members)).start()
    await wait_for(
        lambda: covering(members), "assignment of every partition", args.rebalance_timeout, group
    )
    first_assigned = min(min(m.times("assigned")) for m in members if m.times("assigned"))

    def done() -> float | None:
        furthest, _, last_t = consumed_to(members)
        return last_t if all(furthest[p] >= ends[p] for p in range(PARTITIONS)) else None

    last_record = await wait_for(done, "end of every partition", args.consume_timeout, group)
    cpu = meter.stop()
    _, counted, _ = consumed_to(members)
    elapsed = last_record - first_assigned
    generations = {m.name: len(m.times("assigned")) for m in members}
    result = {
        "records": total,
        "records_counted": counted,
        "duplicates": counted - total,
        "elapsed_s": elapsed,
        "records_per_s": total / elapsed,
        "mb_s": total * args.record_size / elapsed / 1e6,
        "assigned_after_start_s": first_assigned - min(m.started_at for m in members),
        "assignments_per_member": generations,
        "records_per_member": {
            m.name: (m.last("progress") or {}).get("records", 0) for m in members
        },
        "cpu": cpu,
        "produced": produced,
    }
    rate = result["records_per_s"]
    progress(TOOL, f"consumed {total} records in {elapsed:.2f} s: {rate:.0f} records/s")
    return result


def coordinator_lines(
    cluster: LaunchedCluster, pattern: re.Pattern[str], after: float
) -> list[tuple[float, re.Match[str]]]:
    """(wall time, match) of every line of any broker's log matching ``pattern`` at or after
    ``after`` (log lines have millisecond resolution), earliest first."""
    found = []
    for broker_id in range(len(cluster.brokers)):
        for line in cluster.broker_log(broker_id):
            at = log_time(line)
            match = pattern.search(line)
            if at is not None and match is not None and at >= after - 0.001:
                found.append((at, match))
    return sorted(found, key=lambda item: item[0])


async def one_round(
    index: int, cluster: LaunchedCluster, group: Group, args: argparse.Namespace
) -> dict[str, Any]:
    slot = index % MEMBERS
    victim = group.live[slot]
    assert victim is not None
    survivors = [m for m in group.members() if m is not victim]
    # The members heartbeat in step (their clocks start at the same SyncGroup answer), so
    # the kill's place between two heartbeats decides much of the figure: spread it over
    # the interval, round by round, counting from the generation's assignment.
    phase = (index * GOLDEN_RATIO_FRACTION) % 1
    heartbeat_s = args.heartbeat_interval_ms / 1000
    assigned = [a[0] for a in (m.assignment() for m in group.members()) if a is not None]
    kill_at = max(assigned) + 0.2 + phase * heartbeat_s
    while kill_at < time.time() + 0.1:
        kill_at += heartbeat_s
    await asyncio.sleep(kill_at - time.time())
    killed_at = time.time()
    victim.kill()
    group.live[slot] = None
    progress(TOOL, f"round {index + 1}: killed {victim.name} (pid {victim.pid})")
    settled = await wait_for(
        lambda: covering(survivors, since=killed_at),
        "new assignment of the survivors covering every partition",
        args.rebalance_timeout,
        group,
    )
    rebalance_s = settled - killed_at
    progress(TOOL, f"round {index + 1}: survivors hold every partition after {rebalance_s:.2f} s")
    restarted = group.start(slot)
    back = await wait_for(
        lambda: covering(group.members(), since=restarted.started_at),
        "the restarted member in a settled group",
        args.rebalance_timeout,
        group,
    )
    await asyncio.sleep(0.2)  # the brokers' log lines reach their files through a thread
    revoked = [m.times("revoked", killed_at) for m in survivors]
    expired = coordinator_lines(cluster, _EXPIRED, killed_at)
    generations = [
        at
        for at, match in coordinator_lines(cluster, _GENERATION, killed_at)
        if int(match.group(1)) == len(survivors)
    ]
    timeline = {
        "last_heartbeat_s": expired[0][0] - int(expired[0][1].group(1)) / 1000 - killed_at
        if expired
        else None,
        "expired_s": _since(killed_at, expired[0][0] if expired else None),
        "revoked_s": _since(killed_at, max(min(t) for t in revoked) if all(revoked) else None),
        "generation_s": _since(killed_at, min(generations, default=None)),
        "assigned_s": rebalance_s,
    }
    return {
        "round": index + 1,
        "killed": victim.name,
        "kill_phase": phase,
        "rebalance_s": rebalance_s,
        "timeline": timeline,
        "restarted_settled_s": back - restarted.started_at,
    }


def _since(origin: float, moment: float | None) -> float | None:
    return None if moment is None else moment - origin


def group_settings(cluster: LaunchedCluster) -> dict[str, str]:
    """The brokers' group settings, through the broker's own config loader."""
    config = load_config(["--log-dirs", str(cluster.root), *cluster.broker_flags(0)], environ={})
    return {name: str(getattr(config, name.replace(".", "_"))) for name in GROUP_SETTINGS}


async def run(cluster: LaunchedCluster, args: argparse.Namespace) -> dict[str, Any]:
    group = Group(cluster.root, cluster.bootstrap, args)
    try:
        async with Admin(cluster.bootstrap, client_id=TOOL, request_timeout_ms=10_000) as admin:
            await admin.create_topic(TOPIC, PARTITIONS, 3, {"min.insync.replicas": "2"})
            await wait_for_topic(admin, TOPIC, READY_TIMEOUT_S)
            result: dict[str, Any] = {"throughput": None, "rounds": [], "unfinished": None}
            try:
                result["throughput"] = await throughput(cluster, admin, group, args)
                for index in range(args.rounds):
                    result["rounds"].append(await one_round(index, cluster, group, args))
            except (TimeoutError, RuntimeError) as exc:
                progress(TOOL, f"gave up: {exc}")
                result["unfinished"] = str(exc)
            result["members"] = [
                {"name": m.name, "pid": m.pid, "stderr": m.stderr_tail(3)} for m in group.everyone
            ]
            return result
    finally:
        group.close()


def summary(result: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    figures = [r["rebalance_s"] for r in result["rounds"]]
    bar_s = args.session_timeout_ms / 1000 + BAR_MARGIN_S
    median = statistics.median(figures) if figures else None
    return {
        "rebalance_s": figures,
        "rebalance_median_s": median,
        "session_timeout_ms": args.session_timeout_ms,
        "bar_s": bar_s,
        "met": median is not None and median <= bar_s,
    }


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} s"


def print_table(out: dict[str, Any]) -> None:
    print_cluster_environment(out["env"])
    print("  group settings  " + ", ".join(f"{k}={v}" for k, v in out["group_settings"].items()))
    config = out["config"]
    print()
    print(
        f"Group {GROUP}: {MEMBERS} member processes (perf/group_member.py --progress-ms "
        f"{config['progress_ms']}), session_timeout_ms {config['session_timeout_ms']}, "
        f"heartbeat_interval_ms {config['heartbeat_interval_ms']}, commit after each poll; "
        f"topic {TOPIC}: {PARTITIONS} partitions, RF 3, min.insync.replicas=2"
    )
    t = out["throughput"]
    if t is not None:
        produced = t["produced"]
        print(
            f"  wrote {t['records']} records of {config['record_size']} B "
            f"({produced['records_per_s']:.0f} records/s, acks=all) before the members started"
        )
        print(
            f"  consumed by the group: {t['records_per_s']:.0f} records/s ({t['mb_s']:.2f} MB/s), "
            f"{t['elapsed_s']:.2f} s from the first assignment "
            f"({t['assigned_after_start_s']:.2f} s after the start) to the last record; "
            f"{t['duplicates']} duplicate(s)"
        )
        per_member = ", ".join(f"{k} {v}" for k, v in t["records_per_member"].items())
        print(f"  records per member: {per_member}")
        cpu = ", ".join(
            f"{who} {used['cpu_s']:.2f} s (+{used['runqueue_wait_s']:.2f} s waiting)"
            for who, used in t["cpu"].items()
        )
        print(f"  cpu: {cpu}")
    for r in out["rounds"]:
        tl = r["timeline"]
        print(
            f"round {r['round']}: killed {r['killed']} (phase {r['kill_phase']:.2f}); "
            f"survivors assigned all {PARTITIONS} "
            f"partitions after {fmt(r['rebalance_s'])} (last heartbeat "
            f"{fmt(tl['last_heartbeat_s'])}, expired {fmt(tl['expired_s'])}, both revoked "
            f"{fmt(tl['revoked_s'])}, generation {fmt(tl['generation_s'])}); restarted "
            f"member settled in {fmt(r['restarted_settled_s'])}"
        )
    s = out["summary"]
    if s["rebalance_median_s"] is not None:
        figures = ", ".join(f"{x:.2f}" for x in s["rebalance_s"])
        print(
            f"rebalance after a kill -9: {figures} s: median {s['rebalance_median_s']:.2f} s; "
            f"bar <= session timeout + {BAR_MARGIN_S:.0f} s = {s['bar_s']:.1f} s "
            f"(session_timeout_ms {s['session_timeout_ms']}): "
            f"{'met' if s['met'] else 'NOT MET'}"
        )
    if out["unfinished"]:
        print(f"unfinished: {out['unfinished']}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--num-records", type=int, default=5_000_000, help="records written (5000000)"
    )
    parser.add_argument("--record-size", type=int, default=100, help="value bytes (100)")
    parser.add_argument("--rounds", type=int, default=5, help="members killed, one a round (5)")
    parser.add_argument(
        "--session-timeout-ms",
        type=int,
        default=6_000,
        help="the members' session_timeout_ms (6000, the brokers' group.min.session.timeout.ms)",
    )
    parser.add_argument(
        "--heartbeat-interval-ms", type=int, default=1_000, help="the members' (1000)"
    )
    parser.add_argument(
        "--progress-ms", type=int, default=500, help="members' progress line period (500)"
    )
    parser.add_argument(
        "--consume-timeout",
        type=float,
        default=300.0,
        help="seconds the group may take to consume the topic (300)",
    )
    parser.add_argument(
        "--rebalance-timeout",
        type=float,
        default=60.0,
        help="seconds to wait for each rebalance, and for a restarted member (60)",
    )
    parser.add_argument(
        "--verbose-members",
        action="store_true",
        help="the members log the client's INFO lines (member-N.M.err in the cluster's dir; "
        "with --keep-dir)",
    )
    add_cluster_arguments(parser)
    args = parser.parse_args(argv)
    if args.num_records < 1 or args.rounds < 0 or args.record_size < 0:
        parser.error("--num-records must be at least 1, --rounds and --record-size >= 0")
    if not 0 < args.heartbeat_interval_ms < args.session_timeout_ms:
        parser.error("--heartbeat-interval-ms must be > 0 and below --session-timeout-ms")
    if args.progress_ms < 1:
        parser.error("--progress-ms must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    settings: dict[str, str] = {}

    async def work(cluster: LaunchedCluster) -> dict[str, Any]:
        settings.update(group_settings(cluster))
        return await run(cluster, args)

    ran = run_on_cluster(TOOL, args, work)
    if ran is None:
        return 130
    result, env = ran
    config = {
        "num_records": args.num_records,
        "record_size": args.record_size,
        "rounds": args.rounds,
        "session_timeout_ms": args.session_timeout_ms,
        "heartbeat_interval_ms": args.heartbeat_interval_ms,
        "progress_ms": args.progress_ms,
        "members": MEMBERS,
        "partitions": PARTITIONS,
    }
    out = {
        "throughput": result["throughput"],
        "rounds": result["rounds"],
        "summary": summary(result, args),
        "unfinished": result["unfinished"],
        "members": result["members"],
        "group_settings": settings,
        "config": config,
        "env": env,
    }
    if args.json:
        print(json.dumps(out, sort_keys=True))
    else:
        print_table(out)
    return 1 if result["unfinished"] else 0


if __name__ == "__main__":
    sys.exit(main())
