"""``logctl consume TOPIC``: print records as they arrive, from where ``--offset`` says.

``--offset`` takes ``start``, ``end`` (the default, as Kafka's console consumer
starts at the latest offset), ``N`` (an absolute offset, clamped to the log),
``-N`` (N records before each partition's end) or ``@TIMESTAMP_MS`` (the first
record at or after that time; the end when there is none). With
``--exit-at-end`` (``-e``) a partition is finished once the consumer's position
reaches its end offset as of that moment, and the command exits when every
assigned partition is; later appends are not waited for. ``--max-messages``
stops after that many records. Each record is written and flushed on its own,
so ``| head`` and ``| grep --line-buffered`` see records at once.

With ``--group G`` the command is a member of consumer group G
(``kafka-console-consumer.sh --group``): the group's coordinator gives it a
share of the topic's partitions, it starts at the group's committed offsets
(``--from-beginning`` is ``auto_offset_reset=earliest``, for partitions the
group has none for; else the end), and it commits as it goes (auto-commit)
and once more when it stops. ``-e`` then exits once every partition of its
assignment is at its end, after the first assignment. ``--partition`` and
``--offset`` do not go with ``--group``: the coordinator chooses the
partitions, and ``logctl group reset-offsets`` moves a group's offsets.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import sys
from typing import BinaryIO, Literal

from client.cli.output_format import DEFAULT_FORMAT, FormatError, Formatter, compile_format
from client.consumer import Consumer
from client.errors import UnknownTopicOrPartitionError
from client.topic_partition import TopicPartition

__all__ = ["OffsetSpec", "add_parser", "consume_group", "parse_offset", "start_offsets"]

_POLL_TIMEOUT_MS = 500


@dataclasses.dataclass(frozen=True, slots=True)
class OffsetSpec:
    """Where to start: ``kind`` is start, end, absolute, from_end or timestamp."""

    kind: Literal["start", "end", "absolute", "from_end", "timestamp"]
    value: int = 0


_WORDS: dict[str, OffsetSpec] = {
    "start": OffsetSpec("start"),
    "beginning": OffsetSpec("start"),
    "earliest": OffsetSpec("start"),
    "end": OffsetSpec("end"),
    "latest": OffsetSpec("end"),
}


def parse_offset(text: str) -> OffsetSpec:
    """``start``, ``end``, ``N``, ``-N`` or ``@TIMESTAMP_MS``; ``ValueError`` otherwise."""
    word = _WORDS.get(text.strip().lower())
    if word is not None:
        return word
    body = text.strip()
    kind: Literal["absolute", "from_end", "timestamp"] = "absolute"
    if body.startswith("@"):
        kind, body = "timestamp", body[1:]
    elif body.startswith("-"):
        kind, body = "from_end", body[1:]
    if not body.isdigit() or not body.isascii():
        raise ValueError(
            f"offset {text!r} is not start, end, N, -N (before the end) or @TIMESTAMP_MS"
        )
    return OffsetSpec(kind, int(body))


def _offset_arg(text: str) -> OffsetSpec:
    try:
        return parse_offset(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _format_arg(text: str) -> Formatter:
    try:
        return compile_format(text)
    except FormatError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    parser = commands.add_parser(
        "consume", parents=[common], help="print a topic's records to standard output"
    )
    parser.add_argument("topic", metavar="TOPIC")
    parser.add_argument(
        "--partition", type=int, metavar="P", help="only this partition (default: all)"
    )
    start = parser.add_mutually_exclusive_group()
    start.add_argument(
        "-o",
        "--offset",
        type=_offset_arg,
        action=_StartOption,
        default=OffsetSpec("end"),
        metavar="OFFSET",
        help="start, end (default), N, -N (N before the end) or @TIMESTAMP_MS",
    )
    start.add_argument(
        "--from-beginning",
        dest="offset",
        action=_StartOption,
        nargs=0,
        const=OffsetSpec("start"),
        help="same as --offset start; with --group, where partitions without a committed "
        "offset start",
    )
    parser.add_argument(
        "--group",
        metavar="GROUP",
        help="consume as a member of this consumer group, committing as it goes",
    )
    parser.add_argument("--max-messages", type=_positive, metavar="N", help="stop after N")
    parser.add_argument(
        "-e",
        "--exit-at-end",
        action="store_true",
        help="exit once every partition is at its end offset",
    )
    parser.add_argument(
        "--format",
        type=_format_arg,
        default=compile_format(DEFAULT_FORMAT),
        metavar="FMT",
        help="%%v value, %%k key, %%p partition, %%o offset, %%T timestamp, %%t topic, "
        "%%h headers, \\n \\t escapes; or json (default: %%v\\n)",
    )
    parser.set_defaults(run=run, check=functools.partial(_check, parser), start_option=None)


class _StartOption(argparse.Action):
    """Store the start offset and remember which option gave it (``--group`` takes only one)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        setattr(namespace, self.dest, self.const if self.nargs == 0 else values)
        namespace.start_option = option_string


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.partition is not None and args.partition < 0:
        parser.error(f"--partition must not be negative, not {args.partition}")
    if args.group is None:
        return
    if not args.group:
        parser.error("--group must not be empty")
    if args.partition is not None:
        parser.error(
            "--group and --partition do not go together: the group's coordinator shares the "
            "partitions out; drop --partition, or --group to read one partition on your own"
        )
    if args.start_option in ("-o", "--offset"):
        parser.error(
            "--group and --offset do not go together: a member starts at the group's committed "
            "offsets (--from-beginning: at the start where it has none); move them with "
            "'logctl group reset-offsets'"
        )


