"""An in-memory model of a ``PartitionLog``: the segments, batches and offsets it should hold.

The model mirrors the log's segment layout exactly (roll, retention and read
rules included), so a state-machine test can compare the two after every step.
It knows nothing of files: sizes are the byte lengths of the batches appended.

It also keeps the leader-epoch cache as Kafka's ``LeaderEpochFileCache`` would:
``(epoch, start_offset)`` for each epoch newer than the latest, trimmed from the
end by truncation and from the start by retention.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_right
from collections.abc import Iterator

from logserver.log import LogConfig

__all__ = ["ExpectedRead", "ModelBatch", "ModelRecord", "ModelSegment", "PartitionLogModel"]

NO_TIMESTAMP = -(2**63)
UNDEFINED = -1


@dataclasses.dataclass(frozen=True, slots=True)
class ModelRecord:
    offset: int
    timestamp: int
    value: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class ModelBatch:
    base_offset: int
    size: int
    leader_epoch: int
    records: tuple[ModelRecord, ...]

    @property
    def last_offset(self) -> int:
        return self.base_offset + len(self.records) - 1

    @property
    def next_offset(self) -> int:
        return self.base_offset + len(self.records)

    @property
    def max_timestamp(self) -> int:
        return max(r.timestamp for r in self.records)


@dataclasses.dataclass(slots=True)
class ModelSegment:
    base_offset: int
    created_ms: int
    batches: list[ModelBatch] = dataclasses.field(default_factory=list)

    @property
    def size(self) -> int:
        return sum(b.size for b in self.batches)

    @property
    def is_empty(self) -> bool:
        return not self.batches

    @property
    def largest_timestamp(self) -> int:
        return max((b.max_timestamp for b in self.batches), default=NO_TIMESTAMP)

    def position_of(self, index: int) -> int:
        """Byte position of ``batches[index]`` in the segment file."""
        return sum(b.size for b in self.batches[:index])

    def batch_index(self, offset: int) -> int | None:
        """Index of the batch holding ``offset``, None if the segment does not hold it."""
        for i, batch in enumerate(self.batches):
            if batch.base_offset <= offset <= batch.last_offset:
                return i
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class ExpectedRead:
    segment: ModelSegment
    position: int
    batches: tuple[ModelBatch, ...]

    @property
    def size(self) -> int:
        return sum(b.size for b in self.batches)


class PartitionLogModel:
    """What a ``PartitionLog`` should hold after the same operations."""

    def __init__(self, now_ms: int) -> None:
        self.segments: list[ModelSegment] = [ModelSegment(0, now_ms)]
        self.log_start_offset = 0
        self.recovery_point = 0
        self.epochs: list[tuple[int, int]] = []  # (epoch, start offset), both increasing

    # -- state ----------------------------------------------------------------------

    @property
    def active(self) -> ModelSegment:
        return self.segments[-1]

    @property
    def next_offset(self) -> int:
        active = self.active
        return active.batches[-1].next_offset if active.batches else active.base_offset

    @property
    def base_offsets(self) -> list[int]:
        return [s.base_offset for s in self.segments]

    @property
    def segment_sizes(self) -> list[int]:
        return [s.size for s in self.segments]

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self.segments)

    def records(self) -> Iterator[ModelRecord]:
        for segment in self.segments:
            for batch in segment.batches:
                yield from batch.records

    # -- operations -----------------------------------------------------------------

    @property
    def latest_epoch(self) -> int:
        return self.epochs[-1][0] if self.epochs else UNDEFINED

    def reopen(self, now_ms: int) -> None:
        """After open (clean or not): segments are re-created "now", everything is recovered."""
        for segment in self.segments:
            segment.created_ms = now_ms
        self.recovery_point = self.next_offset
        self.epochs = [e for e in self.epochs if e[1] < self.next_offset]

    def should_roll(self, incoming_bytes: int, now_ms: int, config: LogConfig) -> bool:
        active = self.active
        if active.is_empty:
            return False
        return (
            active.size + incoming_bytes > config.segment_bytes
            or now_ms - active.created_ms >= config.segment_ms
        )

    def roll(self, now_ms: int) -> None:
        if not self.active.is_empty:
            self.segments.append(ModelSegment(self.next_offset, now_ms))

    def append(
        self,
        batches: list[tuple[int, list[tuple[int, bytes]]]],
        leader_epoch: int,
        now_ms: int,
        config: LogConfig,
    ) -> list[ModelBatch]:
        """Append ``(size, [(timestamp, value), ...])`` batches as one write; return them."""
        total = sum(size for size, _ in batches)
        if self.should_roll(total, now_ms, config):
            self.roll(now_ms)
        appended = []
        offset = self.next_offset
        for size, rows in batches:
            records = tuple(
                ModelRecord(offset + i, ts, value) for i, (ts, value) in enumerate(rows)
            )
            batch = ModelBatch(offset, size, leader_epoch, records)
            self.active.batches.append(batch)
            appended.append(batch)
            offset = batch.next_offset
        if leader_epoch > self.latest_epoch:
            self.epochs.append((leader_epoch, appended[0].base_offset))
        return appended

    def truncate_to(self, offset: int) -> int | None:
        """Drop every batch holding ``offset`` or later; the new end, None below the log start.

        The segment holding ``offset`` keeps its batches before that one (possibly
        none) and becomes the active segment again, with its creation time; every
        later segment goes.
        """
        if offset >= self.next_offset:
            return self.next_offset
        if offset < self.log_start_offset:
            return None
        i = max(0, bisect_right(self.base_offsets, offset) - 1)
        del self.segments[i + 1 :]
        segment = self.segments[i]
        cut = segment.batch_index(offset)
        if cut is not None:
            del segment.batches[cut:]
        end = self.next_offset
        self.recovery_point = min(self.recovery_point, end)
        self.epochs = [e for e in self.epochs if e[1] < end]
        return end

    def flush(self, offset: int | None) -> None:
        target = self.next_offset if offset is None else min(offset, self.next_offset)
        self.recovery_point = max(self.recovery_point, target)

    def delete_old_segments(self, now_ms: int, config: LogConfig) -> list[tuple[int, int, str]]:
        """Retention: ``(base_offset, size, reason)`` of every segment removed."""
        inactive = self.segments[:-1]
        doomed: list[tuple[int, int, str]] = []
        if config.retention_ms >= 0:
            for segment in inactive:
                if now_ms - segment.largest_timestamp <= config.retention_ms:
                    break
                doomed.append((segment.base_offset, segment.size, "retention.ms"))
        if config.retention_bytes >= 0:
            excess = self.size_bytes - sum(size for _, size, _ in doomed) - config.retention_bytes
            for segment in inactive[len(doomed) :]:
                if excess - segment.size < 0:
                    break
                excess -= segment.size
                doomed.append((segment.base_offset, segment.size, "retention.bytes"))
        if doomed:
            del self.segments[: len(doomed)]
            self.log_start_offset = max(self.log_start_offset, self.segments[0].base_offset)
            self.recovery_point = max(self.recovery_point, self.log_start_offset)
            self._trim_epochs_from_start(self.log_start_offset)
        return doomed

    def _trim_epochs_from_start(self, start: int) -> None:
        """Kafka's ``truncateFromStart``: the last epoch starting at or before ``start``
        now starts at ``start``; the ones before it go."""
        before = [e for e in self.epochs if e[1] <= start]
        if before:
            self.epochs = [(before[-1][0], start), *self.epochs[len(before) :]]

    # -- queries --------------------------------------------------------------------

    def in_range(self, offset: int) -> bool:
        return self.log_start_offset <= offset <= self.next_offset

    def read(
        self, offset: int, max_bytes: int, max_offset: int | None = None
    ) -> ExpectedRead | None:
        """The whole batches ``PartitionLog.read`` should return (``offset`` must be in range).

        From the batch holding ``offset``, within its segment, below the batch holding
        ``max_offset``; as many as fit in ``max_bytes``, but always at least one.
        """
        upper = self.next_offset if max_offset is None else min(max_offset, self.next_offset)
        if offset >= upper:
            return None
        for segment in self.segments:
            first = segment.batch_index(offset)
            if first is not None:
                break
        else:
            raise AssertionError(f"offset {offset} below {upper} is in no segment")
        candidates = []
        for batch in segment.batches[first:]:
            if batch.last_offset >= upper:
                break  # the batch holding the bound, and everything after it, is not served
            candidates.append(batch)
        if not candidates:
            return None
        chosen = [candidates[0]]
        size = candidates[0].size
        for batch in candidates[1:]:
            if size + batch.size > max_bytes:
                break
            chosen.append(batch)
            size += batch.size
        return ExpectedRead(segment, segment.position_of(first), tuple(chosen))

    def read_sizes(self, offset: int) -> list[int]:
        """Byte counts of the whole-batch prefixes a read at ``offset`` may return."""
        for segment in self.segments:
            first = segment.batch_index(offset)
            if first is not None:
                sizes, total = [], 0
                for batch in segment.batches[first:]:
                    total += batch.size
                    sizes.append(total)
                return sizes
        return []

    def retention_bytes_edges(self) -> list[int]:
        """``retention.bytes`` values at which one more inactive segment would go."""
        edges, removed = [], 0
        for segment in self.segments[:-1]:
            removed += segment.size
            edges.append(self.size_bytes - removed)
        return edges

    def time_edges(self, config: LogConfig) -> list[int]:
        """Clock times where a ``segment.ms`` roll or a ``retention.ms`` deletion starts.

        Time retention takes a prefix of the segments, so only the oldest one's edge counts.
        """
        edges = [self.active.created_ms + config.segment_ms]
        if config.retention_ms >= 0 and len(self.segments) > 1:
            edges.append(self.segments[0].largest_timestamp + config.retention_ms)
        return edges

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """OffsetsForLeaderEpoch: the largest epoch at or below ``epoch`` and where it ends."""
        older = [i for i, (e, _) in enumerate(self.epochs) if e <= epoch]
        if not older:
            return UNDEFINED, UNDEFINED
        i = older[-1]
        end = self.epochs[i + 1][1] if i + 1 < len(self.epochs) else self.next_offset
        return self.epochs[i][0], end

    def offset_for_timestamp(self, timestamp: int) -> tuple[int, int] | None:
        """``(offset, timestamp)`` of the first retained record at or after ``timestamp``."""
        for record in self.records():
            if record.offset >= self.log_start_offset and record.timestamp >= timestamp:
                return record.offset, record.timestamp
        return None
