"""Consumer groups on a real cluster: ZooKeeper, three brokers, and consumer processes
(perf/group_member.py) that the tests kill.

Each member writes every record it processed to its journal, then commits (at least once),
so a test can check that no record was skipped, and time rebalances from the journals.
"""

from __future__ import annotations

import asyncio
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
from tests.cluster.conftest import Cluster

ROOT = Path(__file__).resolve().parents[2]
MEMBER = ROOT / "perf" / "group_member.py"
TOPIC = "work"
PARTITIONS = 6
SESSION_TIMEOUT_MS = 6_000
REBALANCE_BAR_S = SESSION_TIMEOUT_MS / 1000 + 3
WAIT_S = 60.0


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

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
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


async def until(check: Callable[[], Awaitable[bool] | bool], what: str, timeout_s: float) -> float:
    started = time.monotonic()
    while True:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return time.monotonic() - started
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"timed out ({timeout_s} s) waiting for {what}")
        await asyncio.sleep(0.1)


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

    async with Admin(cluster.bootstrap) as admin:
        ends = await admin.list_offsets(
            {TopicPartition(TOPIC, p): "latest" for p in range(PARTITIONS)}
        )
    seen = processed(group)
    for p in range(PARTITIONS):
        end = ends[TopicPartition(TOPIC, p)].offset
        assert seen[p] == set(range(end)), f"partition {p}: skipped {set(range(end)) - seen[p]}"


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
