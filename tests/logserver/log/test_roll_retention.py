"""Rolling segments (size, age, full index, on request) and removing old ones (retention)."""

from __future__ import annotations

import dataclasses

import pytest

from client.errors import InvalidConfigurationError, OffsetOutOfRangeError, StorageError
from logserver.log import DeletedSegment, LogConfig
from logserver.log.checkpoint import read_checkpoint
from tests.support.batches import BASE_TIMESTAMP, batch_of_size, make_batch
from tests.support.log_files import offset_index_entries, read_all_records, segment_file

DAY_MS = 24 * 60 * 60 * 1000


def _bases(log) -> list[int]:
    return [s.base_offset for s in log.segments]


def _files(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name[0].isdigit())


# -- roll -----------------------------------------------------------------------------


def test_roll_on_segment_bytes(open_log, log_dir):
    log = open_log(segment_bytes=900)
    for i in range(3):  # 3 x 300 fills the segment exactly: no roll yet
        log.append(batch_of_size(300, tag=f"b{i}"))
    assert _bases(log) == [0]

    log.append(batch_of_size(300, tag="b3"))  # does not fit: goes to a new segment
    log.append(make_batch(4))
    log.append(batch_of_size(700))  # 300 + ~100 + 700 > 900

    assert _bases(log) == [0, 3, 8]
    assert [s.size for s in log.segments[:1]] == [900]
    assert _files(log_dir) == [
        f"{base:020d}{suffix}" for base in (0, 3, 8) for suffix in (".index", ".log", ".timeindex")
    ]
    assert "00000000000000000003.log" in _files(log_dir)
    assert [r.offset for r in read_all_records(log)] == list(range(9))


def test_roll_on_segment_ms(open_log, clock):
    log = open_log(segment_ms=1000)
    log.append(make_batch(1))

    clock.advance(999)
    log.append(make_batch(1))
    assert _bases(log) == [0]

    clock.advance(1)
    log.append(make_batch(1))
    assert _bases(log) == [0, 2]

    clock.advance(999)  # the new segment's age counts from its creation, at the roll
    log.append(make_batch(1))
    assert _bases(log) == [0, 2]
    clock.advance(1)
    log.append(make_batch(1))
    assert _bases(log) == [0, 2, 4]


def test_segment_ms_never_rolls_an_empty_segment(open_log, clock):
    log = open_log(segment_ms=1000)
    log.append(make_batch(1))
    log.roll()
    clock.advance(50_000)

    log.append(make_batch(1))  # the old, empty active segment takes the batch
    assert _bases(log) == [0, 1]
    log.append(make_batch(1))  # age counts from creation (docs/storage.md), so now it rolls
    assert _bases(log) == [0, 1, 2]


@pytest.mark.parametrize(
    ("rising_timestamps", "batches_per_segment"),
    [
        (False, 4),  # one timestamp: the offset index (3 entries) fills first
        (True, 3),  # rising timestamps: the time index (2 entries) fills first
    ],
)
def test_roll_when_an_index_is_full(open_log, log_dir, rising_timestamps, batches_per_segment):
    # 24 bytes hold 3 offset-index entries and 2 time-index entries; interval 0 indexes every
    # batch but the first of each segment.
    log = open_log(segment_index_bytes=24, index_interval_bytes=0)
    for i in range(12):
        ts = BASE_TIMESTAMP + (i if rising_timestamps else 0)
        log.append(make_batch(1, tag=f"b{i}", timestamp_ms=ts))

    assert _bases(log) == list(range(0, 12, batches_per_segment))
    for base in _bases(log)[:-1]:
        entries = offset_index_entries(segment_file(log_dir, base, ".index"), base)
        assert len(entries) == batches_per_segment - 1
    assert [r.offset for r in read_all_records(log)] == list(range(12))


