"""Consumer groups on a real cluster: ZooKeeper, three brokers, and consumer processes
(perf/group_member.py) that the tests kill.

Each member writes every record it processed to its journal, then commits (at least once),
so a test can check that no record was skipped, and time rebalances from the journals.
The scenarios are issue 5's: a member killed with -9, the coordinator's broker killed, a
member joining and leaving over and over while records flow, ``logctl group reset-offsets
--to-earliest`` replaying the topic, a static member restarting without a rebalance, and a
handler slower than ``max_poll_interval_ms`` being evicted and told so.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from client import Admin, Producer, TopicPartition
from client.errors import LogServerError
from tests.client.cli.conftest import lines, run_logctl
from tests.cluster.conftest import Cluster

ROOT = Path(__file__).resolve().parents[2]
MEMBER = ROOT / "perf" / "group_member.py"
TOPIC = "work"
PARTITIONS = 6
SESSION_TIMEOUT_MS = 6_000
REBALANCE_BAR_S = SESSION_TIMEOUT_MS / 1000 + 3
WAIT_S = 60.0
REBALANCE = {"assigned", "revoked"}


class Member:
    """One group member process, its journal, stopped by PID at the end."""

    def __init__(self, journal: Path, argv: list[str]) -> None:
        self.journal = journal
        self._stderr = journal.with_suffix(".err").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, str(MEMBER), *argv, "--out", str(journal)],
            stdout=subprocess.DEVNULL,
            stderr=self._stderr,
        )

    def events(self) -> list[dict[str, Any]]:
        if not self.journal.exists():
            return []
        lines = self.journal.read_text(encoding="utf-8").splitlines()
        found = []
        for line in lines:
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line being written
        return found

    def assignment(self) -> list[int] | None:
        """The partitions of its latest assignment, or None while revoked or not yet assigned."""
        current = None
        for event in self.events():
            if event["e"] == "assigned":
                current = event["partitions"]
            elif event["e"] == "revoked":
                current = None
        return current

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self._stderr.close()

    def terminate(self) -> None:
        """SIGTERM, without waiting: the member commits, leaves the group and exits."""
        if self.process.poll() is None:
            self.process.terminate()

    def stop(self) -> None:
        self.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.kill()


@pytest.fixture
def members(tmp_path: Path, cluster: Cluster) -> Iterator[Callable[..., Member]]:
    started: list[Member] = []

    def start(name: str, group: str = "g", *extra: str) -> Member:
        member = Member(
            tmp_path / f"{name}.jsonl",
            [
                "--bootstrap-server",
                cluster.bootstrap,
                "--group",
                group,
                "--topic",
                TOPIC,
                "--session-timeout-ms",
                str(SESSION_TIMEOUT_MS),
                "--heartbeat-interval-ms",
                "1000",
                *extra,
            ],
        )
        started.append(member)
        return member

    yield start
    for member in started:
        member.kill()


async def until(check: Callable[[], object], what: str, timeout_s: float) -> float:
    """Seconds until ``check()`` (awaited if it is awaitable) is true; fails after ``timeout_s``."""
    started = time.monotonic()
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"timed out ({timeout_s} s) waiting for {what}")
        await asyncio.sleep(0.1)


async def equals(value: Awaitable[Any], expected: Any) -> bool:
    return await value == expected


async def create_topic(cluster: Cluster) -> None:
    async with Admin(cluster.bootstrap, request_timeout_ms=10_000) as admin:
        await admin.create_topic(TOPIC, PARTITIONS, 3)


async def produce(bootstrap: str, values: range) -> None:
    async with Producer(bootstrap, acks="all", linger_ms=2) as producer:
        futures = [await producer.send(TOPIC, b"v%d" % i, partition=i % PARTITIONS) for i in values]
        for future in futures:
            await asyncio.wait_for(future, 30)


def processed(all_members: list[Member]) -> dict[int, set[int]]:
    """partition → offsets processed by any member."""
    found: dict[int, set[int]] = {p: set() for p in range(PARTITIONS)}
    for member in all_members:
        for event in member.events():
            if event["e"] == "record":
                found[event["p"]].add(event["o"])
    return found


def values_processed(all_members: list[Member]) -> set[str]:
    return {
        event["v"] for member in all_members for event in member.events() if event["e"] == "record"
    }


async def log_ends(cluster: Cluster) -> dict[int, int]:
    async with Admin(cluster.bootstrap) as admin:
        ends = await admin.list_offsets(
            {TopicPartition(TOPIC, p): "latest" for p in range(PARTITIONS)}
        )
    return {tp.partition: found.offset for tp, found in ends.items()}


async def assert_nothing_skipped(cluster: Cluster, all_members: list[Member]) -> None:
    """Every offset of every partition, up to its log end, is in some member's journal."""
    ends = await log_ends(cluster)
    seen = processed(all_members)
    for p in range(PARTITIONS):
        wanted = set(range(ends[p]))
        assert seen[p] == wanted, f"partition {p}: skipped {sorted(wanted - seen[p])}"


