"""Build a batch, read it back: every field a producer sets comes out unchanged, for every codec."""

from __future__ import annotations

import array
import random
import time

import pytest

from client.errors import (
    CorruptRecordError,
    InvalidTimestampError,
    UnsupportedCompressionTypeError,
)
from client.record import (
    HEADER_SIZE,
    BatchBuilder,
    Compression,
    IncompleteBatchError,
    Record,
    RecordBatch,
    build_batch,
    check_batch,
    iter_batches,
    read_header,
    stamp_batch,
)
from tests.support.batches import BASE_TIMESTAMP, make_batch

CODECS = ["none", "lz4", "snappy"]
TS = BASE_TIMESTAMP


@pytest.fixture(params=CODECS)
def codec(request) -> str:
    return request.param


def read_back(builder: BatchBuilder) -> list[Record]:
    return RecordBatch(builder.build()).records()


def concat(*batches: bytes) -> bytes:
    return b"".join(batches)


# --- codec ------------------------------------------------------------------------------------


def test_codec_is_recorded_in_the_attributes(codec):
    batch = RecordBatch(make_batch(3, compression=codec))

    assert batch.compression is Compression.parse(codec)
    assert batch.header.compression_id == int(Compression.parse(codec))
    assert batch.compression.label == codec


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        (None, Compression.NONE),
        ("NONE", Compression.NONE),
        ("LZ4", Compression.LZ4),
        (" snappy ", Compression.SNAPPY),
        (Compression.LZ4, Compression.LZ4),
        (2, Compression.SNAPPY),
    ],
)
def test_compression_spellings_accepted_by_the_builder(spelling, expected):
    builder = BatchBuilder(spelling)
    builder.append(b"v", timestamp_ms=TS)

    assert builder.compression is expected
    assert RecordBatch(builder.build()).compression is expected


@pytest.mark.parametrize("name", ["gzip", "zstd", "bogus", "", "lz5"])
def test_unknown_compression_name_is_rejected(name):
    with pytest.raises(UnsupportedCompressionTypeError, match="unknown compression"):
        BatchBuilder(name)


@pytest.mark.parametrize("codec_id", [1, 4, 7, 99, -1])
def test_unknown_compression_id_is_rejected(codec_id):
    with pytest.raises(UnsupportedCompressionTypeError):
        BatchBuilder(codec_id)


def test_build_batch_rejects_unknown_compression_name():
    with pytest.raises(UnsupportedCompressionTypeError):
        build_batch([b"v"], compression="gzip", timestamp_ms=TS)


# --- keys and values --------------------------------------------------------------------------

BINARY = bytes(range(256))


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (None, None),
        (None, b"value"),
        (b"key", None),
        (b"", b""),
        (b"", None),
        (None, b""),
        (BINARY, BINARY[::-1]),
        (b"\x00", b"\x00\x00\x00"),
        (b"\xff" * 300, b"\x80" * 70_000),
    ],
    ids=lambda p: "None" if p is None else f"{len(p)}B",
)
def test_key_and_value_round_trip(codec, key, value):
    builder = BatchBuilder(codec)
    builder.append(value, key=key, timestamp_ms=TS)

    [record] = read_back(builder)

    assert record.key == key
    assert record.value == value
    # None and empty bytes stay distinct.
    assert (record.key is None) == (key is None)
    assert (record.value is None) == (value is None)


def test_mixed_records_in_one_batch_round_trip_in_order(codec):
    rows = [
        (None, None),
        (b"", b""),
        (b"k1", BINARY),
        (BINARY, None),
        (None, b"last"),
    ]
    builder = BatchBuilder(codec)
    for key, value in rows:
        builder.append(value, key=key, timestamp_ms=TS)

    records = read_back(builder)

    assert [(r.key, r.value) for r in records] == rows
    assert [r.offset for r in records] == list(range(len(rows)))


def test_bytearray_and_memoryview_payloads_read_back_as_bytes(codec):
    builder = BatchBuilder(codec)
    builder.append(
        bytearray(b"value"),
        key=memoryview(b"key"),
        timestamp_ms=TS,
        headers=[("h", bytearray(b"hv")), ("m", memoryview(b"mv"))],
    )

    [record] = read_back(builder)

    assert record.key == b"key"
    assert record.value == b"value"
    assert type(record.key) is bytes
    assert type(record.value) is bytes
    assert record.headers == (("h", b"hv"), ("m", b"mv"))


