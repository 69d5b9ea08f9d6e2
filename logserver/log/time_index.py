"""The sparse time index of one segment: timestamp -> offset.

File format: 12-byte entries, big-endian ``int64 timestamp, uint32
relative_offset``; timestamps strictly increasing, offsets non-decreasing.
An entry ``(T, o)`` says: T is the largest timestamp in the segment up to and
including the batch at offset ``o``, and ``o`` is the first batch that reached
it, so every record before ``o`` is older than T. Entries are added alongside
offset-index entries, and once more when the segment is rolled, so an inactive
segment's last entry is its largest timestamp (what time retention reads).
"""

from __future__ import annotations

import struct
from array import array
from bisect import bisect_right

from logserver.log.index_file import IndexFile

__all__ = ["TimeIndex"]


_ENTRY = struct.Struct(">qI")


class TimeIndex(IndexFile):
    ENTRY = _ENTRY
    SUFFIX = ".timeindex"

    _timestamps: array[int]
    _offsets: array[int]

    def _set_columns(self, rows: list[tuple[int, ...]]) -> None:
        self._timestamps = array("q", [r[0] for r in rows])
        self._offsets = array("I", [r[1] for r in rows])

    def _check_rows(self, rows: list[tuple[int, ...]]) -> str | None:
        for i in range(1, len(rows)):
            if rows[i][0] <= rows[i - 1][0] or rows[i][1] < rows[i - 1][1]:
                return f"entry {i} {rows[i]} does not follow entry {i - 1} {rows[i - 1]}"
        return None

    def maybe_append(self, timestamp: int, offset: int) -> bool:
        """Add ``(timestamp, offset)`` if the timestamp is newer than the last entry's."""
        if not self._loaded:
            self.ensure_loaded()
        timestamps, offsets = self._timestamps, self._offsets
        if timestamps and timestamp <= timestamps[-1]:
            return False
        rel = offset - self.base_offset
        if offsets and rel < offsets[-1]:
            raise ValueError(f"{self.path}: offset {offset} goes back in the time index")
        timestamps.append(timestamp)
        offsets.append(rel)
        self.entry_count += 1
        return True

    def _encode(self, start: int) -> bytes:
        return b"".join(map(_ENTRY.pack, self._timestamps[start:], self._offsets[start:]))

    def lookup(self, timestamp: int) -> tuple[int, int] | None:
        """(timestamp, offset) of the last entry with a timestamp at or before ``timestamp``."""
        self.ensure_loaded()
        i = bisect_right(self._timestamps, timestamp) - 1
        if i < 0:
            return None
        return self._timestamps[i], self.base_offset + self._offsets[i]

    def last_entry(self) -> tuple[int, int] | None:
        self.ensure_loaded()
        if not self._timestamps:
            return None
        return self._timestamps[-1], self.base_offset + self._offsets[-1]

    def entries(self) -> list[tuple[int, int]]:
        self.ensure_loaded()
        return [
            (t, self.base_offset + o) for t, o in zip(self._timestamps, self._offsets, strict=True)
        ]

    def last_disk_entry(self) -> tuple[int, int] | None:
        row = self.last_row_on_disk()
        return None if row is None else (row[0], self.base_offset + row[1])
