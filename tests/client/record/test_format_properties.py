"""Properties of the batch format over generated records: exact round trips, detected flips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.errors import CorruptRecordError
from client.record import (
    BatchBuilder,
    IncompleteBatchError,
    Record,
    RecordBatch,
    check_batch,
    iter_batches,
    stamp_batch,
)
from client.record.layout import CRC_AT

CODECS = ["none", "lz4", "snappy"]

payloads = st.none() | st.binary(max_size=64)
headers = st.lists(st.tuples(st.text(max_size=8), payloads), max_size=4)
# Non-negative int64 (Kafka rejects negative timestamps): any two differ by less than 2**63.
timestamps = st.integers(min_value=0, max_value=2**63 - 1)
rows = st.tuples(payloads, payloads, timestamps, headers)
row_lists = st.lists(rows, min_size=1, max_size=12)
codecs = st.sampled_from(CODECS)


def build(codec: str, row_list: list) -> bytes:
    builder = BatchBuilder(codec)
    for key, value, ts, hdrs in row_list:
        builder.append(value, key=key, timestamp_ms=ts, headers=hdrs)
    return builder.build()


def expected_records(row_list: list, base_offset: int = 0) -> list[Record]:
    return [
        Record(base_offset + i, ts, key, value, tuple(hdrs))
        for i, (key, value, ts, hdrs) in enumerate(row_list)
    ]


@pytest.mark.parametrize("codec", CODECS)
@settings(max_examples=100)
@given(row_list=row_lists)
def test_records_round_trip_exactly(codec, row_list):
    data = build(codec, row_list)

    batch = RecordBatch(data)

    assert batch.records() == expected_records(row_list)
    assert batch.record_count == len(row_list)
    assert batch.header.first_timestamp == row_list[0][2]
    assert batch.header.max_timestamp == max(ts for _, _, ts, _ in row_list)
    assert batch.compression.label == codec


@pytest.mark.parametrize("codec", CODECS)
@settings(max_examples=50)
@given(row_list=row_lists, base_offset=st.integers(0, 2**62), epoch=st.integers(-1, 2**31 - 1))
def test_stamped_records_round_trip_from_the_base_offset(codec, row_list, base_offset, epoch):
    buf = bytearray(build(codec, row_list))

    stamp_batch(buf, 0, base_offset, epoch)
    batch = RecordBatch(buf)

    assert batch.records() == expected_records(row_list, base_offset)
    assert batch.header.partition_leader_epoch == epoch
    assert batch.next_offset == base_offset + len(row_list)


@settings(max_examples=200)
@given(codec=codecs, row_list=row_lists, data=st.data())
def test_any_single_bit_flip_in_the_covered_region_is_detected(codec, row_list, data):
    batch = build(codec, row_list)
    bit = data.draw(st.integers(CRC_AT * 8, len(batch) * 8 - 1), label="bit")
    corrupt = bytearray(batch)
    corrupt[bit // 8] ^= 1 << (bit % 8)

    with pytest.raises(CorruptRecordError) as excinfo:
        check_batch(corrupt)
    assert not isinstance(excinfo.value, IncompleteBatchError)
    with pytest.raises(CorruptRecordError):
        list(iter_batches(bytes(corrupt)))


@settings(max_examples=100)
@given(batches=st.lists(st.tuples(codecs, row_lists), min_size=1, max_size=6))
def test_concatenated_batches_split_back_into_the_same_batches(batches):
    pieces, base = [], 0
    for codec, row_list in batches:
        piece = bytearray(build(codec, row_list))
        stamp_batch(piece, 0, base, 0)
        pieces.append(bytes(piece))
        base += len(row_list)

    split = list(iter_batches(b"".join(pieces)))

    assert [bytes(b) for b in split] == pieces
    offset = 0
    for batch, (codec, row_list) in zip(split, batches, strict=True):
        assert batch.compression.label == codec
        assert batch.base_offset == offset
        assert batch.records() == expected_records(row_list, offset)
        offset += len(row_list)


@settings(max_examples=100)
@given(
    batches=st.lists(st.tuples(codecs, row_lists), min_size=1, max_size=4),
    data=st.data(),
)
def test_a_cut_inside_the_last_batch_keeps_exactly_the_complete_ones(batches, data):
    pieces = [build(codec, row_list) for codec, row_list in batches]
    whole = b"".join(pieces)
    cut = data.draw(st.integers(len(whole) - len(pieces[-1]) + 1, len(whole) - 1), label="cut")

    kept = list(iter_batches(whole[:cut], allow_incomplete_tail=True))

    assert [bytes(b) for b in kept] == pieces[:-1]
    with pytest.raises(IncompleteBatchError):
        list(iter_batches(whole[:cut]))