def test_one_mebibyte_values_round_trip(codec):
    rng = random.Random(1234)
    incompressible = rng.randbytes(1 << 20)
    compressible = b"abcdefgh" * (1 << 17)
    builder = BatchBuilder(codec)
    builder.append(incompressible, key=b"random", timestamp_ms=TS)
    builder.append(compressible, key=b"repetitive", timestamp_ms=TS + 1)
    data = builder.build()

    records = RecordBatch(data).records()

    assert records[0].value == incompressible
    assert records[1].value == compressible
    if codec == "none":
        assert len(data) > 2 << 20
    else:
        # The repetitive value compresses; the random one cannot shrink below its size.
        assert (1 << 20) < len(data) < (1 << 20) + (1 << 19)


# --- headers ----------------------------------------------------------------------------------


def test_headers_from_a_mapping_keep_insertion_order(codec):
    builder = BatchBuilder(codec)
    builder.append(b"v", timestamp_ms=TS, headers={"b": b"2", "a": b"1", "empty": b""})

    [record] = read_back(builder)

    assert record.headers == (("b", b"2"), ("a", b"1"), ("empty", b""))


def test_headers_from_pairs_keep_duplicates_and_order(codec):
    pairs = [("k", b"1"), ("other", b"x"), ("k", b"2"), ("k", None)]
    builder = BatchBuilder(codec)
    builder.append(b"v", timestamp_ms=TS, headers=pairs)

    [record] = read_back(builder)

    assert record.headers == tuple(pairs)


def test_header_values_may_be_none(codec):
    builder = BatchBuilder(codec)
    builder.append(b"v", timestamp_ms=TS, headers={"absent": None, "present": b""})

    [record] = read_back(builder)

    assert record.headers == (("absent", None), ("present", b""))
    assert record.headers[0][1] is None


def test_header_keys_may_be_any_unicode(codec):
    pairs = [("", b"empty key"), ("ключ", b"\x00"), ("🔑", BINARY), ("a" * 1000, b"long")]
    builder = BatchBuilder(codec)
    builder.append(b"v", timestamp_ms=TS, headers=pairs)

    [record] = read_back(builder)

    assert record.headers == tuple(pairs)


def test_headers_from_a_generator_of_pairs(codec):
    builder = BatchBuilder(codec)
    builder.append(b"v", timestamp_ms=TS, headers=((f"h{i}", bytes([i])) for i in range(3)))

    [record] = read_back(builder)

    assert record.headers == (("h0", b"\x00"), ("h1", b"\x01"), ("h2", b"\x02"))


@pytest.mark.parametrize("headers", [None, {}, []])
def test_no_headers_read_back_as_an_empty_tuple(codec, headers):
    builder = BatchBuilder(codec)
    builder.append(b"v", timestamp_ms=TS, headers=headers)

    [record] = read_back(builder)

    assert record.headers == ()


def test_headers_belong_to_their_own_record(codec):
    builder = BatchBuilder(codec)
    builder.append(b"a", timestamp_ms=TS, headers={"only-a": b"1"})
    builder.append(b"b", timestamp_ms=TS)
    builder.append(b"c", timestamp_ms=TS, headers=[("only-c", b"3"), ("only-c", b"4")])

    records = read_back(builder)

    assert [r.headers for r in records] == [
        (("only-a", b"1"),),
        (),
        (("only-c", b"3"), ("only-c", b"4")),
    ]


# --- timestamps -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "timestamps",
    [
        [TS],
        [TS, TS, TS],
        [TS, TS + 5, TS + 1000],
        [TS, TS - 1, TS - 500],
        [TS + 100, TS, TS + 200, TS + 50],
        [0, 1, 0],
        [2**62, 0, 2**62 + 1],
        [2**63 - 1, 0],
    ],
    ids=[
        "single",
        "equal",
        "increasing",
        "decreasing",
        "mixed",
        "epoch",
        "large-gaps",
        "int64-max",
    ],
)
def test_timestamps_round_trip_with_first_and_max_in_the_header(codec, timestamps):
    builder = BatchBuilder(codec)
    for i, ts in enumerate(timestamps):
        builder.append(f"v{i}".encode(), timestamp_ms=ts)
    data = builder.build()

    batch = RecordBatch(data)

    assert [r.timestamp for r in batch.records()] == timestamps
    assert batch.header.first_timestamp == timestamps[0]
    assert batch.header.max_timestamp == max(timestamps)
    assert read_header(data).max_timestamp == max(timestamps)
    assert not batch.header.is_log_append_time


