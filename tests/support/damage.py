"""Building logs with known batch boundaries, damaging their files, predicting what survives.

A ``LogLayout`` records where every appended batch landed (segment, position,
size, offsets, values), so a test can damage a byte and say exactly which
offsets recovery must keep: every batch wholly before the damaged one. A flip
in bytes 12..15 (the leader epoch, outside the CRC and never checked) loses
nothing; any other damage loses the damaged batch and everything after it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import struct
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from client.record import LOG_OVERHEAD, RecordBatch, check_batch
from logserver.log import PartitionLog
from logserver.log.files import INDEX_SUFFIX, LOG_SUFFIX, parse_segment_name, segment_path
from tests.support.batches import BASE_TIMESTAMP, make_batch

EPOCH_BYTES = range(12, 16)  # partition_leader_epoch: not CRC-covered, not checked
BASE_OFFSET_BYTES = range(8)  # caught by the offset-continuity check, not by the CRC


@dataclasses.dataclass(frozen=True, slots=True)
class BatchSpan:
    """Where one appended batch lives on disk."""

    segment: int  # base offset of the segment holding it
    position: int
    size: int
    first_offset: int
    last_offset: int
    values: tuple[bytes | None, ...]

    @property
    def end(self) -> int:
        return self.position + self.size

    def offsets(self) -> dict[int, bytes | None]:
        return {self.first_offset + i: v for i, v in enumerate(self.values)}


@dataclasses.dataclass
class LogLayout:
    """Every batch of a log in offset order, and the size of every segment."""

    batches: list[BatchSpan] = dataclasses.field(default_factory=list)
    segment_sizes: dict[int, int] = dataclasses.field(default_factory=dict)

    def add(self, span: BatchSpan) -> None:
        self.batches.append(span)
        self.segment_sizes[span.segment] = span.end

    @property
    def bases(self) -> list[int]:
        return sorted(self.segment_sizes)

    @property
    def log_end(self) -> int:
        return self.batches[-1].last_offset + 1 if self.batches else 0

    def in_segment(self, base: int) -> list[BatchSpan]:
        return [b for b in self.batches if b.segment == base]

    def index_of(self, base: int, position: int) -> int:
        """Global index of the batch of segment ``base`` that holds byte ``position``."""
        for i, b in enumerate(self.batches):
            if b.segment == base and b.position <= position < b.end:
                return i
        raise ValueError(f"no batch of segment {base} holds position {position}")

    def values(self, upto: int | None = None) -> dict[int, bytes | None]:
        """offset -> value for the first ``upto`` batches (all by default)."""
        out: dict[int, bytes | None] = {}
        for b in self.batches[:upto]:
            out.update(b.offsets())
        return out

    def copy(self) -> LogLayout:
        return LogLayout(list(self.batches), dict(self.segment_sizes))


def append_tracked(log: PartitionLog, data: bytes, layout: LogLayout) -> BatchSpan:
    """Append one batch and record where it went."""
    info = log.append(data)
    segment = log.active_segment
    values = tuple(r.value for r in RecordBatch(data).records())
    span = BatchSpan(
        segment.base_offset,
        segment.size - info.size_bytes,
        info.size_bytes,
        info.first_offset,
        info.last_offset,
        values,
    )
    layout.add(span)
    return span


def varied_batch(k: int, *, tag: str = "b") -> bytes:
    """Batch number ``k`` of a test log: 1-3 records, sizes and timestamps that vary with k."""
    count = 1 + k % 3
    return make_batch(
        count,
        tag=f"{tag}{k}",
        value_size=8 + (k * 37) % 70,
        timestamp_ms=[BASE_TIMESTAMP + 10 * k + i for i in range(count)],
    )


def fill_log(
    log: PartitionLog, layout: LogLayout, count: int, *, start: int = 0, tag: str = "b"
) -> None:
    for k in range(start, start + count):
        append_tracked(log, varied_batch(k, tag=tag), layout)


def scan_segments(directory: Path) -> list[tuple[int, int, int, int, int]]:
    """``(segment, position, size, first_offset, last_offset)`` of every valid batch on disk."""
    out = []
    for path in sorted(directory.iterdir()):
        parsed = parse_segment_name(path.name)
        if parsed is None or parsed[1] != LOG_SUFFIX or not path.is_file() or path.is_symlink():
            continue
        base = parsed[0]
        data = path.read_bytes()
        pos = 0
        while pos < len(data):
            header = check_batch(data, pos)
            size = header.batch_length + LOG_OVERHEAD
            out.append((base, pos, size, header.base_offset, header.last_offset))
            pos += size
    return out


def check_layout_matches_disk(layout: LogLayout, directory: Path) -> None:
    expected = [
        (b.segment, b.position, b.size, b.first_offset, b.last_offset) for b in layout.batches
    ]
    actual = scan_segments(directory)
    if actual != expected:
        raise AssertionError(f"layout does not match the files:\n{expected}\n!=\n{actual}")


# -- damage ------------------------------------------------------------------------------


def log_file(directory: Path, base: int) -> Path:
    return segment_path(directory, base, LOG_SUFFIX)


def flip_bit(path: Path, position: int, bit: int = 0) -> None:
    with open(path, "r+b") as f:
        f.seek(position)
        byte = f.read(1)
        if len(byte) != 1:
            raise ValueError(f"{path}: no byte at {position}")
        f.seek(position)
        f.write(bytes([byte[0] ^ (1 << bit)]))


def overwrite(path: Path, position: int, data: bytes) -> None:
    with open(path, "r+b") as f:
        f.seek(position)
        f.write(data)


def truncate_file(path: Path, size: int) -> None:
    os.truncate(path, size)


def offset_index_entries(directory: Path, base: int) -> list[tuple[int, int]]:
    """``(absolute offset, position)`` entries of a segment's ``.index`` file as stored."""
    data = segment_path(directory, base, INDEX_SUFFIX).read_bytes()
    return [(base + rel, pos) for rel, pos in struct.iter_unpack(">II", data)]


