"""The asyncio consumer (manual assignment; groups arrive with issue 5).

``assign`` the partitions, optionally ``seek``, then ``poll`` or iterate.
Records are prefetched in the background by the ``Fetcher``; a partition with
no position starts where ``auto_offset_reset`` says (``earliest``, ``latest``,
or ``none``: an ``OffsetOutOfRangeError`` from ``poll`` until you seek).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import NamedTuple

from client.cluster import Cluster
from client.consumer.fetcher import Fetcher, PartitionState
from client.errors import LogServerError, OffsetOutOfRangeError
from client.list_offsets import EARLIEST, LATEST, list_offsets
from client.record import Record
from client.topic_partition import OffsetAndTimestamp, TopicPartition

__all__ = ["Consumer", "ConsumerRecord"]

_RESETS = ("earliest", "latest", "none")


class ConsumerRecord(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]


class Consumer:
    def __init__(
        self,
        bootstrap_servers: str | Sequence[str] | None = None,
        *,
        client_id: str = "logserver-consumer",
        auto_offset_reset: str = "latest",
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
        self._bootstrap = bootstrap_servers
        self._client_id = client_id
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
        self._task: asyncio.Task[None] | None = None
        self._started = False
        self._closed = False
        self._iter_buffer: list[ConsumerRecord] = []

    async def start(self) -> None:
        if self._started:
            return
        self._cluster = Cluster(
            self._bootstrap,
            client_id=self._client_id,
            request_timeout_ms=self._request_timeout_ms,
            allow_auto_topic_creation=False,
        )
        self._fetcher = Fetcher(self._cluster, **self._settings)  # type: ignore[arg-type]
        await self._cluster.any_connection()
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
        if self._closed:
            return
        self._closed = True
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
        """Consume exactly these partitions (replacing any earlier assignment)."""
        fetcher = self._require_started()
        wanted = [TopicPartition(*tp) for tp in partitions]
        states = {tp: fetcher.states.get(tp) or PartitionState() for tp in wanted}
        fetcher.states = states
        self._cluster.add_topics(tp.topic for tp in wanted)
        fetcher.wake()

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
        if state.position is None:
            strategy = self._fetcher.auto_offset_reset
            if strategy == "none":
                raise OffsetOutOfRangeError(
                    f"{TopicPartition(*tp)} has no position (auto_offset_reset='none')"
                )
            await self._fetcher.reset_positions([TopicPartition(*tp)], strategy)
        assert state.position is not None
        return state.position

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
        for tp in tps:
            self._state(tp).paused = True

    def resume(self, *tps: TopicPartition | tuple[str, int]) -> None:
        for tp in tps:
            self._state(tp).paused = False
        self._fetcher.wake()

    # -- reading --------------------------------------------------------------------

    async def poll(
        self, timeout_ms: int = 1000, max_records: int | None = None
    ) -> dict[TopicPartition, list[Record]]:
        """Records that arrived, per partition in offset order; empty after ``timeout_ms``.

        Raises the error that stopped a partition (``OffsetOutOfRangeError`` with
        ``auto_offset_reset='none'``, ``CorruptRecordError``), once.
        """
        fetcher = self._require_started()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_ms / 1000
        while True:
            if fetcher.error is not None:
                error, fetcher.error = fetcher.error, None
                raise error
            taken = fetcher.take(max_records)
            if taken:
                return taken
            remaining = deadline - loop.time()
            if remaining <= 0:
                return {}
            try:
                await asyncio.wait_for(fetcher.data_ready.wait(), remaining)
            except TimeoutError:
                return {}

    def __aiter__(self) -> AsyncIterator[ConsumerRecord]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[ConsumerRecord]:
        while not self._closed:
            batch = await self.poll(timeout_ms=1000)
            for tp, records in batch.items():
                topic, partition = tp
                for r in records:
                    yield ConsumerRecord(topic, partition, *r)
