"""The leader-epoch cache: ``LeaderEpochCache`` alone, and as ``PartitionLog`` keeps it.

``(epoch, start_offset)`` is recorded when an append carries an epoch newer than
the latest; ``end_offset_for_epoch`` answers OffsetsForLeaderEpoch (the largest
epoch at or below the one asked, ending where the next starts or at the log
end; ``(-1, -1)`` below the first entry or with none); truncation trims the
cache from the end, retention from the start, an open past the recovered end.
The file ``leader-epoch-checkpoint`` is replaced atomically, and a bad one is
logged and ignored, never a crash.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import warnings
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.errors import StorageError
from client.record import RecordBatch
from logserver.log import LogConfig, PartitionLog
from logserver.log import leader_epoch_cache as leader_epoch_cache_module
from logserver.log.files import LEADER_EPOCH_FILE, LOG_SUFFIX, list_directory, segment_path
from logserver.log.leader_epoch_cache import (
    UNDEFINED,
    EpochEndOffset,
    EpochEntry,
    LeaderEpochCache,
)
from segment_tools.verify import verify_directory
from tests.support.batches import make_batch
from tests.support.clock import FakeClock
from tests.support.damage import ram_directory, read_all, varied_batch
from tests.support.log_files import batch_headers

CONFIG = LogConfig(
    segment_bytes=1200,
    index_interval_bytes=150,
    retention_ms=-1,
    file_delete_delay_ms=0,
)
CONFIG_FIELDS = dataclasses.asdict(CONFIG)
UNKNOWN = EpochEndOffset(UNDEFINED, UNDEFINED)


def _entries(cache_or_log: LeaderEpochCache | PartitionLog) -> list[tuple[int, int]]:
    cache = (
        cache_or_log if isinstance(cache_or_log, LeaderEpochCache) else cache_or_log.leader_epochs
    )
    return [tuple(e) for e in cache.entries]


def _file_entries(directory: Path) -> list[tuple[int, int]] | None:
    path = directory / LEADER_EPOCH_FILE
    if not path.exists():
        return None
    data = json.loads(path.read_bytes())
    assert data["version"] == 1
    return [tuple(e) for e in data["entries"]]


@pytest.fixture
def saves(monkeypatch) -> list[bytes]:
    """Every payload the cache writes (through ``write_atomically``, which it must use)."""
    written: list[bytes] = []
    real = leader_epoch_cache_module.write_atomically

    def spy(path: Path, data: bytes) -> None:
        assert path.name == LEADER_EPOCH_FILE
        written.append(data)
        real(path, data)

    monkeypatch.setattr(leader_epoch_cache_module, "write_atomically", spy)
    return written


# -- LeaderEpochCache alone -----------------------------------------------------------------


def test_empty_cache(tmp_path):
    cache = LeaderEpochCache(tmp_path)
    assert cache.entries == []
    assert cache.latest_epoch == UNDEFINED
    for epoch in (-1, 0, 5):
        assert cache.end_offset_for(epoch, 100) == UNKNOWN
    cache.truncate_from_end(0)
    cache.truncate_from_start(10)
    assert not (tmp_path / LEADER_EPOCH_FILE).exists()


def test_assign_records_newer_epochs_only(tmp_path, saves):
    cache = LeaderEpochCache(tmp_path)
    assert cache.assign(0, 0)
    assert cache.assign(2, 5)
    assert not cache.assign(2, 9)  # the same epoch again
    assert not cache.assign(1, 9)  # an older one
    assert not cache.assign(-1, 9)  # no epoch
    assert not cache.assign(-7, 9)
    assert cache.assign(5, 9)
    assert _entries(cache) == [(0, 0), (2, 5), (5, 9)]
    assert cache.latest_epoch == 5
    assert len(saves) == 3  # written once per change, never for an ignored epoch
    assert json.loads(saves[-1]) == {"version": 1, "entries": [[0, 0], [2, 5], [5, 9]]}
    assert _file_entries(tmp_path) == [(0, 0), (2, 5), (5, 9)]
    assert not (tmp_path / (LEADER_EPOCH_FILE + ".tmp")).exists()


def test_assign_starting_before_the_latest_start_drops_the_later_entries(tmp_path, caplog):
    cache = LeaderEpochCache(tmp_path)
    for epoch, start in [(1, 0), (2, 10), (3, 20)]:
        cache.assign(epoch, start)
    with caplog.at_level(logging.WARNING):
        assert cache.assign(4, 15)
    assert _entries(cache) == [(1, 0), (2, 10), (4, 15)]
    assert "dropping the later entries" in caplog.text
    assert cache.assign(5, 0)
    assert _entries(cache) == [(5, 0)]
    assert _file_entries(tmp_path) == [(5, 0)]


@pytest.mark.parametrize(
    ("epoch", "expected"),
    [
        (-5, UNKNOWN),
        (UNDEFINED, UNKNOWN),
        (0, UNKNOWN),  # below the first entry
        (1, (1, 10)),
        (2, (1, 10)),  # no epoch 2: the largest below it is 1
        (3, (3, 25)),
        (4, (3, 25)),
        (5, (3, 25)),
        (6, (6, 40)),  # the latest: ends at the log end
        (7, (6, 40)),  # above the latest: still the latest
        (10**9, (6, 40)),
    ],
)
def test_end_offset_for(tmp_path, epoch, expected):
    cache = LeaderEpochCache(tmp_path)
    for e, start in [(1, 0), (3, 10), (6, 25)]:
        cache.assign(e, start)
    assert cache.end_offset_for(epoch, 40) == EpochEndOffset(*expected)


def test_end_offset_for_an_epoch_with_no_records_before_the_next(tmp_path):
    """Two epochs starting at the same offset (the first wrote nothing): Kafka's answer."""
    (tmp_path / LEADER_EPOCH_FILE).write_text(
        json.dumps({"version": 1, "entries": [[1, 0], [2, 5], [3, 5]]})
    )
    cache = LeaderEpochCache(tmp_path)
    assert _entries(cache) == [(1, 0), (2, 5), (3, 5)]
    assert cache.end_offset_for(2, 9) == (2, 5)
    assert cache.end_offset_for(1, 9) == (1, 5)
    assert cache.end_offset_for(3, 9) == (3, 9)


