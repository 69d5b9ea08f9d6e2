"""This broker's groups: those whose ``__consumer_offsets`` partition it leads.

The broker calls ``on_leader(partition, leader_epoch)`` when it takes the
leadership of a ``__consumer_offsets`` partition, and ``on_resign(partition)``
the moment it stops leading it (follower, offline, deleted, session lost);
``leadership.py`` keeps those partitions and their fences. Until a new
partition's fence is read, its groups get ``COORDINATOR_LOAD_IN_PROGRESS``.
On ``on_resign`` its groups are dropped at once: waiting JoinGroup and
SyncGroup requests are answered ``NOT_COORDINATOR``, and so is every later
request for them.

Each group is a ``Group`` (the pure state machine) with the requests waiting
on it, its committed offsets once read (this broker is their only writer
while it coordinates), and a lock that orders its offset reads and writes.
One sweep task per coordinator ticks every group (session expiry, join and
sync deadlines) every ``sweep_interval_s``.

Commits are fenced: a ``NotCoordinatorError`` from the store means the
partition's state moved on. When only the ISR changed (this broker still
leads at the same leader epoch), the fence is read again and the commit tried
once more; otherwise the partition's groups are dropped.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from client.errors import (
    CoordinatorLoadInProgressError,
    GroupIdNotFoundError,
    IllegalGenerationError,
    LogServerError,
    NonEmptyGroupError,
    NotCoordinatorError,
    UnknownMemberIdError,
)
from coordination import CommittedOffset, Coordinator
from logserver.groups.group import (
    Group,
    GroupLimits,
    GroupState,
    JoinRequest,
    JoinResult,
    SyncResult,
    Wait,
)
from logserver.groups.leadership import Leadership, LedPartition
from logserver.groups.placement import OFFSETS_TOPIC, coordinator_partition

__all__ = ["GroupCoordinator", "GroupSummary", "MemberSummary"]

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]
_R = TypeVar("_R", JoinResult, SyncResult)


def _monotonic_ms() -> int:
    return int(time.monotonic() * 1000)


def _wall_ms() -> int:
    return int(time.time() * 1000)


@dataclasses.dataclass(frozen=True, slots=True)
class MemberSummary:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class GroupSummary:
    """What DescribeGroups shows (Kafka's rule: metadata and assignments only when Stable)."""

    group_id: str
    state: str
    protocol_type: str
    protocol: str
    members: tuple[MemberSummary, ...] = ()


class _Entry:
    """A group in memory: its state machine, waiting requests, offsets read."""

    def __init__(self, group: Group, partition: LedPartition) -> None:
        self.group = group
        self.partition = partition
        self.offsets: dict[TopicPartition, CommittedOffset] | None = None
        self.lock = asyncio.Lock()
        self.join_waiters: dict[str, list[asyncio.Future[Any]]] = {}
        self.sync_waiters: dict[str, list[asyncio.Future[Any]]] = {}
        self.generation_seen = group.generation

    @property
    def busy(self) -> bool:
        return bool(self.join_waiters or self.sync_waiters) or self.lock.locked()


class GroupCoordinator:
    def __init__(
        self,
        store: Coordinator,
        *,
        broker_id: int,
        limits: GroupLimits,
        partition_count: Callable[[], int | None],
        clock_ms: Callable[[], int] = _monotonic_ms,
        wall_clock_ms: Callable[[], int] = _wall_ms,
        sweep_interval_s: float = 0.1,
        stored_groups_interval_s: float = 10.0,
    ) -> None:
        self._store = store
        self.broker_id = broker_id
        self.limits = limits
        self._partition_count = partition_count
        self._clock = clock_ms
        self._wall_clock = wall_clock_ms
        self.sweep_interval_s = sweep_interval_s
        self.stored_groups_interval_s = stored_groups_interval_s
        self._loader: asyncio.Task[None] | None = None
        self._leadership = Leadership(store, broker_id, self._drop_groups)
        self._groups: dict[str, _Entry] = {}
        self._sweeper: asyncio.Task[None] | None = None
        self._closed = False
        self.rebalances = 0  # generations completed, for the metrics
        self.offsets_topic_lock = asyncio.Lock()
        """Held while FindCoordinator creates ``__consumer_offsets``: one attempt at a time."""

    # -- lifecycle and leadership ---------------------------------------------------------

    def start(self) -> None:
        if self._sweeper is None and not self._closed:
            self._sweeper = asyncio.create_task(self._sweep_loop(), name="group-sweep")
            self._sweeper.add_done_callback(_report_failure)
        if self._loader is None and not self._closed and self.stored_groups_interval_s:
            self._loader = asyncio.create_task(self._stored_groups_loop(), name="group-loader")
            self._loader.add_done_callback(_report_failure)

    async def close(self) -> None:
        """Stop coordinating: every waiting request is answered ``NOT_COORDINATOR`` now."""
        self._closed = True
        await self._leadership.close("the broker is shutting down")
        for task in (self._sweeper, self._loader):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    def on_leader(self, partition: int, leader_epoch: int) -> None:
        """This broker leads ``__consumer_offsets``-``partition`` at ``leader_epoch``."""
        self._leadership.on_leader(partition, leader_epoch)

    def on_resign(self, partition: int) -> None:
        """This broker no longer leads ``__consumer_offsets``-``partition``."""
        self._leadership.on_resign(partition)

    def resign_all(self, why: str) -> None:
        self._leadership.drop_all(why)

    def is_coordinating(self, partition: int) -> bool:
        return self._leadership.is_loaded(partition)

    def _drop_groups(self, led: LedPartition, why: str) -> None:
        dropped = [g for g, entry in self._groups.items() if entry.partition is led]
        for group_id in dropped:
            entry = self._groups.pop(group_id)
            entry.group.close(
                NotCoordinatorError(
                    f"broker {self.broker_id} no longer coordinates group {group_id!r} "
                    f"({led!r}: {why}): find the coordinator again"
                )
            )
            self._deliver(entry)
        if dropped:
            log.info(
                "no longer coordinating the groups of %r (%s; %d in memory dropped)",
                led, why, len(dropped),
            )  # fmt: skip

    # -- finding a group ---------------------------------------------------------------

    def partition_of(self, group_id: str) -> int | None:
        """The ``__consumer_offsets`` partition of ``group_id``; None while the topic is missing."""
        count = self._partition_count()
        return None if not count else coordinator_partition(group_id, count)

    def _loaded_partition(self, group_id: str) -> LedPartition:
        if self._closed:
            raise NotCoordinatorError(
                f"broker {self.broker_id} is shutting down: find the coordinator again"
            )
        partition = self.partition_of(group_id)
        if partition is None:
            raise NotCoordinatorError(
                f"{OFFSETS_TOPIC} does not exist yet: FindCoordinator creates it"
            )
        led = self._leadership.get(partition)
        if led is None:
            raise NotCoordinatorError(
                f"broker {self.broker_id} does not coordinate group {group_id!r} (it does not "
                f"lead {OFFSETS_TOPIC}-{partition}): find the coordinator again"
            )
        if not led.loaded:
            raise CoordinatorLoadInProgressError(
                f"broker {self.broker_id} is taking over the groups of {OFFSETS_TOPIC}-"
                f"{partition}: try again shortly"
            )
        return led

    def _entry(self, group_id: str, *, create: bool = True) -> _Entry | None:
        """The group's entry (made if ``create``); raises when this broker does not
        coordinate it (``NOT_COORDINATOR``) or not yet (``COORDINATOR_LOAD_IN_PROGRESS``)."""
        led = self._loaded_partition(group_id)
        entry = self._groups.get(group_id)
        if entry is None and create:
            entry = _Entry(Group(group_id, self.limits), led)
            self._groups[group_id] = entry
        return entry

    def _existing(self, group_id: str) -> _Entry:
        entry = self._entry(group_id, create=False)
        if entry is None:
            raise UnknownMemberIdError(f"group {group_id!r} has no members here: join it first")
        return entry

    # -- membership ----------------------------------------------------------------------

    def join(self, group_id: str, request: JoinRequest) -> JoinResult | Awaitable[JoinResult]:
        """JoinGroup: the result now, or an awaitable of it (it waits for the join phase)."""
        entry = self._entry(group_id)
        assert entry is not None
        result = entry.group.join(request, self._clock())
        return self._answer_or_wait(entry, result, entry.join_waiters)

    def sync(
        self,
        group_id: str,
        member_id: str,
        instance_id: str | None,
        generation_id: int,
        assignments: Mapping[str, bytes],
    ) -> SyncResult | Awaitable[SyncResult]:
        """SyncGroup: the member's assignment now, or an awaitable of it (the leader's)."""
        entry = self._existing(group_id)
        result = entry.group.sync(member_id, instance_id, generation_id, assignments, self._clock())
        return self._answer_or_wait(entry, result, entry.sync_waiters)

    def _answer_or_wait(
        self,
        entry: _Entry,
        result: _R | Wait,
        waiters: dict[str, list[asyncio.Future[Any]]],
    ) -> _R | Awaitable[_R]:
        future: asyncio.Future[Any] | None = None
        if isinstance(result, Wait):
            future = asyncio.get_running_loop().create_future()
            waiters.setdefault(result.member_id, []).append(future)
        self._deliver(entry)  # may hold this very answer (the leader's own sync)
        if future is None:
            assert not isinstance(result, Wait)
            return result
        return future

    def heartbeat(
        self, group_id: str, member_id: str, instance_id: str | None, generation_id: int
    ) -> None:
        entry = self._existing(group_id)
        entry.group.heartbeat(member_id, instance_id, generation_id, self._clock())
        self._deliver(entry)

    def leave(
        self, group_id: str, members: Iterable[tuple[str, str | None]]
    ) -> list[tuple[str, str | None, int]]:
        leaving = list(members)
        entry = self._entry(group_id, create=False)
        if entry is None:
            return [(m, i, UnknownMemberIdError.code) for m, i in leaving]
        results = entry.group.leave(leaving, self._clock())
        self._deliver(entry)
        return results

    def _deliver(self, entry: _Entry) -> None:
        self.rebalances += entry.group.generation - entry.generation_seen
        entry.generation_seen = entry.group.generation
        for answer in entry.group.take_answers():
            waiters = entry.join_waiters if answer.kind == "join" else entry.sync_waiters
            for future in waiters.pop(answer.member_id, ()):
                if not future.done():
                    future.set_result(answer.result)

    # -- offsets -------------------------------------------------------------------------

    async def commit_offsets(
        self,
        group_id: str,
        member_id: str,
        instance_id: str | None,
        generation_id: int,
        offsets: Mapping[TopicPartition, CommittedOffset],
    ) -> dict[TopicPartition, LogServerError]:
        """Store ``offsets``; the partitions refused, with why.

        Raises for the whole request: ``NOT_COORDINATOR`` and
        ``COORDINATOR_LOAD_IN_PROGRESS`` (find the coordinator, retry), and the group's
        answer to this member (``UNKNOWN_MEMBER_ID``, ``ILLEGAL_GENERATION``,
        ``REBALANCE_IN_PROGRESS``, ``FENCED_INSTANCE_ID``).
        """
        entry = self._entry(group_id)
        assert entry is not None
        group = entry.group
        member = group.check_commit(member_id, instance_id, generation_id, self._clock())
        refused: dict[TopicPartition, LogServerError] = {}
        if member is not None and member.owned is not None:
            for topic, partition in offsets:
                if (topic, partition) not in member.owned:
                    refused[(topic, partition)] = IllegalGenerationError(
                        f"partition {topic}-{partition} is not assigned to member "
                        f"{member_id} in generation {group.generation}: commit only what "
                        "this member owns"
                    )
        accepted = {tp: offset for tp, offset in offsets.items() if tp not in refused}
        if not accepted:
            return refused
        stamped = {
            tp: dataclasses.replace(offset, commit_timestamp=self._wall_clock())
            for tp, offset in accepted.items()
        }
        async with entry.lock:
            self._check_current(entry, group_id)
            await self._store_commit(entry, group_id, stamped)
            if entry.offsets is not None:
                entry.offsets.update(stamped)
        return refused

    def _check_current(self, entry: _Entry, group_id: str) -> None:
        """Raise ``NOT_COORDINATOR`` if the group was dropped while we waited."""
        if self._closed or not self._leadership.is_current(entry.partition):
            raise NotCoordinatorError(
                f"broker {self.broker_id} no longer coordinates group {group_id!r}: "
                "find the coordinator again"
            )

    async def _store_commit(
        self, entry: _Entry, group_id: str, offsets: Mapping[TopicPartition, CommittedOffset]
    ) -> None:
        led = entry.partition
        try:
            await self._store.commit_offsets(group_id, offsets, fence=led.fence)
            return
        except NotCoordinatorError:
            pass
        # The state moved on. If only the ISR changed, this broker still leads at the same
        # epoch: take the new fence and try once more.
        if await self._leadership.refresh_fence(led):
            log.info("%r changed at the same leader epoch (the ISR): taking a new fence", led)
            try:
                await self._store.commit_offsets(group_id, offsets, fence=led.fence)
                return
            except NotCoordinatorError:
                pass
        if self._leadership.is_current(led):
            self._leadership.drop(led.partition, "its state changed under a commit")
        raise NotCoordinatorError(
            f"broker {self.broker_id} no longer coordinates group {group_id!r}: "
            "find the coordinator again"
        )

    async def _offsets(self, entry: _Entry, group_id: str) -> dict[TopicPartition, CommittedOffset]:
        """The group's committed offsets, read from the store once and then kept."""
        async with entry.lock:
            if entry.offsets is None:
                offsets = await self._store.fetch_offsets(group_id)
                self._check_current(entry, group_id)
                entry.offsets = dict(offsets)
            return entry.offsets

    async def fetch_offsets(
        self, group_id: str, partitions: Iterable[TopicPartition] | None
    ) -> dict[TopicPartition, CommittedOffset]:
        """The committed offsets of ``partitions`` (all if None); absent: none committed."""
        entry = self._entry(group_id)
        assert entry is not None
        stored = await self._offsets(entry, group_id)
        if partitions is None:
            return dict(stored)
        return {tp: stored[tp] for tp in partitions if tp in stored}

    # -- listing, describing, deleting -------------------------------------------------

    async def list_groups(self) -> list[tuple[str, str, str]]:
        """``(group_id, protocol_type, state)`` of every group this broker coordinates,
        including those known only by their committed offsets (as ``Empty``)."""
        found: dict[str, tuple[str, str, str]] = {}
        for group_id, entry in self._groups.items():
            group = entry.group
            if group.state is GroupState.DEAD or (group.idle and not entry.offsets):
                continue
            found[group_id] = (group_id, group.protocol_type or "consumer", group.state.value)
        for group_id in await self._store.groups():
            partition = self.partition_of(group_id)
            if group_id not in found and partition is not None and self.is_coordinating(partition):
                found[group_id] = (group_id, "consumer", GroupState.EMPTY.value)
        return sorted(found.values())

    async def describe_group(self, group_id: str) -> GroupSummary:
        entry = self._entry(group_id)
        assert entry is not None
        group = entry.group
        if group.members:
            stable = group.state is GroupState.STABLE
            protocol = (group.protocol_name or "") if stable else ""
            members = tuple(
                MemberSummary(
                    m.member_id,
                    m.group_instance_id,
                    m.client_id,
                    m.client_host,
                    m.metadata(group.protocol_name) if stable else b"",
                    m.assignment if stable else b"",
                )
                for m in group.members.values()
            )
            return GroupSummary(
                group_id, group.state.value, group.protocol_type or "", protocol, members
            )
        state = GroupState.EMPTY if await self._offsets(entry, group_id) else GroupState.DEAD
        if group.generation > 0 or group.pending:
            state = GroupState.EMPTY
        return GroupSummary(group_id, state.value, group.protocol_type or "", "")

    async def delete_group(self, group_id: str) -> None:
        """Forget the group and its offsets. Raises ``NON_EMPTY_GROUP`` while it has members,
        ``GROUP_ID_NOT_FOUND`` when nothing is known of it."""
        existed = group_id in self._groups
        entry = self._entry(group_id)
        assert entry is not None
        group = entry.group
        if group.members:
            raise NonEmptyGroupError(
                f"group {group_id!r} has {len(group.members)} active member(s): stop them "
                "(or wait for their sessions to expire), then delete it"
            )
        known = existed and (group.generation > 0 or bool(group.pending) or bool(entry.offsets))
        async with entry.lock:
            self._check_current(entry, group_id)
            deleted = await self._store.delete_group_offsets(group_id)
            entry.offsets = {}
        if self._groups.get(group_id) is entry and not entry.group.members:
            del self._groups[group_id]
            entry.group.close(UnknownMemberIdError(f"group {group_id!r} was deleted"))
            self._deliver(entry)
        if not deleted and not known:
            raise GroupIdNotFoundError(f"group {group_id!r} does not exist")
        log.info("group %r deleted", group_id)

    def snapshot(self) -> list[tuple[str, Group, dict[TopicPartition, CommittedOffset] | None]]:
        """``(group_id, group, committed offsets if read)`` of each group here, for metrics."""
        return [(gid, e.group, e.offsets) for gid, e in self._groups.items()]

    # -- the sweep ---------------------------------------------------------------------

    def sweep(self) -> None:
        """Tick every group (deadlines, silent members); forget groups with nothing left."""
        now = self._clock()
        for group_id, entry in list(self._groups.items()):
            entry.group.tick(now)
            self._deliver(entry)
            if entry.group.idle and not entry.busy and not entry.offsets:
                del self._groups[group_id]

    async def _sweep_loop(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval_s)
            self.sweep()

    # -- groups known only by their committed offsets -----------------------------------

    async def load_stored_groups(self) -> int:
        """Read the offsets of every stored group this broker coordinates and has not in
        memory; return how many it loaded.

        Such a group (its members gone, say, or its coordinator moved here) has no
        other reason to be in memory, and the metrics (group counts, committed offsets,
        lag) and the alerts on them ("a group with no members") see only groups in
        memory. Groups with offsets are kept by the sweep, so each is read once.
        """
        loaded = 0
        for group_id in await self._store.groups():
            partition = self.partition_of(group_id)
            if group_id in self._groups or partition is None:
                continue
            if not self.is_coordinating(partition):
                continue
            entry = self._entry(group_id)
            assert entry is not None
            await self._offsets(entry, group_id)
            loaded += 1
        return loaded

    async def _stored_groups_loop(self) -> None:
        while True:
            await asyncio.sleep(self.stored_groups_interval_s)
            try:
                await self.load_stored_groups()
            except LogServerError as exc:  # the store is away, or leadership moved
                log.info(
                    "reading the stored groups: %s; again in %g s",
                    exc,
                    self.stored_groups_interval_s,
                )


def _report_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("task %s failed", task.get_name(), exc_info=task.exception())
