"""``PartitionLog.truncate_to``: a follower dropping a divergent suffix.

Every batch holding the target offset or a later one goes (the batch holding
the target goes whole, so the new end may be below it); later segments are
deleted at once; the cut segment becomes the active segment again with indexes
rebuilt; the recovery point drops and the checkpoint is rewritten. After it the
log must behave exactly like a log that never held the removed batches: appends,
reads, timestamp lookups, retention, rolls, clean and crash reopens, and
``segment-tools verify``.

Most tests here build logs with ``tests.support.damage`` (``LogLayout`` knows
where every batch landed) and compare with what the same log would hold had
the removed batches never been appended.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.errors import CorruptRecordError, OffsetOutOfRangeError, StorageError
from logserver.log import LogConfig, PartitionLog
from logserver.log.checkpoint import read_checkpoint
from logserver.log.files import (
    CHECKPOINT_FILE,
    CLEAN_SHUTDOWN_FILE,
    INDEX_SUFFIX,
    LEADER_EPOCH_FILE,
    LOG_SUFFIX,
    TIME_INDEX_SUFFIX,
    segment_path,
)
from logserver.log.segment import LogSegment
from segment_tools.verify import verify_directory
from tests.support.batches import BASE_TIMESTAMP, make_batch
from tests.support.clock import FakeClock
from tests.support.damage import (
    LogLayout,
    append_tracked,
    check_layout_matches_disk,
    fill_log,
    flip_bit,
    ram_directory,
    read_all,
    snapshot,
    varied_batch,
)
from tests.support.log_files import (
    batch_headers,
    offset_index_entries,
    read_all_records,
    time_index_entries,
)

# Small segments (a dozen batches each) and dense indexes, so truncations land in
# every kind of place: inside a batch, on a batch edge, on a segment edge.
CONFIG = LogConfig(
    segment_bytes=1200,
    index_interval_bytes=150,
    segment_index_bytes=1 << 20,
    retention_ms=-1,
    file_delete_delay_ms=0,
)
CONFIG_FIELDS = dataclasses.asdict(CONFIG)


def _segment_files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name[0].isdigit())


def _bases(log: PartitionLog) -> list[int]:
    return [s.base_offset for s in log.segments]


def _cut_layout(layout: LogLayout, offset: int) -> LogLayout:
    """The layout once every batch holding ``offset`` or later is gone."""
    kept = LogLayout()
    for span in layout.batches:
        if span.last_offset < offset:
            kept.add(span)
    return kept


def _verify(directory: Path) -> None:
    result = verify_directory(directory)
    assert result.ok, [str(p) for p in result.problems]
    assert not result.warnings, result.warnings


def _filled(open_log, batches: int = 40) -> tuple[PartitionLog, LogLayout]:
    log = open_log(**CONFIG_FIELDS)
    layout = LogLayout()
    fill_log(log, layout, batches)
    assert len(layout.bases) >= 3, "the test wants several segments"
    return log, layout


# -- where the cut lands --------------------------------------------------------------


def test_truncate_inside_a_batch_removes_the_whole_batch(open_log, log_dir):
    log, layout = _filled(open_log)
    span = next(b for b in layout.batches[5:] if b.last_offset > b.first_offset)
    target = span.first_offset + 1  # inside a batch of several records

    assert log.truncate_to(target) == span.first_offset
    assert log.log_end_offset == span.first_offset
    kept = _cut_layout(layout, target)
    assert read_all(log) == kept.values()
    check_layout_matches_disk(kept, log_dir)


def test_truncate_at_a_batch_boundary_keeps_the_batch_before(open_log, log_dir):
    log, layout = _filled(open_log)
    span = layout.batches[17]
    assert log.truncate_to(span.first_offset) == span.first_offset
    assert read_all(log) == layout.values(17)
    check_layout_matches_disk(_cut_layout(layout, span.first_offset), log_dir)


def test_truncate_to_the_last_offset_of_a_batch_removes_that_batch(open_log):
    log, layout = _filled(open_log)
    span = layout.batches[11]
    assert span.last_offset == span.first_offset + 2
    assert log.truncate_to(span.last_offset) == span.first_offset
    assert read_all(log) == layout.values(11)


def test_truncate_at_or_after_the_end_changes_nothing(open_log, log_dir):
    log, layout = _filled(open_log)
    log.flush()
    before = snapshot(log_dir)
    for offset in (layout.log_end, layout.log_end + 1, layout.log_end + 10**9):
        assert log.truncate_to(offset) == layout.log_end
    assert snapshot(log_dir) == before
    assert (log.log_end_offset, log.recovery_point) == (layout.log_end, layout.log_end)


def test_truncate_deletes_later_segments_at_once(open_log, log_dir):
    log, layout = _filled(open_log)
    bases = layout.bases
    cut_base = bases[1]
    span = layout.in_segment(cut_base)[3]
    log.truncate_to(span.first_offset)

    assert _bases(log) == bases[:2]
    assert log.active_segment.base_offset == cut_base
    assert log.active_segment.size == span.position
    assert _segment_files(log_dir) == [
        f"{b:020d}{suffix}" for b in bases[:2] for suffix in (".index", ".log", ".timeindex")
    ]
    assert not list(log_dir.glob("*.deleted"))


def test_truncate_at_a_segment_base_leaves_that_segment_empty_and_active(open_log, log_dir):
    log, layout = _filled(open_log)
    base = layout.bases[2]
    assert log.truncate_to(base) == base
    assert _bases(log) == layout.bases[:3]
    assert log.active_segment.is_empty
    assert segment_path(log_dir, base, LOG_SUFFIX).stat().st_size == 0
    assert read_all(log) == _cut_layout(layout, base).values()
    # The next append goes into that empty segment (no roll, no second segment at base).
    info = log.append(varied_batch(100))
    assert info.first_offset == base
    assert _bases(log) == layout.bases[:3]


def test_truncate_to_the_log_start_empties_the_log(open_log, log_dir):
    log, _ = _filled(open_log)
    assert log.truncate_to(0) == 0
    assert _bases(log) == [0]
    assert (log.log_start_offset, log.log_end_offset, log.size_bytes) == (0, 0, 0)
    assert log.read(0, 1 << 20) is None
    assert log.append(make_batch(2)).first_offset == 0
    assert [r.value for r in read_all_records(log)] == [b"v-0", b"v-1"]


def test_truncate_below_the_log_start_is_refused_and_changes_nothing(open_log, log_dir, clock):
    log, layout = _filled(open_log)
    log.update_config(dataclasses.replace(CONFIG, retention_bytes=0))
    deleted = log.delete_old_segments()
    assert deleted
    start = log.log_start_offset
    assert start == layout.bases[-1]
    before = snapshot(log_dir)
    for offset in (start - 1, 0, -1, -(2**40)):
        with pytest.raises(OffsetOutOfRangeError, match="below the log start"):
            log.truncate_to(offset)
    assert snapshot(log_dir) == before
    assert (log.log_start_offset, log.log_end_offset) == (start, layout.log_end)
    # At the log start itself it is allowed: the log is then empty.
    assert log.truncate_to(start) == start
    assert (log.log_start_offset, log.log_end_offset) == (start, start)
    assert log.append(make_batch(1)).first_offset == start


def test_truncate_right_after_retention_to_a_middle_segment(open_log, log_dir):
    log, layout = _filled(open_log)
    first_size = layout.segment_sizes[layout.bases[0]]
    log.update_config(
        dataclasses.replace(CONFIG, retention_bytes=sum(layout.segment_sizes.values()) - first_size)
    )
    assert [d.base_offset for d in log.delete_old_segments()] == layout.bases[:1]
    target = layout.in_segment(layout.bases[1])[2].first_offset + 1
    new_end = log.truncate_to(target)
    assert read_all(log) == {
        o: v for o, v in _cut_layout(layout, target).values().items() if o >= layout.bases[1]
    }
    assert log.log_end_offset == new_end


# -- state after the cut -------------------------------------------------------------------


def test_recovery_point_drops_and_checkpoint_is_written(open_log, log_dir):
    log, layout = _filled(open_log)
    log.flush()
    assert log.recovery_point == layout.log_end
    target = layout.batches[20].first_offset
    log.truncate_to(target)
    assert log.recovery_point == target
    checkpoint = read_checkpoint(log_dir)
    assert checkpoint is not None
    assert (checkpoint.recovery_point, checkpoint.log_start_offset) == (target, 0)


def test_recovery_point_below_the_cut_stays(open_log, log_dir):
    log, layout = _filled(open_log)
    log.flush(layout.batches[5].first_offset)
    rp = log.recovery_point
    log.truncate_to(layout.batches[30].first_offset)
    assert log.recovery_point == rp
    checkpoint = read_checkpoint(log_dir)
    assert checkpoint is not None
    assert checkpoint.recovery_point == rp


def test_cut_segment_indexes_are_rebuilt(open_log, log_dir):
    """In memory at once, and on disk after close: equal to what appends would have built."""
    log, layout = _filled(open_log)
    base = layout.bases[1]
    segment_spans = layout.in_segment(base)
    target = segment_spans[len(segment_spans) // 2].first_offset
    log.flush()  # the full segment's index is on disk now
    full_index = offset_index_entries(segment_path(log_dir, base, INDEX_SUFFIX), base)
    assert full_index, "the test wants a segment with index entries"

    log.truncate_to(target)
    segment = log.active_segment
    assert segment.base_offset == base
    assert not segment.sealed
    assert segment.next_offset == target
    # Every offset still in the segment is found through the rebuilt index.
    for span in _cut_layout(layout, target).in_segment(base):
        for offset in range(span.first_offset, span.last_offset + 1):
            found = segment.find(offset)
            assert found is not None
            assert found[0] == span.position
    assert segment.find(target) is None
    log.close()
    rebuilt = offset_index_entries(segment_path(log_dir, base, INDEX_SUFFIX), base)
    assert rebuilt == [e for e in full_index if e[0] < target]
    positions = {p for p, _ in batch_headers(segment_path(log_dir, base, LOG_SUFFIX))}
    assert {p for _, p in rebuilt} <= positions
    times = time_index_entries(segment_path(log_dir, base, TIME_INDEX_SUFFIX), base)
    assert all(o < target for _, o in times)
    _verify(log_dir)


def test_appends_continue_at_the_new_end_in_the_cut_segment(open_log, log_dir):
    log, layout = _filled(open_log)
    base = layout.bases[1]
    target = layout.in_segment(base)[4].first_offset
    log.truncate_to(target)
    kept = _cut_layout(layout, target)
    for k in range(100, 140):
        span = append_tracked(log, varied_batch(k, tag="new"), kept)
        if k == 100:
            assert (span.segment, span.first_offset) == (base, target)
            assert span.position == layout.in_segment(base)[4].position
    check_layout_matches_disk(kept, log_dir)
    assert read_all(log) == kept.values()
    assert len(log.segments) > 2, "the new appends should have rolled the cut segment"
    log.close()
    _verify(log_dir)


def _replay(
    directory: Path, clock: FakeClock, batches: list[tuple[bytes, int | None]], rolls: set[int]
) -> dict[str, bytes]:
    """A log built by appending ``batches`` (rolling before each offset in ``rolls``), closed."""
    log = PartitionLog.open(directory, CONFIG, clock_ms=clock)
    for data, epoch in batches:
        if log.log_end_offset in rolls:
            log.roll()
        log.append(data, leader_epoch=epoch)
    if log.log_end_offset in rolls:
        log.roll()
    log.close()
    return snapshot(directory)


_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("append"), st.integers(0, 10_000), st.integers(0, 3)),
        st.tuples(st.just("truncate"), st.integers(0, 100), st.integers(0, 2)),
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=60, deadline=None)
@given(ops=_OPS, initial=st.integers(0, 50))
def test_truncated_log_is_byte_identical_to_one_that_never_held_the_suffix(ops, initial):
    """Random appends and truncations, then close: every file (segments, indexes, time
    indexes, checkpoint, epoch cache) equals that of a log built by appending only the
    surviving batches.

    The reference rolls where the truncated log has a segment boundary: a truncation
    to a segment base keeps that (now empty) segment, as Kafka does, so the next
    append does not go into the segment before it.
    """
    clock = FakeClock()
    with ram_directory("truncate-ref-") as root:
        log = PartitionLog.open(root / "cut", CONFIG, clock_ms=clock)
        alive: list[tuple[int, bytes, int | None]] = []  # (last offset, data, epoch)
        epoch = 0
        k = 0

        def append(seed: int, bump: int) -> None:
            nonlocal k, epoch
            epoch += bump
            data = varied_batch(seed, tag=f"k{k}")
            k += 1
            chosen = None if bump == 3 else epoch
            info = log.append(data, leader_epoch=chosen)
            alive.append((info.last_offset, data, chosen))

        for i in range(initial):
            append(i, 0)
        for op, a, b in ops:
            if op == "append":
                append(a, b)
            else:
                end = log.log_end_offset
                target = end - a if b == 0 else a * end // 100
                new_end = log.truncate_to(max(target, 0))
                alive = [x for x in alive if x[0] < new_end]
                assert new_end == (alive[-1][0] + 1 if alive else 0)
        rolls = {s.base_offset for s in log.segments}
        log.close()
        got = snapshot(root / "cut")
        expected = _replay(root / "ref", clock, [(d, e) for _, d, e in alive], rolls)
        # An epoch file emptied by truncation equals none at all.
        for files in (got, expected):
            epochs = files.pop(LEADER_EPOCH_FILE, None)
            entries = json.loads(epochs)["entries"] if epochs else []
            files[LEADER_EPOCH_FILE] = json.dumps(entries).encode()
        assert got.keys() == expected.keys()
        for name in sorted(got):
            assert got[name] == expected[name], name


# -- reads, timestamps, retention, roll -----------------------------------------------------


def test_reads_after_truncate(open_log):
    log, layout = _filled(open_log)
    target = layout.batches[22].first_offset + 1
    new_end = log.truncate_to(target)
    assert log.read(new_end, 1 << 20) is None
    for offset in (new_end + 1, target, layout.log_end):
        with pytest.raises(OffsetOutOfRangeError):
            log.read(offset, 1 << 20)
    last = log.read(new_end - 1, 1 << 20)
    assert last is not None
    assert list(last.batches())[-1].next_offset == new_end
    # max_offset beyond the new end is clamped to it
    got = log.read(0, 1 << 30, max_offset=layout.log_end)
    assert got is not None
    assert next(iter(got.batches())).base_offset == 0


def test_offset_for_timestamp_forgets_removed_records(open_log):
    log = open_log(**CONFIG_FIELDS)
    for i in range(30):  # timestamps rise with the offset: 10 ms apart
        log.append(
            make_batch(2, tag=f"t{i}", timestamp_ms=[BASE_TIMESTAMP + 20 * i + j for j in (0, 10)])
        )
    assert log.offset_for_timestamp(BASE_TIMESTAMP + 500).offset == 50
    new_end = log.truncate_to(41)
    assert new_end == 40
    assert log.offset_for_timestamp(BASE_TIMESTAMP + 390).offset == 39
    assert log.offset_for_timestamp(BASE_TIMESTAMP + 391) is None
    assert log.offset_for_timestamp(BASE_TIMESTAMP + 500) is None
    assert log.active_segment.largest_timestamp == BASE_TIMESTAMP + 390
    # New records with lower timestamps than the removed ones are found.
    log.append(make_batch(1, tag="new", timestamp_ms=BASE_TIMESTAMP + 395))
    found = log.offset_for_timestamp(BASE_TIMESTAMP + 391)
    assert found is not None
    assert (found.offset, found.timestamp) == (40, BASE_TIMESTAMP + 395)


def test_time_retention_uses_the_cut_segments_new_largest_timestamp(open_log, clock):
    log = open_log(**{**CONFIG_FIELDS, "retention_ms": 10_000})
    now = clock()
    log.append(make_batch(1, tag="old", value_size=300, timestamp_ms=now - 60_000))
    log.append(make_batch(1, tag="new", value_size=300, timestamp_ms=now))  # the recent one
    log.roll()
    log.append(make_batch(1, tag="next"))
    assert log.delete_old_segments() == []  # segment 0 holds a recent record

    log.truncate_to(1)  # drop the recent record (and the segment after it)
    assert _bases(log) == [0]
    assert log.active_segment.largest_timestamp == now - 60_000
    log.roll()
    log.append(make_batch(1, tag="after", timestamp_ms=now))
    deleted = log.delete_old_segments()
    assert [(d.base_offset, d.reason) for d in deleted] == [(0, "retention.ms")]
    assert log.log_start_offset == 1


def test_size_retention_after_truncate(open_log, log_dir):
    log, layout = _filled(open_log)
    target = layout.in_segment(layout.bases[2])[1].first_offset
    log.truncate_to(target)
    log.update_config(dataclasses.replace(CONFIG, retention_bytes=0))
    deleted = log.delete_old_segments()
    assert [d.base_offset for d in deleted] == layout.bases[:2]
    assert log.log_start_offset == layout.bases[2]
    assert _segment_files(log_dir) == [
        f"{layout.bases[2]:020d}{s}" for s in (".index", ".log", ".timeindex")
    ]


def test_segment_bytes_roll_after_truncate(open_log):
    log, layout = _filled(open_log)
    base = layout.bases[0]
    log.truncate_to(layout.in_segment(base)[-1].first_offset)  # cut the last batch of segment 0
    assert _bases(log) == [base]
    free = CONFIG.segment_bytes - log.active_segment.size
    big = make_batch(1, tag="big", value_size=free + 1)
    assert len(big) > free
    info = log.append(big)
    assert _bases(log) == [base, info.first_offset]


def test_segment_ms_counts_from_the_cut_segments_creation(open_log, clock):
    """The cut segment keeps its creation time: its age still counts for segment.ms."""
    log = open_log(**{**CONFIG_FIELDS, "segment_ms": 1_000})
    log.append(make_batch(1))
    log.append(make_batch(1))
    clock.advance(600)
    log.roll()
    log.append(make_batch(1))
    assert _bases(log) == [0, 2]
    assert log.truncate_to(1) == 1
    assert _bases(log) == [0]
    clock.advance(399)
    log.append(make_batch(1))
    assert _bases(log) == [0]
    clock.advance(1)  # segment 0 is now 1000 ms old
    log.append(make_batch(1))
    assert _bases(log) == [0, 2]


def test_truncate_while_removed_segments_wait_for_deletion(open_log, log_dir, clock):
    log = open_log(**{**CONFIG_FIELDS, "file_delete_delay_ms": 60_000})
    layout = LogLayout()
    fill_log(log, layout, 40)
    log.update_config(
        dataclasses.replace(
            CONFIG,
            retention_bytes=layout.segment_sizes[layout.bases[-1]],
            file_delete_delay_ms=60_000,
        )
    )
    deleted = log.delete_old_segments()
    held = [b for b in layout.bases if b < log.log_start_offset]
    assert [d.base_offset for d in deleted] == held
    assert len(list(log_dir.glob("*.log.deleted"))) == len(held)
    start = log.log_start_offset
    target = layout.in_segment(start)[1].first_offset
    assert log.truncate_to(target) == target
    assert len(list(log_dir.glob("*.log.deleted"))) == len(held)
    clock.advance(60_000)
    assert log.purge_deleted() == len(held)
    assert not list(log_dir.glob("*.deleted"))
    assert read_all(log) == {
        o: v for o, v in _cut_layout(layout, target).values().items() if o >= start
    }


def test_slices_of_removed_data_fail_instead_of_serving_other_bytes(open_log):
    log, layout = _filled(open_log)
    last_base = layout.bases[-1]
    later = log.read(last_base, 1 << 20)
    cut_base = layout.bases[1]
    span = layout.in_segment(cut_base)[3]
    past_cut = log.read(span.first_offset, 1 << 20)
    kept = log.read(cut_base, 1 << 20, max_offset=span.first_offset)
    assert later is not None
    assert past_cut is not None
    assert kept is not None

    log.truncate_to(span.first_offset)
    with pytest.raises(StorageError):
        later.read_bytes()  # its segment is deleted
    with pytest.raises(StorageError):
        past_cut.read_bytes()  # its bytes are cut
    assert [b.base_offset for b in kept.batches()] == [
        s.first_offset for s in layout.in_segment(cut_base)[:3]
    ]


# -- restarts ------------------------------------------------------------------------------


def _twin_logs(root: Path, clock: FakeClock, *, append_after: int) -> list[PartitionLog]:
    """Two identical logs, truncated in the same places, then ``append_after`` more batches."""
    logs = []
    for name in ("a", "b"):
        log = PartitionLog.open(root / name, CONFIG, clock_ms=clock)
        layout = LogLayout()
        fill_log(log, layout, 40)
        log.flush(layout.batches[8].first_offset)
        log.truncate_to(layout.batches[30].first_offset + 1)
        log.truncate_to(layout.batches[25].first_offset)
        fill_log(log, LogLayout(), append_after, start=200)
        logs.append(log)
    return logs


@pytest.mark.parametrize("append_after", [0, 3, 30])
@pytest.mark.parametrize("full_recovery", [False, True])
def test_clean_and_crash_reopen_after_truncate_give_the_same_log(
    tmp_path, clock, append_after, full_recovery
):
    clean, crashed = _twin_logs(tmp_path, clock, append_after=append_after)
    expected = read_all(clean)
    end = clean.log_end_offset
    bases = _bases(clean)
    clean.close()
    crashed.close_handlers()  # what kill -9 leaves

    reopened_clean = PartitionLog.open(tmp_path / "a", CONFIG, clock_ms=clock)
    reopened_crash = PartitionLog.open(
        tmp_path / "b", CONFIG, clock_ms=clock, full_recovery=full_recovery
    )
    try:
        assert reopened_clean.recovery_report.clean_shutdown
        report = reopened_crash.recovery_report
        assert not report.clean_shutdown
        assert not report.lost_data, report.describe()
        for log in (reopened_clean, reopened_crash):
            assert (log.log_start_offset, log.log_end_offset) == (0, end)
            assert _bases(log) == bases
            assert read_all(log) == expected
            assert log.append(make_batch(1, tag="after")).first_offset == end
    finally:
        reopened_clean.close()
        reopened_crash.close()
    a, b = snapshot(tmp_path / "a"), snapshot(tmp_path / "b")
    assert a == b
    _verify(tmp_path / "a")


def test_crash_right_after_truncate_recovers_from_the_lowered_recovery_point(open_log, log_dir):
    log, layout = _filled(open_log)
    log.flush()
    target = layout.in_segment(layout.bases[1])[2].first_offset
    log.truncate_to(target)
    log.close_handlers()
    reopened = open_log(**CONFIG_FIELDS)
    report = reopened.recovery_report
    assert not report.lost_data, report.describe()
    assert report.validated_from_offset == layout.bases[1]
    assert read_all(reopened) == _cut_layout(layout, target).values()
    assert reopened.log_end_offset == target


def test_reopen_does_not_resurrect_anything(open_log, log_dir):
    """Nothing of the removed suffix comes back, by a clean or an unclean reopen."""
    log, layout = _filled(open_log)
    log.close()
    log = open_log(**CONFIG_FIELDS)
    k = next(i for i, b in enumerate(layout.batches) if i > 10 and b.last_offset > b.first_offset)
    target = layout.batches[k].first_offset + 1
    log.truncate_to(target)
    log.close_handlers()
    log = open_log(**CONFIG_FIELDS, full_recovery=True)
    assert log.log_end_offset == layout.batches[k].first_offset
    log.close()
    log = open_log(**CONFIG_FIELDS)
    assert log.log_end_offset == layout.batches[k].first_offset
    assert read_all(log) == layout.values(k)


def test_segment_tools_verify_passes_after_truncate(open_log, log_dir):
    log, layout = _filled(open_log)
    log.truncate_to(layout.batches[27].first_offset + 1)
    fill_log(log, LogLayout(), 5, start=300)
    log.close()
    result = subprocess.run(
        [sys.executable, "-m", "segment_tools", "verify", str(log_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("OK:"), result.stdout
    assert "WARNING" not in result.stdout


# -- failures ------------------------------------------------------------------------------


def test_truncate_on_a_closed_log_is_refused(open_log):
    log, _ = _filled(open_log)
    log.close()
    with pytest.raises(StorageError, match="closed"):
        log.truncate_to(3)


def test_io_error_while_truncating_stops_appends_until_reopened(open_log, log_dir, monkeypatch):
    log, layout = _filled(open_log)
    target = layout.in_segment(layout.bases[1])[2].first_offset

    def failing_ftruncate(fd: int, length: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "ftruncate", failing_ftruncate)
    with pytest.raises(StorageError, match="truncating to"):
        log.truncate_to(target)
    monkeypatch.undo()
    with pytest.raises(StorageError):
        log.append(make_batch(1))
    with pytest.raises(StorageError):
        log.truncate_to(0)
    log.close()
    assert not (log_dir / CLEAN_SHUTDOWN_FILE).exists()

    reopened = open_log(**CONFIG_FIELDS)
    assert not reopened.recovery_report.clean_shutdown
    records = read_all(reopened)  # contiguous: whatever survived is a prefix
    end = reopened.log_end_offset
    assert records == {o: v for o, v in layout.values().items() if o < end}
    assert reopened.append(make_batch(1)).first_offset == end
    reopened.close()
    _verify(log_dir)


def test_truncate_through_a_damaged_segment_leaves_a_consistent_log(open_log, log_dir):
    """A ``CorruptRecordError`` from the header walk to the cut must leave the log as it
    was, or refuse appends until reopened. (Once it came after the later segments were
    deleted, and the log kept its old end: the next append got an offset past the data.)
    """
    log = open_log(**{**CONFIG_FIELDS, "index_interval_bytes": 1 << 20})  # walks from 0
    layout = LogLayout()
    fill_log(log, layout, 40)
    bases = _bases(log)
    cut_base = layout.bases[0]
    spans = layout.in_segment(cut_base)
    flip_bit(segment_path(log_dir, cut_base, LOG_SUFFIX), spans[2].position + 7)  # base offset
    with pytest.raises(CorruptRecordError):
        log.truncate_to(spans[5].first_offset)

    if _bases(log) == bases and len(list(log_dir.glob("*.log"))) == len(bases):
        assert log.log_end_offset == layout.log_end  # untouched: fine
        return
    try:
        info = log.append(make_batch(1, tag="after"))
    except StorageError:
        return  # refused until reopened: fine
    data_end = layout.in_segment(log.active_segment.base_offset)[-1].last_offset + 1
    pytest.fail(
        f"segments {bases} became {_bases(log)}, yet the log still ends at "
        f"{info.first_offset} and took an append there, after data ending at {data_end}"
    )


def test_flush_messages_counts_the_records_a_truncation_keeps(open_log):
    """The records a truncation keeps above the recovery point are still unflushed and
    count for ``flush.messages``. (Once truncation zeroed the count: the flush came late.)"""
    log = open_log(**{**CONFIG_FIELDS, "flush_messages": 5})
    for _ in range(4):
        log.append(make_batch(2))
    assert log.pending_flush_offset() == 8
    assert log.truncate_to(6) == 6
    assert log.recovery_point == 0
    assert log.pending_flush_offset() == 6  # 6 unflushed records >= flush.messages


def test_truncation_is_fsynced_before_the_clean_shutdown_marker(open_log, log_dir, monkeypatch):
    """A truncation is made durable before the clean-shutdown marker. Without it, after a
    truncation with nothing appended, ``close`` skipped the cut segment (its end equals
    the lowered recovery point) yet wrote the marker; after a power loss the old suffix
    could still be in the file, the clean-tail check at open would accept it, and the
    divergent suffix would come back.
    """
    log, layout = _filled(open_log)
    log.flush()
    cut_base = layout.bases[1]
    target = layout.in_segment(cut_base)[3].first_offset

    events: list[str] = []
    real_fsync = os.fsync

    def fsync_spy(fd: int) -> None:
        try:
            events.append(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            events.append("?")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync_spy)
    log.truncate_to(target)
    log.close()
    monkeypatch.undo()
    cut_log = str(segment_path(log_dir, cut_base, LOG_SUFFIX))
    marker = str(log_dir / CLEAN_SHUTDOWN_FILE)
    assert cut_log in events, "the cut segment was never fsynced"
    marker_tmp = marker + ".tmp"
    first_marker = min(i for i, e in enumerate(events) if e in (marker, marker_tmp))
    assert events.index(cut_log) < first_marker


# -- concurrency ----------------------------------------------------------------------------


def test_truncate_while_another_thread_flushes_and_reads(tmp_path):
    """A flusher and a reader run while the main thread appends and truncates: no
    deadlock, no unexpected error, and at the end the log is consistent, on disk too."""
    directory = tmp_path / "topic-0"
    log = PartitionLog.open(directory, CONFIG)
    stop = threading.Event()
    errors: list[BaseException] = []

    def flusher() -> None:
        while not stop.is_set():
            try:
                log.flush()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    def reader() -> None:
        while not stop.is_set():
            try:
                end = log.log_end_offset
                if end:
                    file_slice = log.read(end - 1, 1 << 16)
                    if file_slice is not None:
                        for batch in file_slice.batches():
                            assert batch.base_offset >= 0
            except (OffsetOutOfRangeError, StorageError, CorruptRecordError):
                # Truncated under us. A slice of the cut segment read after new appends
                # sees their bytes: a torn batch here (or, sizes permitting, the new ones).
                pass
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
                return

    threads = [threading.Thread(target=flusher), threading.Thread(target=reader)]
    for thread in threads:
        thread.start()
    layout = LogLayout()
    try:
        for round_ in range(15):
            fill_log(log, layout, 12, start=round_ * 100)
            end = log.log_end_offset
            new_end = log.truncate_to(end - 1 - round_ % 7)
            layout = _cut_layout(layout, new_end)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not errors, errors
    expected = read_all(log)
    assert expected == layout.values()
    log.close()
    _verify(directory)
    reopened = PartitionLog.open(directory, CONFIG)
    assert read_all(reopened) == expected
    reopened.close()


def test_checkpoint_after_truncate_survives_a_crash_copy(open_log, log_dir, tmp_path):
    """The directory as a crash leaves it right after ``truncate_to`` opens to the cut log."""
    log, layout = _filled(open_log)
    log.flush()
    target = layout.batches[15].first_offset
    log.truncate_to(target)
    copy = tmp_path / "copy-0"
    shutil.copytree(log_dir, copy)
    assert not (copy / CLEAN_SHUTDOWN_FILE).exists()
    assert (copy / CHECKPOINT_FILE).exists()
    reopened = open_log(**CONFIG_FIELDS, directory=copy)
    assert not reopened.recovery_report.lost_data
    assert read_all(reopened) == layout.values(15)


def test_log_segment_truncate_to_position_rejects_positions_outside_the_file(open_log):
    log, _ = _filled(open_log)
    segment: LogSegment = log.active_segment
    for position in (-1, segment.size + 1):
        with pytest.raises(ValueError, match="cannot truncate"):
            segment.truncate_to_position(position)
