"""A byte range of one segment file: what a fetch serves.

The server hands ``file``, ``position`` and ``size`` to ``loop.sock_sendfile``
(zero-copy where the transport allows); tools call ``read_bytes`` or
``batches``. A slice always covers whole batches. It stays readable after
retention removes its segment for ``file.delete.delay.ms``, which is how long a
slice may safely be held.
"""

from __future__ import annotations

import dataclasses
import io
import os
from collections.abc import Iterator
from pathlib import Path

from client.errors import CorruptRecordError, InvalidRecordError, StorageError
from client.record import RecordBatch, iter_batches

__all__ = ["FileSlice"]


@dataclasses.dataclass(frozen=True, slots=True)
class FileSlice:
    file: io.FileIO
    path: Path
    position: int
    size: int
    first_offset: int  # base offset of the first batch (may be below the requested offset)

    @property
    def end_position(self) -> int:
        return self.position + self.size

    def read_bytes(self) -> bytes:
        """The slice's bytes, read with ``pread`` (raises ``StorageError`` on a short read)."""
        try:
            data = os.pread(self.file.fileno(), self.size, self.position)
        except (OSError, ValueError) as exc:
            raise StorageError(
                f"{self.path}: reading {self.size} bytes at {self.position}: {exc}"
            ) from exc
        if len(data) != self.size:
            raise StorageError(
                f"{self.path}: short read, {len(data)} of {self.size} bytes at {self.position}"
            )
        return data

    def batches(self, *, validate: bool = True) -> Iterator[RecordBatch]:
        """The slice's batches; with ``validate`` a checksum failure raises, never yields."""
        data = self.read_bytes()
        try:
            yield from iter_batches(data, validate=validate)
        except (CorruptRecordError, InvalidRecordError) as exc:
            raise type(exc)(f"{self.path} (slice at {self.position}): {exc.message}") from exc
