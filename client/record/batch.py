"""Reading batches: header access, validation, and decoding records.

``read_header`` touches only the 61 header bytes, which is all a broker needs;
``RecordBatch.records`` decompresses and unpacks the body with one msgpack call.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from functools import partial
from itertools import chain, repeat
from operator import add
from typing import Any

import msgpack

from client.errors import CorruptRecordError, InvalidRecordError
from client.record.compression import Compression, decompress
from client.record.layout import (
    HEADER,
    HEADER_SIZE,
    LOG_OVERHEAD,
    STAMP,
    BatchHeader,
    BytesLike,
)
from client.record.record import Record
from client.record.validation import IncompleteBatchError, check_batch

__all__ = ["RecordBatch", "iter_batches", "read_header", "stamp_batch"]

_LENGTH = struct.Struct(">i")


def read_header(buf: BytesLike, pos: int = 0) -> BatchHeader:
    """The header of the batch at ``pos``, unchecked (no CRC, no body access)."""
    if len(buf) - pos < HEADER_SIZE:
        raise IncompleteBatchError(
            f"batch at position {pos}: {len(buf) - pos} bytes, a header needs {HEADER_SIZE}"
        )
    return BatchHeader._make(HEADER.unpack_from(buf, pos))


def stamp_batch(buf: bytearray | memoryview, pos: int, base_offset: int, leader_epoch: int) -> None:
    """Write base offset and leader epoch in place; neither is covered by the CRC."""
    length = _LENGTH.unpack_from(buf, pos + 8)[0]
    STAMP.pack_into(buf, pos, base_offset, length, leader_epoch)


class RecordBatch:
    """One batch's bytes with its parsed header; records are decoded on demand."""

    __slots__ = ("_view", "header")

    def __init__(self, data: BytesLike, *, validate: bool = True) -> None:
        view = data if isinstance(data, memoryview) else memoryview(data)
        header = check_batch(view) if validate else read_header(view)
        self.header = header
        self._view = view[: header.batch_length + LOG_OVERHEAD]

    def __repr__(self) -> str:
        h = self.header
        return (
            f"RecordBatch(base_offset={h.base_offset}, count={h.record_count}, "
            f"codec={self.compression.label}, size={len(self._view)})"
        )

    def __bytes__(self) -> bytes:
        return bytes(self._view)

    @property
    def base_offset(self) -> int:
        return self.header.base_offset

    @property
    def last_offset(self) -> int:
        return self.header.last_offset

    @property
    def next_offset(self) -> int:
        return self.header.next_offset

    @property
    def record_count(self) -> int:
        return self.header.record_count

    @property
    def size_in_bytes(self) -> int:
        return len(self._view)

    @property
    def compression(self) -> Compression:
        return Compression.parse(self.header.compression_id)

    def validate(self) -> None:
        """Raise ``CorruptRecordError`` unless length, magic, CRC and count hold."""
        check_batch(self._view)

    def is_valid(self) -> bool:
        try:
            check_batch(self._view)
        except (CorruptRecordError, InvalidRecordError):
            return False
        return True

    def records(self) -> list[Record]:
        """Decode every record; a body that does not decode is a ``CorruptRecordError``."""
        h = self.header
        body = decompress(h.compression_id, self._view[HEADER_SIZE:])
        try:
            rows = msgpack.unpackb(body, use_list=False, raw=False)
            if not isinstance(rows, tuple) or len(rows) != h.record_count:
                raise ValueError(f"body holds {_count(rows)} records, header says {h.record_count}")
            if not rows:
                return []
            offset_deltas, timestamp_deltas, keys, values, headers = _columns(rows)
            # Built column-wise by C iterators: no Python frame per record.
            return list(
                map(
                    _new_record,
                    zip(
                        map(add, repeat(h.base_offset), offset_deltas),
                        map(add, repeat(h.first_timestamp), timestamp_deltas),
                        keys,
                        values,
                        headers,
                        strict=True,
                    ),
                )
            )
        except (ValueError, TypeError) as exc:
            raise CorruptRecordError(
                f"batch at offset {h.base_offset}: body does not decode: {exc}"
            ) from exc


_BYTES_OR_NONE = {bytes, type(None)}
_TUPLE = {tuple}


_new_record = partial(tuple.__new__, Record)


def _columns(rows: tuple[tuple[object, ...], ...]) -> tuple[tuple[Any, ...], ...]:
    """The five columns of a body, or ``TypeError`` unless every field has its type.

    A batch with a valid CRC can still come from a buggy producer. The checks run
    column by column (``zip``, ``sum``, ``set(map(type, …))`` loop in C), which
    costs a fraction of building the records.
    """
    offset_deltas, timestamp_deltas, keys, values, headers = zip(*rows, strict=True)
    if type(sum(offset_deltas)) is not int or type(sum(timestamp_deltas)) is not int:
        raise TypeError("offset and timestamp deltas must be integers")
    if not set(map(type, keys)) <= _BYTES_OR_NONE or not set(map(type, values)) <= _BYTES_OR_NONE:
        raise TypeError("keys and values must be bin or nil")
    if set(map(type, headers)) != _TUPLE:
        raise TypeError("headers must be arrays")
    pairs = tuple(chain.from_iterable(headers))
    if pairs and (
        set(map(type, pairs)) != _TUPLE
        or set(map(len, pairs)) != {2}
        or {type(k) for k, _ in pairs} != {str}
        or not {type(v) for _, v in pairs} <= _BYTES_OR_NONE
    ):
        raise TypeError("headers must be [str, bin or nil] pairs")
    return offset_deltas, timestamp_deltas, keys, values, headers


def _count(rows: object) -> str:
    return str(len(rows)) if isinstance(rows, tuple | list) else f"a {type(rows).__name__}, not"


def iter_batches(
    data: BytesLike, *, validate: bool = True, allow_incomplete_tail: bool = False
) -> Iterator[RecordBatch]:
    """The consecutive batches in ``data``.

    A partial batch at the end raises ``IncompleteBatchError`` unless
    ``allow_incomplete_tail`` is set (a fetch response cut at ``max_bytes``).
    """
    view = data if isinstance(data, memoryview) else memoryview(data)
    pos, end = 0, len(view)
    while pos < end:
        if end - pos < LOG_OVERHEAD:
            if allow_incomplete_tail:
                return
            raise IncompleteBatchError(f"{end - pos} trailing bytes at position {pos}")
        size = _LENGTH.unpack_from(view, pos + 8)[0] + LOG_OVERHEAD
        if pos + size > end and allow_incomplete_tail:
            return
        if validate:
            check_batch(view, pos, end)
        elif size < HEADER_SIZE:
            raise CorruptRecordError(
                f"batch at position {pos}: batch_length {size - 12} is too small"
            )
        elif pos + size > end:
            raise IncompleteBatchError(f"batch at position {pos} runs past the end")
        yield RecordBatch(view[pos : pos + size], validate=False)
        pos += size
