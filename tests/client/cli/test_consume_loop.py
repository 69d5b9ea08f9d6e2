"""The ``logctl consume`` loop against a scripted consumer: ``-e`` and ``--max-messages``."""

from __future__ import annotations

import io

import pytest

from client.cli.consume import consume
from client.cli.output_format import compile_format
from client.record import Record
from client.topic_partition import TopicPartition

A, B = TopicPartition("t", 0), TopicPartition("t", 1)


class ScriptedConsumer:
    """Polls return at most 2 records per partition; ``growth`` records are appended after
    each poll from poll number ``grow_from`` on."""

    def __init__(
        self,
        ends: dict[TopicPartition, int],
        growth: dict[TopicPartition, int] | None = None,
        grow_from: int = 1,
    ) -> None:
        self.ends = dict(ends)
        self.positions = dict.fromkeys(ends, 0)
        self.growth = growth or {}
        self.grow_from = grow_from
        self.polls = 0
        self.end_queries: list[list[TopicPartition]] = []

    async def position(self, tp):
        return self.positions[tp]

    async def end_offsets(self, tps):
        self.end_queries.append(sorted(tps))
        return {tp: self.ends[tp] for tp in tps}

    async def poll(self, timeout_ms=1000, max_records=None):
        self.polls += 1
        assert self.polls < 100, "the loop never ended"
        out = {}
        budget = max_records if max_records is not None else 1 << 30
        for tp in sorted(self.positions):
            n = min(2, self.ends[tp] - self.positions[tp], budget)
            if n > 0:
                start = self.positions[tp]
                out[tp] = [Record(o, 0, None, b"%d" % o, ()) for o in range(start, start + n)]
                self.positions[tp] += n
                budget -= n
        if self.polls >= self.grow_from:
            for tp, n in self.growth.items():
                self.ends[tp] += n
        return out


async def run(consumer, *, max_messages=None, exit_at_end=True) -> tuple[int, list[str]]:
    out = io.BytesIO()
    printed = await consume(
        consumer,  # type: ignore[arg-type]
        sorted(consumer.ends),
        formatter=compile_format("%p:%v\\n"),
        out=out,
        max_messages=max_messages,
        exit_at_end=exit_at_end,
    )
    return printed, out.getvalue().decode().splitlines()


async def test_exit_at_end_prints_everything_up_to_each_end():
    printed, got = await run(ScriptedConsumer({A: 3, B: 1}))

    assert printed == 4
    assert got == ["0:0", "0:1", "1:0", "0:2"]


async def test_exit_at_end_with_empty_partitions_prints_nothing_and_polls_nothing():
    consumer = ScriptedConsumer({A: 0, B: 0})

    printed, got = await run(consumer)

    assert (printed, got, consumer.polls) == (0, [], 0)


async def test_a_partition_at_its_end_is_finished_even_if_it_grows_later():
    # A is at its end after the first poll; from then on it grows faster than it is read
    consumer = ScriptedConsumer({A: 2, B: 6}, growth={A: 5}, grow_from=2)

    printed, got = await run(consumer)

    assert consumer.polls == 3  # B's six records, two per poll
    assert [line for line in got if line.startswith("1:")] == [f"1:{o}" for o in range(6)]
    assert printed == len(got) == 6 + consumer.positions[A]
    assert consumer.ends[A] > consumer.positions[A]  # A's later records were not waited for


async def test_a_partition_that_keeps_pace_with_its_producer_is_never_at_its_end():
    consumer = ScriptedConsumer({A: 2}, growth={A: 2})  # as kcat: -e exits only at an end
    consumer.polls = 90  # the scripted consumer fails the test after 100 polls

    with pytest.raises(AssertionError, match="the loop never ended"):
        await run(consumer)


async def test_end_offsets_are_asked_only_for_partitions_that_caught_up():
    consumer = ScriptedConsumer({A: 10, B: 1})

    await run(consumer)

    # first: both (nothing known); then only once a position reaches the last end seen
    assert consumer.end_queries[0] == [A, B]
    assert all(query == [A] for query in consumer.end_queries[2:])
    assert len(consumer.end_queries) <= 4


async def test_max_messages_stops_exactly_there():
    consumer = ScriptedConsumer({A: 50, B: 50})

    printed, got = await run(consumer, max_messages=3, exit_at_end=False)

    assert printed == 3
    assert got == ["0:0", "0:1", "1:0"]


async def test_max_messages_before_the_end_wins_over_exit_at_end():
    printed, _ = await run(ScriptedConsumer({A: 50}), max_messages=5)

    assert printed == 5
