"""check_batch: what the CRC covers, what it leaves to the broker, and each way a batch is bad."""

from __future__ import annotations

import struct

import lz4.frame
import msgpack
import pytest
import snappy

from client.errors import CorruptRecordError, InvalidRecordError
from client.record import (
    HEADER_SIZE,
    LOG_OVERHEAD,
    MAGIC,
    Compression,
    IncompleteBatchError,
    RecordBatch,
    check_batch,
    compute_crc,
    iter_batches,
    read_header,
)
from client.record.layout import CRC, CRC_AT, HEADER, MAGIC_AT, MIN_BATCH_LENGTH
from tests.support.batches import make_batch

CODECS = ["none", "lz4", "snappy"]
LENGTH = struct.Struct(">i")


@pytest.fixture(params=CODECS)
def codec(request) -> str:
    return request.param


def with_valid_crc(buf: bytearray) -> bytearray:
    """Recompute the CRC of the batch in ``buf``, as a writer that means it would."""
    CRC.pack_into(buf, CRC_AT, compute_crc(buf))
    return buf


def with_body(batch: bytes, body: bytes, *, codec: Compression | None = None) -> bytes:
    """``batch``'s header over another body, with batch_length and CRC made consistent."""
    header = read_header(batch)
    attributes = header.attributes if codec is None else int(codec)
    buf = bytearray(
        HEADER.pack(
            *header._replace(
                batch_length=HEADER_SIZE - LOG_OVERHEAD + len(body), attributes=attributes
            )
        )
        + body
    )
    return bytes(with_valid_crc(buf))


