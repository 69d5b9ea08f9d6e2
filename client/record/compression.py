"""Batch body codecs: none, lz4 (frame format) and snappy (raw).

The ids are Kafka's (1 gzip and 4 zstd are reserved, not implemented), so the
codec bits in a batch's attributes read the same as in Kafka's format.
"""

from __future__ import annotations

import enum

import lz4.frame
import snappy

from client.errors import CorruptRecordError, UnsupportedCompressionTypeError
from client.record.layout import BytesLike

__all__ = ["Compression", "compress", "decompress"]


class Compression(enum.IntEnum):
    NONE = 0
    SNAPPY = 2
    LZ4 = 3

    @classmethod
    def parse(cls, value: Compression | str | int | None) -> Compression:
        """Accept ``"lz4"``, ``Compression.LZ4``, ``3`` or ``None`` (no compression)."""
        if value is None:
            return cls.NONE
        if isinstance(value, cls):
            return value
        if isinstance(value, str):
            try:
                return cls[value.strip().upper()]
            except KeyError:
                raise UnsupportedCompressionTypeError(
                    f"unknown compression type {value!r}; use one of none, lz4, snappy"
                ) from None
        try:
            return cls(value)
        except ValueError:
            raise UnsupportedCompressionTypeError(f"unknown compression id {value!r}") from None

    @property
    def label(self) -> str:
        return self.name.lower()


def compress(codec: Compression, body: bytes) -> bytes:
    if codec is Compression.NONE:
        return body
    if codec is Compression.LZ4:
        return lz4.frame.compress(body)
    if codec is Compression.SNAPPY:
        return snappy.compress(body)
    raise UnsupportedCompressionTypeError(f"compression id {int(codec)} is not supported")


# No codec here expands data more than this (lz4's worst case is 255:1, snappy's about 21:1):
# a header claiming more is corrupt, and refusing it avoids a hostile allocation.
_MAX_EXPANSION = 256
_EXPANSION_SLACK = 1024


def _check_claimed_size(codec: Compression, claimed: int, compressed: int) -> None:
    if claimed > compressed * _MAX_EXPANSION + _EXPANSION_SLACK:
        raise ValueError(f"{compressed} bytes claim {claimed} bytes uncompressed")


def _snappy_claimed_size(body: BytesLike) -> int:
    """The varint length prefix of a raw snappy block."""
    size = shift = 0
    for byte in bytes(body[:10]):
        size |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return size
        shift += 7
    raise ValueError("no valid length prefix")


def decompress(codec_id: int, body: BytesLike) -> BytesLike:
    """Decompress a batch body; a body the codec rejects is a ``CorruptRecordError``."""
    if codec_id == Compression.NONE:
        return body
    try:
        if codec_id == Compression.LZ4:
            claimed = lz4.frame.get_frame_info(body).get("content_size") or 0
            _check_claimed_size(Compression.LZ4, claimed, len(body))
            return lz4.frame.decompress(body)
        if codec_id == Compression.SNAPPY:
            _check_claimed_size(Compression.SNAPPY, _snappy_claimed_size(body), len(body))
            return snappy.uncompress(bytes(body))
    except (RuntimeError, ValueError, MemoryError, snappy.UncompressError) as exc:
        codec = Compression(codec_id).label
        raise CorruptRecordError(f"{codec} body does not decompress: {exc}") from exc
    raise UnsupportedCompressionTypeError(f"compression id {codec_id} is not supported")
