"""The sparse offset index of one segment: offset -> position in the ``.log`` file.

File format: 8-byte entries, big-endian ``uint32 relative_offset, uint32
position``, strictly increasing in both. An entry names the base offset of the
batch that starts at that position. One entry is added when more than
``index.interval.bytes`` were appended since the previous one, so a lookup
lands at most about that many bytes before its target, and a short scan of
batch headers finishes the job.
"""

from __future__ import annotations

import struct
import sys
from array import array
from bisect import bisect_right

from logserver.log.index_file import IndexFile

__all__ = ["OffsetIndex"]


_ENTRY = struct.Struct(">II")


class OffsetIndex(IndexFile):
    ENTRY = _ENTRY
    SUFFIX = ".index"

    _offsets: array[int]
    _positions: array[int]

    def _set_columns(self, rows: list[tuple[int, ...]]) -> None:
        self._offsets = array("I", [r[0] for r in rows])
        self._positions = array("I", [r[1] for r in rows])

    def _check_rows(self, rows: list[tuple[int, ...]]) -> str | None:
        for i in range(1, len(rows)):
            if rows[i][0] <= rows[i - 1][0] or rows[i][1] <= rows[i - 1][1]:
                return f"entry {i} {rows[i]} does not follow entry {i - 1} {rows[i - 1]}"
        return None

    def append(self, offset: int, position: int) -> None:
        # Flat on purpose: with 16 KiB batches every append adds an entry.
        if not self._loaded:
            self.ensure_loaded()
        rel = offset - self.base_offset
        offsets, positions = self._offsets, self._positions
        if offsets and (rel <= offsets[-1] or position <= positions[-1]):
            raise ValueError(
                f"{self.path}: entry ({offset}, {position}) does not follow the last one"
            )
        offsets.append(rel)
        positions.append(position)
        self.entry_count += 1

    def _encode(self, start: int) -> bytes:
        rows = array("I", bytes(8 * (len(self._offsets) - start)))
        rows[0::2] = self._offsets[start:]
        rows[1::2] = self._positions[start:]
        if sys.byteorder == "little":
            rows.byteswap()
        return rows.tobytes()

    def lookup(self, offset: int) -> tuple[int, int]:
        """(offset, position) of the last entry at or before ``offset``, else the segment start."""
        self.ensure_loaded()
        i = bisect_right(self._offsets, offset - self.base_offset) - 1
        if i < 0:
            return self.base_offset, 0
        return self.base_offset + self._offsets[i], self._positions[i]

    def lookup_by_position(self, position: int) -> tuple[int, int]:
        """(offset, position) of the last entry at or before byte ``position``."""
        self.ensure_loaded()
        i = bisect_right(self._positions, position) - 1
        if i < 0:
            return self.base_offset, 0
        return self.base_offset + self._offsets[i], self._positions[i]

    def last_entry(self) -> tuple[int, int] | None:
        self.ensure_loaded()
        if not self._offsets:
            return None
        return self.base_offset + self._offsets[-1], self._positions[-1]

    def entries(self) -> list[tuple[int, int]]:
        self.ensure_loaded()
        return [
            (self.base_offset + o, p) for o, p in zip(self._offsets, self._positions, strict=True)
        ]

    def last_disk_entry(self) -> tuple[int, int] | None:
        row = self.last_row_on_disk()
        return None if row is None else (self.base_offset + row[0], row[1])
