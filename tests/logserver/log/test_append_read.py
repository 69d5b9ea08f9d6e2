"""Appending batches (offsets, stamping) and reading them back as whole-batch file slices."""

from __future__ import annotations

import os
import socket

import pytest

from client.errors import (
    CorruptRecordError,
    OffsetOutOfRangeError,
    RecordBatchTooLargeError,
    RecordTooLargeError,
)
from client.record import LOG_OVERHEAD, RecordBatch, check_batch, read_header
from client.record.layout import CRC_AT, NO_PARTITION_LEADER_EPOCH
from logserver.log import AppendInfo, FileSlice
from tests.support.batches import BASE_TIMESTAMP, batch_of_size, make_batch
from tests.support.log_files import batch_headers, read_all_records, segment_file

# -- offsets --------------------------------------------------------------------------


def test_offsets_are_consecutive_across_appends(open_log):
    log = open_log()
    infos = [log.append(make_batch(n, tag=f"b{i}")) for i, n in enumerate([1, 3, 2, 5])]

    assert [(i.first_offset, i.last_offset) for i in infos] == [(0, 0), (1, 3), (4, 5), (6, 10)]
    assert log.log_end_offset == 11
    records = read_all_records(log)
    assert [r.offset for r in records] == list(range(11))
    assert [r.value for r in records[:4]] == [b"b0-0", b"b1-0", b"b1-1", b"b1-2"]
    assert records[-1].value == b"b3-4"


def test_multi_batch_append_gets_consecutive_offsets(open_log):
    log = open_log()
    log.append(make_batch(2, tag="first"))
    data = make_batch(2, tag="a") + make_batch(3, tag="b") + make_batch(1, tag="c")

    info = log.append(data)

    assert (info.first_offset, info.last_offset, info.record_count) == (2, 7, 6)
    file_slice = log.read(2, 1 << 20)
    assert file_slice is not None
    assert [(b.base_offset, b.last_offset) for b in file_slice.batches()] == [
        (2, 3),
        (4, 6),
        (7, 7),
    ]
    assert [(r.offset, r.value) for r in log.read_records(2)] == [
        (2, b"a-0"),
        (3, b"a-1"),
        (4, b"b-0"),
        (5, b"b-1"),
        (6, b"b-2"),
        (7, b"c-0"),
    ]


def test_append_info_describes_the_append(open_log):
    log = open_log()
    log.append(make_batch(4))
    first = make_batch(2, timestamp_ms=[BASE_TIMESTAMP + 50, BASE_TIMESTAMP + 20])
    second = make_batch(3, timestamp_ms=[BASE_TIMESTAMP + 10, BASE_TIMESTAMP + 90, BASE_TIMESTAMP])

    info = log.append(first + second)

    assert info == AppendInfo(
        first_offset=4,
        last_offset=8,
        max_timestamp=BASE_TIMESTAMP + 90,
        record_count=5,
        size_bytes=len(first) + len(second),
    )


# -- stamping -------------------------------------------------------------------------


def _stored_batches(log) -> list[bytes]:
    data = segment_file(log.directory, 0, ".log").read_bytes()
    return [
        data[pos : pos + header.batch_length + LOG_OVERHEAD]
        for pos, header in batch_headers(segment_file(log.directory, 0, ".log"))
    ]


@pytest.mark.parametrize("wrap", [bytes, lambda b: memoryview(bytes(b))], ids=["bytes", "ro-view"])
def test_immutable_input_is_stamped_on_the_way_to_disk(open_log, wrap):
    log = open_log()
    log.append(make_batch(3))
    original = make_batch(2, tag="stamp-me")
    data = wrap(original)

    info = log.append(data, leader_epoch=7)

    assert bytes(data) == original  # the caller's buffer is untouched
    stored = _stored_batches(log)[1]
    header = read_header(stored)
    assert header.base_offset == info.first_offset == 3
    assert header.partition_leader_epoch == 7
    assert check_batch(stored).crc == read_header(original).crc  # CRC still validates
    assert stored[CRC_AT:] == original[CRC_AT:]  # only the stamped fields differ
    assert [r.offset for r in RecordBatch(stored).records()] == [3, 4]


