"""FrameReader: a byte stream cut anywhere comes out as exactly the frames that went in."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from client.errors import InvalidRequestError
from client.protocol import FrameReader
from client.protocol.frame_reader import FrameTooLargeError

SCRATCH = 256 * 1024
HALF = SCRATCH // 2
MAX_FRAME = 1 << 20


def _prefixed(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def _feed(reader: FrameReader, stream: bytes, chunk_sizes: list[int]) -> None:
    """What asyncio's BufferedProtocol does: read at most len(get_buffer()) into it.

    ``chunk_sizes`` are how much the socket has ready at each read (cycled);
    a read never writes past the buffer it was given.
    """
    position = 0
    turn = 0
    while position < len(stream):
        buffer = reader.get_buffer(-1)
        assert len(buffer) > 0, "get_buffer returned an empty buffer"
        ready = chunk_sizes[turn % len(chunk_sizes)] if chunk_sizes else len(stream)
        turn += 1
        n = min(len(buffer), ready, len(stream) - position)
        buffer[:n] = stream[position : position + n]
        position += n
        reader.buffer_updated(n)


def _payload(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


FRAME_SIZES = st.one_of(
    st.just(0),
    st.integers(1, 64),
    st.integers(65, 4096),
    st.integers(HALF - 8, HALF + 8),  # around the switch to a dedicated buffer
    st.integers(HALF + 9, SCRATCH + 1000),  # over half the scratch buffer, some over all of it
    st.integers(SCRATCH + 1000, 3 * SCRATCH),  # big enough for its buffer to grow as it fills
)
# How much each read finds ready, cycled. One large read per cycle keeps a multi-megabyte
# stream to a few hundred reads; the small ones split lengths and frames anywhere.
CHUNKS = st.lists(
    st.one_of(st.integers(1, 7), st.integers(8, 5000), st.integers(5000, 400_000)),
    min_size=0,
    max_size=12,
).map(lambda sizes: [*sizes, 40_000])


@settings(max_examples=150)
@given(
    sizes=st.lists(FRAME_SIZES, min_size=1, max_size=12),
    chunk_sizes=CHUNKS,
    seed=st.integers(0, 2**32),
)
def test_random_frames_cut_at_random_boundaries_come_out_exactly(sizes, chunk_sizes, seed):
    payloads = [_payload(size, seed + i) for i, size in enumerate(sizes)]
    event(f"frames over half the scratch buffer: {sum(4 + s > HALF for s in sizes) > 0}")
    event(f"zero-length frames: {0 in sizes}")
    got: list[bytearray] = []
    reader = FrameReader(got.append, MAX_FRAME)

    _feed(reader, b"".join(map(_prefixed, payloads)), chunk_sizes)

    assert [bytes(frame) for frame in got] == payloads
    assert all(type(frame) is bytearray for frame in got)
    assert reader.buffered_bytes == 0


@settings(max_examples=40)
@given(
    sizes=st.lists(st.integers(0, 200), min_size=1, max_size=400),
    chunk_sizes=CHUNKS,
)
def test_many_small_frames_fill_and_compact_the_scratch_buffer(sizes, chunk_sizes):
    payloads = [bytes([i % 256]) * size for i, size in enumerate(sizes)]
    # Repeat until the stream is several times the scratch buffer.
    while sum(4 + len(p) for p in payloads) < 3 * SCRATCH:
        payloads = payloads + payloads
    got: list[bytearray] = []
    reader = FrameReader(got.append, MAX_FRAME)

    _feed(reader, b"".join(map(_prefixed, payloads)), chunk_sizes)

    assert [bytes(frame) for frame in got] == payloads


def test_frames_are_independent_buffers_owned_by_the_receiver():
    got: list[bytearray] = []
    reader = FrameReader(got.append, MAX_FRAME)
    _feed(reader, _prefixed(b"aaaa") + _prefixed(b"bbbb"), [])
    got[0][:] = b"XXXX"  # the broker stamps in place: must not disturb other frames
    _feed(reader, _prefixed(b"cccc"), [])
    assert [bytes(f) for f in got] == [b"XXXX", b"bbbb", b"cccc"]


def test_large_frame_is_read_into_its_own_buffer():
    payload = _payload(HALF + 100, seed=1)
    got: list[bytearray] = []
    reader = FrameReader(got.append, MAX_FRAME)
    stream = _prefixed(payload)

    first = reader.get_buffer(-1)
    first[:1000] = stream[:1000]
    reader.buffer_updated(1000)
    assert reader.buffered_bytes == 996
    position = 1000
    while position < len(stream):
        rest = reader.get_buffer(-1)
        assert 0 < len(rest) <= len(stream) - position  # never past the frame's end
        rest[:] = stream[position : position + len(rest)]
        position += len(rest)
        reader.buffer_updated(len(rest))

    assert got == [bytearray(payload)]
    assert reader.buffered_bytes == 0


def test_an_announced_large_frame_is_not_allocated_up_front():
    # A client announcing a frame near socket.request.max.bytes and sending a few bytes
    # must not make the broker allocate all of it.
    limit = 100 * 1024 * 1024
    got: list[bytearray] = []
    reader = FrameReader(got.append, limit)
    buffer = reader.get_buffer(-1)
    buffer[:14] = struct.pack(">i", limit) + b"0123456789"
    reader.buffer_updated(14)
    assert reader.buffered_bytes == 10
    assert len(reader.get_buffer(-1)) <= 2 * SCRATCH
    assert got == []


def test_zero_length_frames_are_delivered_empty():
    got: list[bytearray] = []
    reader = FrameReader(got.append, MAX_FRAME)
    _feed(reader, _prefixed(b"") * 3 + _prefixed(b"x") + _prefixed(b""), [1])
    assert got == [bytearray(), bytearray(), bytearray(), bytearray(b"x"), bytearray()]


def test_buffered_bytes_counts_an_incomplete_frame():
    got: list[bytearray] = []
    reader = FrameReader(got.append, MAX_FRAME)
    _feed(reader, _prefixed(b"complete") + _prefixed(b"partial")[:6], [])
    assert got == [bytearray(b"complete")]
    assert reader.buffered_bytes == 6


def test_a_frame_exactly_at_the_limit_is_accepted():
    got: list[bytearray] = []
    reader = FrameReader(got.append, 100)
    _feed(reader, _prefixed(b"z" * 100), [])
    assert got == [bytearray(b"z" * 100)]


@pytest.mark.parametrize("size", [101, 2**31 - 1])
def test_a_frame_over_the_limit_raises(size):
    got: list[bytearray] = []
    reader = FrameReader(got.append, 100)
    buffer = reader.get_buffer(-1)
    buffer[:4] = struct.pack(">i", size)
    with pytest.raises(FrameTooLargeError, match=f"frame of {size} bytes is over the limit of 100"):
        reader.buffer_updated(4)
    assert got == []
    assert issubclass(FrameTooLargeError, InvalidRequestError)


def test_a_frame_over_the_limit_raises_after_the_frames_before_it():
    got: list[bytearray] = []
    reader = FrameReader(got.append, 100)
    stream = _prefixed(b"ok") + struct.pack(">i", 1000)
    buffer = reader.get_buffer(-1)
    buffer[: len(stream)] = stream
    with pytest.raises(FrameTooLargeError):
        reader.buffer_updated(len(stream))
    assert got == [bytearray(b"ok")]


@pytest.mark.parametrize("size", [-1, -(2**31)])
def test_a_negative_length_raises(size):
    reader = FrameReader(lambda frame: None, MAX_FRAME)
    buffer = reader.get_buffer(-1)
    buffer[:4] = struct.pack(">i", size)
    with pytest.raises(InvalidRequestError, match=f"negative frame length {size}") as info:
        reader.buffer_updated(4)
    assert not isinstance(info.value, FrameTooLargeError)


def test_a_length_split_across_reads_is_checked_once_whole():
    reader = FrameReader(lambda frame: None, 100)
    stream = struct.pack(">i", 5000)
    for byte in stream[:3]:
        buffer = reader.get_buffer(-1)
        buffer[0] = byte
        reader.buffer_updated(1)  # three bytes of a length: nothing to check yet
    buffer = reader.get_buffer(-1)
    buffer[0] = stream[3]
    with pytest.raises(FrameTooLargeError):
        reader.buffer_updated(1)
