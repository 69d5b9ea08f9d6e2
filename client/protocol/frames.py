"""Frame layout, for requests and responses alike (all integers big-endian):

    int32  frame_length   bytes after this field
    int32  meta_length    bytes of the msgpack part
    msgpack               request:  [api_key, api_version, correlation_id, client_id, body]
                          response: [correlation_id, body]
    bytes  tail           frame_length - 4 - meta_length bytes of raw record batches

Record batches travel in the tail, never inside msgpack: the broker appends a
produce request's batches straight from the buffer the frame was read into
(stamping them in place) and serves a fetch response's tail from the segment
files with ``sendfile``. Bodies are msgpack maps; docs/protocol.md lists them.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from typing import Any, NamedTuple

import msgpack

from client.errors import InvalidRequestError
from client.record.layout import BytesLike

__all__ = [
    "FRAME_PREFIX",
    "NO_RESPONSE",
    "RequestHeader",
    "decode_request",
    "decode_response",
    "encode_request",
    "encode_response",
]

FRAME_PREFIX = struct.Struct(">ii")
FRAME_LENGTH = struct.Struct(">i")
_META_LENGTH = struct.Struct(">i")

# What a handler returns when Kafka's protocol sends nothing back (produce with acks=0).
NO_RESPONSE: Any = None


class RequestHeader(NamedTuple):
    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None


def encode_request(
    header: RequestHeader, body: dict[str, Any], tail: Sequence[BytesLike] = ()
) -> list[BytesLike]:
    """The frame as a list of buffers for ``transport.writelines`` (the tail is not copied)."""
    meta = msgpack.packb(
        (header.api_key, header.api_version, header.correlation_id, header.client_id, body),
        use_bin_type=True,
    )
    tail_size = sum(map(len, tail)) if tail else 0
    return [FRAME_PREFIX.pack(4 + len(meta) + tail_size, len(meta)), meta, *tail]


def encode_response(correlation_id: int, body: dict[str, Any], tail_size: int = 0) -> bytes:
    """The frame up to its tail; the caller sends ``tail_size`` bytes of tail after it."""
    meta = msgpack.packb((correlation_id, body), use_bin_type=True)
    return FRAME_PREFIX.pack(4 + len(meta) + tail_size, len(meta)) + meta


def _split(frame: BytesLike) -> tuple[object, memoryview]:
    view = frame if isinstance(frame, memoryview) else memoryview(frame)
    if len(view) < 4:
        raise InvalidRequestError(f"frame of {len(view)} bytes has no meta_length")
    meta_length = _META_LENGTH.unpack_from(view)[0]
    if not 0 < meta_length <= len(view) - 4:
        raise InvalidRequestError(
            f"meta_length {meta_length} does not fit a frame of {len(view)} bytes"
        )
    try:
        meta = msgpack.unpackb(view[4 : 4 + meta_length], raw=False, use_list=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        reason = str(exc) or type(exc).__name__
        raise InvalidRequestError(f"frame meta is not msgpack: {reason}") from exc
    return meta, view[4 + meta_length :]


def decode_request(frame: BytesLike) -> tuple[RequestHeader, dict[str, Any], memoryview]:
    """Header, body and tail of a request frame (without its length prefix).

    Raises ``InvalidRequestError`` for anything malformed. The broker closes
    the connection then: without a trustworthy header it cannot answer.
    """
    meta, tail = _split(frame)
    if not isinstance(meta, list) or len(meta) != 5:
        raise InvalidRequestError(
            "request meta must be [api_key, version, correlation_id, client_id, body]"
        )
    api_key, api_version, correlation_id, client_id, body = meta
    if not (
        type(api_key) is int
        and type(api_version) is int
        and type(correlation_id) is int
        and (client_id is None or type(client_id) is str)
    ):
        raise InvalidRequestError("request header fields have the wrong types")
    if not isinstance(body, dict):
        raise InvalidRequestError(f"request body must be a map, not {type(body).__name__}")
    return RequestHeader(api_key, api_version, correlation_id, client_id), body, tail


def decode_response(frame: BytesLike) -> tuple[int, dict[str, Any], memoryview]:
    """Correlation id, body and tail of a response frame (without its length prefix)."""
    meta, tail = _split(frame)
    if (
        not isinstance(meta, list)
        or len(meta) != 2
        or type(meta[0]) is not int
        or not isinstance(meta[1], dict)
    ):
        raise InvalidRequestError("response meta must be [correlation_id, body]")
    return meta[0], meta[1], tail