def flipped(batch: bytes, bit: int) -> bytes:
    buf = bytearray(batch)
    buf[bit // 8] ^= 1 << (bit % 8)
    return bytes(buf)


# --- the CRC ----------------------------------------------------------------------------------


def test_a_built_batch_is_valid(codec):
    data = make_batch(3, compression=codec, key=b"k")

    header = check_batch(data)

    assert header == read_header(data)
    assert header.magic == MAGIC
    assert header.crc == compute_crc(data)
    assert RecordBatch(data).is_valid()


def test_every_single_bit_flip_from_the_crc_field_to_the_end_is_detected(codec):
    data = make_batch(2, compression=codec, key=b"key", value_size=40)

    for bit in range(CRC_AT * 8, len(data) * 8):
        corrupt = flipped(data, bit)

        with pytest.raises(CorruptRecordError, match="CRC32C mismatch") as excinfo:
            check_batch(corrupt)
        assert not isinstance(excinfo.value, IncompleteBatchError)
        assert not RecordBatch(corrupt, validate=False).is_valid()


def test_changing_a_covered_byte_to_any_other_value_is_detected():
    data = make_batch(1, value_size=20)

    for pos in (21, 30, 60, len(data) - 1):
        for value in range(256):
            if value == data[pos]:
                continue
            corrupt = bytearray(data)
            corrupt[pos] = value
            with pytest.raises(CorruptRecordError):
                check_batch(corrupt)


@pytest.mark.parametrize("pos", [*range(0, 8), *range(12, 16)], ids=lambda p: f"byte{p}")
def test_base_offset_and_leader_epoch_bytes_are_outside_the_crc(codec, pos):
    data = make_batch(2, compression=codec)

    for value in (0x00, 0x01, 0x7F, 0x80, 0xFF):
        buf = bytearray(data)
        buf[pos] = value

        header = check_batch(buf)

        assert header.crc == read_header(data).crc
        assert [r.value for r in RecordBatch(buf).records()] == [b"v-0", b"v-1"]


def test_rewriting_the_stamped_fields_entirely_keeps_the_batch_valid():
    buf = bytearray(make_batch(3))
    buf[0:8] = b"\xff" * 8
    buf[12:16] = b"\x12\x34\x56\x78"

    header = check_batch(buf)

    assert header.base_offset == -1
    assert header.partition_leader_epoch == 0x12345678


@pytest.mark.parametrize("magic", [0, 2, 3, 0x7F, 0x80, 0xFF])
def test_wrong_magic_is_corrupt(codec, magic):
    buf = bytearray(make_batch(1, compression=codec))
    buf[MAGIC_AT] = magic

    with pytest.raises(CorruptRecordError, match="magic") as excinfo:
        check_batch(buf)
    assert not isinstance(excinfo.value, IncompleteBatchError)


def test_wrong_magic_is_reported_even_when_the_crc_is_recomputed():
    # The magic sits outside the CRC, so only the magic check can catch it.
    buf = bytearray(make_batch(1))
    buf[MAGIC_AT] = MAGIC + 1

    with pytest.raises(CorruptRecordError, match="magic"):
        check_batch(with_valid_crc(buf))


# --- lengths ----------------------------------------------------------------------------------


@pytest.mark.parametrize("length", [MIN_BATCH_LENGTH - 1, 1, 0, -1, -(2**31)])
def test_batch_length_below_the_minimum_is_corrupt_not_incomplete(length):
    buf = bytearray(make_batch(1))
    LENGTH.pack_into(buf, 8, length)

    with pytest.raises(CorruptRecordError, match="below the minimum") as excinfo:
        check_batch(buf)
    assert not isinstance(excinfo.value, IncompleteBatchError)
    with pytest.raises(CorruptRecordError):
        list(iter_batches(buf, allow_incomplete_tail=True))


def test_incomplete_batch_error_is_a_corrupt_record_error():
    assert issubclass(IncompleteBatchError, CorruptRecordError)
    assert IncompleteBatchError.code == CorruptRecordError.code


@pytest.mark.parametrize("extra", [1, 100, 2**31 - 1 - 200])
def test_batch_length_past_the_buffer_is_incomplete(extra):
    buf = bytearray(make_batch(1))
    length = LENGTH.unpack_from(buf, 8)[0]
    LENGTH.pack_into(buf, 8, length + extra)

    with pytest.raises(IncompleteBatchError, match="past the end"):
        check_batch(buf)


def test_a_truncated_batch_is_incomplete(codec):
    data = make_batch(3, compression=codec)

    for cut in range(LOG_OVERHEAD, len(data)):
        with pytest.raises(IncompleteBatchError):
            check_batch(data[:cut])


def test_a_batch_past_the_given_end_is_incomplete():
    data = make_batch(2) + make_batch(1)
    first = len(make_batch(2))

    assert check_batch(data, 0, first).record_count == 2
    with pytest.raises(IncompleteBatchError):
        check_batch(data, 0, first - 1)
    with pytest.raises(IncompleteBatchError):
        check_batch(data, first, len(data) - 1)


@pytest.mark.parametrize("size", range(LOG_OVERHEAD))
def test_fewer_than_twelve_bytes_are_incomplete(size):
    data = make_batch(1)[:size]

    with pytest.raises(IncompleteBatchError):
        check_batch(data)
    with pytest.raises(IncompleteBatchError):
        RecordBatch(data)


def test_check_batch_at_a_position_inside_a_buffer():
    first, second = make_batch(2, tag="a"), make_batch(3, tag="b", compression="lz4")
    data = bytearray(first + second)

    header = check_batch(data, len(first))
    assert header.record_count == 3

    data[len(first) + 30] ^= 0x04
    assert check_batch(data, 0).record_count == 2
    with pytest.raises(CorruptRecordError, match=f"position {len(first)}"):
        check_batch(data, len(first))


# --- record count ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record_count", "last_offset_delta"),
    [(2, 0), (1, 1), (3, 3), (3, 1), (0, -1), (-1, -2), (0, 0)],
)
def test_record_count_disagreeing_with_last_offset_delta_is_invalid(
    codec, record_count, last_offset_delta
):
    data = make_batch(3, compression=codec)
    header = read_header(data)
    buf = bytearray(
        HEADER.pack(
            *header._replace(record_count=record_count, last_offset_delta=last_offset_delta)
        )
        + data[HEADER_SIZE:]
    )
    with_valid_crc(buf)

    with pytest.raises(InvalidRecordError, match="record_count"):
        check_batch(buf)
    assert not RecordBatch(buf, validate=False).is_valid()


def test_record_count_larger_than_the_body_with_consistent_header_fails_to_decode(codec):
    # Header fields agree with each other and the CRC holds, but the body has 3 records.
    data = make_batch(3, compression=codec)
    header = read_header(data)
    buf = bytearray(
        HEADER.pack(*header._replace(record_count=4, last_offset_delta=3)) + data[HEADER_SIZE:]
    )
    with_valid_crc(buf)

    batch = RecordBatch(buf)

    with pytest.raises(CorruptRecordError, match="does not decode"):
        batch.records()


# --- bodies that pass the CRC but do not decode ------------------------------------------------

ROW = [0, 0, None, b"v", []]

BAD_BODIES = {
    "empty": b"",
    "never-used-byte": b"\xc1",
    "truncated": msgpack.packb([ROW])[:-1],
    "trailing-bytes": msgpack.packb([ROW]) + b"\x00",
    "not-an-array": msgpack.packb({"a": 1}),
    "a-bare-integer": msgpack.packb(7),
    "too-many-records": msgpack.packb([ROW, [1, 0, None, b"w", []]]),
    "no-records": msgpack.packb([]),
    "short-row": msgpack.packb([[0, 0]]),
    "long-row": msgpack.packb([[*ROW, 1]]),
    "row-not-an-array": msgpack.packb([5]),
    "nil-offset-delta": msgpack.packb([[None, 0, None, b"v", []]]),
    "text-timestamp-delta": msgpack.packb([[0, "0", None, b"v", []]]),
    "invalid-utf8-header-key": b"\x91\x95\x00\x00\xc0\xc0\x91\x92\xa2\xff\xfe\xc0",
    "array-header-claiming-4G-items": b"\xdd\xff\xff\xff\xff",
    "deep-nesting": b"\x91" * 5000,
    "garbage": bytes(range(200, 256)) * 4,
}


