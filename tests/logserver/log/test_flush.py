"""The flush policy, the recovery point and checkpoint, clean shutdown, and flushing in a thread."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from logserver.log import LogConfig, PartitionLog
from logserver.log.checkpoint import PartitionCheckpoint, read_checkpoint
from logserver.log.files import CLEAN_SHUTDOWN_FILE
from logserver.log.segment import LogSegment
from tests.support.batches import batch_of_size, make_batch
from tests.support.log_files import read_all_records

# -- policy ---------------------------------------------------------------------------


def test_fresh_log_has_nothing_to_flush(open_log):
    log = open_log(flush_messages=1, flush_ms=0)
    assert log.pending_flush_offset() is None
    assert log.maybe_flush() is False
    assert log.recovery_point == 0


def test_appends_alone_are_not_due_by_default(open_log, clock):
    log = open_log()
    for _ in range(50):
        log.append(make_batch(3))
    clock.advance(10**9)
    assert log.pending_flush_offset() is None
    assert log.maybe_flush() is False


def test_rolled_segments_are_due(open_log):
    log = open_log(segment_bytes=600)
    for i in range(5):
        log.append(batch_of_size(300, tag=f"b{i}"))
    assert [s.base_offset for s in log.segments] == [0, 2, 4]

    assert log.pending_flush_offset() == 4  # the active segment's base offset
    assert log.maybe_flush() is True
    assert log.recovery_point == 4
    assert log.pending_flush_offset() is None

    log.append(batch_of_size(300, tag="b5"))
    log.append(batch_of_size(300, tag="b6"))  # rolls
    assert log.pending_flush_offset() == 6


def test_explicit_roll_makes_the_rolled_segment_due(open_log):
    log = open_log()
    log.append(make_batch(3))
    assert log.pending_flush_offset() is None
    log.roll()
    assert log.pending_flush_offset() == 3


def test_flush_messages_makes_the_log_end_due(open_log):
    log = open_log(flush_messages=5)
    for _ in range(4):
        log.append(make_batch(1))
        assert log.pending_flush_offset() is None
    log.append(make_batch(1))
    assert log.pending_flush_offset() == 5

    assert log.maybe_flush() is True
    assert log.recovery_point == 5
    assert log.pending_flush_offset() is None

    log.append(make_batch(4))  # the count starts again after a flush to the log end
    assert log.pending_flush_offset() is None
    log.append(make_batch(3))  # records count, not batches
    assert log.pending_flush_offset() == 12


def test_flush_ms_makes_the_log_end_due(open_log, clock):
    log = open_log(flush_ms=1000)
    log.append(make_batch(2))
    clock.advance(999)
    assert log.pending_flush_offset() is None
    clock.advance(1)
    assert log.pending_flush_offset() == 2

    assert log.maybe_flush() is True
    assert log.recovery_point == 2
    log.append(make_batch(2))
    clock.advance(999)
    assert log.pending_flush_offset() is None  # the age counts from the last flush
    clock.advance(1)
    assert log.pending_flush_offset() == 4


# -- recovery point and checkpoint ----------------------------------------------------


def test_flush_advances_the_recovery_point_and_checkpoint(open_log, log_dir):
    log = open_log(segment_bytes=1000)
    assert read_checkpoint(log_dir) == PartitionCheckpoint(0, 0)
    for i in range(8):
        log.append(batch_of_size(300, tag=f"b{i}"))

    log.flush(4)
    assert log.recovery_point == 4
    assert read_checkpoint(log_dir) == PartitionCheckpoint(4, 0)

    log.flush(2)  # below the recovery point: nothing to do
    assert log.recovery_point == 4

    log.flush(10**6)  # capped at the log end
    assert log.recovery_point == 8
    assert read_checkpoint(log_dir) == PartitionCheckpoint(8, 0)

    log.append(make_batch(2))
    log.flush()
    assert log.recovery_point == log.log_end_offset == 10
    assert read_checkpoint(log_dir) == PartitionCheckpoint(10, 0)


def test_close_checkpoints_the_log_end_and_leaves_the_marker(open_log, log_dir):
    log = open_log(segment_bytes=1000)
    for i in range(7):
        log.append(batch_of_size(300, tag=f"b{i}"))
    records = read_all_records(log)
    assert not (log_dir / CLEAN_SHUTDOWN_FILE).exists()

    log.close()

    assert log.closed
    assert log.recovery_point == 7
    assert read_checkpoint(log_dir) == PartitionCheckpoint(7, 0)
    assert (log_dir / CLEAN_SHUTDOWN_FILE).exists()

    reopened = open_log(segment_bytes=1000)

    assert not (log_dir / CLEAN_SHUTDOWN_FILE).exists()
    assert reopened.recovery_report.clean_shutdown
    assert reopened.recovery_point == 7
    assert read_all_records(reopened) == records


def test_crash_leaves_no_marker_and_reopen_recovers(open_log, log_dir):
    log = open_log(segment_bytes=1000)
    for i in range(7):
        log.append(batch_of_size(300, tag=f"b{i}"))
    log.flush(3)
    records = read_all_records(log)

    log.close_handlers()

    assert not (log_dir / CLEAN_SHUTDOWN_FILE).exists()
    assert read_checkpoint(log_dir) == PartitionCheckpoint(3, 0)
    reopened = open_log(segment_bytes=1000)
    assert not reopened.recovery_report.clean_shutdown
    assert not reopened.recovery_report.lost_data
    assert read_all_records(reopened) == records
    assert reopened.recovery_point == reopened.log_end_offset == 7


# -- flushing off the appending thread ------------------------------------------------


def test_flush_in_a_thread_while_appending(open_log):
    log = open_log(segment_bytes=30_000, index_interval_bytes=512)
    done = threading.Event()
    flushed = threading.Event()

    def flusher() -> int:
        flushes = 0
        while not done.is_set():
            log.flush()
            flushes += 1
            flushed.set()
            point = log.recovery_point
            assert point <= log.log_end_offset
        return flushes

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="flusher") as pool:
        flushing = pool.submit(flusher)
        try:
            for i in range(3000):
                log.append(make_batch(1 + i % 3, tag=f"b{i}", value_size=i % 50))
                if i % 300 == 0:
                    point = log.recovery_point
                    assert point <= log.log_end_offset
                    # Make sure flushes really interleave with the appends.
                    flushed.clear()
                    assert flushed.wait(timeout=30) or flushing.done()
        finally:
            done.set()
        assert flushing.result(timeout=60) >= 10  # re-raises whatever the flusher raised

    end = log.log_end_offset
    assert end == sum(1 + i % 3 for i in range(3000))
    assert log.recovery_point <= end
    assert len(log.segments) > 3
    records = read_all_records(log)
    assert [r.offset for r in records] == list(range(end))
    assert records[-1].value.startswith(b"b2999-")

    log.close_handlers()  # as kill -9 would leave it
    reopened = open_log(segment_bytes=30_000, index_interval_bytes=512)

    assert not reopened.recovery_report.lost_data
    assert reopened.log_end_offset == end
    assert read_all_records(reopened) == records


async def test_event_loop_keeps_running_during_a_threaded_flush(open_log, monkeypatch):
    log = open_log(segment_bytes=20_000)
    for i in range(300):
        log.append(make_batch(2, tag=f"b{i}", value_size=100))

    # The flush waits inside fsync until the event loop has ticked a few times while it runs.
    # A flush that blocked the loop would never see those ticks and would finish without them.
    flushing = threading.Event()
    loop_progressed = threading.Event()
    gate_opened_by_loop: list[bool] = []
    real_fsync = LogSegment.fsync

    def gated_fsync(self: LogSegment) -> None:
        real_fsync(self)
        flushing.set()
        gate_opened_by_loop.append(loop_progressed.wait(timeout=10))

    monkeypatch.setattr(LogSegment, "fsync", gated_fsync)
    ticks_during_flush = 0
    stop = False

    async def ticker() -> None:
        nonlocal ticks_during_flush
        i = 0
        while not stop:
            if flushing.is_set():
                ticks_during_flush += 1
                log.append(make_batch(1, tag=f"tick{i}"))  # appends go on meanwhile
                i += 1
                if ticks_during_flush >= 5:
                    loop_progressed.set()
            await asyncio.sleep(0)

    task = asyncio.create_task(ticker())
    await asyncio.to_thread(log.flush)
    stop = True
    await task

    assert gate_opened_by_loop
    assert all(gate_opened_by_loop)  # the loop ticked while the flush was inside fsync
    assert ticks_during_flush >= 5
    assert 600 <= log.recovery_point <= log.log_end_offset
    assert log.log_end_offset == 600 + ticks_during_flush
    assert len(read_all_records(log)) == log.log_end_offset


def test_purge_while_a_flush_fsyncs_neither_waits_nor_deadlocks(log_dir, clock, monkeypatch):
    """The flush lock is held across fsyncs: a purge then defers instead of waiting for it
    (waiting while holding the log lock would deadlock with the flush, which takes the log
    lock after its fsyncs)."""
    config = LogConfig(segment_bytes=600, retention_bytes=0, file_delete_delay_ms=1_000)
    log = PartitionLog.open(log_dir, config, clock_ms=clock)  # closed below, unless stuck
    for i in range(5):
        log.append(batch_of_size(300, tag=f"b{i}"))
    assert [d.base_offset for d in log.delete_old_segments()] == [0, 2]  # awaiting deletion
    log.append(batch_of_size(300, tag="b5"))
    clock.advance(1_000)  # the deletion delay has passed

    in_fsync = threading.Event()
    release_fsync = threading.Event()
    real_fsync = LogSegment.fsync

    def gated_fsync(self: LogSegment) -> None:
        real_fsync(self)
        in_fsync.set()
        release_fsync.wait(timeout=10)

    monkeypatch.setattr(LogSegment, "fsync", gated_fsync)
    purged: list[int] = []
    flush_thread = threading.Thread(target=log.flush, daemon=True)
    purge_thread = threading.Thread(target=lambda: purged.append(log.purge_deleted()), daemon=True)

    flush_thread.start()
    assert in_fsync.wait(timeout=10)
    purge_thread.start()
    purge_thread.join(timeout=5)  # returns at once when it does not wait for the flush
    purge_returned = not purge_thread.is_alive()
    release_fsync.set()
    flush_thread.join(timeout=5)
    purge_thread.join(timeout=5)
    stuck = [t.name for t in (flush_thread, purge_thread) if t.is_alive()]
    if not stuck:
        log.close()
    assert stuck == [], "flush and purge_deleted deadlocked"

    assert purge_returned, "purge_deleted waited for a flush to finish its fsyncs"
    assert purged == [0]  # deferred: a flush might have been fsyncing one of them
    assert log.recovery_point == 6
    assert not any(p.name.endswith(".deleted") for p in log_dir.iterdir())  # close purged


def test_purge_after_a_flush_removes_due_segments(open_log, log_dir, clock):
    log = open_log(segment_bytes=600, retention_bytes=0, file_delete_delay_ms=1_000)
    for i in range(5):
        log.append(batch_of_size(300, tag=f"b{i}"))
    log.delete_old_segments()
    clock.advance(1_000)

    log.flush()  # a flush ends with a purge of what is due

    assert not any(p.name.endswith(".deleted") for p in log_dir.iterdir())
    assert log.purge_deleted() == 0


@pytest.mark.parametrize("flush_first", [False, True])
def test_close_after_flush_in_a_thread(open_log, log_dir, flush_first):
    log = open_log(segment_bytes=2000)
    for i in range(40):
        log.append(make_batch(2, tag=f"b{i}", value_size=50))
    if flush_first:
        thread = threading.Thread(target=log.flush)
        thread.start()
        thread.join(timeout=30)
        assert not thread.is_alive()
        assert log.recovery_point == 80
    log.close()
    assert read_checkpoint(log_dir) == PartitionCheckpoint(80, 0)
    assert (log_dir / CLEAN_SHUTDOWN_FILE).exists()
