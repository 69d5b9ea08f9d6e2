"""Building batches for tests, so each test says only what matters to it."""

from __future__ import annotations

from collections.abc import Sequence

from client.record import BatchBuilder, Compression

BASE_TIMESTAMP = 1_700_000_000_000


def make_batch(
    count: int = 1,
    *,
    tag: str = "v",
    value_size: int = 0,
    compression: Compression | str = "none",
    timestamp_ms: int | Sequence[int] = BASE_TIMESTAMP,
    key: bytes | None = None,
) -> bytes:
    """A batch of ``count`` records with values ``b"<tag>-<i>"`` padded to ``value_size``.

    ``timestamp_ms`` is one timestamp for all records or one per record.
    """
    builder = BatchBuilder(compression)
    for i in range(count):
        value = f"{tag}-{i}".encode()
        if len(value) < value_size:
            value += b"x" * (value_size - len(value))
        ts = timestamp_ms if isinstance(timestamp_ms, int) else timestamp_ms[i]
        builder.append(value, key=key, timestamp_ms=ts)
    return builder.build()


def batch_of_size(size: int, *, tag: str = "v", timestamp_ms: int = BASE_TIMESTAMP) -> bytes:
    """A one-record, uncompressed batch of exactly ``size`` bytes (size >= 80)."""
    probe = make_batch(1, tag=tag, timestamp_ms=timestamp_ms)
    padding = size - len(probe)
    if padding < 0:
        raise ValueError(f"a batch cannot be smaller than {len(probe)} bytes")
    # msgpack bin headers grow at 256 and 65536 bytes; adjust until exact.
    for extra in range(padding, max(padding - 8, -1), -1):
        value = f"{tag}-0".encode() + b"x" * extra
        builder = BatchBuilder()
        builder.append(value, timestamp_ms=timestamp_ms)
        data = builder.build()
        if len(data) == size:
            return data
    raise ValueError(f"cannot build a batch of exactly {size} bytes")