@pytest.mark.parametrize(
    ("end", "expected"),
    [
        (100, [(1, 0), (3, 10), (6, 25)]),
        (26, [(1, 0), (3, 10), (6, 25)]),
        (25, [(1, 0), (3, 10)]),  # an epoch starting at the new end goes
        (11, [(1, 0), (3, 10)]),
        (10, [(1, 0)]),
        (1, [(1, 0)]),
        (0, []),
    ],
)
def test_truncate_from_end(tmp_path, saves, end, expected):
    cache = LeaderEpochCache(tmp_path)
    for e, start in [(1, 0), (3, 10), (6, 25)]:
        cache.assign(e, start)
    saves.clear()
    cache.truncate_from_end(end)
    assert _entries(cache) == expected
    assert _file_entries(tmp_path) == expected
    assert len(saves) == (0 if len(expected) == 3 else 1)  # rewritten only on a change
    assert cache.latest_epoch == (expected[-1][0] if expected else UNDEFINED)


@pytest.mark.parametrize(
    ("start", "expected"),
    [
        (10, [(3, 10), (6, 25)]),  # exactly where an epoch starts: the ones before go
        (11, [(3, 11), (6, 25)]),  # inside epoch 3: it now starts at the log start
        (24, [(3, 24), (6, 25)]),
        (25, [(6, 25)]),
        (30, [(6, 30)]),
        (10**6, [(6, 10**6)]),
    ],
)
def test_truncate_from_start(tmp_path, start, expected):
    cache = LeaderEpochCache(tmp_path)
    for e, s in [(1, 0), (3, 10), (6, 25)]:
        cache.assign(e, s)
    cache.truncate_from_start(start)
    assert _entries(cache) == expected
    assert _file_entries(tmp_path) == expected
    assert cache.end_offset_for(1, 100) == UNKNOWN


def test_truncate_from_start_before_every_entry_changes_nothing(tmp_path, saves):
    cache = LeaderEpochCache(tmp_path)
    for e, s in [(3, 10), (6, 25)]:
        cache.assign(e, s)
    saves.clear()
    cache.truncate_from_start(5)
    cache.truncate_from_start(10)  # the first entry starts exactly there
    assert _entries(cache) == [(3, 10), (6, 25)]
    assert saves == []


def test_truncate_from_start_inside_the_first_epoch_clamps_it_like_the_others(tmp_path):
    """The last epoch starting before the new log start is moved to it (Kafka's
    ``truncateFromStart``) whether or not it is the first entry. (Once skipped for the
    first entry, so whether it survived a later ``truncate_from_end(log start)`` depended
    on how many epochs retention had removed.)
    """
    one = LeaderEpochCache(tmp_path / "one")
    one.path.parent.mkdir()
    one.assign(3, 0)
    one.truncate_from_start(10)
    two = LeaderEpochCache(tmp_path / "two")
    two.path.parent.mkdir()
    two.assign(2, 0)
    two.assign(3, 5)
    two.truncate_from_start(10)
    assert _entries(two) == [(3, 10)]
    assert _entries(one) == [(3, 10)]


def test_entries_survive_a_reload(tmp_path):
    cache = LeaderEpochCache(tmp_path)
    for e, s in [(0, 0), (4, 7), (9, 7_000_000_000_000)]:
        cache.assign(e, s)
    again = LeaderEpochCache(tmp_path)
    assert again.entries == cache.entries
    assert all(isinstance(e, EpochEntry) for e in again.entries)


