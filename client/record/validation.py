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
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC,
    MIN_BATCH_LENGTH,
    BatchHeader,
    BytesLike,
)

_LENGTH = struct.Struct(">i")

__all__ = [
    "IncompleteBatchError",
    "check_batch",
    "check_batch_fields",
    "check_single_batch",
    "compute_crc",
]

# Just what an append needs: batch_length, magic, crc, last_offset_delta,
# max_timestamp, record_count (the ``x``s skip the other header fields).
_APPEND_FIELDS = struct.Struct(">8xi4xbI2xi8xq14xi")
assert _APPEND_FIELDS.size == HEADER_SIZE


class IncompleteBatchError(CorruptRecordError):
    """The bytes end inside a batch: a torn write at the tail of a file or a buffer."""


def compute_crc(batch: BytesLike, pos: int = 0, end: int | None = None) -> int:
    """CRC32C over the covered part of the batch at ``pos`` (attributes .. end)."""
    view = batch if isinstance(batch, memoryview) else memoryview(batch)
    if end is None:
        end = pos + LOG_OVERHEAD + _LENGTH.unpack_from(view, pos + 8)[0]
    return crc32c(view[pos + CRC_COVERS_FROM : end])


def check_batch_fields(view: memoryview, pos: int, end: int) -> tuple[int, ...]:
    """``check_batch`` for hot paths: the header as a plain tuple, in ``HEADER`` order."""
    available = end - pos
    if available >= HEADER_SIZE:
        fields = HEADER.unpack_from(view, pos)
        length = fields[1]
    elif available >= LOG_OVERHEAD:
        fields = ()
        length = _LENGTH.unpack_from(view, pos + 8)[0]
    else:
        raise IncompleteBatchError(
            f"batch at position {pos}: only {available} bytes left, a header needs {LOG_OVERHEAD}"
        )
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
    # From here the whole header is present: batch_length >= MIN_BATCH_LENGTH.
    if fields[3] != MAGIC:
        raise CorruptRecordError(
            f"batch at position {pos} (offset {fields[0]}): unsupported magic {fields[3]}, "
            f"expected {MAGIC}"
        )
    actual = crc32c(view[pos + CRC_COVERS_FROM : batch_end])
    if actual != fields[4]:
        raise CorruptRecordError(
            f"batch at position {pos} (offset {fields[0]}): CRC32C mismatch, "
            f"stored {fields[4]:#010x}, computed {actual:#010x}"
        )
    if fields[12] < 1 or fields[6] != fields[12] - 1:
        raise InvalidRecordError(
            f"batch at position {pos} (offset {fields[0]}): record_count {fields[12]} "
            f"does not match last_offset_delta {fields[6]}"
        )
    return fields


def check_single_batch(view: memoryview) -> tuple[int, int, int, int] | None:
    """The produce hot path: ``view`` is exactly one valid batch.

    Returns ``(batch_length, last_offset_delta, max_timestamp, record_count)``
    when it is; None otherwise, and then ``check_batch_fields`` gives the
    verdict (several batches, or the precise error). It accepts only what
    ``check_batch_fields`` accepts, unpacking 6 header fields instead of 13.
    """
    if view.nbytes < HEADER_SIZE:
        return None
    length, magic, crc, last_offset_delta, max_timestamp, count = _APPEND_FIELDS.unpack_from(view)
    if (
        length + LOG_OVERHEAD != view.nbytes
        or magic != MAGIC
        or count < 1
        or last_offset_delta != count - 1
        or crc32c(view[CRC_COVERS_FROM:]) != crc
    ):
        return None
    return length, last_offset_delta, max_timestamp, count


def check_batch(buf: BytesLike, pos: int = 0, end: int | None = None) -> BatchHeader:
    """Validate the batch starting at ``pos`` and return its header.

    Raises ``IncompleteBatchError`` when the batch runs past ``end`` (default: the
    end of ``buf``), ``CorruptRecordError`` for a bad length, magic or CRC, and
    ``InvalidRecordError`` when the record count and offset delta disagree.
    """
    view = buf if isinstance(buf, memoryview) else memoryview(buf)
    return BatchHeader._make(check_batch_fields(view, pos, len(view) if end is None else end))
