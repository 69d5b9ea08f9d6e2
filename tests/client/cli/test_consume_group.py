"""``logctl consume --group``: its arguments, and its loop against a scripted group member."""

from __future__ import annotations

import io

import pytest

from client.cli.consume import OffsetSpec, consume_group
from client.cli.main import build_parser, main
from client.cli.output_format import compile_format
from client.record import Record
from client.topic_partition import TopicPartition

A, B = TopicPartition("t", 0), TopicPartition("t", 1)


# -- arguments -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "complaint"),
    [
        (["--group", "g", "--partition", "0"], "--group and --partition do not go together"),
        (["--group", "g", "--offset", "start"], "--group and --offset do not go together"),
        (["--group", "g", "-o", "-5"], "move them with 'logctl group reset-offsets'"),
        (["--group", ""], "--group must not be empty"),
    ],
)
def test_group_refuses_what_the_coordinator_decides(argv, complaint, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["consume", "t", *argv])

    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert complaint in err
    assert err.startswith("usage: logctl consume")


def test_group_takes_from_beginning_and_remembers_which_option_set_the_start():
    parser = build_parser()

    grouped = parser.parse_args(["consume", "t", "--group", "g", "--from-beginning", "-e"])
    plain = parser.parse_args(["consume", "t"])
    offset = parser.parse_args(["consume", "t", "-o", "start"])

    assert (grouped.group, grouped.start_option, grouped.offset) == (
        "g",
        "--from-beginning",
        OffsetSpec("start"),
    )
    assert (plain.group, plain.start_option, plain.offset) == (None, None, OffsetSpec("end"))
    assert (offset.start_option, offset.offset) == ("-o", OffsetSpec("start"))


# -- the loop --------------------------------------------------------------------------


class ScriptedMember:
    """A group member: the assignment arrives at poll number ``assign_at``; each poll then
    returns at most 2 records per assigned partition, up to ``ends``."""

    def __init__(self, ends: dict[TopicPartition, int], assign_at: int = 2) -> None:
        self.ends = dict(ends)
        self.positions = dict.fromkeys(ends, 0)
        self.assign_at = assign_at
        self.polls = 0
        self.assigned: set[TopicPartition] = set()
        self.on_assign = None
        self.subscribed: list[str] | None = None
        self.commits = 0

    def subscribe(self, topics, *, on_assign=None):
        self.subscribed = list(topics)
        self.on_assign = on_assign

    def assignment(self):
        return set(self.assigned)

    async def position(self, tp):
        return self.positions[tp]

    async def end_offsets(self, tps):
        return {tp: self.ends[tp] for tp in tps}

    async def commit(self):
        self.commits += 1

    async def poll(self, timeout_ms, max_records=None):
        self.polls += 1
        if self.polls == self.assign_at:
            self.assigned = set(self.ends)
            self.on_assign(set(self.assigned))
        out = {}
        for tp in sorted(self.assigned):
            take = min(2, self.ends[tp] - self.positions[tp])
            if max_records is not None:
                take = min(take, max_records - sum(len(r) for r in out.values()))
            if take > 0:
                start = self.positions[tp]
                out[tp] = [
                    Record(o, 0, None, f"{tp.partition}-{o}".encode(), ())
                    for o in range(start, start + take)
                ]
                self.positions[tp] += take
        return out


async def run(member, **kwargs):
    out = io.BytesIO()
    kwargs.setdefault("max_messages", None)
    kwargs.setdefault("exit_at_end", True)
    printed = await consume_group(
        member, "t", formatter=compile_format("%p %o\\n"), out=out, **kwargs
    )
    return printed, out.getvalue().decode().splitlines()


async def test_exit_at_end_waits_for_the_first_assignment_then_for_every_end():
    member = ScriptedMember({A: 3, B: 1}, assign_at=3)

    printed, lines = await run(member)

    assert member.subscribed == ["t"]
    assert printed == 4
    assert sorted(lines) == ["0 0", "0 1", "0 2", "1 0"]
    assert member.polls == 4  # two empty polls before the assignment, then 2 + 1 records
    assert member.commits == 1


async def test_an_empty_topic_exits_right_after_the_assignment():
    member = ScriptedMember({A: 0, B: 0}, assign_at=2)

    assert await run(member) == (0, [])
    assert member.polls == 2


async def test_max_messages_stops_and_commits():
    member = ScriptedMember({A: 10, B: 10}, assign_at=1)

    printed, lines = await run(member, max_messages=3, exit_at_end=False)

    assert printed == 3
    assert len(lines) == 3
    assert member.commits == 1
    assert sum(member.positions.values()) == 3  # nothing taken past what was printed