def events_since(member: Member, since: float, kinds: set[str]) -> list[dict[str, Any]]:
    return [e for e in member.events() if e["e"] in kinds and e["t"] >= since]


def ever_covered_all(live: list[Member], since: float) -> bool:
    """Did the assignments ``live`` held at once cover every partition at some moment after
    ``since``? Replays their journals merged in time order."""
    timeline = sorted(
        (e["t"], i, e) for i, m in enumerate(live) for e in m.events() if e["e"] in REBALANCE
    )
    current: dict[int, list[int] | None] = {i: None for i in range(len(live))}
    for t, i, event in timeline:
        current[i] = event["partitions"] if event["e"] == "assigned" else None
        held = [p for part in current.values() for p in part or ()]
        if t >= since and sorted(held) == list(range(PARTITIONS)):
            return True
    return False


async def group_state(cluster: Cluster, group: str = "g") -> tuple[str, int]:
    """(state, number of members) as the coordinator describes the group."""
    try:
        async with Admin(cluster.bootstrap, request_timeout_ms=5_000) as admin:
            found = (await admin.describe_groups([group]))[group]
    except LogServerError:
        return "unknown", -1
    return found.state, len(found.members)


class SteadyProducer:
    """Writes ``per_batch`` records every ``every_s`` seconds (values ``v0``, ``v1``, ...)
    until stopped; ``sent`` counts the acknowledged ones."""

    def __init__(self, bootstrap: str, every_s: float = 0.2, per_batch: int = 30) -> None:
        self._bootstrap = bootstrap
        self._every_s = every_s
        self._per_batch = per_batch
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.sent = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> int:
        self._stop.set()
        assert self._task is not None
        await asyncio.wait_for(self._task, 60)
        return self.sent

    async def _run(self) -> None:
        async with Producer(self._bootstrap, acks="all", linger_ms=2) as producer:
            while not self._stop.is_set():
                values = range(self.sent, self.sent + self._per_batch)
                futures = [
                    await producer.send(TOPIC, b"v%d" % i, partition=i % PARTITIONS) for i in values
                ]
                for future in futures:
                    await asyncio.wait_for(future, 30)
                self.sent += len(futures)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self._every_s)


def covers_all(live: list[Member]) -> bool:
    parts = [m.assignment() for m in live]
    if any(p is None for p in parts):
        return False
    flat = sorted(p for part in parts for p in part or ())
    return flat == list(range(PARTITIONS))


async def test_a_killed_member_s_partitions_move_and_nothing_is_skipped(
    cluster: Cluster, members: Callable[..., Member]
) -> None:
    await create_topic(cluster)
    group = [members(f"m{i}") for i in range(3)]
    await until(lambda: covers_all(group) and all(m.assignment() for m in group),
                "three members sharing six partitions", WAIT_S)  # fmt: skip
    await produce(cluster.bootstrap, range(600))
    await until(lambda: len(values_processed(group)) == 600, "600 records processed", WAIT_S)

    victim, survivors = group[0], group[1:]
    victim.kill()
    killed_at = time.time()
    await produce(cluster.bootstrap, range(600, 1200))
    await until(lambda: covers_all(survivors), "the survivors sharing six partitions", WAIT_S)
    settled_at = max(e["t"] for m in survivors for e in m.events() if e["e"] == "assigned")
    assert settled_at - killed_at < REBALANCE_BAR_S, (
        f"rebalance took {settled_at - killed_at:.1f} s"
    )
    await until(lambda: len(values_processed(group)) == 1200, "1200 records processed", WAIT_S)
    await assert_nothing_skipped(cluster, group)