@pytest.mark.parametrize("body", list(BAD_BODIES.values()), ids=list(BAD_BODIES))
def test_a_body_that_passes_the_crc_but_does_not_decode_is_corrupt(body):
    data = with_body(make_batch(1), body)

    batch = RecordBatch(data)  # framing, magic, CRC and count are all fine

    with pytest.raises(CorruptRecordError, match="does not decode"):
        batch.records()


def test_a_crafted_body_that_decodes_reads_back(codec):
    # The counterpart of the above: the same helper with a well-formed body decodes.
    body = msgpack.packb([ROW, [1, -5, b"k", None, [("h", None)]]], use_bin_type=True)
    data = with_body(make_batch(2), body)

    records = RecordBatch(data).records()

    assert [(r.offset, r.key, r.value, r.headers) for r in records] == [
        (0, None, b"v", ()),
        (1, b"k", None, (("h", None),)),
    ]
    assert records[1].timestamp == records[0].timestamp - 5


def _lz4_frame_claiming(content_size: int) -> bytes:
    """An lz4 frame whose header declares ``content_size``, header checksum fixed up."""
    frame = bytearray(lz4.frame.compress(msgpack.packb([ROW]), store_size=True))
    struct.pack_into("<Q", frame, 6, content_size)  # after magic (4), FLG and BD (2)
    for checksum in range(256):
        frame[14] = checksum
        try:
            lz4.frame.get_frame_info(bytes(frame))
        except RuntimeError:
            continue
        return bytes(frame)
    raise AssertionError("no header checksum fits")  # pragma: no cover


LZ4_ROWS = lz4.frame.compress(msgpack.packb([ROW], use_bin_type=True))
SNAPPY_ROWS = snappy.compress(msgpack.packb([ROW], use_bin_type=True))

BAD_COMPRESSED = {
    "lz4-empty": (Compression.LZ4, b""),
    "lz4-not-a-frame": (Compression.LZ4, b"definitely not lz4"),
    "lz4-truncated-frame": (Compression.LZ4, LZ4_ROWS[:-3]),
    "lz4-header-only": (Compression.LZ4, LZ4_ROWS[:7]),
    "lz4-wrong-content-size": (Compression.LZ4, _lz4_frame_claiming(1000)),
    "lz4-snappy-body": (Compression.LZ4, SNAPPY_ROWS),
    "snappy-empty": (Compression.SNAPPY, b""),
    "snappy-garbage": (Compression.SNAPPY, b"\xff" * 16),
    "snappy-truncated": (Compression.SNAPPY, SNAPPY_ROWS[:-2]),
    "snappy-lz4-body": (Compression.SNAPPY, LZ4_ROWS),
    "snappy-length-too-large": (Compression.SNAPPY, b"\x80\x01" + SNAPPY_ROWS[1:]),
}


@pytest.mark.parametrize(
    ("codec_id", "body"), list(BAD_COMPRESSED.values()), ids=list(BAD_COMPRESSED)
)
def test_a_compressed_body_that_does_not_decompress_is_corrupt(codec_id, body):
    data = with_body(make_batch(1, compression=codec_id), body, codec=codec_id)

    batch = RecordBatch(data)

    assert batch.compression is codec_id
    with pytest.raises(CorruptRecordError, match=f"{codec_id.label} body does not decompress"):
        batch.records()


def test_an_lz4_frame_declaring_an_impossible_size_is_corrupt():
    # A few dozen bytes whose frame header claims 4 EiB of content: corrupt, not a real allocation.
    data = with_body(
        make_batch(1, compression="lz4"), _lz4_frame_claiming(2**62), codec=Compression.LZ4
    )

    batch = RecordBatch(data)

    with pytest.raises(CorruptRecordError):
        batch.records()


def test_a_compressed_body_that_decompresses_to_garbage_is_corrupt(codec):
    inner = b"\xc1 not msgpack"
    body = inner
    if codec == "lz4":
        body = lz4.frame.compress(inner)
    elif codec == "snappy":
        body = snappy.compress(inner)
    data = with_body(make_batch(1, compression=codec), body)

    with pytest.raises(CorruptRecordError, match="does not decode"):
        RecordBatch(data).records()
