"""One segment of a partition log: a ``.log`` file and its two sparse indexes.

The ``.log`` file is the concatenation of batches exactly as appended (base
offset and leader epoch stamped in the header). It is only ever appended to,
truncated by recovery, or removed whole by retention. Appends go straight to
the OS with ``write``/``writev``, so an appended batch survives the process
being killed; ``flush`` adds the fsync.

Indexing rule (the same for appends and rebuilds, so a rebuilt index equals the
original): before a batch is appended, if more than ``index.interval.bytes``
went in since the last entry, that batch gets an offset-index entry and the
time index gets ``(largest timestamp so far, offset of the batch that set it)``.
"""

from __future__ import annotations

import errno
import io
import logging
import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from client.errors import CorruptRecordError, StorageError
from client.record.layout import (
    HEADER,
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC,
    MIN_BATCH_LENGTH,
    BatchHeader,
    BytesLike,
)
from logserver.log.batch_scanner import BatchScanner, ScanStop, mapped_file
from logserver.log.file_slice import FileSlice
from logserver.log.files import (
    DELETED_SUFFIX,
    INDEX_SUFFIX,
    LOG_SUFFIX,
    TIME_INDEX_SUFFIX,
    segment_path,
)
from logserver.log.fsync_timing import FSYNC_TIMES
from logserver.log.index_file import CorruptIndexError
from logserver.log.offset_index import OffsetIndex
from logserver.log.time_index import TimeIndex

__all__ = ["LogSegment", "PartialWriteError", "SegmentScan"]

log = logging.getLogger(__name__)

NO_TIMESTAMP = -(2**63)
_IOV_MAX = min(os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024, 1024)


class PartialWriteError(StorageError):
    """An append failed and its partial bytes could not be cut off: the log must stop."""


class SegmentScan:
    """The outcome of re-validating one segment."""

    __slots__ = ("base_offset", "batches", "next_offset", "stop", "truncated_bytes", "valid_bytes")

    def __init__(self, base_offset: int, scanner: BatchScanner, truncated_bytes: int) -> None:
        self.base_offset = base_offset
        self.valid_bytes = scanner.valid_end
        self.batches = scanner.batches
        self.next_offset = scanner.next_offset if scanner.next_offset is not None else base_offset
        self.stop: ScanStop | None = scanner.stop
        self.truncated_bytes = truncated_bytes