@pytest.mark.parametrize("wrap", [bytearray, lambda b: memoryview(bytearray(b))], ids=["ba", "rw"])
def test_writable_input_is_stamped_in_place(open_log, wrap):
    log = open_log()
    log.append(make_batch(5))
    original = make_batch(2, tag="a") + make_batch(1, tag="b")
    buffer = wrap(original)

    info = log.append(buffer, leader_epoch=42)

    first = read_header(buffer, 0)
    second = read_header(buffer, first.batch_length + LOG_OVERHEAD)
    assert (first.base_offset, first.partition_leader_epoch) == (5, 42)
    assert (second.base_offset, second.partition_leader_epoch) == (7, 42)
    assert info.first_offset == 5
    check_batch(buffer, 0)
    check_batch(buffer, first.batch_length + LOG_OVERHEAD)
    assert b"".join(_stored_batches(log)[1:]) == bytes(buffer)


def test_leader_epoch_defaults_to_none_marker(open_log):
    log = open_log()
    log.append(make_batch(1))
    (stored,) = _stored_batches(log)
    assert read_header(stored).partition_leader_epoch == NO_PARTITION_LEADER_EPOCH


@pytest.mark.parametrize(
    ("case", "error"),
    [
        ("bad-crc", CorruptRecordError),
        ("torn", CorruptRecordError),
        ("too-large", RecordTooLargeError),
        ("beyond-segment", RecordBatchTooLargeError),
    ],
)
def test_rejected_append_leaves_the_log_unchanged(open_log, case, error):
    log = open_log(segment_bytes=1000, max_message_bytes=600)
    log.append(make_batch(2))
    good = bytearray(make_batch(1))
    data = {
        "bad-crc": bytes(good[:-1]) + bytes([good[-1] ^ 0xFF]),
        "torn": bytes(good) + bytes(good[:30]),
        "too-large": batch_of_size(700),
        "beyond-segment": batch_of_size(500) + batch_of_size(550),
    }[case]
    size_before = log.size_bytes

    with pytest.raises(error):
        log.append(data)

    assert log.log_end_offset == 2
    assert log.size_bytes == size_before
    assert [r.offset for r in read_all_records(log)] == [0, 1]


# -- read -----------------------------------------------------------------------------


def test_read_starts_at_the_batch_holding_the_offset(open_log):
    log = open_log()
    for i in range(3):
        log.append(make_batch(5, tag=f"b{i}"))

    file_slice = log.read(7, 1 << 20)

    assert file_slice is not None
    assert file_slice.first_offset == 5
    assert [b.base_offset for b in file_slice.batches()] == [5, 10]
    assert [r.offset for r in log.read_records(7)] == [7, 8, 9, 10, 11, 12, 13, 14]


@pytest.mark.parametrize("index_interval_bytes", [0, 250, 4096])
def test_max_bytes_is_respected_at_batch_boundaries(open_log, index_interval_bytes):
    log = open_log(index_interval_bytes=index_interval_bytes)
    for i in range(10):
        log.append(batch_of_size(200, tag=f"b{i}"))

    def served(offset: int, max_bytes: int) -> tuple[int, int]:
        file_slice = log.read(offset, max_bytes)
        assert file_slice is not None
        return file_slice.first_offset, file_slice.size

    assert served(0, 2000) == (0, 2000)
    assert served(0, 1999) == (0, 1800)
    assert served(0, 450) == (0, 400)
    assert served(0, 400) == (0, 400)
    assert served(0, 399) == (0, 200)
    assert served(3, 1000) == (3, 1000)
    assert served(7, 650) == (7, 600)
    assert served(9, 10_000) == (9, 200)


@pytest.mark.parametrize("max_bytes", [0, 1, 100])
def test_first_batch_is_returned_whole_even_when_larger_than_max_bytes(open_log, max_bytes):
    log = open_log()
    log.append(batch_of_size(300))
    log.append(batch_of_size(300))

    file_slice = log.read(1, max_bytes)

    assert file_slice is not None
    assert (file_slice.first_offset, file_slice.size) == (1, 300)
    assert [b.base_offset for b in file_slice.batches()] == [1]


def test_max_offset_bounds_what_is_served(open_log):
    log = open_log()
    for i in range(4):  # batches [0-2] [3-5] [6-8] [9-11]
        log.append(make_batch(3, tag=f"b{i}"))

    def bases(offset: int, max_offset: int) -> list[int] | None:
        file_slice = log.read(offset, 1 << 20, max_offset=max_offset)
        return None if file_slice is None else [b.base_offset for b in file_slice.batches()]

    assert bases(0, 6) == [0, 3]
    assert bases(0, 7) == [0, 3]  # the bound falls inside [6-8]: that batch is excluded
    assert bases(0, 8) == [0, 3]
    assert bases(0, 9) == [0, 3, 6]
    assert bases(0, 12) == [0, 3, 6, 9]
    assert bases(0, 1000) == [0, 3, 6, 9]
    assert bases(4, 9) == [3, 6]
    assert bases(4, 5) is None  # the batch holding the offset is not wholly below the bound
    assert bases(6, 6) is None
    assert bases(0, 0) is None
    assert bases(7, 3) is None


