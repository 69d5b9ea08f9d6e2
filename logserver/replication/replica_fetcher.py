"""Followers fetching from their leaders (DESIGN.md §5).

One task per leader broker fetches every partition this broker follows from
it, like a consumer with a ``replica_id``:
- The fetch offset is the follower's log end, which is how the leader learns
  its progress.
- The batches are appended exactly as the leader stamped them
  (``append_as_follower``).
- The follower's high watermark is the leader's, capped by its own log end.

Before a partition's first fetch after a leadership change, the follower asks
the leader where its latest epoch ends (OffsetsForLeaderEpoch). It then
truncates there: a divergent suffix written under an older leader goes, found
by epochs rather than by the high watermark alone (KIP-101, KIP-279).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from client.connection import BrokerConnection
from client.errors import LogServerError, OffsetOutOfRangeError, error_for_code
from client.protocol import ApiKey
from coordination import BrokerInfo
from logserver.log_manager import LogManager
from logserver.replication.replica_manager import ReplicaManager

__all__ = ["ReplicaFetcher"]

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]
_BACKOFF_S = 0.5


class ReplicaFetcher:
    def __init__(
        self,
        broker_id: int,
        replicas: ReplicaManager,
        logs: LogManager,
        broker_address: Callable[[int], BrokerInfo | None],
        *,
        max_wait_ms: int = 500,
        max_bytes: int = 10 * 1024 * 1024,
        partition_max_bytes: int = 1024 * 1024,
        request_timeout_ms: int = 30_000,
    ) -> None:
        self.broker_id = broker_id
        self._replicas = replicas
        self._logs = logs
        self._address = broker_address
        self._max_wait_ms = max_wait_ms
        self._max_bytes = max_bytes
        self._partition_max = partition_max_bytes
        self._timeout_ms = request_timeout_ms
        self._by_leader: dict[int, set[TopicPartition]] = defaultdict(set)
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._wakeups: dict[int, asyncio.Event] = {}
        self._closed = False

    # -- membership -------------------------------------------------------------------

    def follow(self, tp: TopicPartition, leader_id: int) -> None:
        """Fetch ``tp`` from ``leader_id`` from now on (truncating first)."""
        self.unfollow(tp)
        self._by_leader[leader_id].add(tp)
        task = self._tasks.get(leader_id)
        if task is None or task.done():
            self._wakeups[leader_id] = asyncio.Event()
            task = asyncio.create_task(self._run(leader_id), name=f"replica-fetcher-{leader_id}")
            task.add_done_callback(self._task_done)
            self._tasks[leader_id] = task
        self._wakeups[leader_id].set()

    def unfollow(self, tp: TopicPartition) -> None:
        for partitions in self._by_leader.values():
            partitions.discard(tp)

    def following(self, leader_id: int) -> set[TopicPartition]:
        return set(self._by_leader.get(leader_id, ()))

    def _task_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- the loop per leader ----------------------------------------------------------

    async def _run(self, leader_id: int) -> None:
        connection: BrokerConnection | None = None
        try:
            while not self._closed:
                partitions = self._by_leader.get(leader_id)
                if not partitions:
                    wakeup = self._wakeups[leader_id]
                    wakeup.clear()
                    await wakeup.wait()
                    continue
                try:
                    if connection is None or connection.closed:
                        connection = await self._connect(leader_id)
                    await self._truncate(connection, leader_id)
                    await self._fetch(connection, leader_id)
                except LogServerError as exc:
                    log.info("fetching from broker %d: %s", leader_id, exc)
                    if connection is not None:
                        connection.close()
                        connection = None
                    await asyncio.sleep(_BACKOFF_S)
        finally:
            if connection is not None:
                connection.close()

    async def _connect(self, leader_id: int) -> BrokerConnection:
        address = self._address(leader_id)
        if address is None:
            raise LogServerError(f"broker {leader_id} is not registered")
        return await BrokerConnection.open(
            address.host, address.port, client_id=f"replica-{self.broker_id}", node_id=leader_id
        )

    def _roles(self, leader_id: int) -> dict[TopicPartition, Any]:
        """The partitions still followed from ``leader_id``, with their roles."""
        roles = {}
        for tp in list(self._by_leader.get(leader_id, ())):
            role = self._replicas.followers.get(tp)
            if role is None or role.leader_id != leader_id or self._logs.get(*tp) is None:
                self._by_leader[leader_id].discard(tp)
                continue
            roles[tp] = role
        return roles

    async def _truncate(self, connection: BrokerConnection, leader_id: int) -> None:
        pending = {tp: r for tp, r in self._roles(leader_id).items() if r.needs_truncation}
        if not pending:
            return
        topics: dict[str, list[list[int]]] = defaultdict(list)
        for tp in pending:
            partition_log = self._logs.get(*tp)
            assert partition_log is not None
            topics[tp[0]].append([tp[1], partition_log.leader_epochs.latest_epoch])
        reply, _ = await connection.request(
            ApiKey.OFFSETS_FOR_LEADER_EPOCH,
            {"replica_id": self.broker_id, "topics": [[t, ps] for t, ps in topics.items()]},
            timeout_ms=self._timeout_ms,
        )
        for topic, rows in reply["topics"]:
            for partition, error, leader_epoch, end_offset in rows:
                tp = (topic, partition)
                role = pending.get(tp)
                partition_log = self._logs.get(*tp)
                if role is None or partition_log is None:
                    continue
                if error:
                    log.info(
                        "%s-%d: OffsetsForLeaderEpoch: %s", topic, partition, error_for_code(error)
                    )
                    continue
                target = self._truncation_offset(tp, leader_epoch, end_offset, role)
                if target < partition_log.log_end_offset:
                    log.info(
                        "%s-%d: truncating the divergent suffix from %d (log end %d)",
                        topic,
                        partition,
                        target,
                        partition_log.log_end_offset,
                        extra={"topic": topic, "partition": partition, "offset": target},
                    )
                    partition_log.truncate_to(target)
                role.needs_truncation = False

    def _truncation_offset(
        self, tp: TopicPartition, leader_epoch: int, leader_end: int, role: Any
    ) -> int:
        partition_log = self._logs.get(*tp)
        assert partition_log is not None
        end = partition_log.log_end_offset
        if leader_epoch < 0:
            # Neither side knows the epoch: fall back to the high watermark (Kafka's fallback).
            return min(role.high_watermark, end)
        # Our own end of the largest epoch at or below the leader's answer (KIP-279): what we
        # wrote in an epoch the leader never had goes, even below the leader's end offset.
        mine = partition_log.end_offset_for_epoch(leader_epoch)
        return min(leader_end, mine.end_offset if mine.epoch >= 0 else end)

    async def _fetch(self, connection: BrokerConnection, leader_id: int) -> None:
        roles = self._roles(leader_id)
        if not roles:
            return
        asked: list[TopicPartition] = []
        topics: dict[str, list[list[int]]] = defaultdict(list)
        for tp in roles:
            partition_log = self._logs.get(*tp)
            assert partition_log is not None
            topics[tp[0]].append([tp[1], partition_log.log_end_offset, self._partition_max])
            asked.append(tp)
        body = {
            "replica_id": self.broker_id,
            "max_wait_ms": self._max_wait_ms,
            "min_bytes": 1,
            "max_bytes": self._max_bytes,
            "topics": [[t, ps] for t, ps in topics.items()],
        }
        reply, tail = await connection.request(
            ApiKey.FETCH, body, timeout_ms=self._timeout_ms + self._max_wait_ms
        )
        position = 0
        for topic, rows in reply["topics"]:
            for partition, error, high_watermark, _start, size, message in rows:
                tp = (topic, partition)
                data = tail[position : position + size]
                position += size
                role = roles.get(tp)
                partition_log = self._logs.get(*tp)
                if (
                    role is None
                    or partition_log is None
                    or self._replicas.followers.get(tp) is not role
                ):
                    continue  # the role changed while the fetch was out
                if error:
                    exc = error_for_code(error, message)
                    if isinstance(exc, OffsetOutOfRangeError):
                        role.needs_truncation = True
                    log.debug("%s-%d: fetch from broker %d: %s", topic, partition, leader_id, exc)
                    continue
                if size:
                    partition_log.append_as_follower(data)
                role.high_watermark = min(high_watermark, partition_log.log_end_offset)
