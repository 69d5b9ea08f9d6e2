"""offset_for_timestamp: the first record, by offset, whose timestamp is at or after a target."""

from __future__ import annotations

import random

import pytest

from client.record import Record
from logserver.log import TimestampOffset
from tests.support.batches import BASE_TIMESTAMP, make_batch
from tests.support.log_files import read_all_records

T = BASE_TIMESTAMP


def _expected(records: list[Record], target: int) -> TimestampOffset | None:
    for record in records:
        if record.timestamp >= target:
            return TimestampOffset(record.offset, record.timestamp)
    return None


def _targets(records: list[Record]) -> list[int]:
    stamps = {r.timestamp for r in records}
    return sorted(stamps | {t - 1 for t in stamps} | {t + 1 for t in stamps})


def test_empty_log_has_no_offset_for_any_timestamp(open_log):
    log = open_log()
    assert log.offset_for_timestamp(0) is None
    assert log.offset_for_timestamp(T) is None


def test_exact_record_inside_a_batch(open_log):
    log = open_log()
    log.append(make_batch(2, timestamp_ms=[T - 100, T - 50]))
    log.append(make_batch(4, timestamp_ms=[T + 100, T + 300, T + 200, T + 400]))

    assert log.offset_for_timestamp(0) == TimestampOffset(0, T - 100)
    assert log.offset_for_timestamp(T - 100) == TimestampOffset(0, T - 100)
    assert log.offset_for_timestamp(T - 99) == TimestampOffset(1, T - 50)
    assert log.offset_for_timestamp(T) == TimestampOffset(2, T + 100)
    assert log.offset_for_timestamp(T + 101) == TimestampOffset(3, T + 300)
    # T+200 sits at offset 4, but offset 3 (T+300) comes first and is not older.
    assert log.offset_for_timestamp(T + 200) == TimestampOffset(3, T + 300)
    assert log.offset_for_timestamp(T + 301) == TimestampOffset(5, T + 400)
    assert log.offset_for_timestamp(T + 400) == TimestampOffset(5, T + 400)
    assert log.offset_for_timestamp(T + 401) is None


def test_timestamps_that_go_backwards_between_batches(open_log):
    log = open_log()
    log.append(make_batch(2, timestamp_ms=[T + 100, T + 110]))  # 0, 1
    log.append(make_batch(2, timestamp_ms=[T + 300, T + 305]))  # 2, 3
    log.append(make_batch(2, timestamp_ms=[T + 200, T + 400]))  # 4, 5: goes back, then up
    log.append(make_batch(1, timestamp_ms=T + 50))  # 6: far back

    assert log.offset_for_timestamp(T + 150) == TimestampOffset(2, T + 300)
    assert log.offset_for_timestamp(T + 200) == TimestampOffset(2, T + 300)
    assert log.offset_for_timestamp(T + 306) == TimestampOffset(5, T + 400)
    assert log.offset_for_timestamp(T) == TimestampOffset(0, T + 100)
    assert log.offset_for_timestamp(T + 401) is None


def test_none_when_every_record_is_older(open_log):
    log = open_log(segment_bytes=500)
    for i in range(10):
        log.append(make_batch(3, timestamp_ms=T + i))
    assert len(log.segments) > 1
    assert log.offset_for_timestamp(T + 10) is None
    assert log.offset_for_timestamp(2**62) is None


def _fill(log, rng: random.Random, batches: int) -> None:
    """Batches whose timestamps drift upwards with jitter, so they often go backwards."""
    for i in range(batches):
        count = rng.randint(1, 4)
        center = T + i * 10
        stamps = [center + rng.randint(-40, 40) for _ in range(count)]
        log.append(
            make_batch(count, tag=f"b{i}", value_size=rng.randint(0, 120), timestamp_ms=stamps)
        )


CONFIG = {"segment_bytes": 3000, "index_interval_bytes": 400, "retention_ms": -1}


def test_matches_a_scan_of_every_record_across_segments(open_log):
    log = open_log(**CONFIG)
    _fill(log, random.Random(1), 150)
    records = read_all_records(log)
    assert len(log.segments) > 5

    for target in _targets(records):
        assert log.offset_for_timestamp(target) == _expected(records, target), target


@pytest.mark.parametrize("how", ["clean", "crash", "crash-then-clean"])
def test_matches_a_scan_after_reopen(open_log, how):
    log = open_log(**CONFIG)
    rng = random.Random(2)
    _fill(log, rng, 80)
    log.flush()
    _fill(log, rng, 80)  # rolled and active segments past the recovery point
    records = read_all_records(log)
    assert log.recovery_point < log.active_segment.base_offset

    if how == "clean":
        log.close()
    else:
        log.close_handlers()
    log = open_log(**CONFIG)
    if how == "crash-then-clean":
        log.close()
        log = open_log(**CONFIG)

    assert log.recovery_report.clean_shutdown == (how != "crash")
    assert read_all_records(log) == records
    for target in _targets(records):
        assert log.offset_for_timestamp(target) == _expected(records, target), target


def test_respects_the_log_start_after_retention(open_log):
    log = open_log(segment_bytes=1000, retention_bytes=2500, retention_ms=-1)
    for i in range(40):
        log.append(
            make_batch(2, tag=f"b{i}", value_size=100, timestamp_ms=[T + i * 10, T + i * 10 + 5])
        )
    deleted = log.delete_old_segments()
    assert deleted
    start = log.log_start_offset
    records = read_all_records(log)
    assert records[0].offset == start > 0

    # Everything deleted was older; the answer is the first record still in the log.
    assert log.offset_for_timestamp(0) == TimestampOffset(start, records[0].timestamp)
    assert log.offset_for_timestamp(T) == TimestampOffset(start, records[0].timestamp)
    for target in _targets(records):
        assert log.offset_for_timestamp(target) == _expected(records, target), target
