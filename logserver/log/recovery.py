"""Opening a partition directory: the checks and the recovery that run before any append.

After a clean shutdown (the marker is present) only cheap checks run: each
inactive segment's indexes are sanity-checked and the active segment's tail,
after its last index entry, is re-validated. After an unclean stop every batch
from the recovery point on is re-validated (length, magic, CRC32C, offset
continuity); the log is cut at the first bad batch and every later segment is
removed. A segment whose indexes are missing or contradict the log is
re-validated the same way, wherever it sits. What was cut is logged and
returned in a ``RecoveryReport``.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from bisect import bisect_right
from collections.abc import Callable
from pathlib import Path

from client.errors import StorageError
from logserver.log.checkpoint import PartitionCheckpoint, read_checkpoint
from logserver.log.config import LogConfig
from logserver.log.files import (
    CLEAN_SHUTDOWN_FILE,
    INDEX_SUFFIX,
    TIME_INDEX_SUFFIX,
    fsync_directory,
    list_directory,
    log_fields,
    segment_path,
)
from logserver.log.index_file import CorruptIndexError
from logserver.log.segment import LogSegment, SegmentScan

__all__ = ["LoadedLog", "RecoveryReport", "Truncation", "load_log"]

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True, slots=True)
class Truncation:
    """Where recovery cut a segment, and why."""

    segment_base_offset: int
    position: int
    first_lost_offset: int  # the offset the first removed batch should have had
    bytes_cut: int
    reason: str


@dataclasses.dataclass
class RecoveryReport:
    directory: Path
    clean_shutdown: bool
    created: bool = False  # the directory held no segment: a new, empty log
    validated_from_offset: int | None = None  # None: only the cheap checks ran
    segments_validated: int = 0
    bytes_validated: int = 0
    truncation: Truncation | None = None
    removed_segments: list[tuple[int, int]] = dataclasses.field(default_factory=list)
    rebuilt_indexes: list[int] = dataclasses.field(default_factory=list)
    removed_files: list[str] = dataclasses.field(default_factory=list)
    foreign_files: list[str] = dataclasses.field(default_factory=list)
    log_start_offset: int = 0
    log_end_offset: int = 0
    seconds: float = 0.0

    @property
    def bytes_cut(self) -> int:
        cut = self.truncation.bytes_cut if self.truncation else 0
        return cut + sum(size for _, size in self.removed_segments)

    @property
    def lost_data(self) -> bool:
        return self.bytes_cut > 0

    def describe(self) -> list[str]:
        """Human-readable lines: what a log line or ``segment-tools recover`` prints."""
        lines = []
        how = (
            "new log"
            if self.created
            else "clean shutdown"
            if self.clean_shutdown
            else "unclean shutdown"
        )
        validated = (
            f"validated {self.segments_validated} segment(s), {self.bytes_validated} bytes "
            f"from offset {self.validated_from_offset}"
            if self.validated_from_offset is not None
            else "tail checked"
        )
        lines.append(
            f"{self.directory}: {how}; {validated}; log now [{self.log_start_offset}, "
            f"{self.log_end_offset}) in {self.seconds:.3f}s"
        )
        if self.truncation:
            t = self.truncation
            lines.append(
                f"truncated segment {t.segment_base_offset} at position {t.position}: cut "
                f"{t.bytes_cut} bytes, offsets from {t.first_lost_offset} on are gone ({t.reason})"
            )
        for base, size in self.removed_segments:
            lines.append(f"removed segment {base} ({size} bytes) that followed the cut")
        if self.rebuilt_indexes:
            lines.append(
                f"rebuilt indexes of segment(s) {', '.join(map(str, self.rebuilt_indexes))}"
            )
        for name in self.removed_files:
            lines.append(f"removed leftover {name}")
        for name in self.foreign_files:
            lines.append(f"ignored foreign file {name}")
        return lines


@dataclasses.dataclass
class LoadedLog:
    segments: list[LogSegment]
    log_start_offset: int
    recovery_point: int
    report: RecoveryReport


def load_log(
    directory: Path,
    config: LogConfig,
    clock_ms: Callable[[], int],
    *,
    full_recovery: bool = False,
) -> LoadedLog:
    """Open (creating if needed) and, when necessary, recover a partition directory."""
    started = time.perf_counter()
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / CLEAN_SHUTDOWN_FILE
    clean = marker.exists() and not full_recovery
    report = RecoveryReport(directory, clean_shutdown=clean)
    checkpoint = read_checkpoint(directory)
    now = clock_ms()

    listing = list_directory(directory)
    for path in listing.leftovers:
        path.unlink(missing_ok=True)
        report.removed_files.append(path.name)
    for base, suffix in listing.orphan_indexes:
        segment_path(directory, base, suffix).unlink(missing_ok=True)
        report.removed_files.append(segment_path(directory, base, suffix).name)
    for path in listing.foreign:
        log.warning("%s: ignoring foreign file %s", directory, path.name)
        report.foreign_files.append(path.name)

    segments: list[LogSegment] = []
    suspect: list[int] = []  # positions in ``segments`` whose indexes are missing or broken
    try:
        for base in listing.log_bases:
            suffixes = listing.segments[base]
            segment = _open_segment(directory, base, config, now)
            if segment is None:
                suspect.append(len(segments))
                segment = _open_segment(directory, base, config, now, drop_indexes=True)
                assert segment is not None
            elif INDEX_SUFFIX not in suffixes or TIME_INDEX_SUFFIX not in suffixes:
                suspect.append(len(segments))
            segments.append(segment)

        if not segments:
            base = checkpoint.log_start_offset if checkpoint else 0
            segments.append(_create_segment(directory, base, config, now))
            report.created = True

        first_to_validate = _first_to_validate(
            segments, checkpoint, clean or report.created, full_recovery, suspect
        )
        if first_to_validate is None and not report.created:
            first_to_validate = _load_clean_tail(segments)
        if first_to_validate is not None:
            _recover_from(segments, first_to_validate, report)
            for segment in segments[first_to_validate:]:
                segment.write_pending_indexes()
                segment.fsync()
    except BaseException:
        for segment in segments:
            segment.close()
        raise

    for inactive in segments[:-1]:
        inactive.sealed = True
    log_end = segments[-1].next_offset
    assert log_end is not None
    first_base = segments[0].base_offset
    wanted_start = checkpoint.log_start_offset if checkpoint else first_base
    log_start = max(first_base, min(wanted_start, log_end))

    if marker.exists():
        marker.unlink()
        fsync_directory(directory)
    report.log_start_offset, report.log_end_offset = log_start, log_end
    report.seconds = time.perf_counter() - started
    if report.lost_data:
        for line in report.describe():
            log.warning("recovery: %s", line, extra=log_fields(directory, log_end))
    elif not clean and not report.created:
        log.info("recovery: %s", report.describe()[0], extra=log_fields(directory, log_end))
    return LoadedLog(segments, log_start, log_end, report)


def _open_segment(
    directory: Path, base: int, config: LogConfig, now: int, *, drop_indexes: bool = False
) -> LogSegment | None:
    if drop_indexes:
        for suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX):
            segment_path(directory, base, suffix).unlink(missing_ok=True)
    try:
        return LogSegment(
            directory,
            base,
            index_interval_bytes=config.index_interval_bytes,
            max_index_bytes=config.segment_index_bytes,
            created_ms=now,
        )
    except CorruptIndexError as exc:
        if drop_indexes:
            raise StorageError(f"{directory}: cannot open segment {base}: {exc}") from exc
        log.warning("%s; the segment will be re-validated", exc)
        return None


def _create_segment(directory: Path, base: int, config: LogConfig, now: int) -> LogSegment:
    return LogSegment.create(
        directory,
        base,
        index_interval_bytes=config.index_interval_bytes,
        max_index_bytes=config.segment_index_bytes,
        now_ms=now,
    )


def _first_to_validate(
    segments: list[LogSegment],
    checkpoint: PartitionCheckpoint | None,
    clean: bool,
    full_recovery: bool,
    suspect: list[int],
) -> int | None:
    """Index of the first segment to re-validate; None when only the clean tail check is due."""
    if full_recovery:
        return 0
    first: int | None = None
    if not clean:
        recovery_point = checkpoint.recovery_point if checkpoint else 0
        bases = [s.base_offset for s in segments]
        first = max(0, bisect_right(bases, recovery_point) - 1)
        # Continuity past an empty segment is judged from the segment before it.
        while 0 < first < len(segments) - 1 and segments[first].is_empty:
            first -= 1
    limit = len(segments) - 1 if first is None else first
    for i in range(limit):
        if segments[i].is_empty:
            return max(0, i - 1)
        if i in suspect:
            return i
        try:
            segments[i].check_indexes(segments[i + 1].base_offset)
        except CorruptIndexError as exc:
            log.warning("%s; re-validating from segment %d", exc, segments[i].base_offset)
            return i
    if first is None and suspect and suspect[-1] == len(segments) - 1:
        return len(segments) - 1
    return first


def _load_clean_tail(segments: list[LogSegment]) -> int | None:
    """Restore the active segment after a clean shutdown; its index if recovery is needed."""
    active = segments[-1]
    try:
        stop = active.load_tail()
    except CorruptIndexError as exc:
        log.warning("%s; re-validating the active segment", exc)
        return len(segments) - 1
    if stop is not None:
        log.warning(
            "%s: clean-shutdown marker present, yet the tail is bad (%s); re-validating",
            active.path,
            stop.reason,
        )
        return len(segments) - 1
    return None


def _recover_from(segments: list[LogSegment], first: int, report: RecoveryReport) -> None:
    """Re-validate ``segments[first:]`` in order; cut at the first bad batch, drop the rest."""
    report.validated_from_offset = segments[first].base_offset
    expected = segments[first].base_offset
    i = first
    while i < len(segments):
        segment = segments[i]
        if segment.is_empty and i < len(segments) - 1 and segment.base_offset != expected:
            # An empty segment out of sequence holds nothing: a stray file. Dropping it
            # loses nothing; continuity is judged between its neighbours. (An empty
            # segment exactly where the log continues lost its data: that is a cut.)
            report.removed_files.append(segment.path.name)
            segment.delete()
            del segments[i]
            continue
        if segment.base_offset != expected:
            previous = segments[i - 1]
            report.truncation = Truncation(
                previous.base_offset,
                previous.size,
                expected,
                0,
                f"segment {segment.base_offset} does not continue at offset {expected}",
            )
            break
        scan: SegmentScan = segment.recover()
        report.segments_validated += 1
        report.bytes_validated += scan.valid_bytes + scan.truncated_bytes
        report.rebuilt_indexes.append(segment.base_offset)
        if scan.stop is not None:
            report.truncation = Truncation(
                segment.base_offset,
                scan.stop.position,
                scan.next_offset,
                scan.truncated_bytes,
                scan.stop.reason,
            )
            i += 1
            break
        expected = scan.next_offset
        i += 1
    for removed in segments[i:]:
        report.removed_segments.append((removed.base_offset, removed.size))
        removed.delete()
    del segments[i:]
    for inactive in segments[first:-1]:
        inactive.seal()