def test_explicit_roll(open_log, log_dir):
    log = open_log()
    assert log.roll() == 0  # empty active segment: nothing to do
    assert _bases(log) == [0]

    log.append(make_batch(3))
    assert log.roll() == 3
    assert log.roll() == 3  # the new active segment is empty: no-op again
    assert _bases(log) == [0, 3]
    assert _files(log_dir) == [
        f"{base:020d}{suffix}" for base in (0, 3) for suffix in (".index", ".log", ".timeindex")
    ]

    log.append(make_batch(1))
    assert log.read(3, 1 << 20).path.name == "00000000000000000003.log"


# -- retention ------------------------------------------------------------------------


def _segment_per_timestamp(log, timestamps: list[int]) -> None:
    """One rolled segment of two batches per timestamp, then an active one of one batch."""
    for ts in timestamps:
        log.append(make_batch(2, timestamp_ms=ts))
        log.append(make_batch(1, timestamp_ms=ts - 500))
        log.roll()


def test_retention_ms_deletes_old_inactive_segments(open_log, clock):
    now = clock.now_ms
    log = open_log(retention_ms=10_000)
    _segment_per_timestamp(log, [now - 30_000, now - 20_000, now - 10_000, now - 1_000])
    log.append(make_batch(1, timestamp_ms=now - 99_000))  # old data in the active segment
    assert _bases(log) == [0, 3, 6, 9, 12]

    sizes = {s.base_offset: s.size for s in log.segments}
    deleted = log.delete_old_segments()

    # now - 10_000 is exactly retention.ms old: not older, so it stays.
    assert deleted == [
        DeletedSegment(0, sizes[0], "retention.ms"),
        DeletedSegment(3, sizes[3], "retention.ms"),
    ]
    assert _bases(log) == [6, 9, 12]
    assert log.log_start_offset == 6
    assert [r.offset for r in read_all_records(log)] == list(range(6, 13))
    with pytest.raises(OffsetOutOfRangeError):
        log.read(5, 1 << 20)
    with pytest.raises(OffsetOutOfRangeError):
        log.read(0, 1 << 20)
    assert log.read(6, 1 << 20).first_offset == 6

    clock.advance(1)
    assert [d.base_offset for d in log.delete_old_segments()] == [6]
    clock.advance(DAY_MS)
    assert [d.base_offset for d in log.delete_old_segments()] == [9]
    assert _bases(log) == [12]  # the active segment is never deleted
    assert log.log_start_offset == 12
    assert log.delete_old_segments() == []
    assert [r.offset for r in read_all_records(log)] == [12]


def test_retention_ms_stops_at_the_first_segment_to_keep(open_log, clock):
    now = clock.now_ms
    log = open_log(retention_ms=10_000)
    _segment_per_timestamp(log, [now - 50_000, now - 1_000, now - 50_000])
    log.append(make_batch(1, timestamp_ms=now))

    assert [d.base_offset for d in log.delete_old_segments()] == [0]
    assert _bases(log) == [3, 6, 9]


def test_retention_bytes_deletes_oldest_first_down_to_the_limit(open_log):
    log = open_log(segment_bytes=600, retention_bytes=1500)
    for i in range(11):  # five full segments of 600 bytes and an active one of 300
        log.append(batch_of_size(300, tag=f"b{i}"))
    assert [s.size for s in log.segments] == [600] * 5 + [300]

    deleted = log.delete_old_segments()

    assert deleted == [DeletedSegment(b, 600, "retention.bytes") for b in (0, 2, 4)]
    assert log.size_bytes == 1500  # at the limit; one more deletion would go below it
    assert log.log_start_offset == 6
    assert [r.offset for r in read_all_records(log)] == list(range(6, 11))
    assert log.delete_old_segments() == []

    log.append(batch_of_size(300, tag="b11"))
    log.append(batch_of_size(300, tag="b12"))  # 2100 bytes: one segment can go
    assert [d.base_offset for d in log.delete_old_segments()] == [6]
    assert log.size_bytes >= 1500


