"""Bad input on disk and on append: a named error or a clean truncation, never a crash or a
wrong record.

On disk: truncated files, flipped bits, a wrong magic, lengths pointing past the
end, broken or missing indexes, empty segment files, foreign and leftover files,
a garbage checkpoint. On append: garbage, torn batches, bad CRCs, bad counts and
oversized batches are refused with the log left exactly as it was.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import logging
import os
import struct
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.errors import (
    CorruptRecordError,
    InvalidRecordError,
    LogServerError,
    RecordBatchTooLargeError,
    RecordTooLargeError,
    StorageError,
)
from client.record import IncompleteBatchError, compute_crc
from client.record.layout import CRC, HEADER_SIZE, LOG_OVERHEAD
from logserver.log import LogConfig, PartitionLog
from logserver.log.files import (
    CHECKPOINT_FILE,
    CLEAN_SHUTDOWN_FILE,
    INDEX_SUFFIX,
    TIME_INDEX_SUFFIX,
    segment_path,
)
from tests.support.batches import batch_of_size, make_batch
from tests.support.clock import FakeClock
from tests.support.damage import (
    LogLayout,
    check_layout_matches_disk,
    copy_log,
    fill_log,
    flip_bit,
    log_file,
    offset_index_entries,
    overwrite,
    ram_directory,
    read_all,
    snapshot,
    truncate_file,
)

CONFIG = LogConfig(segment_bytes=600, index_interval_bytes=150, file_delete_delay_ms=0)


@dataclasses.dataclass(frozen=True)
class Template:
    directory: Path  # closed cleanly
    layout: LogLayout

    @property
    def older(self) -> int:
        return self.layout.bases[2]

    @property
    def active(self) -> int:
        return self.layout.bases[-1]


@pytest.fixture(scope="module")
def template() -> Iterator[Template]:
    with ram_directory("bad-input-template-") as root:
        log = PartitionLog.open(root / "log", CONFIG, clock_ms=FakeClock())
        layout = LogLayout()
        fill_log(log, layout, 32)
        log.close()
        check_layout_matches_disk(layout, root / "log")
        for base in layout.bases:  # every segment has index entries to damage
            assert offset_index_entries(root / "log", base), base
        yield Template(root / "log", layout)


@pytest.fixture
def directory(template: Template) -> Iterator[Path]:
    """A fresh copy of the template log, closed cleanly."""
    with ram_directory("bad-input-") as root:
        yield copy_log(template.directory, root / "log")


def _open(directory: Path, *, full_recovery: bool = False, **config: int) -> PartitionLog:
    cfg = dataclasses.replace(CONFIG, **config) if config else CONFIG
    return PartitionLog.open(directory, cfg, clock_ms=FakeClock(), full_recovery=full_recovery)


def _unclean(directory: Path) -> None:
    """What a kill -9 before any flush leaves: no marker, recovery point 0."""
    (directory / CLEAN_SHUTDOWN_FILE).unlink()
    (directory / CHECKPOINT_FILE).unlink()


def _check_cut(
    directory: Path,
    layout: LogLayout,
    base: int,
    position: int,
    *,
    reason: str | None = None,
    full_recovery: bool = False,
) -> None:
    """Open; the batch at ``position`` of segment ``base`` and all after it must be gone."""
    k = layout.index_of(base, position)
    damaged = layout.batches[k]
    later = [b for b in layout.bases if b > base]
    with _open(directory, full_recovery=full_recovery) as log:
        report = log.recovery_report
        truncation = report.truncation
        assert truncation is not None
        assert truncation.segment_base_offset == base
        assert truncation.position == damaged.position
        assert truncation.first_lost_offset == damaged.first_offset
        if reason is not None:
            assert reason in truncation.reason
        assert report.removed_segments == [(b, layout.segment_sizes[b]) for b in later]
        assert log.log_end_offset == damaged.first_offset
        assert read_all(log) == layout.values(k)
        assert log.append(make_batch(1, tag="next")).first_offset == damaged.first_offset
    with _open(directory) as log:
        assert log.recovery_report.truncation is None
        assert read_all(log) == {**layout.values(k), damaged.first_offset: b"next-0"}


def _check_intact(directory: Path, layout: LogLayout, log: PartitionLog) -> None:
    report = log.recovery_report
    assert report.truncation is None
    assert report.removed_segments == []
    assert not report.lost_data
    assert [s.base_offset for s in log.segments] == layout.bases
    assert log.log_end_offset == layout.log_end
    assert read_all(log) == layout.values()
    check_layout_matches_disk(layout, directory)


# -- truncated, flipped, wrong magic, length past the end ----------------------------------


@pytest.mark.parametrize("rel", [0, 5, 12, 30, 61, -1], ids=lambda r: f"rel{r}")
@pytest.mark.parametrize("where", ["active-clean", "older-unclean"])
def test_truncated_file(template: Template, directory: Path, where: str, rel: int) -> None:
    layout = template.layout
    base = template.active if where == "active-clean" else template.older
    victim = layout.in_segment(base)[1]
    cut_at = victim.position + (rel if rel >= 0 else victim.size + rel)
    if where == "older-unclean":
        _unclean(directory)
    truncate_file(log_file(directory, base), cut_at)
    if cut_at == victim.position and base == template.active:
        # A cut at a batch boundary of the active segment leaves a shorter, valid log.
        with _open(directory) as log:
            assert log.recovery_report.truncation is None
            assert read_all(log) == layout.values(layout.batches.index(victim))
        return
    _check_cut(directory, layout, base, cut_at)


@pytest.mark.parametrize("rel", [9, 16, 18, 22, 40, -1], ids=lambda r: f"rel{r}")
@pytest.mark.parametrize("base_index", [0, 2, -1], ids=["first", "older", "active"])
def test_flipped_bit(template: Template, directory: Path, base_index: int, rel: int) -> None:
    layout = template.layout
    base = layout.bases[base_index]
    victim = layout.in_segment(base)[-1]
    position = victim.position + (rel if rel >= 0 else victim.size + rel)
    flip_bit(log_file(directory, base), position, 4)
    _check_cut(directory, layout, base, position, full_recovery=True)


def test_flipped_crc_bit_names_the_checksum(template: Template, directory: Path) -> None:
    victim = template.layout.in_segment(template.active)[-1]  # in the tail a clean open checks
    flip_bit(log_file(directory, template.active), victim.position + 40)
    _check_cut(
        directory, template.layout, template.active, victim.position + 40, reason="CRC32C mismatch"
    )


@pytest.mark.parametrize("magic", [0, 2, 0x7F, 0xFF])
@pytest.mark.parametrize("where", ["active-clean", "older-unclean"])
def test_wrong_magic(template: Template, directory: Path, where: str, magic: int) -> None:
    layout = template.layout
    base = template.active if where == "active-clean" else template.older
    victim = layout.in_segment(base)[-1]
    if where == "older-unclean":
        _unclean(directory)
    overwrite(log_file(directory, base), victim.position + 16, bytes([magic]))
    _check_cut(directory, layout, base, victim.position, reason="magic")


@pytest.mark.parametrize(
    ("length", "reason"),
    [
        (0x7FFFFFFF, "points past the end"),
        (600, "points past the end"),
        (-1, "below the minimum"),
        (-(2**31), "below the minimum"),
        (0, "below the minimum"),
        (HEADER_SIZE - LOG_OVERHEAD - 1, "below the minimum"),
    ],
)
@pytest.mark.parametrize("where", ["active-last", "older-middle"])
def test_batch_length_out_of_bounds(
    template: Template, directory: Path, where: str, length: int, reason: str
) -> None:
    layout = template.layout
    if where == "active-last":
        base, victim = template.active, layout.in_segment(template.active)[-1]
    else:
        base, victim = template.older, layout.in_segment(template.older)[1]
        _unclean(directory)
    overwrite(log_file(directory, base), victim.position + 8, struct.pack(">i", length))
    _check_cut(directory, layout, base, victim.position, reason=reason)


def test_length_past_the_end_in_older_segment_is_read_as_error(
    template: Template, directory: Path
) -> None:
    """Undetected at a clean open (below the recovery point), but never served."""
    layout = template.layout
    victim = layout.in_segment(template.older)[1]
    overwrite(
        log_file(directory, template.older), victim.position + 8, struct.pack(">i", 0x7FFFFFFF)
    )
    with _open(directory) as log:
        assert log.recovery_report.truncation is None
        with pytest.raises(CorruptRecordError):
            log.read_records(victim.first_offset)
        with pytest.raises(CorruptRecordError):
            list(log.read(victim.first_offset, 1).batches())  # type: ignore[union-attr]
    _check_cut(directory, layout, template.older, victim.position, full_recovery=True)


# -- indexes ------------------------------------------------------------------------------


def _index_files(directory: Path, base: int) -> dict[str, bytes]:
    return {
        suffix: segment_path(directory, base, suffix).read_bytes()
        for suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX)
    }


@contextlib.contextmanager
def _leaks_recorded() -> Iterator[list[str]]:
    """Collect "unclosed file" ResourceWarnings raised in the block.

    Log records are suppressed in the block: a captured record of an open failure
    holds the exception, hence the half-built segment and its open files, until
    the test ends, and the leak would surface as an unraisable-exception error in
    some later test. ``test_corrupt_time_index_leaks_no_file`` asserts there are none.
    """
    leaks: list[str] = []
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            try:
                yield leaks
            finally:
                gc.collect()
                leaks.extend(str(w.message) for w in caught if w.category is ResourceWarning)
    finally:
        logging.disable(previous)


def _open_files_under(directory: Path) -> list[str]:
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory) + "/"):
            out.append(target)
    return out


def _check_rebuilt(directory: Path, template: Template, base: int) -> None:
    """Open cleanly: the indexes of ``base`` are rebuilt equal to the originals; no data lost."""
    original = _index_files(template.directory, base)
    with _leaks_recorded(), _open(directory) as log:
        report = log.recovery_report
        assert base in report.rebuilt_indexes
        _check_intact(directory, template.layout, log)
        assert log.append(make_batch(1)).first_offset == template.layout.log_end
        # Lookups through the rebuilt index land on the right batches.
        for span in template.layout.batches:
            records = log.read_records(span.first_offset, 1)
            assert {r.offset: r.value for r in records} == span.offsets()
    if base != template.active:
        assert _index_files(directory, base) == original
    with _open(directory) as log:
        assert log.recovery_report.rebuilt_indexes == []
        assert log.recovery_report.validated_from_offset is None


@pytest.mark.parametrize("where", ["older", "active"])
def test_index_entry_past_the_log_is_rebuilt(
    template: Template, directory: Path, where: str
) -> None:
    base = getattr(template, where)
    size = template.layout.segment_sizes[base]
    last_rel, _ = offset_index_entries(directory, base)[-1]
    last_rel -= base
    with open(segment_path(directory, base, INDEX_SUFFIX), "ab") as f:
        f.write(struct.pack(">II", last_rel + 1, size + 1000))
    _check_rebuilt(directory, template, base)


@pytest.mark.parametrize("where", ["older", "active"])
def test_time_index_entry_outside_the_segment_is_rebuilt(
    template: Template, directory: Path, where: str
) -> None:
    base = getattr(template, where)
    path = segment_path(directory, base, TIME_INDEX_SUFFIX)
    last_ts, _ = struct.unpack(">qI", path.read_bytes()[-12:])
    with open(path, "ab") as f:
        f.write(struct.pack(">qI", last_ts + 1, 10_000))
    _check_rebuilt(directory, template, base)


@pytest.mark.parametrize("suffix", [INDEX_SUFFIX, TIME_INDEX_SUFFIX])
@pytest.mark.parametrize("extra", [1, 3, 7])
@pytest.mark.parametrize("where", ["older", "active"])
def test_index_size_not_a_multiple_of_the_entry_is_rebuilt(
    template: Template, directory: Path, where: str, extra: int, suffix: str
) -> None:
    base = getattr(template, where)
    with open(segment_path(directory, base, suffix), "ab") as f:
        f.write(b"\xff" * extra)
    _check_rebuilt(directory, template, base)


@pytest.mark.parametrize(
    "missing", [(INDEX_SUFFIX,), (TIME_INDEX_SUFFIX,), (INDEX_SUFFIX, TIME_INDEX_SUFFIX)]
)
@pytest.mark.parametrize("where", ["older", "active"])
def test_missing_index_is_rebuilt(
    template: Template, directory: Path, where: str, missing: tuple[str, ...]
) -> None:
    base = getattr(template, where)
    for suffix in missing:
        segment_path(directory, base, suffix).unlink()
    _check_rebuilt(directory, template, base)


def test_index_files_of_every_segment_missing_after_unclean_stop(
    template: Template, directory: Path
) -> None:
    _unclean(directory)
    for base in template.layout.bases:
        for suffix in (INDEX_SUFFIX, TIME_INDEX_SUFFIX):
            segment_path(directory, base, suffix).unlink()
    with _open(directory) as log:
        assert log.recovery_report.rebuilt_indexes == template.layout.bases
        _check_intact(directory, template.layout, log)
    for base in template.layout.bases[:-1]:
        assert _index_files(directory, base) == _index_files(template.directory, base)


def test_wrong_index_entry_inside_the_log_never_skips_offsets(
    template: Template, directory: Path
) -> None:
    """An index entry that passes the cheap checks yet names the wrong batch.

    The offset index is not checksummed. Here its first entry of a segment keeps
    its offset but points at the start of a later batch. A read must return the
    right records (after a rebuild) or raise a named error; it must never answer
    a fetch for offset ``o`` with a batch that starts after ``o``.
    """
    layout = template.layout
    base = template.older
    spans = layout.in_segment(base)
    entries = offset_index_entries(directory, base)
    (offset, _), *_ = entries
    target = next(s for s in spans if s.first_offset == offset)
    later = spans[spans.index(target) + 1]
    assert len(entries) == 1 or entries[1][1] > later.position  # still passes the load check
    overwrite(
        segment_path(directory, base, INDEX_SUFFIX),
        0,
        struct.pack(">II", offset - base, later.position),
    )
    with _open(directory) as log:
        assert log.recovery_report.rebuilt_indexes == []  # the cheap checks pass
        for wanted in range(target.first_offset, later.first_offset):
            try:
                file_slice = log.read(wanted, 1)
            except LogServerError:
                continue  # a named error is acceptable
            assert file_slice is not None
            served = file_slice.first_offset
            assert served <= wanted, f"a read of offset {wanted} served the batch at {served}"
            records = log.read_records(wanted, 1)
            assert records, f"no records for offset {wanted}"
            assert records[0].offset == wanted
            assert records[0].value == layout.values()[wanted]


# -- empty segment files -----------------------------------------------------------------


def test_emptied_log_file_in_the_middle_cuts_there(template: Template, directory: Path) -> None:
    """A middle segment lost its data: the log is cut at its base; nothing after it is served."""
    layout = template.layout
    base = layout.bases[3]
    truncate_file(log_file(directory, base), 0)
    k = layout.batches.index(layout.in_segment(base)[0])
    with _open(directory) as log:
        report = log.recovery_report
        truncation = report.truncation
        assert truncation is not None
        assert (truncation.segment_base_offset, truncation.position) == (base, 0)
        assert (truncation.first_lost_offset, truncation.bytes_cut) == (base, 0)
        later = [b for b in layout.bases if b > base]
        assert report.removed_segments == [(b, layout.segment_sizes[b]) for b in later]
        assert read_all(log) == layout.values(k)
        assert log.log_end_offset == base
        assert log.active_segment.base_offset == base
        assert log.append(make_batch(1)).first_offset == base


@pytest.mark.parametrize("host_index", [0, 2])
def test_stray_empty_log_file_in_the_middle(
    template: Template, directory: Path, host_index: int
) -> None:
    """An empty ``.log`` whose base falls inside an existing segment's offsets.

    It holds nothing and breaks the offset sequence, so recovery drops it as a
    stray file and loses nothing: the whole log is still served, the stray file
    is reported, and appends continue at the end.
    """
    layout = template.layout
    host = layout.in_segment(layout.bases[host_index])
    stray = log_file(directory, host[0].first_offset + 1)
    assert not stray.exists()
    stray.touch()
    total = sum(layout.segment_sizes.values())
    with _open(directory) as log:
        report = log.recovery_report
        end = log.log_end_offset
        assert end == layout.log_end
        assert not report.lost_data
        assert stray.name in report.removed_files
        assert not stray.exists()
        assert read_all(log) == {o: v for o, v in layout.values().items() if o < end}
        assert total - sum(s.size for s in log.segments) == report.bytes_cut
        assert report.lost_data is (end < layout.log_end)
        if report.lost_data:
            assert report.truncation is not None
            assert report.truncation.first_lost_offset == end
        assert all(s.size for s in log.segments[:-1])  # no empty segment left in the middle
        assert log.append(make_batch(1, tag="next")).first_offset == end
    with _open(directory) as log:
        assert log.recovery_report.truncation is None
        assert read_all(log)[end] == b"next-0"


# -- foreign and leftover files ------------------------------------------------------------


def _plant_foreign(directory: Path, template: Template) -> list[str]:
    segment0 = log_file(directory, 0).read_bytes()
    (directory / "notes.txt").write_bytes(b"")
    (directory / "README").write_text("operator notes\n")
    (directory / "abc.log").write_bytes(segment0)  # valid batches, but not a segment name
    (directory / "00000000000000000000.log.bak").write_bytes(segment0)
    (directory / "00000000000000000000.txt").write_bytes(b"x")
    (directory / "0000000000000000000x.log").write_bytes(segment0)
    (directory / "123.log").write_bytes(segment0)
    (directory / "subdir").mkdir()
    (directory / "subdir" / "00000000000000000000.log").write_bytes(segment0)
    (directory / "00000000000000000500.log").mkdir()  # a directory with a segment's name
    (directory / "00000000000000000600.log").symlink_to(log_file(directory, 0))
    return sorted(
        [
            "notes.txt",
            "README",
            "abc.log",
            "00000000000000000000.log.bak",
            "00000000000000000000.txt",
            "0000000000000000000x.log",
            "123.log",
            "subdir",
            "00000000000000000500.log",
            "00000000000000000600.log",
        ]
    )


@pytest.mark.parametrize("how", ["clean", "unclean", "full-recovery"])
def test_foreign_files_are_reported_and_left_alone(
    template: Template, directory: Path, how: str
) -> None:
    foreign = _plant_foreign(directory, template)
    before = {k: v for k, v in snapshot(directory).items() if "/" in k or k in foreign}
    if how == "unclean":
        _unclean(directory)
    for _ in range(2):  # reported again on every open; never removed
        with _open(directory, full_recovery=how == "full-recovery") as log:
            report = log.recovery_report
            assert sorted(report.foreign_files) == foreign
            assert report.removed_files == []
            _check_intact(directory, template.layout, log)
        after = snapshot(directory)
        for name, data in before.items():
            assert after[name] == data, name
        assert (directory / "00000000000000000500.log").is_dir()
        assert (directory / "00000000000000000600.log").is_symlink()


def test_foreign_files_survive_a_cut(template: Template, directory: Path) -> None:
    foreign = _plant_foreign(directory, template)
    layout = template.layout
    victim = layout.in_segment(template.older)[0]
    flip_bit(log_file(directory, template.older), victim.position + 30)
    with _open(directory, full_recovery=True) as log:
        assert sorted(log.recovery_report.foreign_files) == foreign
        assert log.log_end_offset == victim.first_offset
    for name in foreign:
        assert (directory / name).exists() or (directory / name).is_symlink(), name


@pytest.mark.parametrize("suffix", [INDEX_SUFFIX, TIME_INDEX_SUFFIX])
def test_directory_in_place_of_an_index_file_is_a_named_error(
    template: Template, directory: Path, suffix: str
) -> None:
    """The index cannot be rebuilt where a directory stands: refuse to open, touch nothing."""
    path = segment_path(directory, template.older, suffix)
    path.unlink()
    path.mkdir()
    (path / "keep").write_bytes(b"k")
    before = snapshot(directory)
    with _leaks_recorded(), pytest.raises(StorageError):
        _open(directory)
    assert snapshot(directory) == before


@pytest.mark.parametrize("damage", ["partial-entry", "directory"])
def test_corrupt_time_index_leaks_no_file(template: Template, directory: Path, damage: str) -> None:
    """Opening a segment whose ``.timeindex`` cannot be used must not leak its ``.index`` file.

    ``LogSegment.__init__`` opens the offset index, then the time index; when the
    second fails, every file opened so far must be closed, not left to the GC.
    """
    path = segment_path(directory, template.older, TIME_INDEX_SUFFIX)
    if damage == "partial-entry":
        with open(path, "ab") as f:
            f.write(b"\x01")
    else:
        path.unlink()
        path.mkdir()
    with _leaks_recorded() as leaks:
        try:
            log = _open(directory)
        except StorageError:
            pass  # a directory where the index must go: a named error is the right answer
        else:
            log.close()
        still_open = _open_files_under(directory)
    assert still_open == [], f"files still open after close(): {still_open}"
    assert leaks == [], f"files left open for the garbage collector: {leaks}"


def test_leftover_files_are_removed(template: Template, directory: Path) -> None:
    leftovers = [
        "00000000000000000000.log.deleted",
        "00000000000000000000.index.deleted",
        "00000000000000000000.timeindex.deleted",
        "00000000000000000700.log.deleted",
        "partition.checkpoint.tmp",
    ]
    orphans = ["00000000000000000800.index", "00000000000000000800.timeindex"]
    segment0 = log_file(directory, 0).read_bytes()
    for name in leftovers:
        (directory / name).write_bytes(segment0 if ".log" in name else b"{garbage")
    for name in orphans:
        (directory / name).write_bytes(b"\x00" * 8)
    with _open(directory) as log:
        report = log.recovery_report
        assert sorted(report.removed_files) == sorted(leftovers + orphans)
        assert report.foreign_files == []
        _check_intact(directory, template.layout, log)
    for name in leftovers + orphans:
        assert not (directory / name).exists(), name
    with _open(directory) as log:
        assert log.recovery_report.removed_files == []


# -- the checkpoint ------------------------------------------------------------------------

GARBAGE_CHECKPOINTS = [
    b"",
    b"{",
    b"{garbage",
    b"\x00\xff\xfe" * 10,
    b"null",
    b"[1, 2]",
    b'"text"',
    b"1e999",
    b'{"version": 1}',
    b'{"version": 2, "recovery_point": 5, "log_start_offset": 0}',
    b'{"version": 1, "recovery_point": -1, "log_start_offset": 0}',
    b'{"version": 1, "recovery_point": true, "log_start_offset": 0}',
    b'{"version": 1, "recovery_point": "57", "log_start_offset": 0}',
    b'{"version": 1, "recovery_point": 1.5, "log_start_offset": 0}',
]


@pytest.mark.parametrize("payload", GARBAGE_CHECKPOINTS, ids=lambda p: repr(p[:24]))
def test_corrupt_checkpoint_revalidates_the_whole_log(
    template: Template, directory: Path, payload: bytes
) -> None:
    (directory / CLEAN_SHUTDOWN_FILE).unlink()
    (directory / CHECKPOINT_FILE).write_bytes(payload)
    with _open(directory) as log:
        report = log.recovery_report
        assert report.validated_from_offset == 0
        assert report.segments_validated == len(template.layout.bases)
        assert report.rebuilt_indexes == template.layout.bases
        assert log.log_start_offset == 0
        _check_intact(directory, template.layout, log)
    # Open wrote a good checkpoint again.
    with _open(directory) as log:
        assert log.recovery_report.validated_from_offset is None


def test_unwritable_checkpoint_is_a_named_error_that_leaks_no_file(
    template: Template, directory: Path
) -> None:
    """``partition.checkpoint`` is a directory: open fails with StorageError and closes
    every segment file it had opened (recovery ran before the checkpoint write)."""
    (directory / CHECKPOINT_FILE).unlink()
    (directory / CHECKPOINT_FILE).mkdir()
    with _leaks_recorded() as leaks:
        with pytest.raises(StorageError, match="checkpoint"):
            _open(directory)
        still_open = _open_files_under(directory)
    assert still_open == [], f"files still open after the failed open: {still_open}"
    assert leaks == [], f"files left open for the garbage collector: {leaks}"
    (directory / CHECKPOINT_FILE).rmdir()
    with _open(directory) as log:
        _check_intact(directory, template.layout, log)


def test_corrupt_checkpoint_with_torn_tail_cuts_only_the_tail(
    template: Template, directory: Path
) -> None:
    layout = template.layout
    last = layout.batches[-1]
    (directory / CLEAN_SHUTDOWN_FILE).unlink()
    (directory / CHECKPOINT_FILE).write_bytes(b"\x00garbage")
    truncate_file(log_file(directory, last.segment), last.end - 3)
    with _open(directory) as log:
        report = log.recovery_report
        assert report.validated_from_offset == 0
        assert report.truncation is not None
        assert report.truncation.first_lost_offset == last.first_offset
        assert report.truncation.bytes_cut == last.size - 3
        assert report.removed_segments == []
        assert read_all(log) == layout.values(len(layout.batches) - 1)


def test_corrupt_checkpoint_after_clean_shutdown_loses_nothing(
    template: Template, directory: Path
) -> None:
    (directory / CHECKPOINT_FILE).write_bytes(b"garbage")
    with _open(directory) as log:
        assert log.log_start_offset == 0
        _check_intact(directory, template.layout, log)


# -- append ---------------------------------------------------------------------------------


def _with_crc(data: bytearray) -> bytearray:
    CRC.pack_into(data, 17, compute_crc(data))
    return data


def _bad_inputs() -> dict[str, tuple[bytes, type[LogServerError]]]:
    one = make_batch(2, tag="x", value_size=20)
    two = make_batch(3, tag="y")
    flipped_body = bytearray(one)
    flipped_body[-3] ^= 0x10
    flipped_crc = bytearray(one)
    flipped_crc[18] ^= 0x01
    bad_magic = bytearray(one)
    bad_magic[16] = 2
    short_length = bytearray(one)
    struct.pack_into(">i", short_length, 8, 10)
    long_length = bytearray(one)
    struct.pack_into(">i", long_length, 8, len(one))
    count_mismatch = bytearray(one)
    struct.pack_into(">i", count_mismatch, 57, 5)  # record_count, CRC fixed up below
    delta_mismatch = bytearray(one)
    struct.pack_into(">i", delta_mismatch, 23, 7)  # last_offset_delta
    zero_count = bytearray(one)
    struct.pack_into(">ii", zero_count, 23, -1, 0)
    return {
        "empty": (b"", InvalidRecordError),
        "five-bytes": (b"\x00" * 5, IncompleteBatchError),
        "garbage": (bytes(range(256)) * 3, CorruptRecordError),
        "zeros": (b"\x00" * 200, CorruptRecordError),
        "torn": (one[:-1], IncompleteBatchError),
        "torn-header": (one[:40], IncompleteBatchError),
        "valid-then-torn": (one + two[:-10], IncompleteBatchError),
        "valid-then-garbage": (one + b"\x01\x02\x03", IncompleteBatchError),
        "valid-then-bad-crc": (two + bytes(flipped_body), CorruptRecordError),
        "bad-crc-body": (bytes(flipped_body), CorruptRecordError),
        "bad-crc-field": (bytes(flipped_crc), CorruptRecordError),
        "bad-magic": (bytes(bad_magic), CorruptRecordError),
        "length-too-short": (bytes(short_length), CorruptRecordError),
        "length-past-end": (bytes(long_length), IncompleteBatchError),
        "count-mismatch": (bytes(_with_crc(count_mismatch)), InvalidRecordError),
        "delta-mismatch": (bytes(_with_crc(delta_mismatch)), InvalidRecordError),
        "zero-count": (bytes(_with_crc(zero_count)), InvalidRecordError),
    }


BAD_INPUTS = _bad_inputs()


@pytest.mark.parametrize("writable", [False, True], ids=["bytes", "bytearray"])
@pytest.mark.parametrize("name", sorted(BAD_INPUTS))
def test_append_refuses_bad_batches_and_changes_nothing(
    template: Template, directory: Path, name: str, writable: bool
) -> None:
    data, error = BAD_INPUTS[name]
    with _open(directory) as log:
        files = snapshot(directory)
        end = log.log_end_offset
        buffer = bytearray(data) if writable else data
        with pytest.raises(error) as caught:
            log.append(buffer)
        assert isinstance(caught.value, CorruptRecordError | InvalidRecordError)
        assert bytes(buffer) == data  # not stamped
        assert log.log_end_offset == end
        assert snapshot(directory) == files
        assert read_all(log) == template.layout.values()
        # The log is still writable at the same offset.
        info = log.append(make_batch(1, tag="ok"))
        assert info.first_offset == end
    with _open(directory) as log:
        assert log.recovery_report.truncation is None
        assert read_all(log) == {**template.layout.values(), end: b"ok-0"}


@settings(max_examples=150)
@given(data=st.data())
def test_append_of_a_bit_flipped_batch_is_refused_or_exact(
    template: Template, data: st.DataObject
) -> None:
    """Flip any bit of a two-batch buffer: refused with nothing written, or stored exactly.

    Only the stamped fields (base offset, leader epoch) may differ and still be
    accepted: the log overwrites them.
    """
    one = make_batch(2, tag="p", value_size=15)
    two = make_batch(1, tag="q")
    buffer = bytearray(one + two)
    position = data.draw(st.integers(0, len(buffer) - 1), label="position")
    buffer[position] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    rel = position if position < len(one) else position - len(one)
    with ram_directory("flip-append-") as root:
        log = PartitionLog.open(root / "log", CONFIG, clock_ms=FakeClock())
        try:
            log.append(make_batch(3, tag="before"))
            files = snapshot(root / "log")
            try:
                info = log.append(buffer)
            except (CorruptRecordError, InvalidRecordError):
                assert rel not in (*range(8), *range(12, 16)), "a stamped field was refused"
                assert log.log_end_offset == 3
                assert snapshot(root / "log") == files
            else:
                assert rel in (*range(8), *range(12, 16)), f"corrupt byte {rel} accepted"
                assert (info.first_offset, info.last_offset) == (3, 5)
                assert {o: v for o, v in read_all(log).items() if o >= 3} == {
                    3: b"p-0" + b"x" * 12,
                    4: b"p-1" + b"x" * 12,
                    5: b"q-0",
                }
        finally:
            log.close()


def test_batch_over_max_message_bytes_is_refused(template: Template, directory: Path) -> None:
    limit = 300
    with _open(directory, max_message_bytes=limit) as log:
        files = snapshot(directory)
        end = log.log_end_offset
        for data in (
            batch_of_size(limit + 1),
            batch_of_size(5000),
            make_batch(1) + batch_of_size(limit + 1),  # one bad batch refuses them all
        ):
            with pytest.raises(RecordTooLargeError):
                log.append(data)
            assert log.log_end_offset == end
            assert snapshot(directory) == files
        assert log.append(batch_of_size(limit)).first_offset == end


def test_batch_over_segment_bytes_is_refused(template: Template, directory: Path) -> None:
    segment_bytes = CONFIG.segment_bytes
    with _open(directory) as log:
        files = snapshot(directory)
        end = log.log_end_offset
        for data in (
            batch_of_size(segment_bytes + 1),
            batch_of_size(segment_bytes * 3),
            batch_of_size(400) + batch_of_size(201),  # together over segment.bytes
        ):
            with pytest.raises(RecordBatchTooLargeError):
                log.append(data)
            assert log.log_end_offset == end
            assert snapshot(directory) == files
        info = log.append(batch_of_size(segment_bytes))
        assert info.first_offset == end
        assert log.active_segment.size == segment_bytes
        assert log.append(batch_of_size(400) + batch_of_size(200)).first_offset == end + 1


def test_errors_are_named() -> None:
    """Every refusal above is one of the wire errors, with its Kafka code."""
    codes: dict[type[LogServerError], int] = {
        CorruptRecordError: 2,
        RecordTooLargeError: 10,
        RecordBatchTooLargeError: 18,
        StorageError: 56,
        InvalidRecordError: 87,
    }
    for cls, code in codes.items():
        assert cls.code == code
    for _, error in BAD_INPUTS.values():
        assert issubclass(error, CorruptRecordError | InvalidRecordError)