def test_a_crash_while_writing_leaves_the_previous_file(tmp_path, monkeypatch):
    """The cache writes a temp file and renames it: a crash before the rename leaves the
    old file, and the temp file is a leftover that the next open removes."""
    cache = LeaderEpochCache(tmp_path)
    cache.assign(1, 0)
    before = (tmp_path / LEADER_EPOCH_FILE).read_bytes()

    class Crash(BaseException):
        pass

    def crash_on_rename(src, dst):
        raise Crash

    monkeypatch.setattr("os.replace", crash_on_rename)
    with pytest.raises(Crash):
        cache.assign(2, 5)
    monkeypatch.undo()
    assert (tmp_path / LEADER_EPOCH_FILE).read_bytes() == before
    assert (tmp_path / (LEADER_EPOCH_FILE + ".tmp")).exists()
    assert _entries(LeaderEpochCache(tmp_path)) == [(1, 0)]
    listing = list_directory(tmp_path)
    assert [p.name for p in listing.leftovers] == [LEADER_EPOCH_FILE + ".tmp"]
    assert listing.foreign == []


# -- bad files ------------------------------------------------------------------------------

BAD_FILES = {
    "empty": b"",
    "garbage": b"\x00\xff\x13garbage",
    "not utf-8": b'{"version":1,"entries":[[1,0]]}\xff',
    "cut short": b'{"version":1,"entries":[[1,0],[2,',
    "a list": b"[[1, 0]]",
    "null": b"null",
    "a string": b'"leader epochs"',
    "a number": b"7",
    "version 2": b'{"version":2,"entries":[[1,0]]}',
    "version 0": b'{"version":0,"entries":[[1,0]]}',
    "version as text": b'{"version":"1","entries":[[1,0]]}',
    "no version": b'{"entries":[[1,0]]}',
    "no entries": b'{"version":1}',
    "entries not a list": b'{"version":1,"entries":5}',
    "entries null": b'{"version":1,"entries":null}',
    "entry of three": b'{"version":1,"entries":[[1,0,3]]}',
    "entry of one": b'{"version":1,"entries":[[1]]}',
    "entry not a pair": b'{"version":1,"entries":[7]}',
    "entry text": b'{"version":1,"entries":[["one",0]]}',
    "entry null": b'{"version":1,"entries":[[null,0]]}',
    "NaN": b'{"version":1,"entries":[[NaN,0]]}',
    "epochs out of order": b'{"version":1,"entries":[[3,0],[2,5]]}',
    "epochs repeated": b'{"version":1,"entries":[[3,0],[3,5]]}',
    "offsets out of order": b'{"version":1,"entries":[[1,5],[2,4]]}',
}


@pytest.mark.parametrize("content", BAD_FILES.values(), ids=BAD_FILES.keys())
def test_a_bad_file_is_logged_and_the_cache_starts_empty(tmp_path, caplog, content):
    (tmp_path / LEADER_EPOCH_FILE).write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="logserver.log.leader_epoch_cache"):
        cache = LeaderEpochCache(tmp_path)
    assert cache.entries == []
    assert cache.latest_epoch == UNDEFINED
    assert cache.end_offset_for(1, 10) == UNKNOWN
    assert LEADER_EPOCH_FILE in caplog.text
    assert "empty" in caplog.text
    # The next epoch replaces the bad file with a good one.
    assert cache.assign(4, 3)
    assert _file_entries(tmp_path) == [(4, 3)]


def test_an_unreadable_file_is_logged_and_the_cache_starts_empty(tmp_path, caplog):
    (tmp_path / LEADER_EPOCH_FILE).mkdir()  # reading it fails with an OSError
    with caplog.at_level(logging.WARNING, logger="logserver.log.leader_epoch_cache"):
        cache = LeaderEpochCache(tmp_path)
    assert cache.entries == []
    assert "unreadable" in caplog.text


PATHOLOGICAL_FILES = {
    "deeply nested": b"[" * 100_000 + b"]" * 100_000,  # RecursionError in json
    "epoch too large for a float": b'{"version":1,"entries":[[1e999,0]]}',  # OverflowError
    "offset infinite": b'{"version":1,"entries":[[1,Infinity]]}',
}


@pytest.mark.parametrize("content", PATHOLOGICAL_FILES.values(), ids=PATHOLOGICAL_FILES.keys())
def test_a_pathological_file_never_stops_the_log_from_opening(tmp_path, content):
    """json's ``RecursionError`` and ``int(inf)``'s ``OverflowError`` are bad files too:
    the cache starts empty. (Once they escaped ``PartitionLog.open``, leaking the segment
    files ``load_log`` had opened.)"""
    directory = tmp_path / "topic-0"
    directory.mkdir()
    (directory / LEADER_EPOCH_FILE).write_bytes(content)
    error = None
    try:
        log = PartitionLog.open(directory, CONFIG)
    except Exception as exc:  # noqa: BLE001 - whatever escapes also leaks open segments
        error = f"{type(exc).__name__}: {str(exc)[:120]}"
    if error is not None:
        with warnings.catch_warnings():  # close the leaked files here, not in a later test
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
        pytest.fail(f"PartitionLog.open raised {error}")
    try:
        assert log.leader_epochs.entries == []
        assert log.append(make_batch(1), leader_epoch=1).first_offset == 0
    finally:
        log.close()


