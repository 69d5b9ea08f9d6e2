"""Request and response frames: round trips with tails, and every malformed shape refused."""

from __future__ import annotations

import contextlib
import struct
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.errors import InvalidRequestError
from client.protocol import (
    FRAME_PREFIX,
    RequestHeader,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
)

INT32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
# What msgpack carries back unchanged with use_list=True and string map keys.
SCALARS = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text() | st.binary()
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
BODIES = st.dictionaries(st.text(), VALUES, max_size=5)
TAILS = st.lists(st.binary(max_size=300), max_size=4)


def _without_length(buffers: list[Any]) -> bytes:
    """Join the buffers and strip (after checking) the frame_length prefix."""
    wire = b"".join(bytes(b) for b in buffers)
    (frame_length,) = struct.unpack_from(">i", wire)
    assert frame_length == len(wire) - 4
    return wire[4:]


def _frame(meta: bytes, tail: bytes = b"") -> bytes:
    """A frame without its length prefix, from raw meta bytes."""
    return struct.pack(">i", len(meta)) + meta + tail


def _request_meta(*fields: Any) -> bytes:
    return msgpack.packb(list(fields), use_bin_type=True)


# -- round trips -------------------------------------------------------------------


@given(
    api_key=st.integers(0, 100),
    api_version=st.integers(0, 20),
    correlation_id=INT32,
    client_id=st.none() | st.text(max_size=30),
    body=BODIES,
    tail=TAILS,
)
def test_request_round_trip(api_key, api_version, correlation_id, client_id, body, tail):
    header = RequestHeader(api_key, api_version, correlation_id, client_id)
    buffers = encode_request(header, body, tail)

    got_header, got_body, got_tail = decode_request(_without_length(buffers))

    assert got_header == header
    assert type(got_header) is RequestHeader
    assert got_body == body
    assert isinstance(got_tail, memoryview)
    assert bytes(got_tail) == b"".join(tail)


@given(correlation_id=INT32, body=BODIES, tail=st.binary(max_size=2000))
def test_response_round_trip(correlation_id, body, tail):
    head = encode_response(correlation_id, body, len(tail))
    wire = head + tail
    (frame_length, meta_length) = FRAME_PREFIX.unpack_from(wire)
    assert frame_length == len(wire) - 4
    assert 8 + meta_length == len(head)

    got_id, got_body, got_tail = decode_response(wire[4:])

    assert (got_id, got_body, bytes(got_tail)) == (correlation_id, body, tail)


def test_encode_request_does_not_copy_the_tail():
    tail = [bytearray(b"batch-one"), memoryview(b"batch-two")]
    buffers = encode_request(RequestHeader(0, 0, 1, "c"), {"acks": 1}, tail)
    assert buffers[-2] is tail[0]
    assert buffers[-1] is tail[1]
    assert len(buffers) == 4  # prefix, meta, then each tail buffer as given


def test_encode_request_without_tail_is_prefix_and_meta():
    buffers = encode_request(RequestHeader(3, 0, 7, None), {})
    assert len(buffers) == 2
    header, body, tail = decode_request(_without_length(buffers))
    assert header == RequestHeader(3, 0, 7, None)
    assert body == {}
    assert len(tail) == 0


@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_decode_accepts_any_bytes_like(kind):
    frame = _without_length(encode_request(RequestHeader(1, 0, 5, "x"), {"a": 1}, [b"tail"]))
    header, body, tail = decode_request(kind(frame))
    assert header.correlation_id == 5
    assert body == {"a": 1}
    assert bytes(tail) == b"tail"


def test_decoded_tail_is_a_view_of_the_frame_not_a_copy():
    frame = bytearray(_without_length(encode_request(RequestHeader(0, 0, 1, "c"), {}, [b"abc"])))
    _, _, tail = decode_request(frame)
    tail[0] = ord("X")  # the broker stamps produce batches in place through this view
    assert frame.endswith(b"Xbc")


def test_a_response_tail_may_follow_in_several_writes():
    slices = [b"first-batch", b"", b"second"]
    head = encode_response(9, {"topics": []}, sum(map(len, slices)))
    correlation_id, body, tail = decode_response((head + b"".join(slices))[4:])
    assert correlation_id == 9
    assert body == {"topics": []}
    assert bytes(tail) == b"first-batchsecond"


# -- malformed frames --------------------------------------------------------------


def _assert_invalid(decode, frame: bytes, *fragments: str) -> InvalidRequestError:
    with pytest.raises(InvalidRequestError) as info:
        decode(frame)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    return info.value


@pytest.mark.parametrize("decode", [decode_request, decode_response])
@pytest.mark.parametrize("frame", [b"", b"\x00", b"\x00\x00\x00"])
def test_frame_too_short_for_meta_length(decode, frame):
    _assert_invalid(decode, frame, f"frame of {len(frame)} bytes has no meta_length")


@pytest.mark.parametrize("decode", [decode_request, decode_response])
@pytest.mark.parametrize("meta_length", [0, -1, -(2**31), 6, 2**31 - 1])
def test_meta_length_outside_the_frame(decode, meta_length):
    frame = struct.pack(">i", meta_length) + b"\x90\x90\x90\x90\x90"
    _assert_invalid(decode, frame, f"meta_length {meta_length}", f"frame of {len(frame)} bytes")


