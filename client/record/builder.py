"""Packing records into one batch.

The body is a msgpack array with one entry per record::

    [offset_delta, timestamp_delta, key, value, headers]

``key`` and ``value`` are msgpack bin (or nil), ``headers`` an array of
``[str, bin]`` pairs, deltas are relative to the batch's base offset and
first timestamp. Records are kept in that shape as they are appended, so
``build`` packs the whole array with a single msgpack call and compresses it
as a whole: no per-record work at build time.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Iterable, Mapping

import msgpack
from crc32c import crc32c

from client.errors import InvalidTimestampError
from client.record.compression import Compression, compress
from client.record.layout import (
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC,
    NO_PARTITION_LEADER_EPOCH,
    NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID,
    NO_SEQUENCE,
    BytesLike,
)
from client.record.record import Header

__all__ = ["BatchBuilder", "build_batch", "encode_batch"]

# The header split at the CRC: the prefix holds the CRC, the tail is covered by it.
_PREFIX = struct.Struct(">qiibI")
_TAIL = struct.Struct(">hiqqqhii")
assert _PREFIX.size + _TAIL.size == HEADER_SIZE

_MAX_TIMESTAMP = 2**63 - 1

HeadersArg = Mapping[str, BytesLike | None] | Iterable[tuple[str, BytesLike | None]] | None


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _check_payload(name: str, payload: object) -> None:
    if payload is not None and not isinstance(payload, bytes | bytearray | memoryview):
        raise TypeError(f"record {name} must be bytes or None, not {type(payload).__name__}")


# Exact msgpack encoded sizes, so ``estimated_size`` is a true upper bound.
def _packed_int_size(value: int) -> int:
    if -32 <= value < 128:
        return 1
    if -128 <= value < 256:
        return 2
    if -(2**15) <= value < 2**16:
        return 3
    if -(2**31) <= value < 2**32:
        return 5
    return 9


def _packed_bin_size(payload: BytesLike | None) -> int:
    if payload is None:
        return 1
    n = payload.nbytes if isinstance(payload, memoryview) else len(payload)
    return n + (2 if n < 256 else 3 if n < 65536 else 5)


def _packed_str_size(text: str) -> int:
    n = len(text.encode())
    return n + (1 if n < 32 else 2 if n < 256 else 3 if n < 65536 else 5)


def _packed_array_header_size(count: int) -> int:
    return 1 if count < 16 else 3 if count < 65536 else 5


def _normalize_headers(headers: HeadersArg) -> tuple[tuple[str, BytesLike | None], ...]:
    if not headers:
        return ()
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    out = []
    for key, value in pairs:
        if not isinstance(key, str):
            raise TypeError(f"header key must be str, not {type(key).__name__}")
        _check_payload(f"header {key!r}", value)
        out.append((key, value))
    return tuple(out)


class BatchBuilder:
    """Collects records for one partition and turns them into one batch."""

    __slots__ = (
        "_base_sequence",
        "_compression",
        "_first_timestamp",
        "_max_timestamp",
        "_producer_epoch",
        "_producer_id",
        "_records",
        "_size_estimate",
    )

    def __init__(
        self,
        compression: Compression | str | None = Compression.NONE,
        *,
        producer_id: int = NO_PRODUCER_ID,
        producer_epoch: int = NO_PRODUCER_EPOCH,
        base_sequence: int = NO_SEQUENCE,
    ) -> None:
        self._compression = Compression.parse(compression)
        self._producer_id = producer_id
        self._producer_epoch = producer_epoch
        self._base_sequence = base_sequence
        self._records: list[tuple[int, int, object, object, tuple[Header, ...]]] = []
        self._first_timestamp = 0
        self._max_timestamp = 0
        self._size_estimate = HEADER_SIZE

    def __len__(self) -> int:
        return len(self._records)

    @property
    def compression(self) -> Compression:
        return self._compression

    @property
    def estimated_size(self) -> int:
        """The uncompressed batch size (an upper bound of the built size), for ``batch_size``."""
        count = len(self._records)
        return self._size_estimate + (_packed_array_header_size(count) if count else 0)

    def append(
        self,
        value: BytesLike | None,
        key: BytesLike | None = None,
        timestamp_ms: int | None = None,
        headers: HeadersArg = None,
    ) -> int:
        """Add a record; return its offset delta within the batch.

        Raises ``TypeError`` for a key, value or header that is not bytes, and
        ``InvalidTimestampError`` for a timestamp outside ``[0, 2**63)`` (Kafka's rule).
        """
        _check_payload("value", value)
        _check_payload("key", key)
        if timestamp_ms is None:
            timestamp_ms = _now_ms()
        elif not isinstance(timestamp_ms, int) or not 0 <= timestamp_ms <= _MAX_TIMESTAMP:
            raise InvalidTimestampError(
                f"timestamp {timestamp_ms!r} is not an int64 millisecond time >= 0"
            )
        header_pairs = _normalize_headers(headers)
        delta = len(self._records)
        if delta == 0:
            self._first_timestamp = self._max_timestamp = timestamp_ms
        elif timestamp_ms > self._max_timestamp:
            self._max_timestamp = timestamp_ms
        self._records.append(
            (delta, timestamp_ms - self._first_timestamp, key, value, header_pairs)  # type: ignore[arg-type]
        )
        size = (
            1  # the record's 5-element array header
            + _packed_int_size(delta)
            + _packed_int_size(timestamp_ms - self._first_timestamp)
            + _packed_bin_size(key)
            + _packed_bin_size(value)
            + _packed_array_header_size(len(header_pairs))
        )
        for hkey, hvalue in header_pairs:
            size += 1 + _packed_str_size(hkey) + _packed_bin_size(hvalue)
        self._size_estimate += size
        return delta

    def build(self) -> bytes:
        """The finished batch: base offset 0 and leader epoch -1, for the broker to stamp."""
        if not self._records:
            raise ValueError("cannot build an empty batch")
        return encode_batch(
            self._records,
            self._first_timestamp,
            self._max_timestamp,
            self._compression,
            producer_id=self._producer_id,
            producer_epoch=self._producer_epoch,
            base_sequence=self._base_sequence,
        )


def encode_batch(
    records: list[tuple[int, int, object, object, object]],
    first_timestamp: int,
    max_timestamp: int,
    compression: Compression,
    *,
    producer_id: int = NO_PRODUCER_ID,
    producer_epoch: int = NO_PRODUCER_EPOCH,
    base_sequence: int = NO_SEQUENCE,
) -> bytes:
    """Pack rows already in body shape (one msgpack call) into a batch.

    The producer keeps its records as such rows and calls this directly; rows
    must be ``(offset_delta, timestamp_delta, key, value, headers)`` with
    deltas counting from 0 and relative to ``first_timestamp``.
    """
    count = len(records)
    body = compress(compression, msgpack.packb(records, use_bin_type=True))
    tail = _TAIL.pack(
        int(compression),
        count - 1,
        first_timestamp,
        max_timestamp,
        producer_id,
        producer_epoch,
        base_sequence,
        count,
    )
    crc = crc32c(body, crc32c(tail))
    length = HEADER_SIZE - LOG_OVERHEAD + len(body)
    prefix = _PREFIX.pack(0, length, NO_PARTITION_LEADER_EPOCH, MAGIC, crc)
    return b"".join((prefix, tail, body))


def build_batch(
    values: Iterable[BytesLike | None],
    *,
    compression: Compression | str | None = Compression.NONE,
    timestamp_ms: int | None = None,
) -> bytes:
    """A batch of values without keys or headers, sharing one timestamp."""
    builder = BatchBuilder(compression)
    ts = _now_ms() if timestamp_ms is None else timestamp_ms
    for value in values:
        builder.append(value, timestamp_ms=ts)
    return builder.build()