# -- PartitionLog: recording epochs --------------------------------------------------------


def test_appends_record_each_new_epoch_at_its_first_offset(open_log, log_dir, saves):
    log = open_log(**CONFIG_FIELDS)
    log.append(make_batch(2))  # no epoch
    assert _entries(log) == []
    assert not (log_dir / LEADER_EPOCH_FILE).exists()
    log.append(make_batch(3), leader_epoch=0)  # offsets 2..4
    log.append(make_batch(1), leader_epoch=0)
    log.append(bytearray(make_batch(2)), leader_epoch=2)  # stamped in place: 6..7
    log.append(make_batch(1) + make_batch(2), leader_epoch=5)  # two batches: 8..10
    log.append(make_batch(1), leader_epoch=None)
    assert _entries(log) == [(0, 2), (2, 6), (5, 8)]
    # Appends run on the event loop: the file waits for the next flush (no fsync there).
    assert saves == []
    log.flush()
    assert _file_entries(log_dir) == [(0, 2), (2, 6), (5, 8)]
    assert len(saves) == 1
    assert log.end_offset_for_epoch(5) == (5, 12)
    log.append(make_batch(4), leader_epoch=5)
    assert log.end_offset_for_epoch(5) == (5, 16)  # the latest epoch ends at the log end
    assert log.end_offset_for_epoch(2) == (2, 8)
    assert log.end_offset_for_epoch(1) == (0, 6)
    assert log.end_offset_for_epoch(-1) == UNKNOWN


def test_an_older_epoch_is_appended_and_stamped_but_not_recorded(open_log, log_dir):
    """A follower copies batches of a leader that already moved on: nothing to record."""
    log = open_log(**CONFIG_FIELDS)
    log.append(make_batch(1), leader_epoch=4)
    log.append(make_batch(1), leader_epoch=3)
    log.append(make_batch(1), leader_epoch=4)
    assert _entries(log) == [(4, 0)]
    epochs = [
        h.partition_leader_epoch for _, h in batch_headers(segment_path(log_dir, 0, LOG_SUFFIX))
    ]
    assert epochs == [4, 3, 4]
    stamped = [
        RecordBatch(log.read(o, 1).read_bytes()).header.partition_leader_epoch for o in range(3)
    ]
    assert stamped == [4, 3, 4]


def test_empty_log_knows_no_epoch(open_log):
    log = open_log(**CONFIG_FIELDS)
    for epoch in (-1, 0, 3):
        assert log.end_offset_for_epoch(epoch) == UNKNOWN


# -- PartitionLog: following truncation, retention and restarts ---------------------------


EPOCH_AT_BATCH = {0: 1, 10: 3, 20: 4, 30: 7}


def _epoch_log(open_log, **config) -> tuple[PartitionLog, list[tuple[int, int]]]:
    """40 batches over several segments: epoch 1 from batch 0, 3 from 10, 4 from 20, 7 from 30.

    Returns the log and ``(first, last)`` offsets of every batch.
    """
    log = open_log(**{**CONFIG_FIELDS, **config})
    spans = []
    epoch = None
    for k in range(40):
        epoch = EPOCH_AT_BATCH.get(k, epoch)
        info = log.append(varied_batch(k), leader_epoch=epoch)
        spans.append((info.first_offset, info.last_offset))
    assert len(log.segments) >= 4
    assert _entries(log) == [(e, spans[k][0]) for k, e in EPOCH_AT_BATCH.items()]
    log.leader_epochs.flush()  # appends leave the epoch file to the next flush
    return log, spans


def _expected_entries(spans: list[tuple[int, int]], end: int) -> list[tuple[int, int]]:
    return [(e, spans[k][0]) for k, e in EPOCH_AT_BATCH.items() if spans[k][0] < end]


@pytest.mark.parametrize("batch", [0, 1, 9, 10, 11, 19, 20, 25, 30, 31, 39])
@pytest.mark.parametrize("inside", [False, True])
def test_truncate_to_trims_epochs_from_the_end(open_log, log_dir, batch, inside):
    log, spans = _epoch_log(open_log)
    first, last = spans[batch]
    new_end = log.truncate_to(last if inside else first)
    assert new_end == first
    expected = _expected_entries(spans, first)
    assert _entries(log) == expected
    assert _file_entries(log_dir) == (expected if expected or batch else [])
    latest = expected[-1][0] if expected else UNDEFINED
    assert log.end_offset_for_epoch(100) == ((latest, first) if expected else UNKNOWN)
    # The next leader's epoch is recorded where its first append lands.
    log.append(make_batch(1), leader_epoch=9)
    assert _entries(log) == [*expected, (9, first)]
    if expected:
        assert log.end_offset_for_epoch(latest) == (latest, first)


