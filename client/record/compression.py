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


def decompress(codec_id: int, body: BytesLike) -> BytesLike:
    """Decompress a batch body; a body the codec rejects is a ``CorruptRecordError``."""
    if codec_id == Compression.NONE:
        return body
    try:
        if codec_id == Compression.LZ4:
            return lz4.frame.decompress(body)
        if codec_id == Compression.SNAPPY:
            return snappy.uncompress(bytes(body))
    except (RuntimeError, ValueError, snappy.UncompressError) as exc:
        codec = Compression(codec_id).label
        raise CorruptRecordError(f"{codec} body does not decompress: {exc}") from exc
    raise UnsupportedCompressionTypeError(f"compression id {codec_id} is not supported")