def test_int64_timestamp_extremes_round_trip():
    builder = BatchBuilder()
    builder.append(b"a", timestamp_ms=2**63 - 1)
    builder.append(b"b", timestamp_ms=0)

    batch = RecordBatch(builder.build())

    assert [r.timestamp for r in batch.records()] == [2**63 - 1, 0]
    assert batch.header.first_timestamp == 2**63 - 1
    assert batch.header.max_timestamp == 2**63 - 1


@pytest.mark.parametrize("timestamp", [-1, -(2**63), 2**63, 1.5, "1"])
def test_a_timestamp_outside_int64_milliseconds_is_refused(timestamp):
    # Kafka refuses negative timestamps too; refusing at append keeps build() from failing later.
    builder = BatchBuilder()
    builder.append(b"a", timestamp_ms=1)
    with pytest.raises(InvalidTimestampError, match="timestamp"):
        builder.append(b"b", timestamp_ms=timestamp)
    assert len(builder) == 1
    assert [r.value for r in RecordBatch(builder.build()).records()] == [b"a"]


def test_missing_timestamp_is_the_current_time():
    before = time.time_ns() // 1_000_000
    builder = BatchBuilder()
    builder.append(b"a")
    data_a = builder.build()
    shared = build_batch([b"b", b"c"])
    after = time.time_ns() // 1_000_000

    [record] = RecordBatch(data_a).records()
    records = RecordBatch(shared).records()

    assert before <= record.timestamp <= after
    assert before <= records[0].timestamp <= after
    assert records[0].timestamp == records[1].timestamp


def test_build_batch_shares_one_timestamp_and_has_no_keys_or_headers(codec):
    data = build_batch([b"a", None, b""], compression=codec, timestamp_ms=TS)

    records = RecordBatch(data).records()

    assert records == [
        Record(0, TS, None, b"a", ()),
        Record(1, TS, None, None, ()),
        Record(2, TS, None, b"", ()),
    ]


# --- offsets and stamping ---------------------------------------------------------------------


def test_a_fresh_batch_starts_at_offset_zero_without_a_leader_epoch(codec):
    batch = RecordBatch(make_batch(4, compression=codec))

    assert batch.base_offset == 0
    assert batch.header.partition_leader_epoch == -1
    assert batch.record_count == 4
    assert batch.last_offset == 3
    assert batch.next_offset == 4
    assert [r.offset for r in batch.records()] == [0, 1, 2, 3]


def test_append_returns_the_offset_delta():
    builder = BatchBuilder()

    deltas = [builder.append(b"v", timestamp_ms=TS) for _ in range(5)]

    assert deltas == [0, 1, 2, 3, 4]
    assert len(builder) == 5


def test_stamped_batch_reports_offsets_from_its_base_offset(codec):
    buf = bytearray(make_batch(3, compression=codec))

    stamp_batch(buf, 0, base_offset=1_000, leader_epoch=7)
    batch = RecordBatch(buf)

    assert batch.base_offset == 1_000
    assert batch.header.partition_leader_epoch == 7
    assert batch.last_offset == 1_002
    assert batch.next_offset == 1_003
    assert [r.offset for r in batch.records()] == [1_000, 1_001, 1_002]
    assert [r.value for r in batch.records()] == [b"v-0", b"v-1", b"v-2"]


def test_stamping_keeps_the_crc_valid_and_changes_only_the_stamped_fields(codec):
    original = make_batch(2, compression=codec)
    buf = bytearray(original)

    stamp_batch(buf, 0, base_offset=2**40, leader_epoch=2**31 - 1)

    before, after = read_header(original), check_batch(buf)
    assert after.base_offset == 2**40
    assert after.partition_leader_epoch == 2**31 - 1
    assert after._replace(base_offset=0, partition_leader_epoch=-1) == before
    assert buf[16:] == original[16:]


