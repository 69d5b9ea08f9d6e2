"""``segment-tools verify``: a read-only check of a partition directory.

Checks every batch (length, magic, CRC32C, count), offset continuity inside and
across segments, that every index entry points at a real batch with the offset
it claims, that time-index entries carry the running largest timestamp, and
that the checkpoint agrees with the log. It opens files read-only and changes
nothing, so it is safe to point at a copy of a broken directory.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from logserver.log.batch_scanner import BatchScanner, mapped_file
from logserver.log.checkpoint import read_checkpoint
from logserver.log.files import (
    CHECKPOINT_FILE,
    INDEX_SUFFIX,
    LOG_SUFFIX,
    TIME_INDEX_SUFFIX,
    list_directory,
    segment_path,
)
from logserver.log.offset_index import OffsetIndex
from logserver.log.time_index import TimeIndex

__all__ = ["Problem", "VerifyResult", "verify_directory"]


@dataclasses.dataclass(frozen=True)
class Problem:
    path: Path
    message: str
    position: int | None = None
    offset: int | None = None

    def __str__(self) -> str:
        where = []
        if self.position is not None:
            where.append(f"position {self.position}")
        if self.offset is not None:
            where.append(f"offset {self.offset}")
        at = f" ({', '.join(where)})" if where else ""
        return f"{self.path}{at}: {self.message}"


@dataclasses.dataclass
class VerifyResult:
    directory: Path
    problems: list[Problem] = dataclasses.field(default_factory=list)
    warnings: list[str] = dataclasses.field(default_factory=list)
    segments: int = 0
    batches: int = 0
    bytes: int = 0
    log_start_offset: int | None = None
    log_end_offset: int | None = None

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclasses.dataclass(frozen=True, slots=True)
class _Batch:
    base_offset: int
    running_max_timestamp: int  # largest timestamp up to and including this batch
    max_before: int  # largest timestamp before this batch


def verify_directory(directory: Path) -> VerifyResult:
    result = VerifyResult(directory)
    listing = list_directory(directory)
    for path in listing.foreign:
        result.warnings.append(f"foreign file {path.name} (ignored by the broker)")
    for path in listing.leftovers:
        result.warnings.append(f"leftover {path.name} (removed by the broker at open)")
    for base, suffix in listing.orphan_indexes:
        result.warnings.append(f"index without a log: {base:020d}{suffix}")
    bases = listing.log_bases
    if not bases:
        result.problems.append(Problem(directory, "no segment (.log) files"))
        return result

    expected: int | None = None
    for i, base in enumerate(bases):
        is_last = i == len(bases) - 1
        path = segment_path(directory, base, LOG_SUFFIX)
        if expected is not None and base != expected:
            result.problems.append(
                Problem(
                    path,
                    f"segment starts at offset {base}, the previous one ends at {expected}",
                    position=0,
                    offset=expected,
                )
            )
        batches, next_offset, size = _verify_log_file(path, base, result)
        result.segments += 1
        result.bytes += size
        if not batches and not is_last:
            result.problems.append(Problem(path, "empty segment before the active one"))
        suffixes = listing.segments[base]
        _verify_offset_index(directory, base, batches, INDEX_SUFFIX in suffixes, result)
        _verify_time_index(
            directory,
            base,
            batches,
            TIME_INDEX_SUFFIX in suffixes,
            sealed=not is_last,
            result=result,
        )
        expected = next_offset
    result.log_end_offset = expected
    _verify_checkpoint(directory, bases[0], expected, result)
    return result


def _verify_log_file(
    path: Path, base: int, result: VerifyResult
) -> tuple[dict[int, _Batch], int, int]:
    fd = os.open(path, os.O_RDONLY)
    try:
        with mapped_file(fd) as view:
            size = len(view)
            scanner = BatchScanner(view, 0, size, expected_offset=base)
            batches: dict[int, _Batch] = {}
            running = None
            for position, header in scanner:
                before = running
                running = (
                    header.max_timestamp if running is None else max(running, header.max_timestamp)
                )
                batches[position] = _Batch(
                    header.base_offset, running, before if before is not None else -(2**63) - 1
                )
    finally:
        os.close(fd)
    result.batches += len(batches)
    if scanner.stop is not None:
        result.problems.append(
            Problem(path, scanner.stop.reason, scanner.stop.position, scanner.stop.expected_offset)
        )
    next_offset = scanner.next_offset if scanner.next_offset is not None else base
    return batches, next_offset, size


def _read_index(
    path: Path, kind: str, entry_size: int, *, present: bool, needed: bool, result: VerifyResult
) -> bytes | None:
    """The index file's bytes, or None after recording why it cannot be checked."""
    if not present:
        if needed:
            result.problems.append(Problem(path, f"missing {kind}"))
        return None
    data = path.read_bytes()
    if len(data) % entry_size:
        result.problems.append(
            Problem(path, f"size {len(data)} is not a multiple of the {entry_size}-byte entry")
        )
        return None
    return data