def test_max_offset_in_a_later_segment_serves_the_rest_of_this_segment(open_log):
    log = open_log(segment_bytes=600)
    for i in range(6):
        log.append(batch_of_size(200, tag=f"b{i}"))
    assert [s.base_offset for s in log.segments] == [0, 3]

    file_slice = log.read(1, 1 << 20, max_offset=4)

    assert file_slice is not None
    assert (file_slice.first_offset, file_slice.size) == (1, 400)


def test_read_at_log_end_returns_none(open_log):
    log = open_log()
    assert log.read(0, 1 << 20) is None
    log.append(make_batch(3))
    assert log.read(3, 1 << 20) is None
    assert log.read_records(3) == []


@pytest.mark.parametrize("offset", [-1, 4, 100])
def test_offsets_outside_the_log_are_out_of_range(open_log, offset):
    log = open_log()
    log.append(make_batch(3))
    with pytest.raises(OffsetOutOfRangeError):
        log.read(offset, 1 << 20)


def test_reads_cross_segments_one_segment_at_a_time(open_log):
    log = open_log(segment_bytes=650)
    for i in range(8):
        log.append(batch_of_size(200, tag=f"b{i}"))
    assert [s.base_offset for s in log.segments] == [0, 3, 6]

    slices = []
    offset = 1
    while (file_slice := log.read(offset, 1 << 20)) is not None:
        slices.append(file_slice)
        offset = [b.last_offset for b in file_slice.batches()][-1] + 1

    assert [(s.path.name, s.first_offset, s.size) for s in slices] == [
        (segment_file(log.directory, 0, ".log").name, 1, 400),
        (segment_file(log.directory, 3, ".log").name, 3, 600),
        (segment_file(log.directory, 6, ".log").name, 6, 400),
    ]
    assert offset == log.log_end_offset == 8
    records = [r for s in slices for b in s.batches() for r in b.records()]
    assert [r.value[:3] for r in records] == [f"b{i}-".encode() for i in range(1, 8)]


def test_file_slice_bytes_are_the_file_bytes(open_log):
    log = open_log(index_interval_bytes=100)
    for i in range(20):
        log.append(make_batch(1 + i % 3, tag=f"b{i}", value_size=40))

    file_slice = log.read(11, 700)

    assert file_slice is not None
    file_bytes = file_slice.path.read_bytes()
    assert file_slice.read_bytes() == file_bytes[file_slice.position : file_slice.end_position]
    assert file_slice.size <= 700
    assert file_slice.first_offset <= 11
    assert all(b.is_valid() for b in file_slice.batches())


def _sendfile_all(sock: socket.socket, file_slice: FileSlice) -> None:
    offset, remaining = file_slice.position, file_slice.size
    while remaining:
        sent = os.sendfile(sock.fileno(), file_slice.file.fileno(), offset, remaining)
        assert sent > 0
        offset += sent
        remaining -= sent


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    chunks = []
    while size:
        chunk = sock.recv(size)
        assert chunk, "peer closed early"
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def test_file_slice_can_be_sent_with_sendfile(open_log):
    log = open_log(segment_bytes=4000)
    for i in range(30):
        log.append(make_batch(2, tag=f"b{i}", value_size=100))
    offset = 13
    file_slice = log.read(offset, 3000, max_offset=40)
    assert file_slice is not None
    assert file_slice.position > 0  # not the start of the file: the offset matters

    sender, receiver = socket.socketpair()
    with sender, receiver:
        _sendfile_all(sender, file_slice)
        received = _recv_exactly(receiver, file_slice.size)

    assert received == file_slice.read_bytes()
    batches = [RecordBatch(received[pos:]) for pos in _batch_starts(received)]
    assert batches[0].base_offset == file_slice.first_offset
    assert all(b.last_offset < 40 for b in batches)


def _batch_starts(data: bytes) -> list[int]:
    starts, position = [], 0
    while position < len(data):
        starts.append(position)
        position += read_header(data, position).batch_length + LOG_OVERHEAD
    assert position == len(data)
    return starts
