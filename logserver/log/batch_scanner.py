"""Walking the batches of a segment file, validating each, stopping at the first bad one.

Recovery, index rebuilds, ``segment-tools verify`` and ``dump`` all walk files
the same way, so they agree on where valid data ends and why.
"""

from __future__ import annotations

import dataclasses
import mmap
import os
from collections.abc import Iterator
from contextlib import contextmanager

from client.errors import CorruptRecordError, InvalidRecordError
from client.record import IncompleteBatchError
from client.record.layout import LOG_OVERHEAD, BatchHeader
from client.record.validation import check_batch_fields

_new_tuple = tuple.__new__  # a BatchHeader from the raw fields, without NamedTuple._make

__all__ = ["BatchScanner", "ScanStop", "mapped_file"]


@dataclasses.dataclass(frozen=True, slots=True)
class ScanStop:
    """Where and why a scan stopped before the end of the data."""

    position: int
    expected_offset: int | None  # the offset the next batch should have started at
    reason: str
    incomplete: bool  # True: the data ends inside a batch (a torn write)


class BatchScanner:
    """Yields ``(position, header)`` for each valid batch in ``view[start:end]``.

    With ``expected_offset`` set, a batch whose base offset breaks the sequence
    stops the scan too. After iteration, ``valid_end`` is the end of the last
    valid batch, ``next_offset`` the offset after it, and ``stop`` says why the
    scan ended early (None when it reached ``end``).
    """

    def __init__(
        self,
        view: memoryview,
        start: int = 0,
        end: int | None = None,
        expected_offset: int | None = None,
    ) -> None:
        self._view = view
        self.start = start
        self.end = len(view) if end is None else end
        self.valid_end = start
        self.next_offset = expected_offset
        self.stop: ScanStop | None = None
        self.batches = 0

    def __iter__(self) -> Iterator[tuple[int, BatchHeader]]:
        view, end = self._view, self.end
        pos, expected = self.start, self.next_offset
        try:
            while pos < end:
                try:
                    header = _new_tuple(BatchHeader, check_batch_fields(view, pos, end))
                except IncompleteBatchError as exc:
                    self.stop = ScanStop(pos, expected, exc.message, incomplete=True)
                    return
                except (CorruptRecordError, InvalidRecordError) as exc:
                    self.stop = ScanStop(pos, expected, exc.message, incomplete=False)
                    return
                if expected is not None and header[0] != expected:
                    self.stop = ScanStop(
                        pos,
                        expected,
                        f"batch at position {pos}: base offset {header.base_offset} "
                        f"breaks the sequence, expected {expected}",
                        incomplete=False,
                    )
                    return
                yield pos, header
                pos += header[1] + LOG_OVERHEAD  # batch_length
                expected = header[0] + header[6] + 1  # base offset + last_offset_delta + 1
                self.batches += 1
        finally:
            self.valid_end = pos
            self.next_offset = expected


@contextmanager
def mapped_file(fd: int, size: int | None = None) -> Iterator[memoryview]:
    """A read-only memoryview of a whole file (an empty view for an empty file)."""
    if size is None:
        size = os.fstat(fd).st_size
    if size == 0:
        yield memoryview(b"")
        return
    with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as mapped:
        view = memoryview(mapped)
        try:
            yield view
        finally:
            view.release()