def test_an_epoch_removed_by_truncation_is_recorded_again(open_log):
    log, spans = _epoch_log(open_log)
    start_of_4 = spans[20][0]
    log.truncate_to(spans[25][0])
    assert _entries(log)[-1] == (4, start_of_4)
    log.truncate_to(start_of_4)
    assert _entries(log)[-1][0] == 3
    info = log.append(make_batch(2), leader_epoch=4)  # the same epoch, again
    assert _entries(log)[-1] == (4, info.first_offset)
    assert log.end_offset_for_epoch(3) == (3, start_of_4)


def test_truncate_at_or_after_the_end_leaves_the_cache(open_log, log_dir, saves):
    log, _ = _epoch_log(open_log)
    before = _entries(log)
    saves.clear()
    log.truncate_to(log.log_end_offset)
    log.truncate_to(log.log_end_offset + 5)
    assert _entries(log) == before
    assert saves == []


def test_retention_trims_epochs_from_the_start(open_log, log_dir):
    log, spans = _epoch_log(open_log)
    bases = [s.base_offset for s in log.segments]
    # Keep the segments from the first one starting inside epoch 4 on.
    inside_4 = [b for b in bases if spans[20][0] < b < spans[30][0]]
    assert inside_4, "the test wants a segment starting inside epoch 4"
    keep_from = inside_4[0]
    kept_bytes = sum(s.size for s in log.segments if s.base_offset >= keep_from)
    log.update_config(dataclasses.replace(CONFIG, retention_bytes=kept_bytes))
    log.delete_old_segments()
    assert log.log_start_offset == keep_from
    assert _entries(log) == [(4, keep_from), (7, spans[30][0])]
    assert _file_entries(log_dir) == _entries(log)
    assert log.end_offset_for_epoch(3) == UNKNOWN
    assert log.end_offset_for_epoch(4) == (4, spans[30][0])
    assert log.end_offset_for_epoch(8) == (7, log.log_end_offset)


def test_epochs_survive_a_clean_reopen(open_log, log_dir):
    log, _ = _epoch_log(open_log)
    before = _entries(log)
    log.close()
    log = open_log(**CONFIG_FIELDS)
    assert log.recovery_report.clean_shutdown
    assert _entries(log) == before
    # The latest epoch is known after the restart: the same epoch adds nothing.
    log.append(make_batch(1), leader_epoch=7)
    assert _entries(log) == before
    log.append(make_batch(1), leader_epoch=6)
    assert _entries(log) == before


@pytest.mark.parametrize("full_recovery", [False, True])
def test_epochs_past_the_recovered_end_are_dropped_at_open(open_log, log_dir, full_recovery):
    """A crash tore the log inside epoch 4: recovery cuts it there, the open trims the cache."""
    log, spans = _epoch_log(open_log)
    log.flush(spans[5][0])
    log.close_handlers()
    victim = spans[24][0]  # a batch of epoch 4, after its first
    base = max(b for b in (int(p.name[:20]) for p in log_dir.glob("*.log")) if b <= victim)
    path = segment_path(log_dir, base, LOG_SUFFIX)
    position = next(p for p, h in batch_headers(path) if h.base_offset == victim)
    with path.open("r+b") as f:
        f.truncate(position + 30)  # a torn batch
    log = open_log(**CONFIG_FIELDS, full_recovery=full_recovery)
    assert log.recovery_report.lost_data
    assert log.log_end_offset == victim
    expected = [(1, spans[0][0]), (3, spans[10][0]), (4, spans[20][0])]
    assert _entries(log) == expected
    assert _file_entries(log_dir) == expected
    assert log.end_offset_for_epoch(7) == (4, victim)
    log.append(make_batch(1), leader_epoch=7)
    assert _entries(log) == [*expected, (7, victim)]


def test_an_epoch_file_ahead_of_the_log_is_trimmed_at_open(open_log, log_dir):
    """The file is fsynced when written, the data only on flush: after a power loss the
    file may name epochs whose data is gone. Here the whole last segments are lost."""
    log, spans = _epoch_log(open_log)
    bases = [s.base_offset for s in log.segments]
    log.close()
    for base in bases[2:]:
        for path in log_dir.glob(f"{base:020d}.*"):
            path.unlink()
    log = open_log(**CONFIG_FIELDS)
    end = log.log_end_offset
    assert end == bases[2]
    assert _entries(log) == _expected_entries(spans, end)
    assert _file_entries(log_dir) == _expected_entries(spans, end)


def test_a_bad_epoch_file_does_not_stop_the_log(open_log, log_dir, caplog):
    log, spans = _epoch_log(open_log)
    log.close()
    (log_dir / LEADER_EPOCH_FILE).write_bytes(b'{"version":1,"entries":[[5,0],[4,9]]}')
    with caplog.at_level(logging.WARNING):
        log = open_log(**CONFIG_FIELDS)
    assert "not a valid epoch cache" in caplog.text
    assert log.log_end_offset == spans[-1][1] + 1
    assert read_all(log)  # the data is all there
    assert _entries(log) == []
    assert log.end_offset_for_epoch(7) == UNKNOWN
    info = log.append(make_batch(1), leader_epoch=8)
    assert _entries(log) == [(8, info.first_offset)]
    log.flush()
    assert _file_entries(log_dir) == [(8, info.first_offset)]