def snapshot(directory: Path) -> dict[str, bytes]:
    """Every regular file under ``directory`` (relative name -> bytes)."""
    out = {}
    for root, _dirs, files in os.walk(directory):
        for name in files:
            path = Path(root) / name
            out[str(path.relative_to(directory))] = path.read_bytes()
    return out


def copy_log(template: Path, target: Path) -> Path:
    shutil.copytree(template, target)
    return target


# -- expectations ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, slots=True)
class Expected:
    """What recovery must leave after one piece of damage."""

    survivors: dict[int, bytes | None]
    log_end: int
    # (segment, position, first_lost_offset, bytes_cut) or None when nothing is cut
    truncation: tuple[int, int, int, int] | None
    removed_segments: list[tuple[int, int]]
    segments_left: list[int]

    @property
    def bytes_cut(self) -> int:
        cut = self.truncation[3] if self.truncation else 0
        return cut + sum(size for _, size in self.removed_segments)


def expect_nothing_lost(layout: LogLayout) -> Expected:
    return Expected(layout.values(), layout.log_end, None, [], layout.bases)


def expect_after_damage(
    layout: LogLayout, base: int, position: int, *, truncated: bool, bit_flip: bool
) -> Expected:
    """The outcome of truncating segment ``base`` to ``position`` bytes or flipping a bit there."""
    if truncated == bit_flip:
        raise ValueError("exactly one of truncated / bit_flip")
    k = layout.index_of(base, position)
    damaged = layout.batches[k]
    if bit_flip and position - damaged.position in EPOCH_BYTES:
        return expect_nothing_lost(layout)
    size_after_damage = position if truncated else layout.segment_sizes[base]
    cut = size_after_damage - damaged.position
    later = [b for b in layout.bases if b > base]
    truncation = (
        None if cut == 0 and not later else (base, damaged.position, damaged.first_offset, cut)
    )
    return Expected(
        survivors=layout.values(k),
        log_end=damaged.first_offset,
        truncation=truncation,
        removed_segments=[(b, layout.segment_sizes[b]) for b in later],
        segments_left=[b for b in layout.bases if b <= base],
    )


def read_all(log: PartitionLog) -> dict[int, bytes | None]:
    """Every record from the log start to the log end, validated; gaps or overlaps raise."""
    out: dict[int, bytes | None] = {}
    offset = log.log_start_offset
    end = log.log_end_offset
    while offset < end:
        file_slice = log.read(offset, 1 << 20)
        if file_slice is None:
            raise AssertionError(f"read({offset}) returned None below the log end {end}")
        for batch in file_slice.batches():
            if batch.base_offset != offset:
                raise AssertionError(f"batch at {batch.base_offset}, expected offset {offset}")
            for record in batch.records():
                out[record.offset] = record.value
            offset = batch.next_offset
    if offset != end:
        raise AssertionError(f"batches end at {offset}, the log end is {end}")
    if log.read(end, 1 << 20) is not None:
        raise AssertionError(f"read at the log end {end} returned data")
    return out


def names(paths: Iterable[Path]) -> list[str]:
    return sorted(p.name for p in paths)


@contextlib.contextmanager
def ram_directory(prefix: str) -> Iterator[Path]:
    """A scratch directory on tmpfs when there is one: recovery tests fsync a lot, and
    what they check is logic, not durability. Falls back to the default temp directory."""
    shm = Path("/dev/shm")
    base = str(shm) if shm.is_dir() and os.access(shm, os.W_OK | os.X_OK) else None
    with tempfile.TemporaryDirectory(prefix=prefix, dir=base) as name:
        yield Path(name)