async def _assigned(consumer: Consumer, topic: str, partition: int | None) -> list[TopicPartition]:
    partitions = await consumer.partitions_for_topic(topic)
    if not partitions:
        raise UnknownTopicOrPartitionError(f"topic {topic!r} does not exist")
    if partition is None:
        return [TopicPartition(topic, p) for p in sorted(partitions)]
    if partition not in partitions:
        raise UnknownTopicOrPartitionError(
            f"topic {topic!r} has no partition {partition} (it has {len(partitions)})"
        )
    return [TopicPartition(topic, partition)]


async def start_offsets(
    consumer: Consumer, tps: list[TopicPartition], spec: OffsetSpec
) -> dict[TopicPartition, int]:
    """Where each partition of ``tps`` starts, as ``spec`` says (clamped to the log)."""
    if spec.kind == "start":
        return await consumer.beginning_offsets(tps)
    ends = await consumer.end_offsets(tps)
    if spec.kind == "end":
        return ends
    if spec.kind == "timestamp":
        found = await consumer.offsets_for_times(dict.fromkeys(tps, spec.value))
        return {tp: ends[tp] if found.get(tp) is None else found[tp].offset for tp in tps}
    starts = await consumer.beginning_offsets(tps)
    wanted = {tp: spec.value if spec.kind == "absolute" else ends[tp] - spec.value for tp in tps}
    return {tp: min(max(wanted[tp], starts[tp]), ends[tp]) for tp in tps}


class _EndWatch:
    """Which partitions have reached their end offset, asking the leaders only when it can be.

    End offsets only grow, so a position below the last end seen cannot be at
    the end yet: ListOffsets is sent only for partitions that caught up with it.
    """

    def __init__(self, consumer: Consumer, tps: list[TopicPartition]) -> None:
        self._consumer = consumer
        self.unfinished = set(tps)
        self._known_ends: dict[TopicPartition, int] = {}

    async def update(self) -> None:
        positions = {tp: await self._consumer.position(tp) for tp in self.unfinished}
        caught_up = [tp for tp, pos in positions.items() if pos >= self._known_ends.get(tp, pos)]
        if not caught_up:
            return
        self._known_ends.update(await self._consumer.end_offsets(caught_up))
        self.unfinished -= {tp for tp in caught_up if positions[tp] >= self._known_ends[tp]}


