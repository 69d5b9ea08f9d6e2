"""The consumer's side of its group: subscription, rebalance callbacks, commits.

A ``GroupSession`` belongs to a ``Consumer`` with a ``group_id``. It turns a
subscription (topic names, or a pattern matched against the cluster's topics
every ``metadata_max_age_ms``) into a ``Membership``, and it carries out, inside
the application's ``poll``, what the membership asks:

- revoke: auto-commit the positions (``enable_auto_commit``), call
  ``on_revoke``, drop the partitions and their buffered records — so no record
  of a revoked partition is returned after ``on_revoke``. A member that lost
  its generation (evicted, fenced, the group moved on) cannot commit: its
  partitions are *lost*, and ``on_lost`` is called instead (by default
  ``on_revoke``, as Kafka's ``onPartitionsLost`` does);
- assign: install the new partitions, call ``on_assign`` (which may ``seek``),
  then start each partition still without a position at the group's committed
  offset, else where ``auto_offset_reset`` says;
- auto-commit every ``auto_commit_interval_ms``, from ``poll``: the positions
  then are those of records earlier polls returned, which the application has
  finished with (it called ``poll`` again) — at-least-once, as Kafka does it.

Callbacks may be plain functions or coroutine functions; they get a set of
``TopicPartition``. An exception from one is raised by the ``poll`` that ran
it, after the rebalance step it belongs to is done.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

from client.cluster import Cluster
from client.consumer.fetcher import Fetcher, PartitionState
from client.consumer.offsets import (
    CommitFailedError,
    commit_offsets,
    fetch_committed,
    to_offset_and_metadata,
)
from client.errors import LogServerError, RebalanceInProgressError
from client.group.assignor import PartitionAssignor
from client.group.coordinator_lookup import CoordinatorLookup
from client.group.membership import Membership
from client.protocol import ApiKey
from client.topic_partition import OffsetAndMetadata, TopicPartition

__all__ = ["CommitCallback", "GroupSession", "RebalanceCallback"]

log = logging.getLogger(__name__)

RebalanceCallback = Callable[[set[TopicPartition]], Awaitable[None] | None]
CommitCallback = Callable[
    [dict[TopicPartition, OffsetAndMetadata], BaseException | None], Awaitable[None] | None
]
INTERNAL_TOPICS = frozenset({"__consumer_offsets"})


class GroupSession:
    def __init__(
        self,
        cluster: Cluster,
        fetcher: Fetcher,
        *,
        group_id: str,
        group_instance_id: str | None,
        assignors: Sequence[PartitionAssignor],
        session_timeout_ms: int,
        heartbeat_interval_ms: int,
        max_poll_interval_ms: int,
        enable_auto_commit: bool,
        auto_commit_interval_ms: int,
        metadata_max_age_ms: int,
        request_timeout_ms: int,
        retry_backoff_ms: int,
    ) -> None:
        self._cluster = cluster
        self._fetcher = fetcher
        self.group_id = group_id
        self.group_instance_id = group_instance_id
        self._assignors = list(assignors)
        self._membership_settings = {
            "session_timeout_ms": session_timeout_ms,
            "heartbeat_interval_ms": heartbeat_interval_ms,
            "max_poll_interval_ms": max_poll_interval_ms,
            "request_timeout_ms": request_timeout_ms,
            "retry_backoff_ms": retry_backoff_ms,
        }
        self._auto_commit = enable_auto_commit
        self._auto_commit_s = auto_commit_interval_ms / 1000
        self._metadata_max_age_s = metadata_max_age_ms / 1000
        self._request_timeout_ms = request_timeout_ms
        self._retry_backoff_ms = retry_backoff_ms
        self.lookup = CoordinatorLookup(cluster, timeout_ms=request_timeout_ms)
        self.membership: Membership | None = None
        self.pattern: re.Pattern[str] | None = None
        self._on_assign: RebalanceCallback | None = None
        self._on_revoke: RebalanceCallback | None = None
        self._on_lost: RebalanceCallback | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._commits: set[asyncio.Task[None]] = set()
        self._next_auto_commit = 0.0
        self._last_auto_commit: dict[TopicPartition, OffsetAndMetadata] = {}
        self._next_lookup = 0.0
        self._refresh_pattern = asyncio.Event()

    @property
    def subscribed(self) -> bool:
        return self.membership is not None

    # -- subscription ----------------------------------------------------------------

    def subscribe(
        self,
        topics: Iterable[str] | None,
        pattern: str | re.Pattern[str] | None,
        on_assign: RebalanceCallback | None,
        on_revoke: RebalanceCallback | None,
        on_lost: RebalanceCallback | None,
    ) -> None:
        self._on_assign, self._on_revoke, self._on_lost = on_assign, on_revoke, on_lost
        if self.membership is None:
            self.membership = Membership(
                self._cluster,
                self.lookup,
                group_id=self.group_id,
                group_instance_id=self.group_instance_id,
                assignors=self._assignors,
                on_change=self._fetcher.data_ready.set,  # wakes a waiting poll
                **self._membership_settings,
            )
            self._watcher = asyncio.create_task(self._watch_metadata(), name="consumer-metadata")
            self._watcher.add_done_callback(_log_death)
            self._next_auto_commit = _now() + self._auto_commit_s
        if pattern is not None:
            self.pattern = re.compile(pattern) if isinstance(pattern, str) else pattern
            self._refresh_pattern.set()
        else:
            self.pattern = None
            assert topics is not None
            self._cluster.add_topics(topics)
            self.membership.subscribe(topics)

    async def unsubscribe(self) -> None:
        """Give the partitions back (commit, ``on_revoke``), leave the group, stop watching."""
        membership = self.membership
        if membership is None:
            return
        try:
            if membership.owned or self._fetcher.states:
                await self._give_up(membership, lost=membership.commit_generation() is None)
        finally:
            await self._stop(membership)

    async def _stop(self, membership: Membership) -> None:
        self.membership = None
        self.pattern = None
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.cancel()
            await asyncio.wait((watcher,), timeout=5)
        await membership.close(leave=membership.error is None)

    async def _watch_metadata(self) -> None:
        """Match the pattern against the topics, and let the leader see partition counts change."""
        while True:
            self._refresh_pattern.clear()
            wait_s = self._metadata_max_age_s
            membership = self.membership
            if membership is not None and (self.pattern is not None or membership.is_leader):
                try:
                    counts = await _topic_partition_counts(self._cluster, self._request_timeout_ms)
                except LogServerError as exc:
                    log.info("group %s: listing topics failed: %s", self.group_id, exc)
                    wait_s = min(wait_s, 1.0)
                else:
                    if self.pattern is not None:
                        pattern = self.pattern
                        matched = sorted(
                            t for t in counts if t not in INTERNAL_TOPICS and pattern.fullmatch(t)
                        )
                        self._cluster.add_topics(matched)
                        membership.subscribe(matched)
                    membership.check_partition_counts(counts)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait_s):
                    await self._refresh_pattern.wait()

    # -- inside poll ------------------------------------------------------------------

    async def poll_started(self) -> None:
        membership = self.membership
        if membership is not None:
            membership.poll_started()
        await self.step()
        self._maybe_auto_commit()

    async def step(self) -> None:
        """Carry out what the membership asks (module doc); raises its fatal error."""
        membership = self.membership
        if membership is not None:
            if membership.error is not None:
                raise membership.error
            timed_out = membership.take_poll_timeout()
            if timed_out is not None:
                if membership.owned or self._fetcher.states:
                    await self._give_up(membership, lost=True)
                else:
                    membership.revoked()
                raise timed_out
            if membership.revoke_requested:
                await self._give_up(membership, lost=membership.commit_generation() is None)
            assignment = membership.take_assignment()
            if assignment is not None:
                await self._take(assignment)
        await self._start_from_committed()

    async def _give_up(self, membership: Membership, *, lost: bool) -> None:
        partitions = set(self._fetcher.states)
        try:
            if not lost and self._auto_commit:
                await self._commit_quietly("before the rebalance")
            callback = (self._on_lost or self._on_revoke) if lost else self._on_revoke
            if partitions and callback is not None:
                log.info(
                    "group %s: %s %s",
                    self.group_id,
                    "lost" if lost else "revoking",
                    sorted(map(str, partitions)),
                )
                await _call(callback, partitions)
        finally:
            self._fetcher.states = {}
            self._last_auto_commit = {}
            membership.revoked()

    async def _take(self, assignment: frozenset[TopicPartition]) -> None:
        self._fetcher.states = {tp: PartitionState(needs_committed=True) for tp in assignment}
        self._cluster.add_topics(tp.topic for tp in assignment)
        self._next_lookup = 0.0
        try:
            if self._on_assign is not None:
                await _call(self._on_assign, set(assignment))
        finally:
            self._fetcher.wake()

    def mark_manual(self, states: Mapping[TopicPartition, PartitionState]) -> None:
        """Manually assigned partitions also start at the group's committed offsets (Kafka)."""
        for state in states.values():
            if state.position is None:
                state.needs_committed = True
        self._next_lookup = 0.0

    async def _start_from_committed(self) -> None:
        waiting = {tp: s for tp, s in self._fetcher.states.items() if s.needs_committed}
        if not waiting or _now() < self._next_lookup:
            return
        try:
            found = await fetch_committed(
                self.lookup, self.group_id, waiting, timeout_ms=self._request_timeout_ms
            )
        except LogServerError as exc:
            log.info("group %s: committed offsets unknown (%s); trying again", self.group_id, exc)
            self._next_lookup = _now() + max(self._retry_backoff_ms / 1000, 0.1)
            return
        for tp, state in waiting.items():
            if self._fetcher.states.get(tp) is not state or not state.needs_committed:
                continue  # revoked or sought meanwhile
            state.needs_committed = False
            if state.position is None and tp in found:
                state.seek(found[tp].offset)
        self._fetcher.wake()

    async def ensure_position(self, tp: TopicPartition) -> None:
        """``position()`` of a partition whose committed offset is not known yet.

        Raises the lookup's error rather than fall back to ``auto_offset_reset``.
        """
        state = self._fetcher.states.get(tp)
        found = await fetch_committed(
            self.lookup, self.group_id, [tp], timeout_ms=self._request_timeout_ms
        )
        if state is not None and self._fetcher.states.get(tp) is state and state.needs_committed:
            state.needs_committed = False
            if state.position is None and tp in found:
                state.seek(found[tp].offset)
            self._fetcher.wake()

    # -- commits ----------------------------------------------------------------------

    def positions(self) -> dict[TopicPartition, OffsetAndMetadata]:
        return {
            tp: OffsetAndMetadata(s.position, "")
            for tp, s in self._fetcher.states.items()
            if s.position is not None
        }

    def _generation(self) -> tuple[int, str]:
        membership = self.membership
        if membership is None:
            return -1, ""  # a simple commit: no membership (manual assignment)
        generation = membership.commit_generation()
        if generation is not None:
            return generation
        if membership.rebalancing:
            raise RebalanceInProgressError(
                f"group {self.group_id!r} is rebalancing, so this member cannot commit now: "
                "poll() to finish the rebalance, then commit (commit in on_revoke to commit "
                "before partitions move)"
            )
        raise CommitFailedError(
            f"this consumer is not a member of group {self.group_id!r} now (it left or was "
            "evicted): its partitions may belong to another member. poll() rejoins."
        )

    async def commit(
        self,
        offsets: Mapping[TopicPartition | tuple[str, int], Any] | None = None,
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        chosen = self._offsets(offsets)
        generation_id, member_id = self._generation()
        await commit_offsets(
            self.lookup,
            self.group_id,
            chosen,
            generation_id=generation_id,
            member_id=member_id,
            group_instance_id=self.group_instance_id if self.membership else None,
            timeout_ms=self._request_timeout_ms,
            retry_backoff_ms=self._retry_backoff_ms,
        )
        return chosen

    def _offsets(
        self, offsets: Mapping[TopicPartition | tuple[str, int], Any] | None
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        if offsets is None:
            return self.positions()
        return {TopicPartition(*tp): to_offset_and_metadata(v) for tp, v in offsets.items()}

    def commit_async(
        self,
        offsets: Mapping[TopicPartition | tuple[str, int], Any] | None = None,
        callback: CommitCallback | None = None,
    ) -> asyncio.Task[None]:
        chosen = self._offsets(offsets)

        async def run() -> None:
            error: BaseException | None = None
            try:
                await self.commit(chosen)
            except LogServerError as exc:
                error = exc
            if callback is not None:
                await _call(callback, chosen, error)
            elif error is not None:
                log.warning("group %s: asynchronous commit failed: %s", self.group_id, error)

        task = asyncio.create_task(run(), name=f"group-{self.group_id}-commit")
        self._commits.add(task)
        task.add_done_callback(self._commit_done)
        return task

    def _commit_done(self, task: asyncio.Task[None]) -> None:
        self._commits.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("group %s: commit callback failed: %r", self.group_id, task.exception())

    def _maybe_auto_commit(self) -> None:
        if not self._auto_commit or _now() < self._next_auto_commit:
            return
        self._next_auto_commit = _now() + self._auto_commit_s
        membership = self.membership
        if membership is not None and membership.commit_generation() is None:
            return
        positions = self.positions()
        if not positions or positions == self._last_auto_commit:
            return
        self._last_auto_commit = positions
        self.commit_async(positions, self._auto_committed)

    def _auto_committed(
        self, offsets: dict[TopicPartition, OffsetAndMetadata], error: BaseException | None
    ) -> None:
        if isinstance(error, CommitFailedError | RebalanceInProgressError):
            log.info("group %s: auto-commit skipped: %s", self.group_id, error)
            self._last_auto_commit = {}
        elif error is not None:
            log.warning("group %s: auto-commit failed: %s", self.group_id, error)
            self._last_auto_commit = {}

    async def _commit_quietly(self, why: str) -> None:
        positions = self.positions()
        if not positions:
            return
        try:
            await self.commit(positions)
        except LogServerError as exc:
            log.warning("group %s: auto-commit %s failed: %s", self.group_id, why, exc)

    async def committed(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, Any]:
        return await fetch_committed(
            self.lookup, self.group_id, tps, timeout_ms=self._request_timeout_ms
        )

    # -- closing ----------------------------------------------------------------------

    async def close(self) -> None:
        """Commit (auto-commit), ``on_revoke``, wait for commits in flight, leave the group."""
        membership = self.membership
        try:
            if membership is None:
                if self._auto_commit and self._fetcher.states:
                    await self._commit_quietly("on close")
            elif membership.error is None and (membership.owned or self._fetcher.states):
                try:
                    await self._give_up(membership, lost=membership.commit_generation() is None)
                except Exception as exc:  # noqa: BLE001 - a callback's failure must not stop close
                    log.error("group %s: rebalance callback on close: %r", self.group_id, exc)
            if self._commits:
                await asyncio.wait(set(self._commits), timeout=self._request_timeout_ms / 1000)
        finally:
            try:
                if membership is not None:
                    await self._stop(membership)
            finally:
                self.lookup.close()


async def _call(callback: Callable[..., Any], *args: Any) -> None:
    result = callback(*args)
    if inspect.isawaitable(result):
        await result


async def _topic_partition_counts(cluster: Cluster, timeout_ms: int) -> dict[str, int]:
    """Every topic's partition count, from one Metadata request for all topics."""
    connection = await cluster.any_connection()
    reply, _ = await connection.request(
        ApiKey.METADATA, {"topics": None, "allow_auto_topic_creation": False}, timeout_ms=timeout_ms
    )
    return {name: len(partitions) for name, error, partitions in reply["topics"] if not error}


def _log_death(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("consumer metadata watcher died: %r", task.exception())


def _now() -> float:
    return asyncio.get_running_loop().time()
