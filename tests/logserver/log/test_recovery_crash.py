"""Crash recovery: truncate or flip bits anywhere in a log and check exactly what survives.

Each test log has known batch boundaries over several small segments. After
damage at byte ``p`` of segment ``s`` recovery must keep every batch that lies
wholly before the damaged batch and nothing else: the damaged batch, the rest
of its segment and every later segment are gone. The one exception is a flip
in bytes 12..15 of a batch (the leader epoch, outside the CRC), which loses
nothing. A flip in bytes 0..7 (the base offset, also outside the CRC) is caught
by the offset-continuity check.

The damage is only seen where recovery looks: after an unclean stop from the
segment holding the recovery point on, with ``full_recovery`` everywhere, and
after a clean shutdown only in the active segment's tail. Damage below the
recovery point after a clean shutdown goes unnoticed at open (as in Kafka), yet
reading it is a ``CorruptRecordError``, never data.
"""

from __future__ import annotations

import dataclasses
import random
import shutil
from bisect import bisect_right
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from client.errors import CorruptRecordError
from logserver.log import LogConfig, PartitionLog
from logserver.log.files import (
    CHECKPOINT_FILE,
    CLEAN_SHUTDOWN_FILE,
    INDEX_SUFFIX,
    LOG_SUFFIX,
    TIME_INDEX_SUFFIX,
    segment_path,
)
from tests.support.batches import make_batch
from tests.support.clock import FakeClock
from tests.support.damage import (
    BASE_OFFSET_BYTES,
    EPOCH_BYTES,
    Expected,
    LogLayout,
    check_layout_matches_disk,
    copy_log,
    expect_after_damage,
    fill_log,
    flip_bit,
    log_file,
    offset_index_entries,
    ram_directory,
    read_all,
    snapshot,
    truncate_file,
)

CONFIG = LogConfig(segment_bytes=600, index_interval_bytes=150, file_delete_delay_ms=0)
BATCHES = 32  # ten segments; the active one holds three batches and an index entry


@dataclasses.dataclass(frozen=True)
class Damage:
    base: int  # segment
    position: int
    flip: bool  # False: truncate the segment to ``position`` bytes
    bit: int = 0

    def apply(self, directory: Path) -> None:
        path = log_file(directory, self.base)
        if self.flip:
            flip_bit(path, self.position, self.bit)
        else:
            truncate_file(path, self.position)

    def expected(self, layout: LogLayout) -> Expected:
        return expect_after_damage(
            layout, self.base, self.position, truncated=not self.flip, bit_flip=self.flip
        )

    def __str__(self) -> str:
        what = f"flip bit {self.bit} of byte" if self.flip else "truncate at"
        return f"{what} {self.position} of segment {self.base}"


@dataclasses.dataclass(frozen=True)
class Scenario:
    """A log left on disk in some state, with where damage to it is noticed."""

    name: str
    directory: Path
    layout: LogLayout
    full_recovery: bool
    clean: bool  # the clean-shutdown marker is present (and honoured)
    validated_from: int  # the first segment recovery re-validates
    # (segment, first byte, end) ranges where recovery is bound to notice damage
    ranges: tuple[tuple[int, int, int], ...]


def _build(directory: Path, *, flush_after: int | None = None) -> tuple[PartitionLog, LogLayout]:
    log = PartitionLog.open(directory, CONFIG, clock_ms=FakeClock())
    layout = LogLayout()
    if flush_after is None:
        fill_log(log, layout, BATCHES)
    else:
        fill_log(log, layout, flush_after)
        log.flush()
        fill_log(log, layout, BATCHES - flush_after, start=flush_after)
    assert len(layout.bases) >= 6, "the test log should span several segments"
    assert len(layout.in_segment(layout.bases[-1])) >= 3, "the active segment should hold some"
    return log, layout


def _whole(layout: LogLayout, bases: list[int]) -> tuple[tuple[int, int, int], ...]:
    return tuple((b, 0, layout.segment_sizes[b]) for b in bases)


@pytest.fixture(scope="module")
def scenarios() -> Iterator[dict[str, Scenario]]:
    with ram_directory("crash-templates-") as root:
        yield _build_scenarios(root)


@pytest.fixture
def scratch() -> Iterator[Path]:
    with ram_directory("crash-case-") as path:
        yield path


