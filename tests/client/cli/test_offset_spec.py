"""``logctl consume --offset``: parsing, and where each partition starts (no broker)."""

from __future__ import annotations

import pytest

from client.cli.consume import OffsetSpec, parse_offset, start_offsets
from client.topic_partition import OffsetAndTimestamp, TopicPartition


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("start", OffsetSpec("start")),
        ("beginning", OffsetSpec("start")),
        ("earliest", OffsetSpec("start")),
        ("END", OffsetSpec("end")),
        ("latest", OffsetSpec("end")),
        ("0", OffsetSpec("absolute", 0)),
        ("1234", OffsetSpec("absolute", 1234)),
        ("-5", OffsetSpec("from_end", 5)),
        ("-0", OffsetSpec("from_end", 0)),
        ("@1700000000000", OffsetSpec("timestamp", 1_700_000_000_000)),
        (" 7 ", OffsetSpec("absolute", 7)),
    ],
)
def test_parse_offset(text, expected):
    assert parse_offset(text) == expected


@pytest.mark.parametrize("text", ["", "-", "@", "@-5", "--3", "1.5", "ten", "+3", "@now", "٣"])
def test_parse_offset_rejects_anything_else_naming_the_forms(text):
    with pytest.raises(ValueError, match=r"is not start, end, N, -N \(before the end\)"):
        parse_offset(text)


T0, T1, T2 = (TopicPartition("t", p) for p in range(3))


class FakeConsumer:
    """Partition 0 holds offsets 10..19, partition 1 is empty at 5, partition 2 holds 0..99."""

    def __init__(self) -> None:
        self.starts = {T0: 10, T1: 5, T2: 0}
        self.ends = {T0: 20, T1: 5, T2: 100}
        self.by_time = {T0: OffsetAndTimestamp(12, 1_000), T1: None, T2: OffsetAndTimestamp(0, 50)}
        self.asked_times: dict[TopicPartition, int] = {}

    async def beginning_offsets(self, tps):
        return {tp: self.starts[tp] for tp in tps}

    async def end_offsets(self, tps):
        return {tp: self.ends[tp] for tp in tps}

    async def offsets_for_times(self, timestamps):
        self.asked_times.update(timestamps)
        return {tp: self.by_time[tp] for tp in timestamps}


ALL = [T0, T1, T2]


async def starts(spec: OffsetSpec) -> dict[TopicPartition, int]:
    return await start_offsets(FakeConsumer(), ALL, spec)  # type: ignore[arg-type]


async def test_start_and_end_are_the_log_bounds():
    assert await starts(OffsetSpec("start")) == {T0: 10, T1: 5, T2: 0}
    assert await starts(OffsetSpec("end")) == {T0: 20, T1: 5, T2: 100}


async def test_an_absolute_offset_is_clamped_into_each_log():
    assert await starts(OffsetSpec("absolute", 15)) == {T0: 15, T1: 5, T2: 15}
    assert await starts(OffsetSpec("absolute", 0)) == {T0: 10, T1: 5, T2: 0}
    assert await starts(OffsetSpec("absolute", 500)) == {T0: 20, T1: 5, T2: 100}


async def test_minus_n_is_n_records_before_each_end_but_not_before_the_start():
    assert await starts(OffsetSpec("from_end", 3)) == {T0: 17, T1: 5, T2: 97}
    assert await starts(OffsetSpec("from_end", 50)) == {T0: 10, T1: 5, T2: 50}
    assert await starts(OffsetSpec("from_end", 0)) == {T0: 20, T1: 5, T2: 100}


async def test_a_timestamp_starts_at_the_first_record_at_or_after_it_else_at_the_end():
    consumer = FakeConsumer()

    found = await start_offsets(consumer, ALL, OffsetSpec("timestamp", 999))  # type: ignore[arg-type]

    assert found == {T0: 12, T1: 5, T2: 0}
    assert consumer.asked_times == {T0: 999, T1: 999, T2: 999}
