"""The sparse offset and time indexes: as units, and as a partition log maintains them."""

from __future__ import annotations

import itertools
import random
import struct
from pathlib import Path

import pytest

from logserver.log.index_file import CorruptIndexError
from logserver.log.offset_index import OffsetIndex
from logserver.log.time_index import TimeIndex
from tests.support.batches import BASE_TIMESTAMP, batch_of_size
from tests.support.log_files import (
    batch_headers,
    offset_index_entries,
    read_all_records,
    segment_file,
    time_index_entries,
)

OFFSET_ENTRY = struct.Struct(">II")
TIME_ENTRY = struct.Struct(">qI")


@pytest.fixture
def offset_index_path(tmp_path: Path) -> Path:
    return tmp_path / "00000000000000000100.index"


@pytest.fixture
def time_index_path(tmp_path: Path) -> Path:
    return tmp_path / "00000000000000000100.timeindex"


def _write_rows(path: Path, entry: struct.Struct, rows: list[tuple[int, int]]) -> None:
    path.write_bytes(b"".join(entry.pack(*row) for row in rows))


# -- OffsetIndex ----------------------------------------------------------------------


def test_offset_index_lookup_is_the_last_entry_at_or_before(offset_index_path):
    index = OffsetIndex(offset_index_path, 100, 10)
    try:
        assert index.lookup(150) == (100, 0)  # empty: the segment start
        assert index.last_entry() is None
        for offset, position in [(103, 500), (110, 1200), (120, 3000)]:
            index.append(offset, position)

        assert [index.lookup(o) for o in (100, 102, 103, 109, 110, 119, 120, 10**6)] == [
            (100, 0),
            (100, 0),
            (103, 500),
            (103, 500),
            (110, 1200),
            (110, 1200),
            (120, 3000),
            (120, 3000),
        ]
        assert index.entries() == [(103, 500), (110, 1200), (120, 3000)]
        assert index.last_entry() == (120, 3000)
    finally:
        index.close()


def test_offset_index_lookup_by_position(offset_index_path):
    index = OffsetIndex(offset_index_path, 100, 10)
    try:
        for offset, position in [(103, 500), (110, 1200), (120, 3000)]:
            index.append(offset, position)
        assert [index.lookup_by_position(p) for p in (0, 499, 500, 1199, 1200, 2999, 3000)] == [
            (100, 0),
            (100, 0),
            (103, 500),
            (103, 500),
            (110, 1200),
            (110, 1200),
            (120, 3000),
        ]
        assert index.lookup_by_position(2**31) == (120, 3000)
    finally:
        index.close()


def test_offset_index_entries_reach_the_file_only_on_write_pending(offset_index_path):
    index = OffsetIndex(offset_index_path, 100, 10)
    index.append(103, 500)
    index.append(110, 1200)

    assert offset_index_path.stat().st_size == 0
    assert index.entry_count == 2
    assert index.size_on_disk == 0

    index.write_pending()
    assert offset_index_path.read_bytes() == OFFSET_ENTRY.pack(3, 500) + OFFSET_ENTRY.pack(10, 1200)
    assert index.size_on_disk == 16

    index.append(120, 3000)
    assert offset_index_path.stat().st_size == 16
    index.close()
    assert offset_index_entries(offset_index_path, 100) == [(103, 500), (110, 1200), (120, 3000)]


def test_offset_index_close_discarding_drops_pending_entries(offset_index_path):
    index = OffsetIndex(offset_index_path, 100, 10)
    index.append(103, 500)
    index.write_pending()
    index.append(110, 1200)
    index.close_discarding()

    assert offset_index_entries(offset_index_path, 100) == [(103, 500)]


def test_offset_index_is_loaded_from_disk_on_first_use(offset_index_path):
    _write_rows(offset_index_path, OFFSET_ENTRY, [(3, 500), (10, 1200)])
    index = OffsetIndex(offset_index_path, 100, 10)
    try:
        assert index.entry_count == 2
        assert index.last_disk_entry() == (110, 1200)
        # Nothing has been read yet: what the file holds at first use is what counts.
        _write_rows(offset_index_path, OFFSET_ENTRY, [(4, 600), (11, 1300)])
        assert index.lookup(105) == (104, 600)
        assert index.entries() == [(104, 600), (111, 1300)]
        index.append(130, 5000)
        assert index.entries() == [(104, 600), (111, 1300), (130, 5000)]
    finally:
        index.close()
    assert offset_index_entries(offset_index_path, 100)[-1] == (130, 5000)