def _build_scenarios(root: Path) -> dict[str, Scenario]:
    out: dict[str, Scenario] = {}

    # kill -9 with the checkpoint gone: the recovery point falls back to 0.
    d = root / "no-checkpoint"
    log, layout = _build(d)
    log.close_handlers()
    (d / CHECKPOINT_FILE).unlink()
    out["no-checkpoint"] = Scenario(
        "no-checkpoint", d, layout, False, False, 0, _whole(layout, layout.bases)
    )

    # kill -9 after a flush part-way: only data from the recovery point's segment on is checked.
    d = root / "unflushed"
    log, layout = _build(d, flush_after=16)
    recovery_point = log.recovery_point
    log.close_handlers()
    first_unflushed = next(b for b in layout.batches if b.first_offset == recovery_point)
    seg = first_unflushed.segment
    assert seg == layout.bases[bisect_right(layout.bases, recovery_point) - 1]
    later = _whole(layout, [b for b in layout.bases if b > seg])
    ranges = ((seg, first_unflushed.position, layout.segment_sizes[seg]), *later)
    out["unflushed"] = Scenario("unflushed", d, layout, False, False, seg, ranges)

    # Closed cleanly, then the marker removed: the checkpoint says "all flushed", so only
    # the active segment is re-validated.
    d = root / "marker-deleted"
    log, layout = _build(d)
    log.close()
    (d / CLEAN_SHUTDOWN_FILE).unlink()
    active = layout.bases[-1]
    out["marker-deleted"] = Scenario(
        "marker-deleted", d, layout, False, False, active, _whole(layout, [active])
    )

    # Closed cleanly, opened with full_recovery=True: everything is re-validated.
    d = root / "full-recovery"
    log, layout = _build(d)
    log.close()
    out["full-recovery"] = Scenario(
        "full-recovery", d, layout, True, False, 0, _whole(layout, layout.bases)
    )

    # Closed cleanly: the active segment's tail after its last index entry is validated.
    d = root / "clean-tail"
    log, layout = _build(d)
    log.close()
    entries = offset_index_entries(d, active := layout.bases[-1])
    tail_start = entries[-1][1] if entries else 0
    out["clean-tail"] = Scenario(
        "clean-tail",
        d,
        layout,
        False,
        True,
        active,
        ((active, tail_start, layout.segment_sizes[active]),),
    )

    for scenario in out.values():
        check_layout_matches_disk(scenario.layout, scenario.directory)
    return out


def _batches_in_ranges(scenario: Scenario) -> list[tuple[int, int, int]]:
    """``(segment, start, end)`` of every batch wholly inside the scenario's ranges."""
    return [
        (b.segment, b.position, b.end)
        for b in scenario.layout.batches
        for seg, lo, hi in scenario.ranges
        if b.segment == seg and lo <= b.position and b.end <= hi
    ]


