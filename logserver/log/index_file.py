"""What the offset index and the time index share: a file of fixed-size entries.

Index files are derived data. They are not checksummed; they are sanity-checked
when loaded and rebuilt from the log when anything is off. Entries live in
memory, in ``array`` columns (an inactive segment's index is read on first
use); the ones not yet in the file are encoded and written in bulk, on flush,
roll and close, so adding an entry is two ``array.append`` calls and no
syscall. After a crash the missing tail is rebuilt by recovery, which is why
losing it is safe.
"""

from __future__ import annotations

import io
import os
import struct
from pathlib import Path
from typing import ClassVar

from client.errors import StorageError

__all__ = ["CorruptIndexError", "IndexFile"]


class CorruptIndexError(StorageError):
    """An index file fails its sanity check; the caller rebuilds it from the log."""


class IndexFile:
    """A file of ``ENTRY``-sized records with a bounded number of entries."""

    ENTRY: ClassVar[struct.Struct]
    SUFFIX: ClassVar[str]

    def __init__(self, path: Path, base_offset: int, max_entries: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self.max_entries = max_entries
        self._file = io.FileIO(path, "a+")
        size = os.fstat(self._file.fileno()).st_size
        if size % self.ENTRY.size:
            self._file.close()
            raise CorruptIndexError(
                f"{path}: size {size} is not a multiple of the {self.ENTRY.size}-byte entry"
            )
        self._disk_entries = size // self.ENTRY.size
        self.entry_count = self._disk_entries  # on disk plus in memory only
        self._loaded = False

    # -- subclass hooks -------------------------------------------------------------

    def _set_columns(self, rows: list[tuple[int, ...]]) -> None:
        raise NotImplementedError

    def _check_rows(self, rows: list[tuple[int, ...]]) -> str | None:
        """A description of the first inconsistency, or None."""
        raise NotImplementedError

    def _encode(self, start: int) -> bytes:
        """The file bytes of entries ``start`` onwards."""
        raise NotImplementedError

    # -- shared mechanics -----------------------------------------------------------

    @property
    def is_full(self) -> bool:
        return self.entry_count >= self.max_entries

    @property
    def size_on_disk(self) -> int:
        return self._disk_entries * self.ENTRY.size

    def ensure_loaded(self) -> None:
        """Read the file into memory (once); raise ``CorruptIndexError`` if it is inconsistent."""
        if self._loaded:
            return
        data = os.pread(self._file.fileno(), self.size_on_disk, 0)
        rows = list(self.ENTRY.iter_unpack(data)) if data else []
        problem = self._check_rows(rows)
        if problem:
            raise CorruptIndexError(f"{self.path}: {problem}")
        self._set_columns(rows)
        self._loaded = True

    def last_row_on_disk(self) -> tuple[int, ...] | None:
        """The last entry as stored, without loading the rest: the cheap open-time check."""
        if self._disk_entries == 0:
            return None
        pos = self.size_on_disk - self.ENTRY.size
        return self.ENTRY.unpack(os.pread(self._file.fileno(), self.ENTRY.size, pos))

    def reset(self) -> None:
        """Drop every entry, on disk and in memory (before a rebuild)."""
        self._file.truncate(0)
        self._disk_entries = self.entry_count = 0
        self._set_columns([])
        self._loaded = True

    def write_pending(self) -> None:
        """Hand the entries not yet in the file to the OS (no fsync)."""
        if self.entry_count > self._disk_entries:
            data = memoryview(self._encode(self._disk_entries))
            while data:
                data = data[os.write(self._file.fileno(), data) :]
            self._disk_entries = self.entry_count

    def fsync(self) -> None:
        """Make what ``write_pending`` handed to the OS durable."""
        os.fsync(self._file.fileno())

    def rename(self, path: Path) -> None:
        os.rename(self.path, path)
        self.path = path

    def close(self) -> None:
        """Write pending entries and close; the caller decides whether to fsync first."""
        if not self._file.closed:
            try:
                self.write_pending()
            finally:
                self._file.close()

    def close_discarding(self) -> None:
        """Close without writing pending entries (deleted segment, or a simulated crash)."""
        self._file.close()

    def delete(self) -> None:
        self.close_discarding()
        self.path.unlink(missing_ok=True)