@pytest.mark.parametrize(
    "rows",
    [
        [(3, 500), (3, 600)],  # repeated offset
        [(3, 500), (4, 500)],  # repeated position
        [(5, 500), (4, 600)],  # offset goes back
        [(3, 500), (4, 400)],  # position goes back
        [(1, 10), (2, 20), (3, 30), (2, 40)],
    ],
)
def test_offset_index_with_non_increasing_entries_is_corrupt(offset_index_path, rows):
    _write_rows(offset_index_path, OFFSET_ENTRY, rows)
    index = OffsetIndex(offset_index_path, 100, 10)  # lazy: opening does not read entries
    try:
        assert index.last_disk_entry() == (100 + rows[-1][0], rows[-1][1])
        with pytest.raises(CorruptIndexError):
            index.lookup(200)
        with pytest.raises(CorruptIndexError):
            index.ensure_loaded()
    finally:
        index.close()


@pytest.mark.parametrize("size", [1, 7, 9, 12, 20])
def test_offset_index_size_must_be_a_multiple_of_the_entry(offset_index_path, size):
    offset_index_path.write_bytes(b"\0" * size)
    with pytest.raises(CorruptIndexError, match="not a multiple"):
        OffsetIndex(offset_index_path, 100, 10)


def test_offset_index_refuses_appends_that_do_not_increase(offset_index_path):
    index = OffsetIndex(offset_index_path, 100, 10)
    try:
        index.append(110, 1000)
        with pytest.raises(ValueError, match="does not follow"):
            index.append(110, 2000)
        with pytest.raises(ValueError, match="does not follow"):
            index.append(111, 1000)
        assert index.entries() == [(110, 1000)]
    finally:
        index.close()


def test_offset_index_is_full_at_max_entries(offset_index_path):
    index = OffsetIndex(offset_index_path, 0, 2)
    try:
        index.append(1, 100)
        assert not index.is_full
        index.append(2, 200)
        assert index.is_full
    finally:
        index.close()


def test_reset_drops_entries_on_disk_and_in_memory(offset_index_path):
    _write_rows(offset_index_path, OFFSET_ENTRY, [(3, 500), (10, 1200)])
    index = OffsetIndex(offset_index_path, 100, 10)
    try:
        index.append(120, 3000)
        index.reset()
        assert index.entry_count == 0
        assert index.lookup(150) == (100, 0)
        assert offset_index_path.stat().st_size == 0
    finally:
        index.close()
    assert offset_index_path.stat().st_size == 0


# -- TimeIndex ------------------------------------------------------------------------


def test_time_index_appends_only_newer_timestamps(time_index_path):
    index = TimeIndex(time_index_path, 100, 10)
    try:
        assert index.maybe_append(1000, 100)
        assert not index.maybe_append(1000, 105)
        assert not index.maybe_append(999, 106)
        assert index.maybe_append(2000, 105)
        assert index.maybe_append(3000, 105)  # the same offset again is fine
        with pytest.raises(ValueError, match="goes back"):
            index.maybe_append(4000, 104)
        assert index.entries() == [(1000, 100), (2000, 105), (3000, 105)]
        assert index.last_entry() == (3000, 105)
    finally:
        index.close()


def test_time_index_lookup_is_the_last_entry_at_or_before(time_index_path):
    index = TimeIndex(time_index_path, 100, 10)
    try:
        assert index.lookup(5000) is None
        for ts, offset in [(1000, 100), (2000, 105), (3000, 107)]:
            index.maybe_append(ts, offset)
        assert [index.lookup(t) for t in (999, 1000, 1999, 2000, 2999, 3000, 10**12)] == [
            None,
            (1000, 100),
            (1000, 100),
            (2000, 105),
            (2000, 105),
            (3000, 107),
            (3000, 107),
        ]
    finally:
        index.close()


