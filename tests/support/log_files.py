"""Reading a partition log back for assertions: every record, and raw segment files."""

from __future__ import annotations

import struct
from pathlib import Path

from client.record import LOG_OVERHEAD, BatchHeader, Record, read_header
from logserver.log import PartitionLog

_OFFSET_ENTRY = struct.Struct(">II")
_TIME_ENTRY = struct.Struct(">qI")


def read_all_records(log: PartitionLog, start: int | None = None) -> list[Record]:
    """Every record from ``start`` (default: the log start) to the log end, segment by segment."""
    offset = log.log_start_offset if start is None else start
    records: list[Record] = []
    while True:
        file_slice = log.read(offset, 1 << 30)
        if file_slice is None:
            return records
        for batch in file_slice.batches():
            records.extend(r for r in batch.records() if r.offset >= offset)
            last = batch.last_offset
        offset = last + 1


def batch_headers(log_file: Path) -> list[tuple[int, BatchHeader]]:
    """``(position, header)`` of every batch in a ``.log`` file, walking the length fields."""
    data = log_file.read_bytes()
    out = []
    position = 0
    while position < len(data):
        header = read_header(data, position)
        out.append((position, header))
        position += header.batch_length + LOG_OVERHEAD
    assert position == len(data), f"{log_file} ends inside a batch"
    return out


def offset_index_entries(index_file: Path, base_offset: int) -> list[tuple[int, int]]:
    """``(absolute offset, position)`` entries as stored in a ``.index`` file."""
    return [
        (base_offset + rel, pos) for rel, pos in _OFFSET_ENTRY.iter_unpack(index_file.read_bytes())
    ]


def time_index_entries(index_file: Path, base_offset: int) -> list[tuple[int, int]]:
    """``(timestamp, absolute offset)`` entries as stored in a ``.timeindex`` file."""
    return [(ts, base_offset + rel) for ts, rel in _TIME_ENTRY.iter_unpack(index_file.read_bytes())]


def segment_file(directory: Path, base_offset: int, suffix: str) -> Path:
    return directory / f"{base_offset:020d}{suffix}"
