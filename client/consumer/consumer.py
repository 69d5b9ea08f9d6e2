"""The asyncio consumer: in a group (``subscribe``), or on partitions it names (``assign``).

With a ``group_id``, ``subscribe`` to topics or a pattern and the group shares
their partitions among its members (docs/groups.md, "Consumer API"); or
``assign`` partitions yourself, optionally ``seek``. Then ``poll`` or iterate.
Records are prefetched in the background by the ``Fetcher``. A partition with
no position starts at the group's committed offset (with a ``group_id``), else
where ``auto_offset_reset`` says (``earliest``, ``latest``, or ``none``: an
``OffsetOutOfRangeError`` from ``poll`` until you seek).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from client.cluster import Cluster
from client.consumer.fetcher import Fetcher, PartitionState
from client.consumer.group_session import CommitCallback, GroupSession, RebalanceCallback
from client.errors import InvalidGroupIdError, LogServerError, OffsetOutOfRangeError
from client.group.assignor import PartitionAssignor, assignor_for
from client.list_offsets import EARLIEST, LATEST, list_offsets
from client.record import Record
from client.topic_partition import OffsetAndMetadata, OffsetAndTimestamp, TopicPartition
from client.topics import validate_topic_name

__all__ = ["Consumer", "ConsumerRecord"]

_RESETS = ("earliest", "latest", "none")
_EXCLUSIVE = (
    "subscribe() and assign() are exclusive: call unsubscribe() (or assign([])) before switching"
)


class ConsumerRecord(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


class Consumer:
    """Kafka's consumer settings, with Kafka's defaults; the group ones matter with a ``group_id``.

    ``group_instance_id`` makes the member static (KIP-345): restarted within
    ``session_timeout_ms`` it gets its partitions back without a rebalance.
    ``max_poll_interval_ms`` is both the longest the application may take
    between ``poll`` calls and the rebalance timeout sent in JoinGroup.
    ``partition_assignment_strategy`` lists assignor names (``range``,
    ``roundrobin``, ``sticky``) in preference order; the group uses the first
    one every member lists. ``metadata_max_age_ms`` is how often a pattern
    subscription looks for new topics.
    """

    def __init__(
        self,
        bootstrap_servers: str | Sequence[str] | None = None,
        *,
        client_id: str = "logserver-consumer",
        group_id: str | None = None,
        group_instance_id: str | None = None,
        session_timeout_ms: int = 10_000,
        heartbeat_interval_ms: int = 3_000,
        max_poll_interval_ms: int = 300_000,
        enable_auto_commit: bool = True,
        auto_commit_interval_ms: int = 5_000,
        partition_assignment_strategy: Sequence[str | PartitionAssignor] = ("range", "sticky"),
        auto_offset_reset: str = "latest",
        metadata_max_age_ms: int = 300_000,
        fetch_max_wait_ms: int = 500,
        fetch_min_bytes: int = 1,
        fetch_max_bytes: int = 52_428_800,
        max_partition_fetch_bytes: int = 1_048_576,
        check_crcs: bool = True,
        request_timeout_ms: int = 30_000,
        retry_backoff_ms: int = 100,
    ) -> None:
        if auto_offset_reset not in _RESETS:
            raise ValueError(
                f"auto_offset_reset must be one of {_RESETS}, not {auto_offset_reset!r}"
            )
        if group_id is not None and (not isinstance(group_id, str) or not group_id):
            raise ValueError(f"group_id must be a non-empty string or None, not {group_id!r}")
        if group_instance_id is not None and group_id is None:
            raise ValueError("group_instance_id needs a group_id")
        if group_instance_id is not None and not (
            isinstance(group_instance_id, str) and group_instance_id
        ):
            raise ValueError(
                f"group_instance_id must be a non-empty string, not {group_instance_id!r}"
            )
        if not 0 < heartbeat_interval_ms < session_timeout_ms:
            raise ValueError(
                f"heartbeat_interval_ms ({heartbeat_interval_ms}) must be > 0 and lower than "
                f"session_timeout_ms ({session_timeout_ms}); a third of it is usual"
            )
        for name, value in (
            ("max_poll_interval_ms", max_poll_interval_ms),
            ("auto_commit_interval_ms", auto_commit_interval_ms),
            ("metadata_max_age_ms", metadata_max_age_ms),
        ):
            if type(value) is not int or value < 1:
                raise ValueError(f"{name} must be an int >= 1, not {value!r}")
        if isinstance(partition_assignment_strategy, str):
            partition_assignment_strategy = (partition_assignment_strategy,)
        assignors = [
            assignor_for(a) if isinstance(a, str) else a for a in partition_assignment_strategy
        ]
        if not assignors:
            raise ValueError("partition_assignment_strategy names no assignor")
        self._bootstrap = bootstrap_servers
        self._client_id = client_id
        self._group_id = group_id
        self._group_settings: dict[str, Any] = {
            "group_instance_id": group_instance_id,
            "assignors": assignors,
            "session_timeout_ms": session_timeout_ms,
            "heartbeat_interval_ms": heartbeat_interval_ms,
            "max_poll_interval_ms": max_poll_interval_ms,
            "enable_auto_commit": enable_auto_commit,
            "auto_commit_interval_ms": auto_commit_interval_ms,
            "metadata_max_age_ms": metadata_max_age_ms,
            "request_timeout_ms": request_timeout_ms,
            "retry_backoff_ms": retry_backoff_ms,
        }
        self._metadata_max_age_ms = metadata_max_age_ms
        self._settings = {
            "auto_offset_reset": auto_offset_reset,
            "fetch_max_wait_ms": fetch_max_wait_ms,
            "fetch_min_bytes": fetch_min_bytes,
            "fetch_max_bytes": fetch_max_bytes,
            "max_partition_fetch_bytes": max_partition_fetch_bytes,
            "check_crcs": check_crcs,
            "retry_backoff_ms": retry_backoff_ms,
        }
        self._request_timeout_ms = request_timeout_ms
        self._cluster: Cluster
        self._fetcher: Fetcher
        self._group: GroupSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._closed = False
        self._closing = False
        self._iter_buffer: list[ConsumerRecord] = []

    async def start(self) -> None:
        if self._started:
            return
        self._cluster = Cluster(
            self._bootstrap,
            client_id=self._client_id,
            request_timeout_ms=self._request_timeout_ms,
            metadata_max_age_ms=self._metadata_max_age_ms,
            allow_auto_topic_creation=False,
        )
        self._fetcher = Fetcher(
            self._cluster,
            group_id=self._group_id,
            **self._settings,  # type: ignore[arg-type]
        )
        await self._cluster.any_connection()
        if self._group_id is not None:
            self._group = GroupSession(
                self._cluster, self._fetcher, group_id=self._group_id, **self._group_settings
            )
        self._task = asyncio.create_task(self._fetcher.run(), name="consumer-fetcher")
        self._task.add_done_callback(self._fetcher_done)
        self._started = True

    def _fetcher_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            self._fetcher.error = (
                exc if isinstance(exc, LogServerError) else LogServerError(f"fetcher died: {exc!r}")
            )
            self._fetcher.data_ready.set()

    async def __aenter__(self) -> Consumer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Leave cleanly: with a group, commit (``enable_auto_commit``), ``on_revoke``, LeaveGroup.

        A static member (``group_instance_id``) sends no LeaveGroup: its partitions
        wait for it for ``session_timeout_ms`` (Kafka's way).
        """
        if self._closed or self._closing:
            return
        self._closing = True  # the callbacks may still commit, see positions, ...
        try:
            if self._group is not None and self._started:
                await self._group.close()
        finally:
            self._closed = True
            await self._stop_fetching()

    async def _stop_fetching(self) -> None:
        task = self._task
        if task is not None:
            # Cancel until it is gone: a cancel can be lost in a race with a reply.
            for _ in range(50):
                task.cancel()
                done, _ = await asyncio.wait((task,), timeout=0.1)
                if done:
                    break
        if self._started:
            await self._cluster.close()

    def _require_started(self) -> Fetcher:
        if not self._started or self._closed:
            raise LogServerError("the consumer is closed" if self._closed else "call start()")
        return self._fetcher

    # -- assignment and positions ---------------------------------------------------

    def assign(self, partitions: Iterable[TopicPartition | tuple[str, int]]) -> None:
        """Consume exactly these partitions (replacing any earlier assignment).

        Exclusive with ``subscribe``. With a ``group_id``, a partition starts at the
        group's committed offset, and commits are "simple" ones (no membership).
        """
        fetcher = self._require_started()
        if self._group is not None and self._group.subscribed:
            raise LogServerError(_EXCLUSIVE)
        wanted = [TopicPartition(*tp) for tp in partitions]
        states = {tp: fetcher.states.get(tp) or PartitionState() for tp in wanted}
        fetcher.states = states
        if self._group is not None:
            self._group.mark_manual(states)
        self._cluster.add_topics(tp.topic for tp in wanted)
        fetcher.wake()

    def subscribe(
        self,
        topics: Iterable[str] | None = None,
        *,
        pattern: str | re.Pattern[str] | None = None,
        on_assign: RebalanceCallback | None = None,
        on_revoke: RebalanceCallback | None = None,
        on_lost: RebalanceCallback | None = None,
    ) -> None:
        """Consume ``topics`` (or every topic whose whole name matches ``pattern``) as a group.

        The group's coordinator shares the partitions among its members; the
        assignment arrives within ``poll``. Callbacks (plain or ``async``) get a
        set of ``TopicPartition``, inside ``poll``: ``on_revoke`` before a
        rebalance takes the partitions (commit there; with ``enable_auto_commit``
        the positions are committed just before it), ``on_assign`` with the new
        ones before any of their records is returned (``seek`` there to choose
        where to start), ``on_lost`` (default: ``on_revoke``) when the member
        lost them without a chance to commit (it was evicted). A pattern is
        matched again every ``metadata_max_age_ms``. Calling again replaces the
        subscription and the callbacks. Raises ``InvalidGroupIdError`` without a
        ``group_id``.
        """
        self._require_started()
        if self._group is None:
            raise InvalidGroupIdError(
                "subscribe() needs a group: Consumer(..., group_id='my-group'); "
                "or assign() partitions without one"
            )
        if (topics is None) == (pattern is None):
            raise ValueError("subscribe() takes topics or pattern=, exactly one of them")
        names: list[str] | None = None
        if topics is not None:
            if isinstance(topics, str):
                raise TypeError("subscribe() takes a collection of topic names, not one string")
            names = [validate_topic_name(t) for t in topics]
        elif not isinstance(pattern, str | re.Pattern):
            raise TypeError(f"pattern must be a str or re.Pattern, not {pattern!r}")
        if not self._group.subscribed and self._fetcher.states:
            raise LogServerError(_EXCLUSIVE)
        self._group.subscribe(names, pattern, on_assign, on_revoke, on_lost)

    async def unsubscribe(self) -> None:
        """Stop consuming: commit (``enable_auto_commit``), ``on_revoke``, leave the group.

        Also drops a manual assignment.
        """
        fetcher = self._require_started()
        if self._group is not None and self._group.subscribed:
            await self._group.unsubscribe()
        fetcher.states = {}

    def subscription(self) -> set[str]:
        """The topics subscribed to (for a pattern: those it matches now)."""
        self._require_started()
        membership = self._group.membership if self._group is not None else None
        if membership is None or membership.subscription is None:
            return set()
        return set(membership.subscription)

    def assignment(self) -> set[TopicPartition]:
        return set(self._require_started().states)

    def _state(self, tp: TopicPartition | tuple[str, int]) -> PartitionState:
        state = self._require_started().states.get(TopicPartition(*tp))
        if state is None:
            raise LogServerError(f"{TopicPartition(*tp)} is not assigned to this consumer")
        return state

    def seek(self, tp: TopicPartition | tuple[str, int], offset: int) -> None:
        """Read ``tp`` from ``offset`` next (out of range: ``auto_offset_reset`` applies)."""
        if type(offset) is not int or offset < 0:
            raise ValueError(f"offset must be an int >= 0, not {offset!r}")
        state = self._state(tp)
        state.seek(offset)
        state.paused = False
        self._fetcher.error = None
        self._fetcher.wake()

    async def _seek_to(self, tps: Sequence[TopicPartition | tuple[str, int]], target: int) -> None:
        chosen = [TopicPartition(*tp) for tp in tps] or list(self._require_started().states)
        found = await list_offsets(self._cluster, dict.fromkeys(chosen, target))
        for tp, result in found.items():
            if result is not None:
                self.seek(tp, result.offset)

    async def seek_to_beginning(self, *tps: TopicPartition | tuple[str, int]) -> None:
        """Seek to the log start (all assigned partitions when none are named)."""
        await self._seek_to(tps, EARLIEST)

    async def seek_to_end(self, *tps: TopicPartition | tuple[str, int]) -> None:
        await self._seek_to(tps, LATEST)

    async def position(self, tp: TopicPartition | tuple[str, int]) -> int:
        """The offset of the next record ``poll`` returns for ``tp``."""
        state = self._state(tp)
        if state.position is None and state.needs_committed and self._group is not None:
            await self._group.ensure_position(TopicPartition(*tp))
        if state.position is None:
            strategy = self._fetcher.auto_offset_reset
            if strategy == "none":
                raise OffsetOutOfRangeError(
                    f"{TopicPartition(*tp)} has no position (auto_offset_reset='none')"
                )
            await self._fetcher.reset_positions([TopicPartition(*tp)], strategy)
        assert state.position is not None
        return state.position

    # -- groups: commits and lag -----------------------------------------------------

    def _require_group(self, what: str) -> GroupSession:
        self._require_started()
        if self._group is None:
            raise InvalidGroupIdError(f"{what} needs a group: Consumer(..., group_id='my-group')")
        return self._group

    async def commit(
        self,
        offsets: Mapping[TopicPartition | tuple[str, int], int | OffsetAndMetadata] | None = None,
    ) -> None:
        """Commit ``offsets`` (the next offset to read, per partition) and wait for the answer.

        ``None`` commits the current position of every assigned partition: what
        ``poll`` has returned so far. Raises ``CommitFailedError`` when the group
        has rebalanced past this member (the partitions may be another member's
        now), ``RebalanceInProgressError`` while the group is completing a
        rebalance (``poll`` finishes it), or the partition's error.
        """
        await self._require_group("commit()").commit(offsets)

    def commit_async(
        self,
        offsets: Mapping[TopicPartition | tuple[str, int], int | OffsetAndMetadata] | None = None,
        callback: CommitCallback | None = None,
    ) -> asyncio.Task[None]:
        """Start a commit (as ``commit``) and return at once.

        ``callback(offsets, error)`` (plain or ``async``) is called when it is
        answered, ``error`` None on success; without a callback a failure is
        logged. The returned task may be awaited; it never raises a commit error.
        """
        return self._require_group("commit_async()").commit_async(offsets, callback)

    async def committed(
        self, tp: TopicPartition | tuple[str, int], *, metadata: bool = False
    ) -> int | OffsetAndMetadata | None:
        """The group's committed offset for ``tp`` (None: nothing committed).

        ``metadata=True`` returns the ``OffsetAndMetadata`` instead of the offset.
        """
        tp = TopicPartition(*tp)
        found = (await self._require_group("committed()").committed([tp])).get(tp)
        if found is None or metadata:
            return found
        return int(found.offset)

    async def lag(self, tp: TopicPartition | tuple[str, int]) -> int:
        """Records between the position and the log end (the high watermark) of ``tp``.

        The high watermark is the last one a fetch answer carried, or asked for
        (ListOffsets) when no fetch has answered yet.
        """
        tp = TopicPartition(*tp)
        state = self._state(tp)
        position = await self.position(tp)
        end = state.high_watermark
        if end is None:
            found = await list_offsets(self._cluster, {tp: LATEST})
            end = found[tp].offset if found.get(tp) is not None else position
        return max(0, end - position)

    async def beginning_offsets(
        self, tps: Iterable[TopicPartition | tuple[str, int]]
    ) -> dict[TopicPartition, int]:
        return await self._offsets(tps, EARLIEST)

    async def end_offsets(
        self, tps: Iterable[TopicPartition | tuple[str, int]]
    ) -> dict[TopicPartition, int]:
        return await self._offsets(tps, LATEST)

    async def _offsets(
        self, tps: Iterable[TopicPartition | tuple[str, int]], target: int
    ) -> dict[TopicPartition, int]:
        self._require_started()
        found = await list_offsets(self._cluster, {TopicPartition(*tp): target for tp in tps})
        return {tp: (-1 if r is None else r.offset) for tp, r in found.items()}

    async def offsets_for_times(
        self, timestamps: Mapping[TopicPartition | tuple[str, int], int]
    ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """Per partition, the first record at or after the timestamp (None: there is none)."""
        self._require_started()
        for ts in timestamps.values():
            if type(ts) is not int or ts < 0:
                raise ValueError(f"timestamps must be ints >= 0, not {ts!r}")
        return await list_offsets(
            self._cluster, {TopicPartition(*tp): ts for tp, ts in timestamps.items()}
        )

    async def partitions_for_topic(self, topic: str) -> set[int]:
        self._require_started()
        return set(await self._cluster.partitions_for(topic))

    def pause(self, *tps: TopicPartition | tuple[str, int]) -> None:
        """Stop fetching these partitions, and stop returning what was already fetched,
        until ``resume`` (Kafka's pause: the position stays where it is)."""
        for tp in tps:
            self._state(tp).held = True

    def resume(self, *tps: TopicPartition | tuple[str, int]) -> None:
        fetcher = self._require_started()
        for tp in tps:
            state = self._state(tp)
            state.held = False
            if state.buffer:
                fetcher.data_ready.set()
        fetcher.wake()

    def paused(self) -> set[TopicPartition]:
        """The partitions ``pause`` holds."""
        fetcher = self._require_started()
        return {tp for tp, state in fetcher.states.items() if state.held}

    # -- reading --------------------------------------------------------------------

    async def poll(
        self, timeout_ms: int = 1000, max_records: int | None = None
    ) -> dict[TopicPartition, list[Record]]:
        """Records that arrived, per partition in offset order; empty after ``timeout_ms``.

        In a group, this is also where rebalances reach the application: the
        callbacks run here, and auto-commit starts here. Raises the error that
        stopped a partition (``OffsetOutOfRangeError`` with
        ``auto_offset_reset='none'``, ``CorruptRecordError``), once;
        ``MaxPollIntervalExceededError`` once after the member left the group
        for polling too seldom (the next ``poll`` rejoins); and the group's
        fatal errors (``FencedInstanceIdError``, ``InconsistentGroupProtocolError``,
        …) every time.
        """
        fetcher = self._require_started()
        group = self._group
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        if group is not None:
            await group.poll_started()
        while True:
            if group is not None:
                await group.step()
            if fetcher.error is not None:
                error, fetcher.error = fetcher.error, None
                raise error
            taken = fetcher.take(max_records)
            if taken:
                return taken
            remaining = deadline - loop.time()
            if remaining <= 0:
                return {}
            membership = group.membership if group is not None else None
            if membership is not None:
                membership.waiting_in_poll(True)
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(fetcher.data_ready.wait(), remaining)
            finally:
                if membership is not None:
                    membership.waiting_in_poll(False)

    def __aiter__(self) -> AsyncIterator[ConsumerRecord]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ConsumerRecord]:
        while not self._closed:
            batch = await self.poll(timeout_ms=1000)
            for tp, records in batch.items():
                topic, partition = tp
                for r in records:
                    yield ConsumerRecord(topic, partition, *r)