async def consume(
    consumer: Consumer,
    tps: list[TopicPartition],
    *,
    formatter: Formatter,
    out: BinaryIO,
    max_messages: int | None,
    exit_at_end: bool,
) -> int:
    """Print records until ``max_messages`` or (``exit_at_end``) every partition's end."""
    printed = 0
    ends = _EndWatch(consumer, tps)
    if exit_at_end:
        await ends.update()
    while not (exit_at_end and not ends.unfinished):
        left = None if max_messages is None else max_messages - printed
        if left == 0:
            break
        batch = await consumer.poll(timeout_ms=_POLL_TIMEOUT_MS, max_records=left)
        for tp, records in batch.items():
            for record in records:
                out.write(formatter(tp.topic, tp.partition, record))
                out.flush()
            printed += len(records)
        if exit_at_end:
            await ends.update()
    return printed


async def _all_at_end(consumer: Consumer, known_ends: dict[TopicPartition, int]) -> bool:
    """Whether every assigned partition's position has reached its end offset.

    As ``_EndWatch``: ends only grow, so only partitions that caught up with the
    last end seen are asked for their end again.
    """
    tps = consumer.assignment()
    positions = {tp: await consumer.position(tp) for tp in tps}
    caught_up = [tp for tp, pos in positions.items() if pos >= known_ends.get(tp, pos)]
    if caught_up:
        known_ends.update(await consumer.end_offsets(caught_up))
    return all(positions[tp] >= known_ends[tp] for tp in tps)


async def consume_group(
    consumer: Consumer,
    topic: str,
    *,
    formatter: Formatter,
    out: BinaryIO,
    max_messages: int | None,
    exit_at_end: bool,
) -> int:
    """Print records as a member of the consumer's group until ``max_messages``, or (with
    ``exit_at_end``) until every assigned partition is at its end after the first assignment."""
    assigned = False

    def on_assign(partitions: set[TopicPartition]) -> None:
        nonlocal assigned
        assigned = True

    consumer.subscribe([topic], on_assign=on_assign)
    printed = 0
    known_ends: dict[TopicPartition, int] = {}
    while True:
        left = None if max_messages is None else max_messages - printed
        if left == 0:
            break
        batch = await consumer.poll(timeout_ms=_POLL_TIMEOUT_MS, max_records=left)
        for tp, records in batch.items():
            for record in records:
                out.write(formatter(tp.topic, tp.partition, record))
                out.flush()
            printed += len(records)
        if exit_at_end and assigned and await _all_at_end(consumer, known_ends):
            break
    await consumer.commit()
    return printed


async def _run_group(args: argparse.Namespace) -> int:
    from_beginning = args.start_option == "--from-beginning"
    consumer = Consumer(
        args.bootstrap_server,
        client_id="logctl-consumer",
        group_id=args.group,
        enable_auto_commit=True,
        auto_offset_reset="earliest" if from_beginning else "latest",
    )
    await consumer.start()
    try:
        await _assigned(consumer, args.topic, None)  # the topic exists
        await consume_group(
            consumer,
            args.topic,
            formatter=args.format,
            out=sys.stdout.buffer,
            max_messages=args.max_messages,
            exit_at_end=args.exit_at_end,
        )
    finally:
        await consumer.close()
    return 0


async def run(args: argparse.Namespace) -> int:
    if args.group is not None:
        return await _run_group(args)
    consumer = Consumer(
        args.bootstrap_server, client_id="logctl-consumer", auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        tps = await _assigned(consumer, args.topic, args.partition)
        offsets = await start_offsets(consumer, tps, args.offset)
        # Assign and seek with no await between: the fetcher never sees a partition
        # without a position, so auto_offset_reset cannot race the seek.
        consumer.assign(tps)
        for tp, offset in offsets.items():
            consumer.seek(tp, offset)
        await consume(
            consumer,
            tps,
            formatter=args.format,
            out=sys.stdout.buffer,
            max_messages=args.max_messages,
            exit_at_end=args.exit_at_end,
        )
    finally:
        await consumer.close()
    return 0
