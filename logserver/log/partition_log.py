"""A partition's log: an ordered list of segments, the last one active.

The log is plain synchronous code that knows nothing of the event loop. Its
methods are thread-safe, so the blocking ones (``flush``, ``delete_old_segments``,
``close``) can run in a worker thread while the event loop appends and reads.

On append the log checks each batch's framing and CRC32C (``check_batch``),
stamps base offset and leader epoch into the header, and writes the bytes. It
never decompresses or decodes a record. Reads return a ``FileSlice`` of whole
batches for the server to ``sendfile``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
from bisect import bisect_right
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from client.errors import (
    InvalidRecordError,
    OffsetOutOfRangeError,
    RecordBatchTooLargeError,
    RecordTooLargeError,
    StorageError,
)
from client.record import Record, RecordBatch, check_batch, read_header
from client.record.layout import (
    HEADER_SIZE,
    LOG_OVERHEAD,
    NO_PARTITION_LEADER_EPOCH,
    STAMP,
    STAMP_SIZE,
    BatchHeader,
    BytesLike,
)
from client.record.validation import check_single_batch
from logserver.log.checkpoint import PartitionCheckpoint, write_atomically, write_checkpoint
from logserver.log.config import LogConfig
from logserver.log.file_slice import FileSlice
from logserver.log.files import CLEAN_SHUTDOWN_FILE, fsync_directory, log_fields
from logserver.log.leader_epoch_cache import EpochEndOffset, LeaderEpochCache
from logserver.log.recovery import RecoveryReport, load_log
from logserver.log.segment import LogSegment, PartialWriteError, now_ms

__all__ = ["AppendInfo", "DeletedSegment", "PartitionLog", "TimestampOffset"]

log = logging.getLogger(__name__)

_MAX_RELATIVE_OFFSET = 2**31 - 1
_new_tuple = tuple.__new__  # builds a NamedTuple without its Python-level __new__
_STAMP_PACK, _STAMP_PACK_INTO = STAMP.pack, STAMP.pack_into


class AppendInfo(NamedTuple):
    first_offset: int
    last_offset: int
    max_timestamp: int
    record_count: int
    size_bytes: int


@dataclasses.dataclass(frozen=True, slots=True)
class TimestampOffset:
    offset: int
    timestamp: int


@dataclasses.dataclass(frozen=True, slots=True)
class DeletedSegment:
    base_offset: int
    size_bytes: int
    reason: str  # "retention.ms" or "retention.bytes"


class PartitionLog:
    """Append, read, roll, retain, flush and close one partition's segments."""

    def __init__(
        self,
        directory: Path,
        config: LogConfig,
        segments: list[LogSegment],
        *,
        log_start_offset: int,
        recovery_point: int,
        clock_ms: Callable[[], int],
        recovery_report: RecoveryReport,
    ) -> None:
        self.directory = directory
        self._config = config
        self._segments = segments
        self._bases = [s.base_offset for s in segments]
        self.leader_epochs = LeaderEpochCache(directory)
        self._clock = clock_ms
        self._log_start_offset = log_start_offset
        self._recovery_point = recovery_point
        active_next = segments[-1].next_offset
        assert active_next is not None
        self._next_offset = active_next
        self.leader_epochs.truncate_from_end(active_next)  # recovery may have cut the log
        if recovery_report.validated_from_offset is not None:
            self._restore_epochs(recovery_report.validated_from_offset)
        self._latest_epoch = self.leader_epochs.latest_epoch
        self._unflushed_messages = 0
        self._last_flush_ms = clock_ms()
        self._pending_deletes: list[tuple[int, LogSegment]] = []
        self._failure: StorageError | None = None
        self._closed = False
        self._refuse_appends = False  # closed or failed: appends go through _check_writable
        self._cache_config(config)
        self._lock = threading.RLock()  # state and files: appends, reads, rolls, deletes
        self._flush_lock = threading.Lock()  # held across fsyncs; deletions wait for it
        self._checkpoint_lock = threading.Lock()
        self.recovery_report = recovery_report

    @classmethod
    def open(
        cls,
        directory: Path | str,
        config: LogConfig | None = None,
        *,
        clock_ms: Callable[[], int] = now_ms,
        full_recovery: bool = False,
    ) -> PartitionLog:
        """Open a partition directory (created if missing), recovering it if needed."""
        directory = Path(directory)
        config = config or LogConfig()
        try:
            loaded = load_log(directory, config, clock_ms, full_recovery=full_recovery)
        except OSError as exc:
            raise StorageError(f"{directory}: cannot open the log: {exc}") from exc
        partition_log = cls(
            directory,
            config,
            loaded.segments,
            log_start_offset=loaded.log_start_offset,
            recovery_point=loaded.recovery_point,
            clock_ms=clock_ms,
            recovery_report=loaded.report,
        )
        try:
            partition_log._write_checkpoint()
        except BaseException:
            partition_log.close_handlers()
            raise
        return partition_log

    def __repr__(self) -> str:
        return (
            f"PartitionLog({str(self.directory)!r}, start={self._log_start_offset}, "
            f"end={self._next_offset}, segments={len(self._segments)})"
        )

    # -- state ----------------------------------------------------------------------

    @property
    def config(self) -> LogConfig:
        return self._config

    def update_config(self, config: LogConfig) -> None:
        """Apply new settings (an AlterConfigs); they take effect from the next append."""
        with self._lock:
            self._config = config
            self._cache_config(config)

    def _cache_config(self, config: LogConfig) -> None:
        # Read on every append: plain attributes are cheaper than config.<field>.
        self._segment_bytes = config.segment_bytes
        self._segment_ms = config.segment_ms
        self._size_limit = min(config.max_message_bytes, config.segment_bytes)

    @property
    def log_start_offset(self) -> int:
        return self._log_start_offset

    @property
    def log_end_offset(self) -> int:
        return self._next_offset

    @property
    def recovery_point(self) -> int:
        return self._recovery_point

    @property
    def size_bytes(self) -> int:
        with self._lock:
            return sum(s.size for s in self._segments)

    @property
    def segments(self) -> tuple[LogSegment, ...]:
        with self._lock:
            return tuple(self._segments)

    @property
    def active_segment(self) -> LogSegment:
        return self._segments[-1]

    @property
    def closed(self) -> bool:
        return self._closed

    def _stop_appends(self, failure: StorageError) -> None:
        """Remember a write that could not be undone: every later append raises it."""
        self._failure = failure
        self._refuse_appends = True

    def _check_writable(self) -> None:
        if self._closed:
            raise StorageError(f"{self.directory}: the log is closed")
        if self._failure is not None:
            raise StorageError(
                f"{self.directory}: the log stopped after an unrecoverable write error "
                f"({self._failure.message}); reopen it to recover"
            )

    # -- append ---------------------------------------------------------------------

    def append(self, data: BytesLike, *, leader_epoch: int | None = None) -> AppendInfo:
        """Validate, stamp and append one or more whole batches; return their offsets.

        A writable buffer (``bytearray``) is stamped in place. Raises
        ``CorruptRecordError`` / ``InvalidRecordError`` for a bad batch,
        ``RecordTooLargeError`` past ``max.message.bytes``,
        ``RecordBatchTooLargeError`` past ``segment.bytes``, and ``StorageError``
        when the disk fails (nothing is appended then).
        """
        view = data if type(data) is memoryview else memoryview(data)
        fields = check_single_batch(view)
        if fields is None:
            return self._append_many(view, leader_epoch)
        # Exactly one valid batch: the produce hot path. Every line here runs per
        # produced batch, which is why it reads cached attributes and builds little.
        length, last_offset_delta, max_timestamp, count = fields
        size = length + LOG_OVERHEAD
        if size > self._size_limit:
            self._check_sizes([size], size)
        epoch = NO_PARTITION_LEADER_EPOCH if leader_epoch is None else leader_epoch
        with self._lock:
            if self._refuse_appends:
                self._check_writable()
            offset = self._next_offset
            next_offset = offset + last_offset_delta + 1
            segment = self._segments[-1]
            if segment.size and (
                segment.size + size > self._segment_bytes
                or segment.index_full
                or next_offset - 1 - segment.base_offset > _MAX_RELATIVE_OFFSET
                or self._clock() - segment.created_ms >= self._segment_ms
            ):
                segment = self._maybe_roll(size, last_offset_delta + 1)
            if view.readonly:
                head: BytesLike = _STAMP_PACK(offset, length, epoch)
                rest: memoryview | None = view[STAMP_SIZE:]
            else:
                _STAMP_PACK_INTO(view, 0, offset, length, epoch)
                head, rest = view, None
            try:
                segment.append_batch(head, rest, offset, size, max_timestamp, next_offset)
            except PartialWriteError as exc:
                self._stop_appends(exc)
                raise
            self._next_offset = next_offset
            self._unflushed_messages += count
            if epoch > self._latest_epoch:
                self._new_epoch(epoch, offset)
        return _new_tuple(AppendInfo, (offset, next_offset - 1, max_timestamp, count, size))

    def _check_sizes(self, sizes: list[int], total: int) -> None:
        config = self._config
        for size in sizes:
            if size > config.max_message_bytes:
                raise RecordTooLargeError(
                    f"batch of {size} bytes exceeds max.message.bytes={config.max_message_bytes}"
                )
        if total > config.segment_bytes:
            raise RecordBatchTooLargeError(
                f"{total} bytes of batches exceed segment.bytes={config.segment_bytes}"
            )

    def _checked_headers(self, view: memoryview) -> list[BatchHeader]:
        """Every batch in ``view`` checked (length, magic, CRC, sizes), or the error raised."""
        total = view.nbytes
        if total == 0:
            raise InvalidRecordError(f"{self.directory}: append of zero bytes")
        headers = []
        position = 0
        while position < total:
            header = check_batch(view, position, total)
            headers.append(header)
            position += header.batch_length + LOG_OVERHEAD
        self._check_sizes([h.batch_length + LOG_OVERHEAD for h in headers], total)
        return headers

    def _append_many(self, view: memoryview, leader_epoch: int | None) -> AppendInfo:
        """Several batches, or one that ``check_single_batch`` refused (and will raise here)."""
        headers = self._checked_headers(view)
        total = view.nbytes
        epoch = NO_PARTITION_LEADER_EPOCH if leader_epoch is None else leader_epoch
        in_place = not view.readonly

        with self._lock:
            self._check_writable()
            first_offset = self._next_offset
            span = sum(h.last_offset_delta + 1 for h in headers)
            segment = self._maybe_roll(total, span)
            offset = first_offset
            position = 0
            buffers: list[BytesLike] = [view] if in_place else []
            batches = []
            records = 0
            max_timestamp = headers[0].max_timestamp
            for header in headers:
                size = header.batch_length + LOG_OVERHEAD
                if in_place:
                    STAMP.pack_into(view, position, offset, header.batch_length, epoch)
                else:
                    buffers.append(STAMP.pack(offset, header.batch_length, epoch))
                    buffers.append(view[position + STAMP.size : position + size])
                batches.append((offset, size, header.max_timestamp))
                offset += header.last_offset_delta + 1
                records += header.record_count
                max_timestamp = max(max_timestamp, header.max_timestamp)
                position += size
            try:
                segment.append(buffers, batches, offset)
            except PartialWriteError as exc:
                self._stop_appends(exc)
                raise
            self._next_offset = offset
            self._unflushed_messages += records
            if epoch > self._latest_epoch:
                self._new_epoch(epoch, first_offset)
        return AppendInfo(first_offset, offset - 1, max_timestamp, records, total)

    def append_as_follower(self, data: BytesLike) -> AppendInfo:
        """Append batches exactly as the leader stamped them (replication).

        Nothing is restamped: each batch's base offset must continue this log
        (``InvalidRecordError`` otherwise, and nothing is appended), and the
        leader epochs in the batches feed the epoch cache, so a follower can
        answer OffsetsForLeaderEpoch once it leads.
        """
        view = data if type(data) is memoryview else memoryview(data)
        headers = self._checked_headers(view)
        total = view.nbytes
        with self._lock:
            self._check_writable()
            first_offset = expected = self._next_offset
            batches = []
            position = 0
            for header in headers:
                if header.base_offset != expected:
                    raise InvalidRecordError(
                        f"{self.directory.name}: replicated batch at offset {header.base_offset} "
                        f"does not continue the log, which ends at {expected}"
                    )
                size = header.batch_length + LOG_OVERHEAD
                batches.append((expected, size, header.max_timestamp))
                expected += header.last_offset_delta + 1
                position += size
            segment = self._maybe_roll(total, expected - first_offset)
            try:
                segment.append([view], batches, expected)
            except PartialWriteError as exc:
                self._stop_appends(exc)
                raise
            self._next_offset = expected
            self._unflushed_messages += sum(h.record_count for h in headers)
            for header in headers:
                if header.partition_leader_epoch > self._latest_epoch:
                    self._new_epoch(header.partition_leader_epoch, header.base_offset)
        return AppendInfo(
            first_offset,
            expected - 1,
            max(h.max_timestamp for h in headers),
            sum(h.record_count for h in headers),
            total,
        )

    def _restore_epochs(self, start: int) -> None:
        """Re-learn epochs from the batches after an unclean stop (as Kafka's recovery does):
        a crash can come between appending a new epoch's first batch and saving the cache."""
        for segment, end in zip(self._segments, [*self._bases[1:], self._next_offset], strict=True):
            if end <= start or segment.is_empty:
                continue
            position, fd = 0, segment.file.fileno()
            while position + HEADER_SIZE <= segment.size:  # headers only: recovery checked CRCs
                header = read_header(os.pread(fd, HEADER_SIZE, position))
                epoch = header.partition_leader_epoch
                if epoch >= 0 and epoch > self.leader_epochs.latest_epoch:
                    self.leader_epochs.assign(epoch, header.base_offset)
                position += header.batch_length + LOG_OVERHEAD

    def _new_epoch(self, epoch: int, start_offset: int) -> None:
        """A leader epoch's first append: record it in memory.

        The file is written by the next ``flush`` (off the event loop), before the
        recovery point passes this offset; until then, recovery after a crash
        re-learns the epoch from the batches above the recovery point.
        """
        self.leader_epochs.assign(epoch, start_offset, persist=False)
        self._latest_epoch = epoch

    def end_offset_for_epoch(self, epoch: int) -> EpochEndOffset:
        """OffsetsForLeaderEpoch: where ``epoch`` (or the largest below it) ends in this log."""
        with self._lock:
            return self.leader_epochs.end_offset_for(epoch, self._next_offset)

    def _maybe_roll(self, incoming_bytes: int, incoming_offsets: int) -> LogSegment:
        active = self._segments[-1]
        if active.is_empty:
            return active
        config = self._config
        reason = None
        if active.size + incoming_bytes > config.segment_bytes:
            reason = "segment.bytes"
        elif self._clock() - active.created_ms >= config.segment_ms:
            reason = "segment.ms"
        elif active.index_full:
            reason = "segment.index.bytes"
        elif self._next_offset + incoming_offsets - 1 - active.base_offset > _MAX_RELATIVE_OFFSET:
            reason = "relative offset overflow"
        if reason is None:
            return active
        return self._roll(reason)

    def _roll(self, reason: str) -> LogSegment:
        active = self._segments[-1]
        try:
            new = LogSegment.create(
                self.directory,
                self._next_offset,
                index_interval_bytes=self._config.index_interval_bytes,
                max_index_bytes=self._config.segment_index_bytes,
                now_ms=self._clock(),
            )
            active.seal()
        except OSError as exc:
            raise StorageError(
                f"{self.directory}: cannot roll a segment at offset {self._next_offset}: "
                f"{exc.strerror}"
            ) from exc
        self._segments.append(new)
        self._bases.append(new.base_offset)
        log.debug("%s: rolled segment at offset %d (%s)", self.directory, new.base_offset, reason)
        return new

    def roll(self) -> int:
        """Start a new segment now (if the active one holds data); return the active base offset."""
        with self._lock:
            self._check_writable()
            if not self._segments[-1].is_empty:
                self._roll("requested")
            return self._segments[-1].base_offset

    def truncate_to(self, offset: int) -> int:
        """Remove every batch holding ``offset`` or later; return the new log end offset.

        This is how a follower drops a divergent suffix (Kafka's ``truncateTo``):
        a batch that holds ``offset`` goes whole, so the new end may be below
        ``offset``. Later segments are deleted at once; readers holding slices of
        them get errors, never other data. Raises ``OffsetOutOfRangeError`` below
        the log start.
        """
        with self._flush_lock, self._lock:
            self._check_writable()
            if offset >= self._next_offset:
                return self._next_offset
            if offset < self._log_start_offset:
                raise OffsetOutOfRangeError(
                    f"{self.directory.name}: cannot truncate to {offset}, below the log start "
                    f"{self._log_start_offset}"
                )
            i = max(0, bisect_right(self._bases, offset) - 1)
            segment = self._segments[i]
            found = segment.find(offset)  # may raise for a damaged segment: nothing changed yet
            position = segment.size if found is None else found[0]
            try:
                for later in self._segments[i + 1 :]:
                    later.delete()
                del self._segments[i + 1 :]
                del self._bases[i + 1 :]
                segment.truncate_to_position(position)
                segment.fsync()  # a cut must be durable before any later marker says "clean"
                fsync_directory(self.directory)
            except OSError as exc:
                failure = StorageError(
                    f"{self.directory}: truncating to {offset} failed: {exc.strerror}"
                )
                self._stop_appends(failure)
                raise failure from exc
            assert segment.next_offset is not None
            self._next_offset = segment.next_offset
            self._recovery_point = min(self._recovery_point, self._next_offset)
            # Offsets stand in for records here (exact unless batches were compacted).
            self._unflushed_messages = self._next_offset - self._recovery_point
            new_end = self._next_offset
            self.leader_epochs.truncate_from_end(new_end)
            self._latest_epoch = self.leader_epochs.latest_epoch
        self._write_checkpoint()
        log.info(
            "%s: truncated to offset %d (asked %d)",
            self.directory.name,
            new_end,
            offset,
            extra=log_fields(self.directory, new_end),
        )
        return new_end

    # -- read -----------------------------------------------------------------------

    def read(
        self, offset: int, max_bytes: int, *, max_offset: int | None = None
    ) -> FileSlice | None:
        """Whole batches from the one holding ``offset``, up to ``max_bytes``.

        The first batch is returned whole even when it is larger than
        ``max_bytes``, so a reader always makes progress. ``max_offset``
        (exclusive, e.g. the high watermark) bounds what is served. Returns None
        when there is nothing at or after ``offset`` below the bound; raises
        ``OffsetOutOfRangeError`` outside ``[log_start_offset, log_end_offset]``.
        """
        with self._lock:
            start, end = self._log_start_offset, self._next_offset
            if offset < start or offset > end:
                raise OffsetOutOfRangeError(
                    f"offset {offset} is outside [{start}, {end}] of {self.directory.name}"
                )
            upper = end if max_offset is None else min(max_offset, end)
            if offset >= upper:
                return None
            i = max(0, bisect_right(self._bases, offset) - 1)
            while i < len(self._segments):
                segment = self._segments[i]
                found = segment.find(offset)
                if found is not None:
                    break
                i += 1
            else:
                return None
            position, header = found
            limit = segment.size
            if upper < end:
                bound = segment.find(upper)
                if bound is not None:
                    limit = bound[0]
            if limit <= position:
                return None
            if limit - position <= max_bytes:
                size = limit - position
            else:
                boundary = segment.last_boundary_within(position, position + max(max_bytes, 0))
                if boundary == position:
                    boundary = position + header.batch_length + LOG_OVERHEAD
                size = boundary - position
            return segment.slice(position, size, header.base_offset)

    def read_records(self, offset: int, max_bytes: int = 1 << 20) -> list[Record]:
        """Decoded records from ``offset`` (for tools and tests: the broker never decodes)."""
        file_slice = self.read(offset, max_bytes)
        if file_slice is None:
            return []
        return [r for batch in file_slice.batches() for r in batch.records() if r.offset >= offset]

    def offset_for_timestamp(self, timestamp: int) -> TimestampOffset | None:
        """The first record whose timestamp is at or after ``timestamp``, if any.

        Decodes one batch to find the exact record (ListOffsets is not a hot path).
        """
        with self._lock:
            for segment in self._segments:
                if segment.largest_timestamp < timestamp:
                    continue
                found = segment.find_by_timestamp(timestamp)
                if found is None:
                    continue
                position, header = found
                data = segment.slice(
                    position, header.batch_length + LOG_OVERHEAD, header.base_offset
                )
                for record in RecordBatch(data.read_bytes()).records():
                    if record.timestamp >= timestamp and record.offset >= self._log_start_offset:
                        return TimestampOffset(record.offset, record.timestamp)
            return None

    # -- retention ------------------------------------------------------------------

    def delete_old_segments(self) -> list[DeletedSegment]:
        """Apply ``retention.ms`` and ``retention.bytes`` to whole inactive segments.

        Removed segments are renamed ``*.deleted`` at once and unlinked after
        ``file.delete.delay.ms``, so slices already handed out stay readable.
        """
        with self._lock:
            if self._closed:
                return []
            config = self._config
            now = self._clock()
            inactive = self._segments[:-1]
            doomed: list[DeletedSegment] = []
            if config.retention_ms >= 0:
                for segment in inactive:
                    if now - segment.largest_timestamp <= config.retention_ms:
                        break
                    doomed.append(DeletedSegment(segment.base_offset, segment.size, "retention.ms"))
            if config.retention_bytes >= 0:
                excess = sum(s.size for s in self._segments) - sum(d.size_bytes for d in doomed)
                excess -= config.retention_bytes
                for segment in inactive[len(doomed) :]:
                    if excess - segment.size < 0:
                        break
                    excess -= segment.size
                    doomed.append(
                        DeletedSegment(segment.base_offset, segment.size, "retention.bytes")
                    )
            if not doomed:
                return []
            removed = self._segments[: len(doomed)]
            del self._segments[: len(doomed)]
            del self._bases[: len(doomed)]
            self._log_start_offset = max(self._log_start_offset, self._segments[0].base_offset)
            self.leader_epochs.truncate_from_start(self._log_start_offset)
            self._recovery_point = max(self._recovery_point, self._log_start_offset)
            deadline = now + config.file_delete_delay_ms
            try:
                for segment in removed:
                    segment.rename_for_deletion()
            finally:
                self._pending_deletes.extend((deadline, s) for s in removed)
        for d in doomed:
            log.info(
                "%s: deleted segment %d (%d bytes) by %s; log start offset is now %d",
                self.directory.name,
                d.base_offset,
                d.size_bytes,
                d.reason,
                self._log_start_offset,
            )
        self._write_checkpoint()
        self.purge_deleted()
        return doomed

    def purge_deleted(self) -> int:
        """Unlink segments whose deletion delay has passed; return how many."""
        with self._lock:
            now = self._clock()
            due = [s for deadline, s in self._pending_deletes if deadline <= now]
            if not due:
                return 0
            # Lock order is flush lock, then log lock: never wait for the flush lock here.
            if not self._flush_lock.acquire(blocking=False):
                return 0  # a flush may be fsyncing one of them; the next call finishes the job
            try:
                for segment in due:
                    segment.delete()
                self._pending_deletes = [(d, s) for d, s in self._pending_deletes if s not in due]
            finally:
                self._flush_lock.release()
            return len(due)

    # -- flush ----------------------------------------------------------------------

    def pending_flush_offset(self) -> int | None:
        """The offset ``flush`` should reach now by policy, or None when nothing is due.

        Rolled segments are always due (as in Kafka), so after a crash only the
        active segment needs re-validation; ``flush.messages`` and ``flush.ms``
        make the active segment due too.
        """
        with self._lock:
            config = self._config
            by_messages = (
                config.flush_messages is not None
                and self._unflushed_messages >= config.flush_messages
            )
            by_time = (
                config.flush_ms is not None
                and self._clock() - self._last_flush_ms >= config.flush_ms
            )
            if self._next_offset > self._recovery_point and (by_messages or by_time):
                return self._next_offset
            active_base = self._segments[-1].base_offset
            if self._recovery_point < active_base:
                return active_base
            return None

    def maybe_flush(self) -> bool:
        """Flush if the policy says so (blocking: call it from a worker thread in a server)."""
        offset = self.pending_flush_offset()
        if offset is None:
            return False
        self.flush(offset)
        return True

    def flush(self, offset: int | None = None) -> None:
        """fsync everything below ``offset`` (default: the log end) and advance the recovery point.

        Blocking; safe to call from a worker thread while the event loop appends.
        """
        with self._flush_lock:
            with self._lock:
                if self._closed:
                    return
                target = self._next_offset if offset is None else min(offset, self._next_offset)
                if target <= self._recovery_point:
                    return
                segments = self._unflushed_segments(target)
                for segment in segments:
                    segment.write_pending_indexes()
                flushed_messages = self._unflushed_messages if target == self._next_offset else 0
            try:
                for segment in segments:
                    segment.fsync()
                # Epochs first learned below ``target`` must be on disk before the
                # recovery point passes them: recovery re-learns only above it.
                self.leader_epochs.flush()
            except OSError as exc:
                raise StorageError(f"{self.directory}: fsync failed: {exc.strerror}") from exc
            with self._lock:
                self._recovery_point = max(self._recovery_point, target)
                self._unflushed_messages -= flushed_messages
                self._last_flush_ms = self._clock()
        self._write_checkpoint()
        self.purge_deleted()

    def _unflushed_segments(self, target: int) -> list[LogSegment]:
        """Segments holding offsets in ``[recovery_point, target)``: the ones to fsync."""
        ends = [*self._bases[1:], self._next_offset]
        return [
            segment
            for segment, end in zip(self._segments, ends, strict=True)
            if end > self._recovery_point and segment.base_offset < target
        ]

    def _write_checkpoint(self) -> None:
        with self._checkpoint_lock:
            with self._lock:
                checkpoint = PartitionCheckpoint(self._recovery_point, self._log_start_offset)
            try:
                write_checkpoint(self.directory, checkpoint)
            except OSError as exc:
                raise StorageError(
                    f"{self.directory}: cannot write the checkpoint: {exc.strerror}"
                ) from exc

    # -- close ----------------------------------------------------------------------

    def close(self) -> None:
        """Flush, checkpoint, close the files and leave the clean-shutdown marker.

        A log that stopped after a write error closes without the marker, so the
        next open re-validates its tail.
        """
        with self._flush_lock, self._lock:
            if self._closed:
                return
            try:
                for segment in self._segments:
                    segment.write_pending_indexes()
                for segment in self._unflushed_segments(self._next_offset):
                    segment.fsync()
                self._recovery_point = self._next_offset
            finally:
                self._closed = True
                self._refuse_appends = True
        try:
            self._write_checkpoint()
            self.leader_epochs.flush()
            with self._lock:
                for _, segment in self._pending_deletes:
                    segment.delete()
                self._pending_deletes.clear()
                for segment in self._segments:
                    segment.close()
            if self._failure is None:
                write_atomically(self.directory / CLEAN_SHUTDOWN_FILE, b"")
        except OSError as exc:
            raise StorageError(f"{self.directory}: closing failed: {exc.strerror}") from exc

    def close_handlers(self) -> None:
        """Close every file without writing anything: no index tail, checkpoint or marker.

        For a log directory that failed (Kafka's ``closeHandlers``). What it leaves
        on disk is what ``kill -9`` leaves, so the next open runs recovery.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._refuse_appends = True
            for segment in self._segments + [s for _, s in self._pending_deletes]:
                segment.close_discarding()

    def __enter__(self) -> PartitionLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