def test_time_index_entries_reach_the_file_only_on_write_pending(time_index_path):
    index = TimeIndex(time_index_path, 100, 10)
    index.maybe_append(BASE_TIMESTAMP, 102)
    assert time_index_path.stat().st_size == 0

    index.write_pending()
    assert time_index_path.read_bytes() == TIME_ENTRY.pack(BASE_TIMESTAMP, 2)

    index.maybe_append(BASE_TIMESTAMP + 1, 104)
    assert time_index_path.stat().st_size == 12
    index.close()
    assert time_index_entries(time_index_path, 100) == [
        (BASE_TIMESTAMP, 102),
        (BASE_TIMESTAMP + 1, 104),
    ]


def test_time_index_is_loaded_from_disk_on_first_use(time_index_path):
    _write_rows(time_index_path, TIME_ENTRY, [(1000, 0), (2000, 5)])
    index = TimeIndex(time_index_path, 100, 10)
    try:
        assert index.entry_count == 2
        assert index.last_disk_entry() == (2000, 105)
        assert index.lookup(1500) == (1000, 100)
        assert not index.maybe_append(2000, 106)
    finally:
        index.close_discarding()


@pytest.mark.parametrize(
    "rows",
    [
        [(1000, 0), (1000, 5)],  # repeated timestamp
        [(2000, 0), (1000, 5)],  # timestamp goes back
        [(1000, 5), (2000, 4)],  # offset goes back
    ],
)
def test_time_index_with_inconsistent_entries_is_corrupt(time_index_path, rows):
    _write_rows(time_index_path, TIME_ENTRY, rows)
    index = TimeIndex(time_index_path, 100, 10)
    try:
        with pytest.raises(CorruptIndexError):
            index.lookup(1500)
    finally:
        index.close()


@pytest.mark.parametrize("size", [1, 8, 16, 30])
def test_time_index_size_must_be_a_multiple_of_the_entry(time_index_path, size):
    time_index_path.write_bytes(b"\0" * size)
    with pytest.raises(CorruptIndexError, match="not a multiple"):
        TimeIndex(time_index_path, 100, 10)


# -- as a partition log maintains them ------------------------------------------------

SIZES = [90, 150, 333, 480, 210, 1200, 95]


@pytest.mark.parametrize("interval", [0, 700, 2500])
def test_offset_index_has_about_one_entry_per_interval(open_log, interval):
    log = open_log(index_interval_bytes=interval, segment_bytes=40_000)
    for i in range(250):
        log.append(batch_of_size(SIZES[i % len(SIZES)], tag=f"b{i}"))
    log.flush()  # hands the active segment's pending entries to the file
    assert len(log.segments) > 2

    for segment in log.segments:
        headers = batch_headers(segment.path)
        sizes = {pos: h.batch_length + 12 for pos, h in headers}
        base_at = {pos: h.base_offset for pos, h in headers}
        entries = offset_index_entries(
            segment_file(log.directory, segment.base_offset, ".index"), segment.base_offset
        )
        assert entries == segment.offset_index.entries()
        # Every entry names a real batch start and that batch's base offset.
        assert all(base_at.get(pos) == offset for offset, pos in entries)
        # An entry is added once more than `interval` bytes went in since the previous one
        # (the segment start counts as one), so consecutive entries are interval..interval+batch
        # apart and the bytes after the last one, minus the final batch, are within the interval.
        starts = [0, *(pos for _, pos in entries)]
        for previous, current in itertools.pairwise(starts):
            batch_before = max(p for p in sizes if p < current)
            assert current - previous > interval
            assert current - previous - sizes[batch_before] <= interval
        last_batch = headers[-1][0]
        assert last_batch - starts[-1] <= interval
        assert segment.size // (interval + max(SIZES)) - 1 <= len(entries)
        assert len(entries) <= segment.size // max(interval, 1)