def test_retention_bytes_below_one_segment_keeps_the_active_segment(open_log):
    log = open_log(segment_bytes=600, retention_bytes=0)
    for i in range(5):
        log.append(batch_of_size(300, tag=f"b{i}"))

    assert [d.base_offset for d in log.delete_old_segments()] == [0, 2]
    assert _bases(log) == [4]
    assert [r.offset for r in read_all_records(log)] == [4]


def test_retention_minus_one_keeps_everything(open_log, clock):
    log = open_log(segment_bytes=600, retention_ms=-1, retention_bytes=-1)
    for i in range(9):
        log.append(batch_of_size(300, tag=f"b{i}", timestamp_ms=0))
    clock.advance(100 * 365 * DAY_MS)

    assert log.delete_old_segments() == []
    assert log.log_start_offset == 0
    assert len(read_all_records(log)) == 9


def test_deleted_segments_stay_readable_until_the_delay_passes(open_log, log_dir, clock):
    log = open_log(segment_bytes=600, retention_bytes=300, file_delete_delay_ms=5_000)
    for i in range(5):
        log.append(batch_of_size(300, tag=f"b{i}"))
    held = log.read(1, 1 << 20)  # e.g. a fetch response not yet sent
    expected = held.read_bytes()

    assert [d.base_offset for d in log.delete_old_segments()] == [0, 2]

    renamed = [f"{b:020d}{s}.deleted" for b in (0, 2) for s in (".index", ".log", ".timeindex")]
    assert set(renamed) <= set(_files(log_dir))
    assert not {f"{b:020d}{s}" for b in (0, 2) for s in (".log", ".index", ".timeindex")} & set(
        _files(log_dir)
    )
    assert held.read_bytes() == expected
    assert [r.value[:3] for b in held.batches() for r in b.records()] == [b"b1-"]

    clock.advance(4_999)
    assert log.purge_deleted() == 0
    assert held.read_bytes() == expected
    assert set(renamed) <= set(_files(log_dir))

    clock.advance(1)
    assert log.purge_deleted() == 2
    assert _files(log_dir) == [
        "00000000000000000004.index",
        "00000000000000000004.log",
        "00000000000000000004.timeindex",
    ]
    with pytest.raises(StorageError):
        held.read_bytes()
    assert log.purge_deleted() == 0


def test_close_removes_segments_awaiting_deletion(open_log, log_dir):
    log = open_log(segment_bytes=600, retention_bytes=0, file_delete_delay_ms=60_000)
    for i in range(3):
        log.append(batch_of_size(300, tag=f"b{i}"))
    log.delete_old_segments()
    assert any(name.endswith(".deleted") for name in _files(log_dir))

    log.close()

    assert not any(name.endswith(".deleted") for name in _files(log_dir))


@pytest.mark.parametrize("crash", [False, True], ids=["clean", "crash"])
def test_log_start_offset_survives_reopen(open_log, log_dir, crash):
    log = open_log(segment_bytes=600, retention_bytes=700)
    for i in range(7):
        log.append(batch_of_size(300, tag=f"b{i}"))
    log.delete_old_segments()
    assert log.log_start_offset == 4
    assert read_checkpoint(log_dir).log_start_offset == 4
    if crash:
        log.close_handlers()
    else:
        log.close()

    reopened = open_log(segment_bytes=600, retention_bytes=700)

    assert reopened.log_start_offset == 4
    assert reopened.log_end_offset == 7
    with pytest.raises(OffsetOutOfRangeError):
        reopened.read(3, 1 << 20)
    assert [r.offset for r in read_all_records(reopened)] == [4, 5, 6]


# -- configuration --------------------------------------------------------------------