async def test_the_coordinator_broker_dies_and_no_committed_offset_goes_back(
    cluster: Cluster, members: Callable[..., Member]
) -> None:
    await create_topic(cluster)
    group = [members(f"m{i}") for i in range(2)]
    await until(lambda: covers_all(group), "two members sharing six partitions", WAIT_S)
    await produce(cluster.bootstrap, range(300))
    await until(lambda: len(values_processed(group)) == 300, "300 records processed", WAIT_S)

    async with Admin(cluster.bootstrap) as admin:
        coordinator = (await admin.describe_groups(["g"]))["g"].coordinator_id
        before = await admin.list_group_offsets("g")
    assert coordinator >= 0
    assert sum(o.offset for o in before.values()) == 300

    await asyncio.to_thread(cluster.brokers[coordinator].kill9)
    survivors = ",".join(b.address for i, b in enumerate(cluster.brokers) if i != coordinator)
    await produce(survivors, range(300, 600))
    await until(lambda: len(values_processed(group)) == 600, "600 records processed", WAIT_S)

    async def committed_all() -> bool:
        try:
            async with Admin(survivors, request_timeout_ms=5_000) as admin:
                after = await admin.list_group_offsets("g")
                new = (await admin.describe_groups(["g"]))["g"].coordinator_id
        except LogServerError:
            return False
        return new != coordinator and sum(o.offset for o in after.values()) == 600

    await until(committed_all, "every record committed through a new coordinator", WAIT_S)
    async with Admin(survivors) as admin:
        after = await admin.list_group_offsets("g")
    for tp, offset in before.items():
        assert after[tp].offset >= offset.offset, f"{tp}: {offset.offset} -> {after[tp].offset}"


async def test_a_member_joining_and_leaving_over_and_over_the_group_settles_and_skips_nothing(
    cluster: Cluster, members: Callable[..., Member]
) -> None:
    await create_topic(cluster)
    steady = [members("m0"), members("m1")]
    await until(lambda: covers_all(steady), "two members sharing six partitions", WAIT_S)
    producer = SteadyProducer(cluster.bootstrap)
    producer.start()

    # A third member started and stopped (SIGTERM: it commits and leaves) for about 8 s, each
    # one 0.3-0.8 s after it subscribed: before its JoinGroup, in the middle of a join phase
    # or a sync, or just after its assignment (a rebalance takes about a heartbeat, 1 s).
    churners: list[Member] = []
    churn_ends = time.monotonic() + 8
    while time.monotonic() < churn_ends:
        churner = members(f"c{len(churners)}")
        churners.append(churner)
        await until(churner.events, "a churner subscribed", WAIT_S)
        await asyncio.sleep(0.3 + 0.1 * (len(churners) % 6))
        churner.terminate()
    third = members("m2")
    last_change = time.monotonic()
    await asyncio.gather(*(asyncio.to_thread(c.stop) for c in churners))
    group = [*steady, third]

    # The group settles: the three live members share the six partitions, in one Stable
    # generation with nobody else in it.
    await until(
        lambda: covers_all(group) and all(m.assignment() for m in group),
        "the three live members sharing six partitions",
        WAIT_S,
    )
    settled_s = time.monotonic() - last_change
    assert await group_state(cluster) == ("Stable", 3)
    # The bound: the last churner's member id may wait a session timeout before it expires
    # (KIP-394: one handed out but never used), then one join phase (heartbeat 1 s) and
    # the start of the process.
    assert settled_s < SESSION_TIMEOUT_MS / 1000 + 10, f"settled after {settled_s:.1f} s"

    sent = await producer.stop()
    await until(lambda: len(values_processed(group + churners)) == sent, f"{sent} records", WAIT_S)
    await assert_nothing_skipped(cluster, group + churners)
    assert sent >= 600  # records flowed during the whole churn
    assert len(churners) >= 6
    assert any(events_since(c, 0, {"assigned"}) for c in churners), "no churner ever joined"
    assert all(len(events_since(m, 0, {"assigned"})) >= 4 for m in steady), "few rebalances"


