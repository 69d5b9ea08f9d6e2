"""Framing and checksum checks on a batch, without decoding its body.

One routine serves the broker's produce path, log recovery, the tools and the
consumer, so "valid" means the same thing everywhere: the length fits, the
magic is ours, the CRC32C matches, and the count agrees with the offset delta.
"""

from __future__ import annotations

import struct

from crc32c import crc32c

from client.errors import CorruptRecordError, InvalidRecordError
from client.record.layout import (
    CRC_COVERS_FROM,
    HEADER,
    LOG_OVERHEAD,
    MAGIC,
    MIN_BATCH_LENGTH,
    BatchHeader,
    BytesLike,
)

_LENGTH = struct.Struct(">i")

__all__ = ["IncompleteBatchError", "check_batch", "compute_crc"]


class IncompleteBatchError(CorruptRecordError):
    """The bytes end inside a batch: a torn write at the tail of a file or a buffer."""


def compute_crc(batch: BytesLike, pos: int = 0, end: int | None = None) -> int:
    """CRC32C over the covered part of the batch at ``pos`` (attributes .. end)."""
    view = batch if isinstance(batch, memoryview) else memoryview(batch)
    if end is None:
        end = pos + LOG_OVERHEAD + _LENGTH.unpack_from(view, pos + 8)[0]
    return crc32c(view[pos + CRC_COVERS_FROM : end])


def check_batch(buf: BytesLike, pos: int = 0, end: int | None = None) -> BatchHeader:
    """Validate the batch starting at ``pos`` and return its header.

    Raises ``IncompleteBatchError`` when the batch runs past ``end`` (default: the
    end of ``buf``), ``CorruptRecordError`` for a bad length, magic or CRC, and
    ``InvalidRecordError`` when the record count and offset delta disagree.
    """
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    if end is None:
        end = len(view)
    available = end - pos
    if available < LOG_OVERHEAD:
        raise IncompleteBatchError(
            f"batch at position {pos}: only {available} bytes left, a header needs {LOG_OVERHEAD}"
        )
    length = _LENGTH.unpack_from(view, pos + 8)[0]
    if length < MIN_BATCH_LENGTH:
        raise CorruptRecordError(
            f"batch at position {pos}: batch_length {length} is below the minimum "
            f"{MIN_BATCH_LENGTH}"
        )
    batch_end = pos + LOG_OVERHEAD + length
    if batch_end > end:
        raise IncompleteBatchError(
            f"batch at position {pos}: batch_length {length} points past the end "
            f"({batch_end} > {end})"
        )
    header = BatchHeader._make(HEADER.unpack_from(view, pos))
    if header.magic != MAGIC:
        raise CorruptRecordError(
            f"batch at position {pos} (offset {header.base_offset}): "
            f"unsupported magic {header.magic}, expected {MAGIC}"
        )
    actual = crc32c(view[pos + CRC_COVERS_FROM : batch_end])
    if actual != header.crc:
        raise CorruptRecordError(
            f"batch at position {pos} (offset {header.base_offset}): CRC32C mismatch, "
            f"stored {header.crc:#010x}, computed {actual:#010x}"
        )
    if header.record_count < 1 or header.last_offset_delta != header.record_count - 1:
        raise InvalidRecordError(
            f"batch at position {pos} (offset {header.base_offset}): record_count "
            f"{header.record_count} does not match last_offset_delta {header.last_offset_delta}"
        )
    return header
