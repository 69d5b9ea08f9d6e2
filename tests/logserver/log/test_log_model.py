"""A ``PartitionLog`` driven by random operations behaves like ``PartitionLogModel``.

Appends (random codecs, sizes, leader epochs, and timestamps that may go
backwards), rolls, clock moves, retention changes, reads, timestamp lookups,
flushes, truncations (``truncate_to``), clean and crash reopens, all checked
after every step against an in-memory model that mirrors the segment layout
and the leader-epoch cache exactly.
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from client.errors import OffsetOutOfRangeError, RecordBatchTooLargeError
from client.record import Record
from logserver.log import FileSlice, LogConfig, PartitionLog
from segment_tools.verify import verify_directory
from tests.support.batches import make_batch
from tests.support.clock import FakeClock
from tests.support.log_model import ExpectedRead, ModelRecord, PartitionLogModel

_DAY_MS = 24 * 60 * 60 * 1000

BatchSpec = tuple[int, int, list[int], str]


_TIMESTAMP_DELTAS = st.integers(-90_000, 10_000) | st.integers(-2, 2)  # often equal, or nearly
_CODECS = st.sampled_from(["none", "lz4", "snappy"])


@st.composite
def batch_specs(draw: st.DrawFn, max_value_size: int = 200) -> BatchSpec:
    """One batch: record count, value size, timestamps relative to the clock, codec.

    Timestamps may go backwards within and across batches, and reach far enough
    into the past for time retention to remove their segment.
    """
    count = draw(st.integers(1, 5))
    value_size = draw(st.integers(0, max_value_size))
    deltas = [draw(_TIMESTAMP_DELTAS) for _ in range(count)]
    return count, value_size, deltas, draw(_CODECS)


def _rows(records: Iterable[Record | ModelRecord]) -> list[tuple[int, int, bytes | None]]:
    return [(r.offset, r.timestamp, r.value) for r in records]


class PartitionLogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="log-model-"))
        self.directory = self.root / "topic-0"
        self.clock = FakeClock()
        self.log: PartitionLog | None = None
        self.batches_built = 0
        self.config: LogConfig
        self.model: PartitionLogModel

    # -- helpers --------------------------------------------------------------------

    @property
    def plog(self) -> PartitionLog:
        assert self.log is not None
        return self.log

    def _reopen(self, *, full_recovery: bool) -> PartitionLog:
        self.log = PartitionLog.open(
            self.directory, self.config, clock_ms=self.clock, full_recovery=full_recovery
        )
        self.model.reopen(self.clock())
        return self.log

    def _check_slice(self, got: FileSlice | None, expected: ExpectedRead | None) -> None:
        if expected is None:
            assert got is None
            return
        assert got is not None
        assert got.path.name == f"{expected.segment.base_offset:020d}.log"
        assert (got.position, got.size) == (expected.position, expected.size)
        assert got.first_offset == expected.batches[0].base_offset
        decoded = list(got.batches())
        assert [(b.base_offset, b.size_in_bytes) for b in decoded] == [
            (b.base_offset, b.size) for b in expected.batches
        ]
        for batch, model_batch in zip(decoded, expected.batches, strict=True):
            assert batch.header.partition_leader_epoch == model_batch.leader_epoch
            assert batch.header.max_timestamp == model_batch.max_timestamp
            assert _rows(batch.records()) == _rows(model_batch.records)

    def _check_read(self, offset: int, max_bytes: int, max_offset: int | None) -> None:
        expected = self.model.read(offset, max_bytes, max_offset)
        got = self.plog.read(offset, max_bytes, max_offset=max_offset)
        self._check_slice(got, expected)
        if got is not None:
            # What the model encodes, stated directly: whole batches from the one
            # holding ``offset``; past ``max_bytes`` only when that batch alone is.
            first = next(iter(got.batches()))
            assert first.base_offset <= offset <= first.last_offset
            assert got.size <= max_bytes or got.size == first.size_in_bytes

    def _check_all_records(self) -> None:
        """Read the whole retained log with ``read_records`` and compare it with the model."""
        log, model = self.plog, self.model
        got = []
        offset = model.log_start_offset
        while offset < model.next_offset:
            records = log.read_records(offset, 1 << 20)
            assert records, f"nothing read at offset {offset} below {model.next_offset}"
            got.extend(records)
            offset = records[-1].offset + 1
        assert offset == model.next_offset
        assert _rows(got) == _rows(model.records())

    def _check_offset_for_timestamp(self, timestamp: int) -> None:
        expected = self.model.offset_for_timestamp(timestamp)
        got = self.plog.offset_for_timestamp(timestamp)
        assert (None if got is None else (got.offset, got.timestamp)) == expected, timestamp

    # -- setup ----------------------------------------------------------------------

    @initialize(
        segment_bytes=st.integers(1024, 4096),
        segment_ms=st.sampled_from([10_000, 60_000, 7 * _DAY_MS]),
        index_interval_bytes=st.sampled_from([0, 100, 200, 400, 4096]),
    )
    def open_new_log(self, segment_bytes: int, segment_ms: int, index_interval_bytes: int) -> None:
        self.config = LogConfig(
            segment_bytes=segment_bytes,
            segment_ms=segment_ms,
            segment_index_bytes=1 << 20,  # never full: index-full rolls are not modelled
            index_interval_bytes=index_interval_bytes,
            retention_ms=-1,
            retention_bytes=-1,
            file_delete_delay_ms=0,
        )
        self.model = PartitionLogModel(self.clock())
        self.log = PartitionLog.open(self.directory, self.config, clock_ms=self.clock)
        assert self.log.recovery_report.created

    def teardown(self) -> None:
        try:
            if self.log is not None and not self.log.closed:
                self.log.close()
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    # -- writes ---------------------------------------------------------------------

    @rule(
        specs=st.lists(batch_specs(), min_size=1, max_size=1)
        | st.lists(batch_specs(), min_size=2, max_size=3),
        leader_epoch=st.none() | st.integers(0, 5),
        writable=st.booleans(),
    )
    def append(self, specs: list[BatchSpec], leader_epoch: int | None, writable: bool) -> None:
        """One append call of one or more batches (a writable buffer is stamped in place)."""
        now = self.clock()
        encoded = []
        for count, value_size, ts_deltas, codec in specs:
            self.batches_built += 1
            tag = f"b{self.batches_built}"
            timestamps = [now + d for d in ts_deltas]
            data = make_batch(
                count, tag=tag, value_size=value_size, compression=codec, timestamp_ms=timestamps
            )
            values = [f"{tag}-{i}".encode().ljust(value_size, b"x") for i in range(count)]
            encoded.append((data, list(zip(timestamps, values, strict=True))))
        payload = b"".join(data for data, _ in encoded)

        if len(payload) > self.config.segment_bytes:
            with pytest.raises(RecordBatchTooLargeError):
                self.plog.append(payload, leader_epoch=leader_epoch)
            return

        info = self.plog.append(
            bytearray(payload) if writable else payload, leader_epoch=leader_epoch
        )
        appended = self.model.append(
            [(len(data), rows) for data, rows in encoded],
            -1 if leader_epoch is None else leader_epoch,
            now,
            self.config,
        )
        assert info.first_offset == appended[0].base_offset
        assert info.last_offset == appended[-1].last_offset
        assert info.record_count == sum(len(b.records) for b in appended)
        assert info.size_bytes == len(payload)
        assert info.max_timestamp == max(b.max_timestamp for b in appended)

    @rule(specs=st.lists(batch_specs(max_value_size=60), min_size=2, max_size=8))
    def append_many(self, specs: list[BatchSpec]) -> None:
        """Several small single-batch appends in a row, so segments fill and roll by size."""
        for spec in specs:
            self.append([spec], leader_epoch=None, writable=False)

    @rule()
    def roll(self) -> None:
        self.model.roll(self.clock())
        assert self.plog.roll() == self.model.active.base_offset

    @rule(ms=st.integers(0, 5_000) | st.sampled_from([10_000, 30_000, 120_000]))
    def advance_clock(self, ms: int) -> None:
        self.clock.advance(ms)

    @rule(data=st.data())
    def advance_clock_to_edge(self, data: st.DataObject) -> None:
        """Move the clock to just before, at or just after a segment.ms or retention.ms edge.

        Then apply retention (the next append tests the segment.ms edge).
        """
        now = self.clock()
        edges = [
            edge + delta for edge in self.model.time_edges(self.config) for delta in (-1, 0, 1)
        ]
        edges = [edge for edge in edges if edge >= now]
        if edges:
            self.clock.advance(data.draw(st.sampled_from(edges), label="edge") - now)
        self.delete_old_segments()

    @rule(data=st.data())
    def change_retention(self, data: st.DataObject) -> None:
        """New retention settings (``update_config``), applied at once."""
        retention_ms = data.draw(
            st.sampled_from([-1, 0, 1_000, 10_000, 60_000, 600_000]), label="retention_ms"
        )
        edges = [
            edge + delta for edge in self.model.retention_bytes_edges() for delta in (-1, 0, 1)
        ]
        retention_bytes = data.draw(
            st.sampled_from([-1, 0, 500, 2_000, 5_000, 20_000])
            | st.sampled_from([edge for edge in edges if edge >= 0] or [-1]),
            label="retention_bytes",
        )
        self.config = dataclasses.replace(
            self.config, retention_ms=retention_ms, retention_bytes=retention_bytes
        )
        self.plog.update_config(self.config)
        self.delete_old_segments()

    @rule()
    def delete_old_segments(self) -> None:
        expected = self.model.delete_old_segments(self.clock(), self.config)
        deleted = self.plog.delete_old_segments()
        assert [(d.base_offset, d.size_bytes, d.reason) for d in deleted] == expected

    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        """``truncate_to`` anywhere: inside a batch, at a batch or segment edge, or out of range.

        Then one read at the new end (nothing there) and one just before it.
        """
        model = self.model
        start, end = model.log_start_offset, model.next_offset
        edges = sorted(
            {o for s in model.segments for b in s.batches for o in (b.base_offset, b.last_offset)}
            | {s.base_offset for s in model.segments}
            | {start, end, end + 1, start - 1}
        )
        offset = data.draw(
            st.sampled_from(edges) | st.integers(max(start - 3, -1), end + 3), label="offset"
        )
        expected = model.truncate_to(offset)
        if expected is None:
            with pytest.raises(OffsetOutOfRangeError):
                self.plog.truncate_to(offset)
            return
        assert self.plog.truncate_to(offset) == expected
        assert expected <= max(offset, model.log_start_offset)
        assert self.plog.read(expected, 1 << 20) is None
        if expected > model.log_start_offset:
            self._check_read(expected - 1, 1 << 20, None)

    @rule(data=st.data())
    def flush(self, data: st.DataObject) -> None:
        offset = data.draw(st.none() | st.integers(0, self.model.next_offset + 3), label="offset")
        self.plog.flush(offset)
        self.model.flush(offset)

    # -- reads ----------------------------------------------------------------------

    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        """``read`` and ``read_records`` at one offset, in range or (sometimes) not.

        Besides a random ``max_bytes``, every whole-batch edge: one byte short of
        each prefix of batches, and exactly it.
        """
        model = self.model
        start, end = model.log_start_offset, model.next_offset
        where = data.draw(st.sampled_from(["inside"] * 4 + ["below", "above"]), label="where")
        offset = data.draw(
            st.integers(start, end)
            if where == "inside"
            else st.integers(start - 50, start - 1)
            if where == "below"
            else st.integers(end + 1, end + 50),
            label="offset",
        )
        max_bytes = data.draw(st.integers(0, 3_000) | st.just(1 << 20), label="max_bytes")
        if not model.in_range(offset):
            with pytest.raises(OffsetOutOfRangeError):
                self.plog.read(offset, max_bytes)
            with pytest.raises(OffsetOutOfRangeError):
                self.plog.read_records(offset, max_bytes)
            return

        max_offset = data.draw(st.none() | st.integers(offset, end + 2), label="max_offset")
        self._check_read(offset, max_bytes, max_offset)
        for size in model.read_sizes(offset)[:4]:
            self._check_read(offset, size - 1, max_offset)
            self._check_read(offset, size, max_offset)

        expected = model.read(offset, max_bytes)
        wanted = [] if expected is None else [r for b in expected.batches for r in b.records]
        got_records = self.plog.read_records(offset, max_bytes)
        assert _rows(got_records) == _rows(r for r in wanted if r.offset >= offset)

    @rule(data=st.data())
    def offset_for_timestamp(self, data: st.DataObject) -> None:
        """A random lookup, then every batch's largest timestamp and just past it.

        Those are where the sparse time index decides: ties between batches, a
        segment's largest timestamp, and the first timestamp a segment cannot answer.
        """
        now = self.clock()
        known = sorted({r.timestamp for r in self.model.records()})
        timestamps = st.integers(now - 200_000, now + 20_000)
        if known:
            timestamps |= st.builds(
                lambda ts, delta: ts + delta, st.sampled_from(known), st.integers(-1, 1)
            )
        self._check_offset_for_timestamp(data.draw(timestamps, label="timestamp"))
        edges = {
            b.max_timestamp + d for s in self.model.segments for b in s.batches for d in (0, 1)
        }
        for timestamp in sorted(edges):
            self._check_offset_for_timestamp(timestamp)

    # -- restarts -------------------------------------------------------------------

    @rule(full_recovery=st.booleans())
    def clean_reopen(self, full_recovery: bool) -> None:
        self.plog.close()
        result = verify_directory(self.directory)  # what segment-tools verify checks
        assert result.ok, [str(p) for p in result.problems]
        assert not result.warnings, result.warnings
        assert (result.log_start_offset, result.log_end_offset) == (
            self.model.log_start_offset,
            self.model.next_offset,
        )
        report = self._reopen(full_recovery=full_recovery).recovery_report
        assert report.clean_shutdown is not full_recovery
        assert not report.lost_data, report.describe()
        self._check_all_records()

    @rule(full_recovery=st.booleans(), restart_again=st.booleans())
    def crash_reopen(self, full_recovery: bool, restart_again: bool) -> None:
        """``close_handlers`` leaves what ``kill -9`` leaves: every append reached the OS.

        With ``restart_again``, a clean restart follows at once: what recovery rebuilt
        (indexes included) must hold up when it is read back from disk.
        """
        self.plog.close_handlers()
        report = self._reopen(full_recovery=full_recovery).recovery_report
        assert not report.clean_shutdown
        assert not report.lost_data, report.describe()
        self._check_all_records()
        if restart_again:
            self.segments_match()
            self.clean_reopen(full_recovery=False)

    # -- invariants -----------------------------------------------------------------

    @invariant()
    def offsets_match(self) -> None:
        log, model = self.plog, self.model
        assert log.log_start_offset == model.log_start_offset
        assert log.log_end_offset == model.next_offset
        assert log.recovery_point == model.recovery_point

    @invariant()
    def leader_epochs_match(self) -> None:
        """The epoch cache, and OffsetsForLeaderEpoch for every epoch in play."""
        log, model = self.plog, self.model
        assert [(e.epoch, e.start_offset) for e in log.leader_epochs.entries] == model.epochs
        for epoch in range(-2, 8):
            assert tuple(log.end_offset_for_epoch(epoch)) == model.end_offset_for_epoch(epoch)

    @invariant()
    def segments_match(self) -> None:
        log, model = self.plog, self.model
        assert [s.base_offset for s in log.segments] == model.base_offsets
        assert [s.size for s in log.segments] == model.segment_sizes
        assert log.size_bytes == model.size_bytes
        # What time retention reads: each rolled segment's largest record timestamp,
        # which after a restart comes from the last entry of its time index on disk.
        largest = [s.largest_timestamp for s in model.segments[:-1]]
        assert [s.largest_timestamp for s in log.segments[:-1]] == largest
        last_entries = [s.time_index.last_disk_entry() for s in log.segments[:-1]]
        assert [None if e is None else e[0] for e in last_entries] == largest

    @invariant()
    def files_match(self) -> None:
        """On disk are the model's segments only: retention removed the rest at once."""
        on_disk = sorted(int(p.name[:20]) for p in self.directory.glob("*.log"))
        assert on_disk == self.model.base_offsets
        assert not list(self.directory.glob("*.deleted"))


PartitionLogMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=50, deadline=None
)
TestPartitionLogModel = PartitionLogMachine.TestCase
