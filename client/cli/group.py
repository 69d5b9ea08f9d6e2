"""``logctl group list|describe|reset-offsets|delete``, like ``kafka-consumer-groups.sh``.

    logctl group list [--state Stable,Empty]
    logctl group describe orders-app [--members [--verbose] | --state]
    logctl group describe --all-groups
    logctl group reset-offsets orders-app --topic orders --to-earliest        # prints the plan
    logctl group reset-offsets orders-app --topic orders:0,1 --shift-by -100 --execute
    logctl group delete orders-app old-app

``describe`` prints, per group, the columns ``GROUP TOPIC PARTITION
CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID`` (committed
offsets, log end offsets and the member owning each partition), or with
``--members`` one line per member, or with ``--state`` the coordinator,
assignor, state and member count. Several groups are separated by a blank
line; notes ("has no active members", "is rebalancing") go to standard error,
as Kafka's tool writes them.

``reset-offsets`` is a dry run unless ``--execute``: it prints ``GROUP TOPIC
PARTITION NEW-OFFSET`` (``client.cli.offset_reset`` says how each option
computes it) and changes nothing. It is refused while the group has members,
for a topic or partition that does not exist, for a time in the future, and
for a malformed date or duration, each with a message saying what to do.

``delete`` reports each group that could not be deleted and exits 1 if any.
Errors follow ``logctl``'s rules: ``logctl: <message>`` and exit 1 for what
the cluster refused, exit 2 for a usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import functools
import sys
import time
from collections.abc import Iterable, Mapping

from client.admin import Admin
from client.admin_types import GROUP_STATES, BrokerDescription, GroupDescription
from client.cli.group_tables import (
    group_list_lines,
    members_table,
    offsets_table,
    plan_table,
    state_table,
)
from client.cli.offset_reset import (
    DATETIME_FORMAT,
    DURATION_FORMAT,
    PlanError,
    ResetSpec,
    TopicSelection,
    parse_datetime,
    parse_duration,
    parse_topic,
    plan_offsets,
)
from client.errors import (
    IllegalGenerationError,
    LogServerError,
    NonEmptyGroupError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)
from client.topic_partition import OffsetAndMetadata, OffsetAndTimestamp, TopicPartition

__all__ = ["add_parser"]


class _Refused(Exception):
    """The command will not do what was asked; the message says why and what to do."""


# -- arguments -------------------------------------------------------------------------


def _states_arg(text: str) -> list[str]:
    canonical = {state.lower(): state for state in GROUP_STATES}
    states = []
    for word in text.split(","):
        state = canonical.get(word.strip().lower())
        if state is None:
            raise argparse.ArgumentTypeError(
                f"unknown state {word.strip()!r}: expected {', '.join(GROUP_STATES)}"
            )
        states.append(state)
    return states


def _topic_arg(text: str) -> TopicSelection:
    try:
        return parse_topic(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None


def _offset_arg(text: str) -> ResetSpec:
    offset = _int(text)
    if offset < 0:
        raise argparse.ArgumentTypeError(
            f"must not be negative, not {offset} (--to-earliest is the log start)"
        )
    return ResetSpec("offset", offset)


def _shift_arg(text: str) -> ResetSpec:
    return ResetSpec("shift", _int(text))


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _local(ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(ms / 1000, tz=datetime.UTC).astimezone()
    return moment.isoformat(timespec="milliseconds")


def _datetime_arg(text: str) -> ResetSpec:
    try:
        ms = parse_datetime(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    now = _now_ms()
    if ms > now:
        raise argparse.ArgumentTypeError(
            f"{text!r} ({_local(ms)}) is in the future (it is {_local(now)} now): "
            "give a time that has passed, or --to-latest for the end of each partition"
        )
    return ResetSpec("datetime", ms)


def _duration_arg(text: str) -> ResetSpec:
    try:
        return ResetSpec("duration", parse_duration(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    noun = commands.add_parser(
        "group", parents=[common], help="consumer groups: list, describe, reset offsets, delete"
    )
    verbs = noun.add_subparsers(dest="verb", required=True, metavar="VERB")

    listing = verbs.add_parser("list", parents=[common], help="every group and its state")
    listing.add_argument(
        "--state",
        type=_states_arg,
        metavar="STATE[,STATE...]",
        help=f"only groups in these states ({', '.join(GROUP_STATES)}; any case)",
    )
    listing.set_defaults(run=_list)

    _add_describe(verbs, common)
    _add_reset(verbs, common)

    delete = verbs.add_parser(
        "delete", parents=[common], help="delete groups (with no members) and their offsets"
    )
    delete.add_argument("groups", nargs="+", metavar="GROUP")
    delete.set_defaults(run=_delete)


def _add_describe(
    verbs: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    describe = verbs.add_parser(
        "describe", parents=[common], help="a group's offsets and lag, members, or state"
    )
    describe.add_argument("groups", nargs="*", metavar="GROUP")
    describe.add_argument(
        "--all-groups", action="store_true", help="every group, one after another"
    )
    view = describe.add_mutually_exclusive_group()
    view.add_argument(
        "--offsets",
        dest="view",
        action="store_const",
        const="offsets",
        help="committed offset, log end and lag per partition, with its owner (the default)",
    )
    view.add_argument(
        "--members",
        dest="view",
        action="store_const",
        const="members",
        help="one line per member: id, host, client id, number of partitions",
    )
    view.add_argument(
        "--state",
        dest="view",
        action="store_const",
        const="state",
        help="coordinator, assignor, state and number of members",
    )
    describe.add_argument(
        "--verbose", action="store_true", help="with --members: each member's partitions"
    )
    describe.set_defaults(view="offsets", run=_describe, check=functools.partial(_check, describe))


def _add_reset(
    verbs: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    reset = verbs.add_parser(
        "reset-offsets",
        parents=[common],
        help="move a group's committed offsets (prints the plan; --execute applies it)",
        description="Move a group's committed offsets. Prints GROUP TOPIC PARTITION NEW-OFFSET "
        "and changes nothing unless --execute is given. New offsets are clamped to each "
        "partition's log start and end. Refused while the group has members.",
    )
    reset.add_argument("group", metavar="GROUP")
    scope = reset.add_mutually_exclusive_group(required=True)
    scope.add_argument(
        "--topic",
        dest="topics",
        type=_topic_arg,
        action="append",
        metavar="TOPIC[:P,P...]",
        help="every partition of TOPIC, or only those listed (repeatable)",
    )
    scope.add_argument(
        "--all-topics",
        action="store_true",
        help="every partition the group has a committed offset for",
    )
    target = reset.add_mutually_exclusive_group(required=True)
    target.add_argument(
        "--to-earliest",
        dest="spec",
        action="store_const",
        const=ResetSpec("earliest"),
        help="each partition's log start",
    )
    target.add_argument(
        "--to-latest",
        dest="spec",
        action="store_const",
        const=ResetSpec("latest"),
        help="each partition's log end",
    )
    target.add_argument(
        "--to-offset", dest="spec", type=_offset_arg, metavar="N", help="offset N in each"
    )
    target.add_argument(
        "--to-datetime",
        dest="spec",
        type=_datetime_arg,
        metavar="ISO8601",
        help=f"the first record at or after this time: {DATETIME_FORMAT}; "
        "the zone is optional, and without one the time is local time",
    )
    target.add_argument(
        "--shift-by",
        dest="spec",
        type=_shift_arg,
        metavar="N",
        help="the committed offset plus N (negative: back)",
    )
    target.add_argument(
        "--by-duration",
        dest="spec",
        type=_duration_arg,
        metavar="DURATION",
        help=f"the first record at or after this long ago: ISO 8601 {DURATION_FORMAT}",
    )
    mode = reset.add_mutually_exclusive_group()
    mode.add_argument(
        "--dry-run", dest="execute", action="store_false", help="print the plan only (the default)"
    )
    mode.add_argument("--execute", dest="execute", action="store_true", help="apply the plan")
    reset.set_defaults(execute=False, run=_reset)


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.groups and args.all_groups:
        parser.error("name groups or give --all-groups, not both")
    if not args.groups and not args.all_groups:
        parser.error("group describe needs GROUP... or --all-groups")
    if args.verbose and args.view != "members":
        parser.error("--verbose goes with --members")


# -- output ----------------------------------------------------------------------------


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _note(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _fail(message: str) -> int:
    _note(f"logctl: {message}")
    return 1


# -- list and describe -----------------------------------------------------------------


async def _list(args: argparse.Namespace) -> int:
    async with Admin(args.bootstrap_server, client_id="logctl") as admin:
        listings = await admin.list_groups(args.state)
    for line in group_list_lines(listings):
        _say(line)
    return 0


async def _log_ends(
    admin: Admin, partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, int]:
    """The log end of each partition that exists and has a leader (others are left out)."""
    wanted = set(partitions)
    if not wanted:
        return {}
    topics = await admin.describe_topics(None)
    led = [
        TopicPartition(name, p.partition)
        for name, description in topics.items()
        for p in description.partitions
        if p.leader >= 0 and TopicPartition(name, p.partition) in wanted
    ]
    if not led:
        return {}
    found = await admin.list_offsets(dict.fromkeys(led, "latest"))
    return {tp: o.offset for tp, o in found.items() if o is not None}


def _state_note(description: GroupDescription) -> None:
    if description.state in ("Empty", "Dead"):
        _note(f"Consumer group '{description.group_id}' has no active members.")
    elif description.state in ("PreparingRebalance", "CompletingRebalance"):
        _note(f"Warning: consumer group '{description.group_id}' is rebalancing.")


async def _describe(args: argparse.Namespace) -> int:
    committed: dict[str, dict[TopicPartition, OffsetAndMetadata]] = {}
    log_end: dict[TopicPartition, int] = {}
    async with Admin(args.bootstrap_server, client_id="logctl") as admin:
        if args.all_groups:
            ids = [listing.group_id for listing in await admin.list_groups()]
        else:
            ids = list(dict.fromkeys(args.groups))
        described = await admin.describe_groups(ids)
        if args.view == "offsets":
            fetched = await asyncio.gather(*(admin.list_group_offsets(g) for g in ids))
            committed = dict(zip(ids, fetched, strict=True))
            owned = {tp for d in described.values() for m in d.members for tp in m.assignment}
            log_end = await _log_ends(admin, owned.union(*committed.values()))
        else:  # a group known only by its committed offsets may be described Dead
            dead = [g for g in ids if described[g].state == "Dead"]
            fetched = await asyncio.gather(*(admin.list_group_offsets(g) for g in dead))
            committed = dict(zip(dead, fetched, strict=True))
        brokers: dict[int, BrokerDescription] = {}
        if args.view == "state":
            brokers = {b.broker_id: b for b in (await admin.describe_cluster()).brokers}
    missing = []
    printed = False
    for group_id in ids:
        description = described[group_id]
        if description.state == "Dead" and not committed.get(group_id):
            missing.append(group_id)
            continue
        _state_note(description)
        if args.view == "offsets":
            lines = offsets_table(description, committed[group_id], log_end)
        elif args.view == "members":
            lines = members_table(description, verbose=args.verbose)
        else:
            lines = state_table(description, brokers.get(description.coordinator_id))
        if lines and printed:
            _say("")
        for line in lines:
            _say(line)
        printed = printed or bool(lines)
    if args.all_groups:
        return 0  # a group deleted between the listing and the description is not an error
    for group_id in missing:
        _fail(f"consumer group {group_id!r} does not exist")
    return 1 if missing else 0


# -- reset-offsets ---------------------------------------------------------------------


async def _partitions_to_reset(
    admin: Admin, args: argparse.Namespace, committed: Mapping[TopicPartition, OffsetAndMetadata]
) -> list[TopicPartition]:
    """The partitions the scope options name, refusing topics or partitions that do not exist."""
    wanted: dict[str, set[int] | None] = {}
    if args.all_topics:
        if not committed:
            raise _Refused(
                f"group {args.group!r} has no committed offsets, so --all-topics names no "
                "partition: name the topics with --topic"
            )
        for topic in sorted({tp.topic for tp in committed}):
            wanted[topic] = {tp.partition for tp in committed if tp.topic == topic}
    else:
        for selection in args.topics:
            known = wanted.get(selection.topic, set())
            if selection.partitions is None or known is None:
                wanted[selection.topic] = None
            else:
                wanted[selection.topic] = known | set(selection.partitions)
    existing = set(await admin.list_topics())
    absent = [topic for topic in wanted if topic not in existing]
    if absent:
        names = ", ".join(repr(t) for t in absent)
        raise _Refused(
            f"topic {names} does not exist" if len(absent) == 1 else f"topics {names} do not exist"
        )
    described = await admin.describe_topics(wanted)
    partitions = []
    for topic, numbers in wanted.items():
        present = {p.partition for p in described[topic].partitions}
        chosen = present if numbers is None else numbers
        unknown = sorted(chosen - present)
        if unknown:
            raise _Refused(
                f"topic {topic!r} has no partition {', '.join(map(str, unknown))} "
                f"(it has {len(present)}: 0 to {len(present) - 1})"
            )
        partitions += [TopicPartition(topic, p) for p in sorted(chosen)]
    return partitions


def _active_refusal(description: GroupDescription) -> str:
    group_id = description.group_id
    count = len(description.members)
    members = f"{count} active member{'' if count == 1 else 's'}"
    return (
        f"group {group_id!r} has {members} (state {description.state}): offsets can only be "
        "reset while the group has none. Stop its consumers (a killed one leaves after its "
        f"session timeout), check with 'logctl group describe {group_id} --members', "
        "then run this again"
    )


async def _reset(args: argparse.Namespace) -> int:
    spec: ResetSpec = args.spec
    async with Admin(args.bootstrap_server, client_id="logctl") as admin:
        description = (await admin.describe_groups([args.group]))[args.group]
        if description.is_active:
            return _fail(_active_refusal(description))
        committed = await admin.list_group_offsets(args.group)
        try:
            partitions = await _partitions_to_reset(admin, args, committed)
        except _Refused as exc:
            return _fail(f"{exc}; nothing was reset")
        starts, ends = await asyncio.gather(
            admin.list_offsets(dict.fromkeys(partitions, "earliest")),
            admin.list_offsets(dict.fromkeys(partitions, "latest")),
        )
        by_time = None
        timestamp = spec.timestamp_ms(_now_ms())
        if timestamp is not None:
            found = await admin.list_offsets(dict.fromkeys(partitions, timestamp))
            by_time = {tp: None if o is None else o.offset for tp, o in found.items()}
        try:
            plan = plan_offsets(
                partitions,
                spec,
                committed={tp: o.offset for tp, o in committed.items()},
                log_start=_offsets(starts),
                log_end=_offsets(ends),
                by_time=by_time,
            )
        except PlanError as exc:
            return _fail(f"{exc}; nothing was reset")
        if args.execute:
            try:
                await admin.alter_group_offsets(args.group, plan)
            except (UnknownMemberIdError, RebalanceInProgressError, IllegalGenerationError) as exc:
                return _fail(
                    f"the offsets of group {args.group!r} were not reset: {exc} (a member "
                    f"joined since the check: see 'logctl group describe {args.group} --members')"
                )
    for line in plan_table(args.group, plan):
        _say(line)
    if not args.execute:
        _note("Dry run: nothing was changed. Run again with --execute to commit these offsets.")
    return 0


def _offsets(
    found: Mapping[TopicPartition, OffsetAndTimestamp | None],
) -> dict[TopicPartition, int]:
    """The offsets ListOffsets gave for ``earliest``/``latest`` (always one per partition)."""
    missing = [tp for tp, o in found.items() if o is None]
    if missing:
        raise LogServerError(f"the leader of {missing[0]} gave no offset")
    return {tp: o.offset for tp, o in found.items() if o is not None}


# -- delete ----------------------------------------------------------------------------


async def _delete(args: argparse.Namespace) -> int:
    async with Admin(args.bootstrap_server, client_id="logctl") as admin:
        results = await admin.delete_groups(args.groups)
    failed = 0
    for group_id, error in results.items():
        if error is None:
            _say(f"Deleted group {group_id}.")
            continue
        failed += 1
        hint = ""
        if isinstance(error, NonEmptyGroupError):
            hint = f" (its members: 'logctl group describe {group_id} --members')"
        _fail(f"group {group_id!r} was not deleted: {error}{hint}")
    return 1 if failed else 0