def test_time_index_entries_of_rolled_segments(open_log):
    rng = random.Random(7)
    log = open_log(index_interval_bytes=300, segment_bytes=2500)
    for i in range(120):
        # Timestamps wander up and down, as producers' clocks do.
        log.append(
            batch_of_size(200, tag=f"b{i}", timestamp_ms=BASE_TIMESTAMP + rng.randint(0, 50))
        )
    segments = log.segments
    assert len(segments) > 5

    for segment in segments[:-1]:
        headers = [h for _, h in batch_headers(segment.path)]
        entries = time_index_entries(
            segment_file(log.directory, segment.base_offset, ".timeindex"), segment.base_offset
        )
        largest = max(h.max_timestamp for h in headers)
        # The last entry of a rolled segment is its largest timestamp, at the first batch
        # that reached it: what time retention and timestamp lookups rely on.
        assert entries[-1] == (
            largest,
            next(h.base_offset for h in headers if h.max_timestamp == largest),
        )
        assert segment.largest_timestamp == largest
        # Every entry (T, o): T is the running maximum up to o, and every earlier batch is older.
        for ts, offset in entries:
            upto = [h.max_timestamp for h in headers if h.base_offset <= offset]
            before = [h.max_timestamp for h in headers if h.base_offset < offset]
            assert max(upto) == ts
            assert all(t < ts for t in before)
        assert [t for t, _ in entries] == sorted({t for t, _ in entries})


def test_indexes_written_before_a_reopen_are_used_after_it(open_log):
    log = open_log(index_interval_bytes=500, segment_bytes=5000)
    for i in range(100):
        log.append(batch_of_size(SIZES[i % len(SIZES)], tag=f"b{i}"))
    expected = read_all_records(log)
    entries = {s.base_offset: s.offset_index.entries() for s in log.segments}
    log.close()

    reopened = open_log(index_interval_bytes=500, segment_bytes=5000)

    assert reopened.recovery_report.clean_shutdown
    assert reopened.recovery_report.rebuilt_indexes == []
    assert {s.base_offset: s.offset_index.entries() for s in reopened.segments} == entries
    assert read_all_records(reopened) == expected
    for offset in range(0, 100, 7):
        file_slice = reopened.read(offset, 1)
        assert file_slice is not None
        assert file_slice.first_offset == offset


@pytest.mark.parametrize("how", ["clean", "crash"])
def test_indexing_resumes_where_it_left_off_after_reopen(open_log, how):
    """Appends after a reopen index exactly as if the log had never been closed."""
    rng = random.Random(11)
    config = {"index_interval_bytes": 600, "segment_bytes": 50_000}
    log = open_log(**config)
    for i in range(40):
        ts = BASE_TIMESTAMP + rng.randint(0, 1000)
        log.append(batch_of_size(SIZES[i % len(SIZES)], tag=f"b{i}", timestamp_ms=ts))
    if how == "clean":
        log.close()
    else:
        log.close_handlers()

    log = open_log(**config)
    for i in range(40, 80):
        ts = BASE_TIMESTAMP + rng.randint(0, 1000)
        log.append(batch_of_size(SIZES[i % len(SIZES)], tag=f"b{i}", timestamp_ms=ts))
    active = log.active_segment
    while active.offset_index.last_entry()[0] != log.log_end_offset - 1:
        log.append(batch_of_size(100, tag="filler", timestamp_ms=BASE_TIMESTAMP))
    # The largest timestamp of all lands right after an index entry, in the unindexed tail.
    last = log.append(batch_of_size(100, tag="last", timestamp_ms=BASE_TIMESTAMP + 5000))
    offsets, times = active.offset_index.entries(), active.time_index.entries()
    assert len(offsets) > 10
    assert offsets[-1][0] < last.first_offset
    assert times[-1][0] < BASE_TIMESTAMP + 5000

    log.roll()  # seals the segment: its time index gets the largest timestamp

    sealed = active.time_index.entries()
    assert sealed == [*times, (BASE_TIMESTAMP + 5000, last.first_offset)]
    active.rebuild_indexes()  # what recovery would build from the .log file alone
    assert active.offset_index.entries() == offsets
    assert active.time_index.entries() == sealed