def test_the_epoch_file_is_ours_not_foreign(open_log, log_dir):
    log, _ = _epoch_log(open_log)
    (log_dir / (LEADER_EPOCH_FILE + ".tmp")).write_bytes(b"half a write")
    listing = list_directory(log_dir)
    assert listing.foreign == []
    assert [p.name for p in listing.leftovers] == [LEADER_EPOCH_FILE + ".tmp"]
    log.close()
    log = open_log(**CONFIG_FIELDS)
    report = log.recovery_report
    assert report.foreign_files == []
    assert report.removed_files == [LEADER_EPOCH_FILE + ".tmp"]
    assert not (log_dir / (LEADER_EPOCH_FILE + ".tmp")).exists()
    assert (log_dir / LEADER_EPOCH_FILE).exists()
    log.close()
    result = verify_directory(log_dir)
    assert result.ok, [str(p) for p in result.problems]
    assert result.warnings == []


def test_a_failed_epoch_write_does_not_fail_the_append(open_log, log_dir, monkeypatch, caplog):
    """Appends never write the epoch file (it waits for the flush, off the event loop). A
    flush whose epoch write fails fails as a whole and does not move the recovery point,
    since recovery re-learns epochs only above it; the next flush writes everything."""
    log = open_log(**CONFIG_FIELDS)
    log.append(make_batch(5), leader_epoch=1)
    log.flush()

    def no_space(path: Path, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(leader_epoch_cache_module, "write_atomically", no_space)
    info = log.append(make_batch(5), leader_epoch=2)
    assert info.first_offset == 5
    assert _entries(log) == [(1, 0), (2, 5)]
    assert log.end_offset_for_epoch(1) == (1, 5)
    with pytest.raises(StorageError, match="No space left"):
        log.flush()
    assert log.recovery_point == 5
    monkeypatch.undo()
    log.append(make_batch(1), leader_epoch=3)
    log.flush()
    assert _file_entries(log_dir) == [(1, 0), (2, 5), (3, 10)]
    assert log.recovery_point == 11


def test_a_failed_epoch_write_is_not_lost_by_a_clean_close(open_log, log_dir, monkeypatch):
    """After the write of a new epoch fails (logged, "only the derived cache is behind"),
    ``close`` writes the cache again. Otherwise, after a clean restart the epoch is
    missing and OffsetsForLeaderEpoch is wrong: epoch 1 said to end at the log end (10)
    instead of 5, and a follower with divergent epoch-1 records at 5..9 keeps them.
    """
    log = open_log(**CONFIG_FIELDS)
    log.append(make_batch(5), leader_epoch=1)

    def no_space(path: Path, data: bytes) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(leader_epoch_cache_module, "write_atomically", no_space)
    log.append(make_batch(5), leader_epoch=2)
    monkeypatch.undo()
    log.close()
    log = open_log(**CONFIG_FIELDS)
    assert log.end_offset_for_epoch(1) == (1, 5)
    assert _entries(log) == [(1, 0), (2, 5)]


def test_a_crash_between_the_data_and_the_epoch_write_loses_no_epoch(open_log, log_dir):
    """``append`` writes the batch, then the epoch file. A kill -9 between the two (the
    file write is fsynced, so the window is real) leaves a batch of epoch 2 in the log
    and no entry for it: the unclean open must re-learn it from the batches (as Kafka's
    recovery does). Otherwise epoch 1 is said to end at the log end, and after the next
    append of epoch 2 at that later offset: either way not at 5, where epoch 2 began.
    """
    log = open_log(**CONFIG_FIELDS)
    log.append(make_batch(5), leader_epoch=1)
    log.flush()
    file_before_epoch_2 = (log_dir / LEADER_EPOCH_FILE).read_bytes()
    log.append(make_batch(5), leader_epoch=2)
    log.close_handlers()
    # What the disk holds if the process died after the data write, before the rename.
    (log_dir / LEADER_EPOCH_FILE).write_bytes(file_before_epoch_2)

    log = open_log(**CONFIG_FIELDS)
    assert not log.recovery_report.clean_shutdown
    assert read_all(log)  # the epoch-2 batch is in the log
    log.append(make_batch(1), leader_epoch=2)
    assert log.end_offset_for_epoch(1) == (1, 5)
    assert _entries(log) == [(1, 0), (2, 5)]


@pytest.mark.parametrize("full_recovery", [False, True])
def test_an_unclean_open_relearns_a_lost_epoch_file_from_the_batches(
    open_log, log_dir, full_recovery
):
    """With the file gone and nothing flushed, recovery validates every batch, and the
    epochs are re-learned from their headers (older epochs copied later are not epochs)."""
    log, _ = _epoch_log(open_log)
    log.append(make_batch(1), leader_epoch=2)  # an older epoch: stamped, not recorded
    log.append(make_batch(1), leader_epoch=None)
    expected = _entries(log)
    log.close_handlers()
    (log_dir / LEADER_EPOCH_FILE).unlink()
    log = open_log(**CONFIG_FIELDS, full_recovery=full_recovery)
    assert log.recovery_report.validated_from_offset == 0
    assert _entries(log) == expected
    assert _file_entries(log_dir) == expected


def test_a_clean_open_after_the_file_was_lost_starts_empty_and_consistent(open_log, log_dir):
    """A clean open validates only the tail: whatever the cache learns then must be true
    of the batches, and an epoch it does not know is unknown, never a wrong end."""
    log, _ = _epoch_log(open_log)
    log.close()
    (log_dir / LEADER_EPOCH_FILE).unlink()
    log = open_log(**CONFIG_FIELDS)
    for entry in _entries(log):  # whatever it learned must be true of the batches
        assert entry in _entries_from_batches(log)
    assert log.end_offset_for_epoch(0) == UNKNOWN


def _entries_from_batches(log: PartitionLog) -> list[tuple[int, int]]:
    """``(epoch, first offset)`` of every batch whose epoch is newer than all before it."""
    out: list[tuple[int, int]] = []
    for segment in log.segments:
        for _, header in batch_headers(segment.path):
            epoch = header.partition_leader_epoch
            if epoch >= 0 and (not out or epoch > out[-1][0]):
                out.append((epoch, header.base_offset))
    return out


# -- random appends, truncations and restarts against a list of epochs ------------------------

_STEPS = st.lists(
    st.one_of(
        # (kind, a, b): append a batch of ``a`` records, with the epoch moved by ``b``
        st.tuples(st.just("append"), st.integers(1, 4), st.sampled_from([0, 0, 0, 1, 2, -1])),
        st.tuples(st.just("append-none"), st.integers(1, 4), st.just(0)),
        st.tuples(st.just("truncate"), st.integers(0, 100), st.booleans()),
        st.tuples(st.just("reopen"), st.sampled_from(["clean", "crash", "torn"]), st.just(0)),
    ),
    min_size=1,
    max_size=50,
)


class _EpochModel:
    """What the cache should hold: ``(epoch, start)`` for each epoch newer than the last."""

    def __init__(self) -> None:
        self.entries: list[tuple[int, int]] = []
        self.end = 0
        self.batches: list[tuple[int, int]] = []  # (first, last)

    def append(self, count: int, epoch: int | None) -> None:
        if epoch is not None and epoch >= 0 and (not self.entries or epoch > self.entries[-1][0]):
            self.entries.append((epoch, self.end))
        self.batches.append((self.end, self.end + count - 1))
        self.end += count

    def truncate(self, offset: int) -> None:
        if offset >= self.end:
            return
        self.batches = [b for b in self.batches if b[1] < offset]
        self.end = self.batches[-1][1] + 1 if self.batches else 0
        self.entries = [e for e in self.entries if e[1] < self.end]

    def end_offset_for(self, epoch: int) -> tuple[int, int]:
        older = [i for i, e in enumerate(self.entries) if e[0] <= epoch]
        if not older:
            return UNKNOWN
        i = older[-1]
        nxt = self.entries[i + 1][1] if i + 1 < len(self.entries) else self.end
        return self.entries[i][0], nxt


@settings(max_examples=80, deadline=None)
@given(steps=_STEPS)
def test_random_appends_truncations_and_restarts_keep_the_epochs_right(steps):
    clock = FakeClock()
    config = LogConfig(segment_bytes=600, index_interval_bytes=100, file_delete_delay_ms=0)
    with ram_directory("epochs-") as root:
        directory = root / "topic-0"
        log = PartitionLog.open(directory, config, clock_ms=clock)
        model = _EpochModel()
        epoch = 0
        try:
            for kind, a, b in steps:
                if kind == "append":
                    epoch = max(0, epoch + b)
                    log.append(make_batch(a, value_size=20), leader_epoch=epoch)
                    model.append(a, epoch)
                elif kind == "append-none":
                    log.append(make_batch(a, value_size=20))
                    model.append(a, None)
                elif kind == "truncate":
                    offset = a * (model.end + 2) // 100 if b else model.end - a % 5
                    offset = max(offset, 0)
                    model.truncate(offset)
                    assert log.truncate_to(offset) == model.end
                else:  # reopen: clean, after a crash, or after a crash that tore a batch
                    if a == "clean":
                        log.close()
                    else:
                        log.close_handlers()
                    if a == "torn" and model.batches:
                        # Tear the last batch: recovery cuts it, the open trims the cache.
                        segment = max(directory.glob("*.log"))
                        size = segment.stat().st_size
                        if size:
                            with segment.open("r+b") as f:
                                f.truncate(size - 1)
                            model.truncate(model.batches[-1][0])
                    log = PartitionLog.open(directory, config, clock_ms=clock)
                assert log.log_end_offset == model.end
                assert _entries(log) == model.entries
                for asked in range(-1, epoch + 3):
                    assert log.end_offset_for_epoch(asked) == model.end_offset_for(asked)
            log.close()
            if model.entries or (directory / LEADER_EPOCH_FILE).exists():
                assert (_file_entries(directory) or []) == model.entries
            log = PartitionLog.open(directory, config, clock_ms=clock)
            assert _entries(log) == model.entries
        finally:
            log.close()


_CACHE_OPS = st.lists(
    st.one_of(
        st.tuples(st.just("assign"), st.integers(-2, 12), st.integers(0, 60)),
        st.tuples(st.just("truncate_from_end"), st.integers(0, 70), st.just(0)),
        st.tuples(st.just("reload"), st.just(0), st.just(0)),
    ),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(ops=_CACHE_OPS)
def test_cache_against_kafkas_rules(tmp_path_factory, ops):
    """``assign`` (any epoch, any offset), ``truncate_from_end``, reloads from the file:
    always Kafka's ``LeaderEpochFileCache`` behaviour, and always a valid file."""
    directory = tmp_path_factory.mktemp("cache")
    cache = LeaderEpochCache(directory)
    model: list[tuple[int, int]] = []
    for op, a, b in ops:
        if op == "assign":
            changed = cache.assign(a, b)
            newer = a >= 0 and (not model or a > model[-1][0])
            assert changed == newer
            if newer:
                model = [e for e in model if e[1] < b] if model and b < model[-1][1] else model
                model.append((a, b))
        elif op == "truncate_from_end":
            cache.truncate_from_end(a)
            model = [e for e in model if e[1] < a]
        else:
            cache = LeaderEpochCache(directory)
        assert _entries(cache) == model
        for asked in range(-1, 14):
            expected = UNKNOWN
            older = [i for i, e in enumerate(model) if e[0] <= asked]
            if older:
                i = older[-1]
                expected = (model[i][0], model[i + 1][1] if i + 1 < len(model) else 99)
            assert cache.end_offset_for(asked, 99) == expected
    assert _entries(LeaderEpochCache(directory)) == model


# -- the follower's side of KIP-101 / KIP-279, on two logs ---------------------------------


def _copy(leader: PartitionLog, follower: PartitionLog) -> None:
    """Replicate: the leader's batches from the follower's end, as the leader stamped them."""
    while follower.log_end_offset < leader.log_end_offset:
        piece = leader.read(follower.log_end_offset, 700)
        assert piece is not None
        follower.append_as_follower(piece.read_bytes())


def _truncate_divergence(follower: PartitionLog, leader: PartitionLog) -> int:
    """OffsetsForLeaderEpoch for the follower's latest epoch, then ``truncate_to``."""
    asked = follower.leader_epochs.latest_epoch
    leader_epoch, leader_end = leader.end_offset_for_epoch(asked)
    assert leader_epoch != UNDEFINED
    mine = follower.end_offset_for_epoch(leader_epoch)
    target = min(leader_end, mine.end_offset if mine.epoch == leader_epoch else leader_end)
    return follower.truncate_to(min(target, follower.log_end_offset))


@pytest.mark.parametrize(
    "scenario",
    ["same epoch, longer follower", "follower led an epoch the leader never saw"],
)
def test_a_divergent_suffix_is_found_by_epochs_and_replaced(tmp_path, clock, scenario):
    """Two replicas share epoch 1. The follower (A) then wrote records the new leader (B)
    never got, in epoch 1 or in an epoch 2 it led alone; B leads epoch 3. A asks B where
    its latest epoch ends, truncates there and copies B: afterwards both logs hold the
    same batches, byte for byte, and the same epochs."""
    a = PartitionLog.open(tmp_path / "a", CONFIG, clock_ms=clock)
    b = PartitionLog.open(tmp_path / "b", CONFIG, clock_ms=clock)
    try:
        for k in range(12):
            b.append(varied_batch(k), leader_epoch=1)
        _copy(b, a)
        shared_end = a.log_end_offset
        divergent_epoch = 1 if scenario.startswith("same") else 2
        for k in range(12, 20):
            a.append(varied_batch(k, tag="lost"), leader_epoch=divergent_epoch)
        for k in range(12, 16):
            b.append(varied_batch(k, tag="kept"), leader_epoch=3)
        assert a.log_end_offset > b.log_end_offset

        assert _truncate_divergence(a, b) == shared_end
        assert _entries(a) == [(1, 0)]
        _copy(b, a)
        assert _entries(a) == _entries(b) == [(1, 0), (3, shared_end)]
        assert read_all(a) == read_all(b)
        a_logs = sorted(p.name for p in (tmp_path / "a").glob("*.log"))
        assert a_logs == sorted(p.name for p in (tmp_path / "b").glob("*.log"))
        for name in a_logs:
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
        for epoch in range(5):
            assert a.end_offset_for_epoch(epoch) == b.end_offset_for_epoch(epoch)
    finally:
        a.close()
        b.close()
    for name in ("a", "b"):
        result = verify_directory(tmp_path / name)
        assert result.ok, [str(p) for p in result.problems]