def _positions(scenario: Scenario, *, flip: bool, seed: int, count: int) -> Iterator[Damage]:
    """Seeded random damage in the scenario's ranges, plus every header byte of a few batches."""
    rng = random.Random(f"{scenario.name}-{flip}-{seed}")
    for _ in range(count):
        seg, lo, hi = rng.choice(scenario.ranges)
        yield Damage(seg, rng.randrange(lo, hi), flip, rng.randrange(8))
    batches = _batches_in_ranges(scenario)
    key = {batches[0], batches[-1], batches[len(batches) // 2]}
    firsts = {b for b in batches if b[1] == 0} - key  # the first batch of each segment
    for seg, start, end in sorted(key | firsts):
        size = end - start
        if flip:
            body = 21 + rng.randrange(size - 21)
            rels = (
                [*range(21), body, size - 1] if (seg, start, end) in key else [0, 9, 14, 16, body]
            )
            for rel in rels:
                yield Damage(seg, start + rel, True, rng.randrange(8))
        else:
            rels = [0, 1, 11, 12, 60, 61, size - 1] if (seg, start, end) in key else [0, 12, 61]
            for rel in rels:
                yield Damage(seg, start + rel, False)


def _check_recovery(scenario: Scenario, damage: Damage, work: Path) -> None:
    """Damage a copy of the scenario's log, open it and check the outcome to the byte.

    ``work`` is removed afterwards when everything held."""
    what = f"{scenario.name}: {damage}"
    directory = copy_log(scenario.directory, work)
    damage.apply(directory)
    damaged_files = snapshot(directory)
    expected = damage.expected(scenario.layout)
    nothing_lost = expected.truncation is None and not expected.removed_segments

    log = PartitionLog.open(
        directory, CONFIG, clock_ms=FakeClock(), full_recovery=scenario.full_recovery
    )
    try:
        report = log.recovery_report
        assert report.clean_shutdown is scenario.clean, what
        if scenario.clean and nothing_lost:
            # The tail check found nothing, or a cut at the last index entry made it re-validate.
            assert report.validated_from_offset in (None, scenario.validated_from), what
        else:
            assert report.validated_from_offset == scenario.validated_from, what
        got = report.truncation
        assert (
            None
            if got is None
            else (got.segment_base_offset, got.position, got.first_lost_offset, got.bytes_cut)
        ) == expected.truncation, what
        if got is not None:
            assert got.reason, what
        assert report.removed_segments == expected.removed_segments, what
        assert report.bytes_cut == expected.bytes_cut, what
        assert report.lost_data is (expected.bytes_cut > 0), what
        assert report.log_end_offset == expected.log_end, what
        assert report.foreign_files == [], what
        assert report.removed_files == [], what
        assert log.log_end_offset == expected.log_end, what
        assert [s.base_offset for s in log.segments] == expected.segments_left, what

        # Exactly the survivors, byte for byte: each kept file is a prefix of the damaged one.
        assert read_all(log) == expected.survivors, what
        sizes = {s.base_offset: s.size for s in log.segments}
        for base, size in sizes.items():
            name = log_file(directory, base).name
            assert log_file(directory, base).read_bytes() == damaged_files[name][:size], what
        for base, _ in expected.removed_segments:
            for suffix in (LOG_SUFFIX, INDEX_SUFFIX, TIME_INDEX_SUFFIX):
                assert not segment_path(directory, base, suffix).exists(), what

        # The log goes on from the cut.
        info = log.append(make_batch(2, tag="after"))
        assert info.first_offset == expected.log_end, what
    finally:
        log.close()

    after = {**expected.survivors, expected.log_end: b"after-0", expected.log_end + 1: b"after-1"}
    with PartitionLog.open(directory, CONFIG, clock_ms=FakeClock()) as reopened:
        report = reopened.recovery_report
        assert report.clean_shutdown, what
        assert report.validated_from_offset is None, what
        assert report.truncation is None, what
        assert report.removed_segments == [], what
        assert report.rebuilt_indexes == [], what
        assert read_all(reopened) == after, what
        assert reopened.log_end_offset == expected.log_end + 2, what
    shutil.rmtree(work)


# -- every scenario, seeded positions ----------------------------------------------------


@pytest.mark.parametrize("flip", [False, True], ids=["truncate", "flip"])
@pytest.mark.parametrize(
    "name", ["no-checkpoint", "unflushed", "marker-deleted", "full-recovery", "clean-tail"]
)
def test_damage_at_seeded_positions(
    scenarios: dict[str, Scenario], name: str, flip: bool, scratch: Path
) -> None:
    scenario = scenarios[name]
    damages = list(_positions(scenario, flip=flip, seed=1, count=40))
    # Both the active segment and (where recovery looks there) older ones are hit.
    assert {d.base for d in damages} >= {scenario.layout.bases[-1]}
    if scenario.validated_from < scenario.layout.bases[-1]:
        assert len({d.base for d in damages}) > 1
    for i, damage in enumerate(damages):
        _check_recovery(scenario, damage, scratch / f"case-{i}")


@settings(max_examples=120)
@given(data=st.data())
def test_damage_at_random_positions(scenarios: dict[str, Scenario], data: st.DataObject) -> None:
    scenario = scenarios[data.draw(st.sampled_from(["no-checkpoint", "full-recovery"]))]
    layout = scenario.layout
    base = data.draw(st.sampled_from(layout.bases), label="segment")
    position = data.draw(st.integers(0, layout.segment_sizes[base] - 1), label="position")
    damage = Damage(
        base, position, data.draw(st.booleans(), label="flip"), data.draw(st.integers(0, 7))
    )
    with ram_directory("crash-case-") as work:
        _check_recovery(scenario, damage, work / "log")


def test_header_fields_each_flip_as_documented(
    scenarios: dict[str, Scenario], scratch: Path
) -> None:
    """Bytes 0..7 (base offset) cut via the offset check, 12..15 (epoch) lose nothing."""
    scenario = scenarios["full-recovery"]
    layout = scenario.layout
    middle = layout.batches[len(layout.batches) // 2]
    for rel in [*BASE_OFFSET_BYTES, *EPOCH_BYTES]:
        damage = Damage(middle.segment, middle.position + rel, True, 7 if rel in (0, 12) else 3)
        expected = damage.expected(layout)
        if rel in EPOCH_BYTES:
            assert expected.survivors == layout.values()
        else:
            assert expected.log_end == middle.first_offset
        _check_recovery(scenario, damage, scratch / f"rel-{rel}")
    # The reason names what was wrong.
    directory = copy_log(scenario.directory, scratch / "reason")
    flip_bit(log_file(directory, middle.segment), middle.position + 7)
    with PartitionLog.open(directory, CONFIG, clock_ms=FakeClock(), full_recovery=True) as log:
        truncation = log.recovery_report.truncation
        assert truncation is not None
        assert "breaks the sequence" in truncation.reason


# -- no damage ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["no-checkpoint", "unflushed", "marker-deleted", "full-recovery", "clean-tail"]
)
def test_undamaged_log_loses_nothing(
    scenarios: dict[str, Scenario], name: str, scratch: Path
) -> None:
    scenario = scenarios[name]
    directory = copy_log(scenario.directory, scratch / "log")
    before = snapshot(directory)
    with PartitionLog.open(
        directory, CONFIG, clock_ms=FakeClock(), full_recovery=scenario.full_recovery
    ) as log:
        report = log.recovery_report
        assert report.truncation is None
        assert report.removed_segments == []
        assert not report.lost_data
        assert read_all(log) == scenario.layout.values()
        assert log.log_end_offset == scenario.layout.log_end
        for base in scenario.layout.bases:
            name_ = log_file(directory, base).name
            assert log_file(directory, base).read_bytes() == before[name_]
        assert log.append(make_batch(1)).first_offset == scenario.layout.log_end


def test_torn_append_after_kill_is_cut(open_log, log_dir: Path) -> None:
    """A crash part-way through writing a batch leaves a prefix of it: exactly that is cut."""
    layout = LogLayout()
    log = open_log(**dataclasses.asdict(CONFIG))
    fill_log(log, layout, 12)
    log.close_handlers()
    whole = make_batch(3, tag="torn", value_size=40)
    active = layout.bases[-1]
    for cut in (1, 11, 12, 61, len(whole) - 1):
        with open(log_file(log_dir, active), "ab") as f:
            f.write(whole[:cut])
        log = open_log(**dataclasses.asdict(CONFIG))
        truncation = log.recovery_report.truncation
        assert truncation is not None
        assert (truncation.segment_base_offset, truncation.position) == (
            active,
            layout.segment_sizes[active],
        )
        assert (truncation.first_lost_offset, truncation.bytes_cut) == (layout.log_end, cut)
        assert read_all(log) == layout.values()
        log.close_handlers()


# -- damage below the recovery point after a clean shutdown --------------------------------


def _unnoticed_flips(scenario: Scenario) -> Iterator[Damage]:
    """Flips in CRC-covered or length bytes that a clean open does not look at."""
    layout = scenario.layout
    active = layout.bases[-1]
    entries = offset_index_entries(scenario.directory, active)
    tail_start = entries[-1][1] if entries else 0
    rng = random.Random("unnoticed")
    candidates = [
        b
        for b in layout.batches
        if b.segment != active or b.end <= tail_start  # the tail check would see the rest
    ]
    assert {b.segment for b in candidates} >= set(layout.bases[:-1])
    picked = [*rng.sample(candidates, 14), candidates[0], candidates[-1]]
    for b in picked:
        rel = rng.choice([8, 9, 10, 11, 16, 17, 20, 21, 22, 30, 57, 60, 61, b.size - 1])
        yield Damage(b.segment, b.position + rel, True, rng.randrange(8))


def test_damage_below_recovery_point_is_unnoticed_at_open_but_never_served(
    scenarios: dict[str, Scenario], scratch: Path
) -> None:
    scenario = scenarios["clean-tail"]  # closed cleanly; the template is only copied
    layout = scenario.layout
    for i, damage in enumerate(_unnoticed_flips(scenario)):
        what = str(damage)
        directory = copy_log(scenario.directory, scratch / f"case-{i}")
        damage.apply(directory)
        k = layout.index_of(damage.base, damage.position)
        damaged = layout.batches[k]

        with PartitionLog.open(directory, CONFIG, clock_ms=FakeClock()) as log:
            report = log.recovery_report
            assert report.clean_shutdown, what
            assert report.validated_from_offset is None, what  # Kafka: trust what was flushed
            assert report.truncation is None, what
            assert not report.lost_data, what
            assert log.log_end_offset == layout.log_end, what

            # Reading the damaged batch is an error, never data.
            for offset in (damaged.first_offset, damaged.last_offset):
                with pytest.raises(CorruptRecordError):
                    list(log.read(offset, 1).batches())  # type: ignore[union-attr]
                with pytest.raises(CorruptRecordError):
                    log.read_records(offset)
            # Batches before it, and batches in other segments, read fine.
            for other in layout.batches:
                if other.segment != damaged.segment or other.end <= damaged.position:
                    records = log.read_records(other.first_offset, 1)
                    assert {r.offset: r.value for r in records} == other.offsets(), what

        with PartitionLog.open(directory, CONFIG, clock_ms=FakeClock(), full_recovery=True) as log:
            expected = damage.expected(layout)
            truncation = log.recovery_report.truncation
            assert truncation is not None, what
            assert (truncation.segment_base_offset, truncation.position) == (
                damaged.segment,
                damaged.position,
            ), what
            assert truncation.first_lost_offset == damaged.first_offset, what
            assert log.recovery_report.removed_segments == expected.removed_segments, what
            assert log.recovery_report.bytes_cut == expected.bytes_cut, what
            assert read_all(log) == expected.survivors, what
            assert log.append(make_batch(1)).first_offset == damaged.first_offset, what


def test_epoch_flip_below_recovery_point_is_harmless(
    scenarios: dict[str, Scenario], scratch: Path
) -> None:
    scenario = scenarios["clean-tail"]
    layout = scenario.layout
    target = layout.in_segment(layout.bases[1])[1]
    directory = copy_log(scenario.directory, scratch / "log")
    flip_bit(log_file(directory, target.segment), target.position + 13, 5)
    with PartitionLog.open(directory, CONFIG, clock_ms=FakeClock()) as log:
        assert read_all(log) == layout.values()
    with PartitionLog.open(directory, CONFIG, clock_ms=FakeClock(), full_recovery=True) as log:
        assert log.recovery_report.truncation is None
        assert read_all(log) == layout.values()


def test_unflushed_damage_is_cut_even_when_older_segments_pass_cheap_checks(
    scenarios: dict[str, Scenario], scratch: Path
) -> None:
    """After a kill, segments below the recovery point are only index-checked, not re-read."""
    scenario = scenarios["unflushed"]
    layout = scenario.layout
    directory = copy_log(scenario.directory, scratch / "log")
    # Damage below the recovery point (unnoticed) and above it (cut).
    below = layout.in_segment(layout.bases[0])[1]
    flip_bit(log_file(directory, below.segment), below.position + 40)
    last = layout.batches[-1]
    truncate_file(log_file(directory, last.segment), last.position + 30)
    with PartitionLog.open(directory, CONFIG, clock_ms=FakeClock()) as log:
        report = log.recovery_report
        assert report.validated_from_offset == scenario.validated_from > 0
        assert report.truncation is not None
        assert report.truncation.first_lost_offset == last.first_offset
        assert report.truncation.bytes_cut == 30
        assert log.log_end_offset == last.first_offset
        with pytest.raises(CorruptRecordError):
            log.read_records(below.first_offset)


@pytest.mark.parametrize(
    ("byte", "bit"), [(7, 2), (7, 4), (6, 0), (0, 7)], ids=["down4", "up16", "up256", "negative"]
)
def test_base_offset_flip_below_recovery_point_never_serves_wrong_offsets(
    scenarios: dict[str, Scenario], scratch: Path, byte: int, bit: int
) -> None:
    """The base offset is outside the CRC, and a clean open does not re-read old segments.

    A read may then fail with a named error, but it must not answer a fetch for
    offset ``o`` with a batch that starts after ``o`` (skipping records) or with
    records labelled with offsets they were not written at.
    """
    scenario = scenarios["clean-tail"]
    layout = scenario.layout
    target = layout.in_segment(layout.bases[1])[1]
    directory = copy_log(scenario.directory, scratch / "log")
    flip_bit(log_file(directory, target.segment), target.position + byte, bit)
    expected = layout.values()
    with PartitionLog.open(directory, CONFIG, clock_ms=FakeClock()) as log:
        assert log.recovery_report.validated_from_offset is None
        for offset in range(target.first_offset, target.last_offset + 1):
            try:
                file_slice = log.read(offset, 1)
                records = log.read_records(offset, 1)
            except CorruptRecordError:
                continue  # a named error is acceptable
            assert file_slice is not None
            served = file_slice.first_offset
            assert served <= offset, f"a read of offset {offset} served the batch at {served}"
            assert records, f"no records for offset {offset}"
            assert [(r.offset, r.value) for r in records] == [
                (o, expected[o]) for o in range(offset, offset + len(records))
            ]
    with PartitionLog.open(directory, CONFIG, clock_ms=FakeClock(), full_recovery=True) as log:
        truncation = log.recovery_report.truncation
        assert truncation is not None
        assert truncation.first_lost_offset == target.first_offset
        assert read_all(log) == layout.values(layout.batches.index(target))