class LogSegment:
    """A ``.log`` file with its ``.index`` and ``.timeindex``."""

    def __init__(
        self,
        directory: Path,
        base_offset: int,
        *,
        index_interval_bytes: int,
        max_index_bytes: int,
        created_ms: int,
    ) -> None:
        self.directory = directory
        self.base_offset = base_offset
        self.path = segment_path(directory, base_offset, LOG_SUFFIX)
        self.file = io.FileIO(self.path, "a+")
        self._fd = self.file.fileno()
        offset_index: OffsetIndex | None = None
        try:
            offset_index = OffsetIndex(
                segment_path(directory, base_offset, INDEX_SUFFIX),
                base_offset,
                max(1, max_index_bytes // OffsetIndex.ENTRY.size),
            )
            self.time_index = TimeIndex(
                segment_path(directory, base_offset, TIME_INDEX_SUFFIX),
                base_offset,
                max(1, max_index_bytes // TimeIndex.ENTRY.size),
            )
        except (OSError, CorruptIndexError):
            if offset_index is not None:
                offset_index.close_discarding()
            self.file.close()
            raise
        self.offset_index = offset_index
        self.size = os.fstat(self._fd).st_size
        self.created_ms = created_ms
        self.next_offset: int | None = base_offset if self.size == 0 else None
        self._index_interval_bytes = index_interval_bytes
        self._bytes_since_index = 0
        self._max_timestamp = NO_TIMESTAMP
        self._offset_of_max_timestamp = base_offset
        self._largest_timestamp_cache: int | None = None
        self.sealed = False  # rolled: never appended to again, time index carries its max
        self.index_full = self.offset_index.is_full or self.time_index.is_full

    # -- creation -------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        directory: Path,
        base_offset: int,
        *,
        index_interval_bytes: int,
        max_index_bytes: int,
        now_ms: int,
    ) -> LogSegment:
        """A new, empty segment; refuses to reuse a non-empty ``.log`` file."""
        path = segment_path(directory, base_offset, LOG_SUFFIX)
        if path.exists() and path.stat().st_size > 0:
            raise StorageError(f"{path}: refusing to create a segment over a non-empty file")
        for suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX):
            segment_path(directory, base_offset, suffix).unlink(missing_ok=True)
        segment = cls(
            directory,
            base_offset,
            index_interval_bytes=index_interval_bytes,
            max_index_bytes=max_index_bytes,
            created_ms=now_ms,
        )
        segment.offset_index.reset()
        segment.time_index.reset()
        return segment

    # -- state ----------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"LogSegment(base_offset={self.base_offset}, size={self.size})"

    @property
    def is_empty(self) -> bool:
        return self.size == 0

    @property
    def largest_timestamp(self) -> int:
        """The largest record timestamp in the segment (``NO_TIMESTAMP`` when empty)."""
        if self._max_timestamp != NO_TIMESTAMP or self.next_offset is not None:
            return self._max_timestamp
        if self._largest_timestamp_cache is None:
            last = self.time_index.last_disk_entry()
            self._largest_timestamp_cache = NO_TIMESTAMP if last is None else last[0]
        return self._largest_timestamp_cache

    def _track(self, base_offset: int, position: int, size: int, max_timestamp: int) -> None:
        if max_timestamp > self._max_timestamp:
            self._max_timestamp = max_timestamp
            self._offset_of_max_timestamp = base_offset
        if self._bytes_since_index > self._index_interval_bytes:
            offset_index, time_index = self.offset_index, self.time_index
            offset_index.append(base_offset, position)
            time_index.maybe_append(self._max_timestamp, self._offset_of_max_timestamp)
            self._bytes_since_index = 0
            self.index_full = (
                offset_index.entry_count >= offset_index.max_entries
                or time_index.entry_count >= time_index.max_entries
            )
        self._bytes_since_index += size

    def _track_all(self, scanner: BatchScanner) -> None:
        """``_track`` every batch a scan yields (recovery runs this over whole segments)."""
        track, interval = self._track, self._index_interval_bytes
        for position, header in scanner:
            size, max_timestamp = header[1] + LOG_OVERHEAD, header[8]
            if max_timestamp > self._max_timestamp or self._bytes_since_index > interval:
                track(header[0], position, size, max_timestamp)
            else:  # what _track would do in this case, without the call
                self._bytes_since_index += size

    # -- append ---------------------------------------------------------------------

    def append(
        self,
        buffers: Sequence[BytesLike],
        batches: Sequence[tuple[int, int, int]],
        next_offset: int,
    ) -> int:
        """Write stamped batches and index them; return the position they start at.

        ``batches`` holds ``(base_offset, size, max_timestamp)`` per batch, in order.
        On a write error the file is cut back to where it was and ``StorageError``
        is raised, so a failed append leaves nothing behind.
        """
        start = self.size
        try:
            _write_all(self._fd, buffers)
        except OSError as exc:
            self._roll_back(start, exc)
        position = start
        track = self._track
        for base_offset, size, max_timestamp in batches:
            track(base_offset, position, size, max_timestamp)
            position += size
        self.size = position
        self.next_offset = next_offset
        return start

    def append_batch(
        self,
        data: BytesLike,
        rest: BytesLike | None,
        base_offset: int,
        size: int,
        max_timestamp: int,
        next_offset: int,
    ) -> int:
        """``append`` for exactly one batch of ``size`` bytes: the lean, common case.

        ``data`` is the whole stamped batch, or its stamped 16-byte prefix when
        ``rest`` holds the remainder (written together with ``writev``).
        """
        start = self.size
        try:
            written = (
                os.write(self._fd, data) if rest is None else os.writev(self._fd, (data, rest))
            )
            if written != size:
                _write_rest(self._fd, (data,) if rest is None else (data, rest), written)
        except OSError as exc:
            self._roll_back(start, exc)
        if (
            max_timestamp > self._max_timestamp
            or self._bytes_since_index > self._index_interval_bytes
        ):
            self._track(base_offset, start, size, max_timestamp)
        else:  # what _track would do in this case, without the call
            self._bytes_since_index += size
        self.size = start + size
        self.next_offset = next_offset
        return start

    def _roll_back(self, size: int, exc: OSError) -> None:
        reason = os.strerror(exc.errno) if exc.errno else str(exc)
        try:
            os.ftruncate(self._fd, size)
        except OSError as truncate_exc:
            raise PartialWriteError(
                f"{self.path}: append failed ({reason}) and the partial write could not be "
                f"removed ({truncate_exc.strerror}); the log needs recovery"
            ) from exc
        raise StorageError(f"{self.path}: append failed: {reason}; nothing was written") from exc

    # -- read -----------------------------------------------------------------------

    def header_at(self, position: int) -> BatchHeader:
        """The header of the batch at ``position``, with the framing checks a scan needs."""
        data = os.pread(self._fd, HEADER_SIZE, position)
        if len(data) < HEADER_SIZE:
            raise CorruptRecordError(f"{self.path}: batch header at {position} is cut short")
        header = BatchHeader._make(HEADER.unpack_from(data))
        if (
            header.batch_length < MIN_BATCH_LENGTH
            or header.magic != MAGIC
            or position + header.batch_length + LOG_OVERHEAD > self.size
        ):
            raise CorruptRecordError(
                f"{self.path}: no valid batch header at position {position} "
                f"(batch_length {header.batch_length}, magic {header.magic}, size {self.size})"
            )
        return header

    def _index_start(self, offset: int) -> tuple[int, int]:
        """The indexed ``(offset, position)`` to scan from, checked against the log.

        An index entry that does not name the batch it points at is derived data
        gone wrong: the indexes are rebuilt once. A mismatch after that is damage
        in the log itself (a base offset is not covered by the CRC).
        """
        for attempt in (1, 2):
            try:
                entry_offset, position = self.offset_index.lookup(offset)
            except CorruptIndexError as exc:
                problem = str(exc)
            else:
                if position >= self.size:
                    return entry_offset, position
                found = self.header_at(position).base_offset
                if found == entry_offset:
                    return entry_offset, position
                problem = (
                    f"{self.offset_index.path}: entry for offset {entry_offset} points at a batch "
                    f"with base offset {found} (position {position})"
                )
            if attempt == 2:
                raise CorruptRecordError(f"{problem}; the log itself is damaged")
            log.warning("%s; rebuilding the indexes of segment %d", problem, self.base_offset)
            self.rebuild_indexes()
        raise AssertionError("unreachable")

    def _walk(self, offset: int) -> Iterator[tuple[int, BatchHeader]]:
        """Headers from the indexed batch at or before ``offset``, each continuing the last."""
        expected, position = self._index_start(offset)
        end = self.size
        while position < end:
            header = self.header_at(position)
            if header.base_offset != expected:
                raise CorruptRecordError(
                    f"{self.path}: batch at position {position} has base offset "
                    f"{header.base_offset}, expected {expected}: the segment is damaged"
                )
            yield position, header
            expected = header.base_offset + header.last_offset_delta + 1
            position += header.batch_length + LOG_OVERHEAD

    def find(self, offset: int) -> tuple[int, BatchHeader] | None:
        """Position and header of the batch holding ``offset``; None past the segment's end.

        Raises ``CorruptRecordError`` when the batches on the way break the offset
        sequence, so a damaged base offset is an error, never a wrong record.
        """
        for position, header in self._walk(offset):
            if header.base_offset + header.last_offset_delta >= offset:
                return position, header
        return None

    def last_boundary_within(self, start: int, limit: int) -> int:
        """The end of the last whole batch in ``[start, limit]``; ``start`` if none fits."""
        limit = min(limit, self.size)
        try:
            _, position = self.offset_index.lookup_by_position(limit)
        except CorruptIndexError:
            position = start
        position = max(position, start)
        while position < limit:
            end = position + self.header_at(position).batch_length + LOG_OVERHEAD
            if end > limit:
                break
            position = end
        return position

    def find_by_timestamp(self, timestamp: int) -> tuple[int, BatchHeader] | None:
        """The first batch whose largest timestamp is at or after ``timestamp``."""
        try:
            entry = self.time_index.lookup(timestamp)
        except CorruptIndexError as exc:
            log.warning("%s; rebuilding the indexes of segment %d", exc, self.base_offset)
            self.rebuild_indexes()
            entry = self.time_index.lookup(timestamp)
        # Every batch before the entry's offset is older than ``timestamp``.
        for position, header in self._walk(entry[1] if entry else self.base_offset):
            if header.max_timestamp >= timestamp:
                return position, header
        return None

    def slice(self, position: int, size: int, first_offset: int) -> FileSlice:
        return FileSlice(self.file, self.path, position, size, first_offset)

    # -- validation -----------------------------------------------------------------

    def _rescan(self, *, truncate: bool) -> SegmentScan:
        self.offset_index.reset()
        self.time_index.reset()
        self.index_full = False
        self._bytes_since_index = 0
        self._max_timestamp = NO_TIMESTAMP
        self._offset_of_max_timestamp = self.base_offset
        self._largest_timestamp_cache = None
        size = os.fstat(self._fd).st_size
        with mapped_file(self._fd, size) as view:
            scanner = BatchScanner(view, 0, size, expected_offset=self.base_offset)
            self._track_all(scanner)
        if self.sealed and scanner.batches:
            self.time_index.maybe_append(self._max_timestamp, self._offset_of_max_timestamp)
        cut = size - scanner.valid_end if truncate else 0
        if cut:
            os.ftruncate(self._fd, scanner.valid_end)
        self.size = scanner.valid_end if truncate else size
        self.next_offset = (
            scanner.next_offset if scanner.next_offset is not None else self.base_offset
        )
        return SegmentScan(self.base_offset, scanner, cut)

    def recover(self) -> SegmentScan:
        """Re-validate every batch, rebuild both indexes, cut the file at the first bad batch."""
        return self._rescan(truncate=True)

    def rebuild_indexes(self) -> SegmentScan:
        """Rebuild both indexes from the valid batches, leaving the ``.log`` file untouched."""
        return self._rescan(truncate=False)

    def truncate_to_position(self, position: int) -> SegmentScan:
        """Cut the file at ``position`` (a batch boundary) and make this the active segment again.

        Indexes are rebuilt from what remains, which costs one scan of the segment:
        truncation is rare (a follower dropping a divergent suffix).
        """
        if not 0 <= position <= self.size:
            raise ValueError(f"{self.path}: cannot truncate to {position} (size {self.size})")
        os.ftruncate(self._fd, position)
        self.sealed = False
        return self._rescan(truncate=True)

    def load_tail(self) -> ScanStop | None:
        """Restore the append state of the active segment after a clean shutdown.

        Validates the batches after the last index entry (a short scan). Returns
        why it stopped early, in which case the caller runs ``recover``; raises
        ``CorruptIndexError`` when an index contradicts the log.
        """
        self.offset_index.ensure_loaded()
        self.time_index.ensure_loaded()
        last = self.offset_index.last_entry()
        start_offset, start = last if last else (self.base_offset, 0)
        if start >= self.size and self.size > 0:
            raise CorruptIndexError(
                f"{self.offset_index.path}: entry at position {start} is past the log end "
                f"{self.size}"
            )
        last_time = self.time_index.last_entry()
        if last_time is not None:
            if last_time[1] > start_offset and last is not None:
                raise CorruptIndexError(
                    f"{self.time_index.path}: offset {last_time[1]} is past the last indexed offset"
                )
            self._max_timestamp, self._offset_of_max_timestamp = last_time
        with mapped_file(self._fd, self.size) as view:
            scanner = BatchScanner(view, start, self.size, expected_offset=start_offset)
            self._track_all(scanner)
        if scanner.stop is not None:
            return scanner.stop
        self.next_offset = scanner.next_offset
        return None

    def check_indexes(self, next_base_offset: int) -> None:
        """The cheap open-time check of an inactive segment; raises ``CorruptIndexError``."""
        last = self.offset_index.last_disk_entry()
        if last is not None and (last[1] >= self.size or last[0] >= next_base_offset):
            raise CorruptIndexError(
                f"{self.offset_index.path}: last entry {last} points past the segment "
                f"(size {self.size}, next segment {next_base_offset})"
            )
        last_time = self.time_index.last_disk_entry()
        if last_time is None:
            raise CorruptIndexError(f"{self.time_index.path}: no entry for an inactive segment")
        if not self.base_offset <= last_time[1] < next_base_offset:
            raise CorruptIndexError(
                f"{self.time_index.path}: last entry {last_time} points outside the segment"
            )

    # -- lifecycle ------------------------------------------------------------------

    def seal(self) -> None:
        """On roll: record the final largest timestamp and hand index entries to the OS."""
        if self.size:
            self.time_index.maybe_append(self._max_timestamp, self._offset_of_max_timestamp)
        self.sealed = True
        self.write_pending_indexes()

    def write_pending_indexes(self) -> None:
        """Hand buffered index entries to the OS; the caller serialises this with appends."""
        self.offset_index.write_pending()
        self.time_index.write_pending()

    def fsync(self) -> None:
        """fsync the log and both indexes; safe to run in another thread than appends."""
        started = time.perf_counter()
        os.fsync(self._fd)
        self.offset_index.fsync()
        self.time_index.fsync()
        FSYNC_TIMES.observe(time.perf_counter() - started)

    def close(self) -> None:
        try:
            self.offset_index.close()
            self.time_index.close()
        finally:
            self.file.close()

    def close_discarding(self) -> None:
        """Close without writing buffered index entries (the process is going away)."""
        self.offset_index.close_discarding()
        self.time_index.close_discarding()
        self.file.close()

    def rename_for_deletion(self) -> None:
        """Step one of removal: rename to ``*.deleted``; open descriptors stay valid."""
        for holder in (self, self.offset_index, self.time_index):
            new = holder.path.with_name(holder.path.name + DELETED_SUFFIX)
            if holder is self:
                os.rename(self.path, new)
                self.path = new
            else:
                holder.rename(new)  # type: ignore[union-attr]

    def delete(self) -> None:
        """Close and unlink every file of this segment, wherever it is named now."""
        self.offset_index.delete()
        self.time_index.delete()
        self.file.close()
        self.path.unlink(missing_ok=True)


def _write_all(fd: int, buffers: Sequence[BytesLike]) -> None:
    written = os.write(fd, buffers[0]) if len(buffers) == 1 else os.writev(fd, buffers[:_IOV_MAX])
    _write_rest(fd, buffers, written)


def _write_rest(fd: int, buffers: Sequence[BytesLike], written: int) -> None:
    """Finish a write that took only ``written`` bytes of ``buffers`` (a full disk, a signal)."""
    remaining = [memoryview(b).cast("B") for b in buffers]
    while remaining and written >= remaining[0].nbytes:
        written -= remaining.pop(0).nbytes
    if remaining:
        remaining[0] = remaining[0][written:]
    while remaining:
        chunk = remaining[:_IOV_MAX]
        written = os.writev(fd, chunk)
        if written <= 0:
            raise OSError(errno.EIO, "write made no progress")
        done = 0
        while done < len(chunk) and written >= len(chunk[done]):
            written -= len(chunk[done])
            done += 1
        remaining = remaining[done:]
        if written:
            remaining[0] = remaining[0][written:]


def now_ms() -> int:
    return time.time_ns() // 1_000_000