def _verify_offset_index(
    directory: Path, base: int, batches: dict[int, _Batch], present: bool, result: VerifyResult
) -> None:
    path = segment_path(directory, base, INDEX_SUFFIX)
    data = _read_index(
        path,
        "offset index",
        OffsetIndex.ENTRY.size,
        present=present,
        needed=bool(batches),
        result=result,
    )
    if data is None:
        return
    previous = (-1, -1)
    for n, (rel, position) in enumerate(OffsetIndex.ENTRY.iter_unpack(data)):
        offset = base + rel
        if rel <= previous[0] or position <= previous[1]:
            result.problems.append(
                Problem(
                    path, f"entry {n} ({offset}, {position}) does not increase", position, offset
                )
            )
        previous = (rel, position)
        batch = batches.get(position)
        if batch is None:
            result.problems.append(
                Problem(
                    path,
                    f"entry {n} points at position {position}, not a valid batch start",
                    position,
                    offset,
                )
            )
        elif batch.base_offset != offset:
            result.problems.append(
                Problem(
                    path,
                    f"entry {n} says offset {offset}, the batch there starts at "
                    f"{batch.base_offset}",
                    position,
                    offset,
                )
            )


def _verify_time_index(
    directory: Path,
    base: int,
    batches: dict[int, _Batch],
    present: bool,
    *,
    sealed: bool,
    result: VerifyResult,
) -> None:
    path = segment_path(directory, base, TIME_INDEX_SUFFIX)
    data = _read_index(
        path,
        "time index",
        TimeIndex.ENTRY.size,
        present=present,
        needed=bool(batches),
        result=result,
    )
    if data is None:
        return
    by_offset = {b.base_offset: b for b in batches.values()}
    entries = list(TimeIndex.ENTRY.iter_unpack(data))
    previous_ts: int | None = None
    for n, (timestamp, rel) in enumerate(entries):
        offset = base + rel
        if previous_ts is not None and timestamp <= previous_ts:
            result.problems.append(
                Problem(path, f"entry {n} timestamp {timestamp} does not increase", offset=offset)
            )
        previous_ts = timestamp
        batch = by_offset.get(offset)
        if batch is None:
            result.problems.append(
                Problem(
                    path,
                    f"entry {n} names offset {offset}, which starts no valid batch",
                    offset=offset,
                )
            )
        elif not batch.max_before < timestamp == batch.running_max_timestamp:
            result.problems.append(
                Problem(
                    path,
                    f"entry {n} says timestamp {timestamp}, but the largest timestamp "
                    f"at offset {offset} is {batch.running_max_timestamp}",
                    offset=offset,
                )
            )
    if sealed and batches:
        largest = max(b.running_max_timestamp for b in batches.values())
        if not entries or entries[-1][0] != largest:
            result.problems.append(
                Problem(
                    path,
                    f"inactive segment: the last entry should carry its largest "
                    f"timestamp {largest}",
                )
            )


def _verify_checkpoint(
    directory: Path, first_base: int, log_end: int | None, result: VerifyResult
) -> None:
    checkpoint = read_checkpoint(directory)
    if checkpoint is None:
        result.log_start_offset = first_base
        result.warnings.append("no readable partition.checkpoint (the broker re-validates all)")
        return
    result.log_start_offset = checkpoint.log_start_offset
    path = directory / CHECKPOINT_FILE
    if log_end is not None and checkpoint.recovery_point > log_end:
        result.problems.append(
            Problem(
                path,
                f"recovery point {checkpoint.recovery_point} is past the log end "
                f"{log_end}: flushed data is missing",
            )
        )
    if log_end is not None and not first_base <= checkpoint.log_start_offset <= log_end:
        result.problems.append(
            Problem(
                path,
                f"log start offset {checkpoint.log_start_offset} is outside "
                f"[{first_base}, {log_end}]",
            )
        )