def test_update_config_applies_to_later_appends(open_log, clock):
    log = open_log(segment_bytes=10_000, retention_ms=-1)
    for i in range(4):
        log.append(batch_of_size(300, tag=f"b{i}", timestamp_ms=clock.now_ms))
    assert _bases(log) == [0]

    log.update_config(dataclasses.replace(log.config, segment_bytes=600))
    assert log.config.segment_bytes == 600
    log.append(batch_of_size(300, tag="b4", timestamp_ms=clock.now_ms))
    log.append(batch_of_size(300, tag="b5", timestamp_ms=clock.now_ms))
    log.append(batch_of_size(300, tag="b6", timestamp_ms=clock.now_ms))
    assert _bases(log) == [0, 4, 6]

    clock.advance(DAY_MS)
    assert log.delete_old_segments() == []
    log.update_config(LogConfig.from_properties({"retention.ms": "1000"}, base=log.config))
    assert [d.base_offset for d in log.delete_old_segments()] == [0, 4]


def test_from_properties_parses_kafka_keys():
    config = LogConfig.from_properties(
        {
            "segment.bytes": "1048576",
            "retention.ms": "-1",
            "flush.messages": "100",
            "file.delete.delay.ms": 0,
        }
    )
    assert config.segment_bytes == 1048576
    assert config.retention_ms == -1
    assert config.flush_messages == 100
    assert config.file_delete_delay_ms == 0
    assert config.retention_bytes == LogConfig().retention_bytes  # untouched keys keep defaults

    overlaid = LogConfig.from_properties({"flush.messages": ""}, base=config)
    assert overlaid.flush_messages is None
    assert overlaid.segment_bytes == 1048576
    assert LogConfig.from_properties(config.to_properties()) == config
    assert "segment.bytes" in LogConfig.property_names()


@pytest.mark.parametrize(
    "props",
    [
        {"segment.byte": "1048576"},  # unknown key
        {"log.segment.bytes": "1048576"},  # a broker key, not a topic key
        {"segment.bytes": "1MB"},
        {"segment.bytes": "1.5"},
        {"segment.bytes": ""},
        {"retention.ms": None},
        {"retention.ms": True},
        {"retention.ms": "-2"},
        {"segment.bytes": "13"},
        {"segment.bytes": str(2**31)},
        {"flush.messages": "0"},
        {"flush.messages": "many"},
        {"segment.index.bytes": "11"},
    ],
)
def test_from_properties_rejects_bad_input(props):
    with pytest.raises(InvalidConfigurationError):
        LogConfig.from_properties(props)


@pytest.mark.parametrize(
    "props",
    [
        {"retention.ms": 1.5},  # a float would be cut to 1 ms, silently
        {"segment_bytes": "1048576"},  # the attribute name is not a Kafka config name
    ],
    ids=["float-value", "underscore-key"],
)
def test_from_properties_accepts_only_kafka_names_and_integers(props):
    with pytest.raises(InvalidConfigurationError):
        LogConfig.from_properties(props)


@pytest.mark.parametrize("how", ["clean", "crash", "crash-then-clean"])
def test_retention_ms_after_reopen(open_log, clock, how):
    """A reopened log knows each rolled segment's largest timestamp, wherever it sits."""
    now = clock.now_ms
    config = {"retention_ms": 10_000, "index_interval_bytes": 0}
    log = open_log(**config)
    for ts in (now - 30_000, now - 20_000, now - 5_000):
        # The newest record of each segment is its last one, past its last index entry.
        for delta in (-3_000, -2_000, 0):
            log.append(make_batch(1, timestamp_ms=ts + delta))
        log.roll()
    log.append(make_batch(1, timestamp_ms=now))
    if how == "clean":
        log.close()
    else:
        log.close_handlers()
    log = open_log(**config)
    if how == "crash-then-clean":
        log.close()
        log = open_log(**config)

    assert [s.largest_timestamp for s in log.segments] == [
        now - 30_000,
        now - 20_000,
        now - 5_000,
        now,
    ]
    assert [d.base_offset for d in log.delete_old_segments()] == [0, 3]
    clock.advance(5_000)  # the third segment's newest record is now exactly retention.ms old
    assert log.delete_old_segments() == []
    clock.advance(1)
    assert [d.base_offset for d in log.delete_old_segments()] == [6]
    assert log.log_start_offset == 9
