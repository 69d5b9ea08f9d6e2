"""Background prefetching: fetch requests to partition leaders, decoded into buffers.

The fetcher keeps about one fetch (``max_partition_fetch_bytes``) of decoded
records ahead of the application per partition. Every batch is checked on
arrival: CRC32C (``check_crcs``) and offset continuity — the base offset sits
outside the CRC, so a batch whose offsets do not follow its predecessor's is
corruption, never data. ``poll`` only reads the buffers.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import defaultdict, deque
from typing import Any

from client.cluster import Cluster
from client.errors import (
    CorruptRecordError,
    LogServerError,
    OffsetOutOfRangeError,
    error_for_code,
)
from client.list_offsets import EARLIEST, LATEST, list_offsets
from client.protocol import ApiKey
from client.record import Record, RecordBatch, iter_batches
from client.topic_partition import TopicPartition

__all__ = ["Fetcher", "PartitionState"]

log = logging.getLogger(__name__)

# Epochs are unique across states, so a fetch answer for a partition that was
# revoked and assigned again (a new state) is never taken for the new one's.
_EPOCHS = itertools.count(1)


class PartitionState:
    __slots__ = (
        "buffer",
        "buffered_bytes",
        "epoch",
        "fetch_offset",
        "held",
        "high_watermark",
        "needs_committed",
        "paused",
        "position",
    )

    def __init__(self, *, needs_committed: bool = False) -> None:
        self.position: int | None = None  # next offset poll returns; None: to be reset
        self.fetch_offset: int | None = None  # next offset to fetch
        self.buffer: deque[_Chunk] = deque()
        self.buffered_bytes = 0
        self.epoch = next(_EPOCHS)  # changed by seek: responses to older requests are dropped
        self.paused = False  # stopped by an error, until the application seeks
        self.held = False  # paused by the application: neither fetched nor returned
        self.high_watermark: int | None = None  # from the last fetch answer
        # The group's committed offset is being looked up: auto_offset_reset waits for it.
        self.needs_committed = needs_committed

    def seek(self, offset: int | None) -> None:
        self.position = self.fetch_offset = offset
        self.buffer.clear()
        self.buffered_bytes = 0
        self.epoch = next(_EPOCHS)


class Fetcher:
    def __init__(
        self,
        cluster: Cluster,
        *,
        auto_offset_reset: str,
        fetch_max_wait_ms: int,
        fetch_min_bytes: int,
        fetch_max_bytes: int,
        max_partition_fetch_bytes: int,
        check_crcs: bool,
        retry_backoff_ms: int,
        group_id: str | None = None,
    ) -> None:
        self._cluster = cluster
        self._group_id = group_id
        self.auto_offset_reset = auto_offset_reset
        self._max_wait_ms = fetch_max_wait_ms
        self._min_bytes = fetch_min_bytes
        self._max_bytes = fetch_max_bytes
        self._partition_max = max_partition_fetch_bytes
        self._check_crcs = check_crcs
        self._backoff_s = retry_backoff_ms / 1000
        self.states: dict[TopicPartition, PartitionState] = {}
        self.data_ready = asyncio.Event()
        self._wake = asyncio.Event()
        self.error: LogServerError | None = None

    def wake(self) -> None:
        self._wake.set()

    # -- positions ----------------------------------------------------------------

    async def reset_positions(self, tps: list[TopicPartition], strategy: str) -> None:
        target = EARLIEST if strategy == "earliest" else LATEST
        epochs = {tp: self.states[tp].epoch for tp in tps if tp in self.states}
        found = await list_offsets(self._cluster, dict.fromkeys(tps, target))
        for tp, result in found.items():
            state = self.states.get(tp)
            # The application may have sought while the lookup was out: its seek wins.
            if (
                state is not None
                and result is not None
                and state.position is None
                and state.epoch == epochs.get(tp)
            ):
                state.seek(result.offset)

    async def _reset_missing(self) -> None:
        missing = [
            tp for tp, s in self.states.items() if s.position is None and not s.needs_committed
        ]
        if not missing:
            return
        if self.auto_offset_reset == "none":
            names = ", ".join(map(str, missing))
            if self._group_id is None:
                message = f"no position for {names} and auto_offset_reset='none'"
            else:
                message = (
                    f"group {self._group_id!r} has no committed offset for {names}, and "
                    "auto_offset_reset='none': seek() to a position (in on_assign, say), or "
                    "commit offsets for the group first"
                )
            self.error = OffsetOutOfRangeError(message)
            for tp in missing:
                self.states[tp].paused = True  # until the application seeks
            self.data_ready.set()
            return
        await self.reset_positions(missing, self.auto_offset_reset)

    # -- the loop -----------------------------------------------------------------

    async def run(self) -> None:
        while True:
            try:
                await self._reset_missing()
                requests = await self._plan()
            except LogServerError as exc:
                log.debug("fetch planning failed: %s", exc)
                self._cluster.invalidate()
                await asyncio.sleep(self._backoff_s)
                continue
            if not requests:
                self._wake.clear()
                await self._wake.wait()
                continue
            self._wake.clear()
            results = await asyncio.gather(
                *(self._fetch_from(leader, tps) for leader, tps in requests.items()),
                return_exceptions=True,
            )
            failed = False
            for result in results:
                if isinstance(result, LogServerError):
                    log.debug("fetch failed: %s", result)
                    self._cluster.invalidate()
                    failed = True
                elif isinstance(result, BaseException):
                    raise result
            if failed:
                await asyncio.sleep(self._backoff_s)

    async def _plan(self) -> dict[int, list[TopicPartition]]:
        requests: dict[int, list[TopicPartition]] = defaultdict(list)
        for tp, state in self.states.items():
            if state.paused or state.held or state.fetch_offset is None:
                continue
            if state.buffered_bytes >= 2 * self._partition_max:  # two fetches ahead at most
                continue
            partitions = self._cluster.cached_partitions(tp.topic)
            if partitions is None:
                partitions = await self._cluster.partitions_for(tp.topic)
            info = partitions.get(tp.partition)
            if info is None or info.leader < 0:
                self._cluster.invalidate()
                continue
            requests[info.leader].append(tp)
        return requests

    async def _fetch_from(self, leader: int, tps: list[TopicPartition]) -> None:
        connection = await self._cluster.connection(leader)
        asked: list[tuple[TopicPartition, int, int]] = []
        topics: dict[str, list[list[int]]] = defaultdict(list)
        for tp in tps:
            state = self.states[tp]
            assert state.fetch_offset is not None
            asked.append((tp, state.fetch_offset, state.epoch))
            topics[tp.topic].append([tp.partition, state.fetch_offset, self._partition_max])
        body = {
            "replica_id": -1,
            "max_wait_ms": self._max_wait_ms,
            "min_bytes": self._min_bytes,
            "max_bytes": self._max_bytes,
            "topics": [[topic, parts] for topic, parts in topics.items()],
        }
        reply, tail = await connection.request(
            ApiKey.FETCH, body, timeout_ms=self._cluster.request_timeout_ms + self._max_wait_ms
        )
        self._absorb(reply, tail, {(tp, offset): epoch for tp, offset, epoch in asked})

    def _absorb(
        self, reply: dict[str, Any], tail: memoryview, asked: dict[tuple[TopicPartition, int], int]
    ) -> None:
        pos = 0
        got_data = False
        asked_offsets = {tp: offset for tp, offset in asked}
        for topic, rows in reply["topics"]:
            for partition, error, high_watermark, _start, size, message in rows:
                tp = TopicPartition(topic, partition)
                data = tail[pos : pos + size]
                pos += size
                state = self.states.get(tp)
                offset = asked_offsets.get(tp)
                if state is None or offset is None or state.epoch != asked[(tp, offset)]:
                    continue  # unassigned or sought meanwhile
                if not error and high_watermark >= 0:
                    state.high_watermark = high_watermark
                if error:
                    self._on_partition_error(tp, state, error_for_code(error, message))
                    continue
                if size:
                    batches, next_offset = self._check(tp, data, offset)
                    state.fetch_offset = next_offset
                    if batches:
                        state.buffer.append(_Chunk(batches, offset, size))
                        state.buffered_bytes += size
                        got_data = True
        if got_data:
            self.data_ready.set()

    def _check(
        self, tp: TopicPartition, data: memoryview, offset: int
    ) -> tuple[list[RecordBatch], int]:
        """The sound batches holding ``offset`` onwards, and the next offset to fetch.

        Checks CRCs and offset continuity now, so the next fetch can leave at
        once; records are decoded later, by ``take``, while that fetch is out.
        """
        batches: list[RecordBatch] = []
        expected = None
        next_offset = offset
        try:
            # The broker sends whole batches only: a partial one is damage, never a tail.
            for batch in iter_batches(data, validate=self._check_crcs):
                base = batch.base_offset
                if expected is None:
                    if not base <= offset <= batch.last_offset:
                        raise CorruptRecordError(
                            f"{tp}: fetched batch {base}..{batch.last_offset} does not hold "
                            f"offset {offset}"
                        )
                elif base != expected:
                    raise CorruptRecordError(
                        f"{tp}: batch at {base} follows one ending at {expected - 1}"
                    )
                batches.append(batch)
                expected = next_offset = batch.last_offset + 1
        except CorruptRecordError as exc:
            # Keep what was sound before the damage; report it rather than skip it.
            message = exc.message if exc.message.startswith(f"{tp}:") else f"{tp}: {exc.message}"
            self.error = type(exc)(message)
            self.states[tp].paused = True
            self.data_ready.set()
        return batches, next_offset

    def _on_partition_error(
        self, tp: TopicPartition, state: PartitionState, error: LogServerError
    ) -> None:
        if isinstance(error, OffsetOutOfRangeError):
            if self.auto_offset_reset == "none":
                self.error = OffsetOutOfRangeError(
                    f"offset {state.fetch_offset} is out of range for {tp} "
                    "(auto_offset_reset='none')"
                )
                state.paused = True
                self.data_ready.set()
            else:
                log.info(
                    "%s: offset %s out of range, resetting to %s",
                    tp,
                    state.fetch_offset,
                    self.auto_offset_reset,
                )
                state.seek(None)
            return
        if error.invalid_metadata or error.retriable:
            self._cluster.invalidate()
            return
        self.error = error
        state.paused = True
        self.data_ready.set()

    def take(self, max_records: int | None) -> dict[TopicPartition, list[Record]]:
        """Buffered records in offset order per partition, advancing positions.

        Raises ``CorruptRecordError`` for a body that does not decode (its CRC
        was sound: a producer bug), after pausing the partition.
        """
        out: dict[TopicPartition, list[Record]] = {}
        budget = max_records if max_records is not None else 1 << 62
        for tp, state in self.states.items():
            if budget <= 0:
                break
            if state.held:
                continue  # kept for after resume()
            buffer = state.buffer
            while buffer and budget > 0:
                chunk = buffer[0]
                try:
                    records = chunk.decode()
                except CorruptRecordError:
                    state.paused = True
                    buffer.clear()
                    state.buffered_bytes = 0
                    raise
                if len(records) <= budget:
                    buffer.popleft()
                    state.buffered_bytes -= chunk.size
                    taken = records
                else:
                    taken = records[:budget]
                    chunk.records = records[budget:]
                if not taken:
                    continue
                budget -= len(taken)
                if tp in out:
                    out[tp].extend(taken)
                else:
                    out[tp] = taken
                state.position = taken[-1].offset + 1
        if out:
            self._wake.set()
        if not any(s.buffer for s in self.states.values() if not s.held):
            self.data_ready.clear()
        return out


class _Chunk:
    """One fetch's batches for a partition, decoded on first use."""

    __slots__ = ("batches", "min_offset", "records", "size")

    def __init__(self, batches: list[RecordBatch], min_offset: int, size: int) -> None:
        self.batches = batches
        self.min_offset = min_offset
        self.size = size
        self.records: list[Record] | None = None

    def decode(self) -> list[Record]:
        if self.records is None:
            records: list[Record] = []
            for batch in self.batches:
                decoded = batch.records()
                if records:
                    records.extend(decoded)
                else:
                    records = decoded
            if records and records[0].offset < self.min_offset:
                records = [r for r in records if r.offset >= self.min_offset]
            self.records = records
            self.batches = []
        return self.records