def test_stamping_a_batch_in_the_middle_of_a_buffer(codec):
    first = make_batch(2, tag="a", compression=codec)
    second = make_batch(3, tag="b", compression=codec)
    third = make_batch(1, tag="c", compression=codec)
    buf = bytearray(concat(first, second, third))

    stamp_batch(buf, 0, 0, 1)
    stamp_batch(memoryview(buf), len(first), 2, 1)
    stamp_batch(buf, len(first) + len(second), 5, 2)
    batches = list(iter_batches(buf))

    assert [b.base_offset for b in batches] == [0, 2, 5]
    assert [b.header.partition_leader_epoch for b in batches] == [1, 1, 2]
    assert [r.offset for b in batches for r in b.records()] == list(range(6))
    assert [r.value for b in batches for r in b.records()] == [
        b"a-0",
        b"a-1",
        b"b-0",
        b"b-1",
        b"b-2",
        b"c-0",
    ]


# --- several batches --------------------------------------------------------------------------


def test_iter_batches_splits_concatenated_batches():
    pieces = [
        make_batch(1, tag="a"),
        make_batch(5, tag="b", compression="lz4"),
        make_batch(2, tag="c", compression="snappy", key=b"k"),
        make_batch(3, tag="d", value_size=1000),
    ]
    data = concat(*pieces)

    for view in (data, bytearray(data), memoryview(data)):
        batches = list(iter_batches(view))

        assert [bytes(b) for b in batches] == pieces
        assert [b.record_count for b in batches] == [1, 5, 2, 3]
        assert [b.size_in_bytes for b in batches] == [len(p) for p in pieces]
        assert [b.compression.label for b in batches] == ["none", "lz4", "snappy", "none"]
        assert [r.value[:3] for r in batches[1].records()] == [
            b"b-0",
            b"b-1",
            b"b-2",
            b"b-3",
            b"b-4",
        ]


def test_iter_batches_of_nothing_yields_nothing():
    assert list(iter_batches(b"")) == []
    assert list(iter_batches(b"", allow_incomplete_tail=True)) == []


def test_incomplete_tail_raises_unless_allowed(codec):
    complete = [make_batch(2, tag="a", compression=codec), make_batch(3, tag="b")]
    last = make_batch(4, tag="c", compression=codec, value_size=100)
    head = concat(*complete)

    for cut in range(1, len(last)):
        data = head + last[:cut]

        with pytest.raises(IncompleteBatchError):
            list(iter_batches(data))
        with pytest.raises(IncompleteBatchError):
            list(iter_batches(data, validate=False))
        kept = list(iter_batches(data, allow_incomplete_tail=True))
        assert [bytes(b) for b in kept] == complete, f"cut at {cut}"
        kept = list(iter_batches(data, validate=False, allow_incomplete_tail=True))
        assert [bytes(b) for b in kept] == complete, f"cut at {cut} without validation"


def test_incomplete_tail_alone_yields_nothing_when_allowed():
    batch = make_batch(2)

    assert list(iter_batches(batch[:11], allow_incomplete_tail=True)) == []
    assert list(iter_batches(batch[:-1], allow_incomplete_tail=True)) == []
    with pytest.raises(IncompleteBatchError):
        list(iter_batches(batch[:-1]))


def test_allowing_an_incomplete_tail_does_not_hide_a_corrupt_batch():
    good, bad, tail = make_batch(1, tag="a"), bytearray(make_batch(2, tag="b")), make_batch(3)
    bad[-1] ^= 0x01
    data = concat(good, bytes(bad), tail[:20])

    batches = iter_batches(data, allow_incomplete_tail=True)

    assert bytes(next(batches)) == good
    with pytest.raises(CorruptRecordError) as excinfo:
        next(batches)
    assert not isinstance(excinfo.value, IncompleteBatchError)


def test_iter_batches_without_validation_yields_a_batch_with_a_bad_crc():
    bad = bytearray(make_batch(2))
    bad[-1] ^= 0x01

    [batch] = list(iter_batches(bytes(bad), validate=False))

    assert not batch.is_valid()
    with pytest.raises(CorruptRecordError, match="CRC"):
        batch.validate()
    with pytest.raises(CorruptRecordError):
        list(iter_batches(bytes(bad)))


def test_record_batch_ignores_bytes_after_its_end():
    first, second = make_batch(2, tag="a"), make_batch(1, tag="b")

    batch = RecordBatch(first + second)

    assert bytes(batch) == first
    assert batch.size_in_bytes == len(first)
    assert [r.value for r in batch.records()] == [b"a-0", b"a-1"]


# --- builder misuse ---------------------------------------------------------------------------