async def test_reset_offsets_to_earliest_replays_the_whole_topic_to_the_group(
    cluster: Cluster, members: Callable[..., Member]
) -> None:
    await create_topic(cluster)
    await produce(cluster.bootstrap, range(300))
    first = [members("m0"), members("m1")]
    await until(lambda: len(values_processed(first)) == 300, "300 records processed", WAIT_S)

    async def committed() -> int:
        async with Admin(cluster.bootstrap) as admin:
            return sum(o.offset for o in (await admin.list_group_offsets("g")).values())

    await until(lambda: equals(committed(), 300), "300 records committed", WAIT_S)
    await asyncio.gather(*(asyncio.to_thread(m.stop) for m in first))
    await until(lambda: equals(group_state(cluster), ("Empty", 0)), "an Empty group", WAIT_S)

    result = await asyncio.to_thread(
        run_logctl,
        ["-b", cluster.bootstrap, "group", "reset-offsets", "g", "--topic", TOPIC,
         "--to-earliest", "--execute"],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    rows = [line.split() for line in lines(result.stdout)]
    assert rows == [
        ["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"],
        *(["g", TOPIC, str(p), "0"] for p in range(PARTITIONS)),
    ]
    assert await committed() == 0

    again = members("again")
    await until(lambda: len(values_processed([again])) == 300, "300 records replayed", WAIT_S)
    await assert_nothing_skipped(cluster, [again])  # from offset 0 of every partition
    assert sorted(again.assignment() or ()) == list(range(PARTITIONS))


async def test_a_static_member_restarted_within_its_session_gets_its_partitions_with_no_rebalance(
    cluster: Cluster, members: Callable[..., Member]
) -> None:
    await create_topic(cluster)
    static = members("s0", "g", "--instance-id", "s0")
    others = [members("m1"), members("m2")]
    group = [static, *others]
    await until(lambda: covers_all(group) and all(m.assignment() for m in group),
                "three members sharing six partitions", WAIT_S)  # fmt: skip
    await produce(cluster.bootstrap, range(300))
    await until(lambda: len(values_processed(group)) == 300, "300 records processed", WAIT_S)
    before = static.assignment()

    static.kill()
    killed_at = time.time()
    restarted = members("s0-again", "g", "--instance-id", "s0")
    back_s = await until(lambda: restarted.assignment() is not None, "the restarted member's "
                         "assignment", SESSION_TIMEOUT_MS / 1000)  # fmt: skip
    assert restarted.assignment() == before, f"{before} became {restarted.assignment()}"
    await produce(cluster.bootstrap, range(300, 600))
    everyone = [static, restarted, *others]
    await until(lambda: len(values_processed(everyone)) == 600, "600 records processed", WAIT_S)
    # Past the killed process's session: had its partitions moved, it would show by now.
    await asyncio.sleep(max(0.0, killed_at + SESSION_TIMEOUT_MS / 1000 + 2 - time.time()))

    for member in others:
        moved = events_since(member, killed_at, REBALANCE)
        assert moved == [], f"{member.journal.name} saw a rebalance: {moved}"
    assert [e["e"] for e in restarted.events() if e["e"] in REBALANCE] == ["assigned"]
    assert await group_state(cluster) == ("Stable", 3)
    assert back_s < SESSION_TIMEOUT_MS / 1000
    await assert_nothing_skipped(cluster, everyone)


async def test_a_handler_slower_than_max_poll_interval_is_evicted_and_told_so(
    cluster: Cluster, members: Callable[..., Member]
) -> None:
    await create_topic(cluster)
    others = [members("m0"), members("m1")]
    slow = members("slow", "g", "--slow-ms", "3000", "--max-poll-interval-ms", "1500")
    group = [*others, slow]
    await until(lambda: covers_all(group) and all(m.assignment() for m in group),
                "three members sharing six partitions", WAIT_S)  # fmt: skip
    joined_at = time.time()
    await produce(cluster.bootstrap, range(600))

    def evictions() -> list[dict[str, Any]]:
        return [e for e in slow.events() if e["e"] == "error"]

    await until(evictions, "the slow member told it was evicted", WAIT_S)
    first = evictions()[0]
    assert first["type"] == "MaxPollIntervalExceededError", first
    assert "max_poll_interval_ms=1500" in first["message"], first["message"]
    # Its partitions went to the others, who held all six at some moment after it joined.
    await until(lambda: ever_covered_all(others, joined_at), "the others holding all six", WAIT_S)
    # It lost them (on_lost, which defaults to on_revoke) before poll told it.
    revoked = [e for e in slow.events() if e["e"] == "revoked"]
    assert revoked, slow.events()
    assert revoked[0]["t"] <= first["t"]

    await until(lambda: len(values_processed(group)) == 600, "600 records processed", WAIT_S)
    await assert_nothing_skipped(cluster, group)
    # With nothing left to process it keeps up, rejoins and stays: the group settles.
    await until(lambda: covers_all(group) and all(m.assignment() for m in group),
                "the slow member back in a settled group", WAIT_S)  # fmt: skip
    assert all(e["type"] == "MaxPollIntervalExceededError" for e in evictions()), evictions()