@pytest.mark.parametrize("decode", [decode_request, decode_response])
@pytest.mark.parametrize(
    "meta",
    [
        pytest.param(b"\xc1", id="never-used-byte"),
        pytest.param(b"\x95\x00\x00", id="truncated-array"),
        pytest.param(b"\x91\x01\x01", id="trailing-bytes"),
        pytest.param(b"\xa2\xff\xfe", id="bad-utf8-string"),
        pytest.param(b"\x81\x91\x01\x01", id="list-as-map-key"),
        pytest.param(b"\x91" * 3000 + b"\x01", id="nested-too-deep"),
    ],
)
def test_meta_that_is_not_msgpack(decode, meta):
    _assert_invalid(decode, _frame(meta), "frame meta is not msgpack")


def test_meta_length_excludes_the_tail_from_the_meta():
    # A valid meta followed by tail bytes that are garbage msgpack: still decodes.
    meta = _request_meta(0, 0, 1, "c", {})
    header, _, tail = decode_request(_frame(meta, b"\xc1\xc1"))
    assert header.correlation_id == 1
    assert bytes(tail) == b"\xc1\xc1"


@pytest.mark.parametrize(
    "meta",
    [
        pytest.param(msgpack.packb({"api_key": 0}), id="map"),
        pytest.param(msgpack.packb(7), id="int"),
        pytest.param(msgpack.packb([0, 0, 1, "c"]), id="four-fields"),
        pytest.param(msgpack.packb([0, 0, 1, "c", {}, None]), id="six-fields"),
        pytest.param(msgpack.packb([]), id="empty"),
    ],
)
def test_request_meta_of_the_wrong_shape(meta):
    _assert_invalid(decode_request, _frame(meta), "request meta must be [api_key")


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param(("0", 0, 1, "c"), id="api_key-str"),
        pytest.param((0.0, 0, 1, "c"), id="api_key-float"),
        pytest.param((True, 0, 1, "c"), id="api_key-bool"),
        pytest.param((None, 0, 1, "c"), id="api_key-nil"),
        pytest.param((0, "0", 1, "c"), id="version-str"),
        pytest.param((0, False, 1, "c"), id="version-bool"),
        pytest.param((0, 0, 1.5, "c"), id="correlation-float"),
        pytest.param((0, 0, [1], "c"), id="correlation-list"),
        pytest.param((0, 0, 1, 5), id="client_id-int"),
        pytest.param((0, 0, 1, b"bytes"), id="client_id-bin"),
        pytest.param((0, 0, 1, ["c"]), id="client_id-list"),
    ],
)
def test_request_header_fields_of_the_wrong_type(fields):
    meta = _request_meta(*fields, {})
    _assert_invalid(decode_request, _frame(meta), "request header fields have the wrong types")


@pytest.mark.parametrize(
    ("body", "type_name"),
    [([], "list"), (None, "NoneType"), (5, "int"), ("body", "str"), (b"body", "bytes")],
)
def test_request_body_must_be_a_map(body, type_name):
    meta = _request_meta(0, 0, 1, "c", body)
    _assert_invalid(decode_request, _frame(meta), f"must be a map, not {type_name}")


@pytest.mark.parametrize(
    "meta",
    [
        pytest.param(msgpack.packb({"correlation_id": 1}), id="map"),
        pytest.param(msgpack.packb([1]), id="one-field"),
        pytest.param(msgpack.packb([1, {}, None]), id="three-fields"),
        pytest.param(msgpack.packb(["1", {}]), id="correlation-str"),
        pytest.param(msgpack.packb([True, {}]), id="correlation-bool"),
        pytest.param(msgpack.packb([1.0, {}]), id="correlation-float"),
        pytest.param(msgpack.packb([1, []]), id="body-list"),
        pytest.param(msgpack.packb([1, None]), id="body-nil"),
    ],
)
def test_response_meta_of_the_wrong_shape(meta):
    _assert_invalid(decode_response, _frame(meta), "response meta must be [correlation_id, body]")


def test_a_request_frame_is_not_a_response_and_vice_versa():
    request = _without_length(encode_request(RequestHeader(0, 0, 1, "c"), {}))
    response = encode_response(1, {})[4:]
    _assert_invalid(decode_response, request, "response meta")
    _assert_invalid(decode_request, response, "request meta")


def test_errors_chain_the_msgpack_cause():
    error = _assert_invalid(decode_request, _frame(b"\x91\x01\x01"), "not msgpack")
    assert isinstance(error.__cause__, ValueError)


@given(st.binary(max_size=200))
def test_arbitrary_bytes_decode_or_raise_invalid_request(data):
    for decode in (decode_request, decode_response):
        with contextlib.suppress(InvalidRequestError):
            decode(data)


@given(
    meta=st.lists(VALUES, max_size=6) | VALUES,
    tail=st.binary(max_size=20),
)
def test_arbitrary_msgpack_meta_decodes_or_raises_invalid_request(meta, tail):
    frame = _frame(msgpack.packb(meta, use_bin_type=True), tail)
    for decode in (decode_request, decode_response):
        with contextlib.suppress(InvalidRequestError):
            decode(frame)


@pytest.mark.parametrize(
    "meta",
    [
        pytest.param(b"\xc1", id="never-used-byte"),
        pytest.param(b"\x91" * 3000 + b"\x01", id="too-deep"),
    ],
)
def test_not_msgpack_message_says_what_is_wrong(meta):
    error = _assert_invalid(decode_request, _frame(meta), "not msgpack")
    assert not str(error).endswith(": ")