def test_an_empty_builder_does_not_build(codec):
    builder = BatchBuilder(codec)

    assert len(builder) == 0
    with pytest.raises(ValueError, match="empty"):
        builder.build()


def test_build_batch_of_no_values_raises():
    with pytest.raises(ValueError, match="empty"):
        build_batch([], timestamp_ms=TS)


@pytest.mark.parametrize(
    "call",
    [
        pytest.param({"value": "text"}, id="str-value"),
        pytest.param({"value": 42}, id="int-value"),
        pytest.param({"value": [1, 2]}, id="list-value"),
        pytest.param({"value": b"v", "key": "text"}, id="str-key"),
        pytest.param({"value": b"v", "key": 7}, id="int-key"),
        pytest.param({"value": b"v", "headers": {"h": "text"}}, id="str-header-value"),
        pytest.param({"value": b"v", "headers": [("h", 1)]}, id="int-header-value"),
        pytest.param({"value": b"v", "headers": [(b"h", b"x")]}, id="bytes-header-key"),
        pytest.param({"value": b"v", "headers": {1: b"x"}}, id="int-header-key"),
        pytest.param({"value": b"v", "headers": [(None, b"x")]}, id="none-header-key"),
    ],
)
def test_non_bytes_payloads_are_rejected_and_leave_the_builder_unchanged(call):
    builder = BatchBuilder()
    builder.append(b"kept", timestamp_ms=TS)
    size = builder.estimated_size

    with pytest.raises(TypeError):
        builder.append(timestamp_ms=TS + 1, **call)

    assert len(builder) == 1
    assert builder.estimated_size == size
    builder.append(b"after", timestamp_ms=TS + 2)
    records = read_back(builder)
    assert [(r.value, r.timestamp) for r in records] == [(b"kept", TS), (b"after", TS + 2)]
    assert RecordBatch(builder.build()).header.max_timestamp == TS + 2


# --- size estimate ----------------------------------------------------------------------------


def _fill(rows):
    builder = BatchBuilder()
    for key, value, ts, headers in rows:
        builder.append(value, key=key, timestamp_ms=ts, headers=headers)
    return builder


KIB64 = 1 << 16

ESTIMATE_CASES = {
    "one-empty-record": [(None, None, TS, None)],
    "one-small-record": [(b"k", b"v", TS, None)],
    "many-small-records": [(b"key", b"value-%d" % i, TS + i, None) for i in range(1000)],
    "many-empty-records": [(None, None, TS, None)] * 70_000,
    "headers": [
        (b"k", b"v", TS, {"a": b"1", "ключ": None, "": b""}),
        (None, b"", TS, [("dup", b"x")] * 20),
    ],
    "one-mebibyte-value": [(b"k", b"x" * (1 << 20), TS, None)],
    "decreasing-timestamps": [(b"k", b"v", TS - i * 1000, None) for i in range(50)],
    "300-records-spanning-300-days": [
        (None, b"v" * 300, TS + i * 86_400_000, None) for i in range(300)
    ],
    "64KiB-keys-and-values-a-minute-apart": [
        (b"k" * KIB64, b"v" * KIB64, TS, None),
        (b"k" * KIB64, b"v" * KIB64, TS + KIB64, None),
    ],
}


@pytest.mark.parametrize("rows", list(ESTIMATE_CASES.values()), ids=list(ESTIMATE_CASES))
def test_estimated_size_is_an_upper_bound_of_the_uncompressed_batch(rows):
    builder = _fill(rows)

    estimate = builder.estimated_size
    built = len(builder.build())

    assert built <= estimate


def test_estimated_size_counts_bytes_of_a_memoryview_with_wide_items():
    value = memoryview(array.array("q", range(64)))  # 64 items, 512 bytes
    builder = BatchBuilder()
    builder.append(value, timestamp_ms=TS)

    data = builder.build()

    assert RecordBatch(data).records()[0].value == value.tobytes()
    assert len(data) <= builder.estimated_size


def test_estimated_size_starts_at_the_header_and_grows_with_each_record():
    builder = BatchBuilder()
    sizes = [builder.estimated_size]
    for i in range(5):
        builder.append(b"x" * i, timestamp_ms=TS)
        sizes.append(builder.estimated_size)

    assert sizes[0] == HEADER_SIZE
    assert sizes == sorted(set(sizes))
