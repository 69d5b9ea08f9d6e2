"""``logctl topic create|list|describe|delete|alter-config``: the admin client on the command line.

Flags follow ``kafka-topics.sh`` and ``kafka-configs.sh``: ``--partitions``,
``--replication-factor``, ``--config key=value`` (repeatable) and
``--delete-config key``. Output is plain text, one line per item, so it
greps and pipes. ``describe --under-replicated`` (with or without a NAME) prints
only the partitions whose ISR is smaller than their replica list, one line each
and nothing else, and exits 0 either way; with ``--fail-if-any`` it exits 1 when
it printed any (and says how many on stderr): the check a rolling restart loops
on before it takes the next broker down.
"""

from __future__ import annotations

import argparse
import functools
import sys
from collections.abc import Iterable, Sequence

from client.admin import Admin
from client.admin_types import ConfigEntry, TopicDescription

__all__ = ["add_parser", "describe_table", "parse_config", "under_replicated_lines"]


def parse_config(text: str) -> tuple[str, str]:
    """``key=value`` (split at the first ``=``) for ``--config``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected key=value, not {text!r}")
    return key.strip(), value


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    noun = commands.add_parser(
        "topic", parents=[common], help="create, list, describe, delete and configure topics"
    )
    verbs = noun.add_subparsers(dest="verb", required=True, metavar="VERB")

    create = verbs.add_parser("create", parents=[common], help="create a topic")
    create.add_argument("name", metavar="NAME")
    create.add_argument(
        "--partitions", type=int, default=-1, metavar="N", help="default: the broker's"
    )
    create.add_argument(
        "--replication-factor", type=int, default=-1, metavar="R", help="default: the broker's"
    )
    create.add_argument(
        "--config",
        type=parse_config,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a topic setting such as retention.ms=86400000 (repeatable)",
    )
    create.add_argument(
        "--validate-only", action="store_true", help="check the request, create nothing"
    )
    create.set_defaults(run=_create)

    listing = verbs.add_parser("list", parents=[common], help="list topic names")
    listing.set_defaults(run=_list)

    describe = verbs.add_parser(
        "describe", parents=[common], help="partitions, leaders, offsets and overrides"
    )
    describe.add_argument(
        "name", metavar="NAME", nargs="?", help="optional with --under-replicated: all topics"
    )
    describe.add_argument(
        "--under-replicated",
        action="store_true",
        help="only partitions whose ISR is smaller than their replica list, one line each "
        "(nothing when there are none; exit status 0 either way, unless --fail-if-any)",
    )
    describe.add_argument(
        "--fail-if-any",
        action="store_true",
        help="with --under-replicated: exit 1 when any partition is under-replicated",
    )
    describe.set_defaults(run=_describe, check=functools.partial(_check_describe, describe))

    delete = verbs.add_parser("delete", parents=[common], help="delete a topic and its data")
    delete.add_argument("name", metavar="NAME")
    delete.set_defaults(run=_delete)

    alter = verbs.add_parser(
        "alter-config", parents=[common], help="set or remove a topic's setting overrides"
    )
    alter.add_argument("name", metavar="NAME")
    alter.add_argument(
        "--config", type=parse_config, action="append", default=[], metavar="KEY=VALUE"
    )
    alter.add_argument(
        "--delete-config",
        action="append",
        default=[],
        metavar="KEY",
        help="remove an override (the broker default applies again)",
    )
    alter.set_defaults(run=_alter, check=functools.partial(_check_alter, alter))


def _check_describe(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.name is None and not args.under_replicated:
        parser.error("topic describe needs NAME (or --under-replicated, for every topic)")
    if args.fail_if_any and not args.under_replicated:
        parser.error("--fail-if-any goes with --under-replicated")


def _check_alter(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if not args.config and not args.delete_config:
        parser.error("topic alter-config needs --config KEY=VALUE or --delete-config KEY")


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _create(args: argparse.Namespace) -> int:
    async with Admin(args.bootstrap_server, client_id="logctl") as admin:
        await admin.create_topic(
            args.name,
            args.partitions,
            args.replication_factor,
            dict(args.config),
            validate_only=args.validate_only,
        )
    _say(f"{'Validated' if args.validate_only else 'Created'} topic {args.name}.")
    return 0


async def _list(args: argparse.Namespace) -> int:
    async with Admin(args.bootstrap_server, client_id="logctl") as admin:
        names = await admin.list_topics()
    for name in names:
        _say(name)
    return 0


async def _describe(args: argparse.Namespace) -> int:
    if args.under_replicated:
        return await _under_replicated(args)
    async with Admin(args.bootstrap_server, client_id="logctl") as admin:
        description = await admin.describe_topic(args.name)
        configs = await admin.describe_configs(args.name)
    for line in describe_table(description, configs):
        _say(line)
    return 0


async def _under_replicated(args: argparse.Namespace) -> int:
    async with Admin(args.bootstrap_server, client_id="logctl") as admin:
        described = await admin.describe_topics(None if args.name is None else [args.name])
    lines = under_replicated_lines(described.values())
    for line in lines:
        _say(line)
    if lines and args.fail_if_any:
        sys.stderr.write(f"logctl: {len(lines)} partition(s) under-replicated\n")
        sys.stderr.flush()
        return 1
    return 0


async def _delete(args: argparse.Namespace) -> int:
    async with Admin(args.bootstrap_server, client_id="logctl") as admin:
        await admin.delete_topic(args.name)
    _say(f"Deleted topic {args.name}.")
    return 0


async def _alter(args: argparse.Namespace) -> int:
    async with Admin(args.bootstrap_server, client_id="logctl") as admin:
        await admin.alter_configs(args.name, dict(args.config), args.delete_config)
    _say(f"Updated the configs of topic {args.name}.")
    return 0


def describe_table(description: TopicDescription, configs: dict[str, ConfigEntry]) -> list[str]:
    """A header line, the overrides line and an aligned table of the partitions."""
    overrides = ",".join(f"{e.name}={e.value}" for e in configs.values() if e.is_override)
    lines = [
        f"Topic: {description.name}\tPartitionCount: {len(description.partitions)}\t"
        f"ReplicationFactor: {description.replication_factor}",
        f"Configs: {overrides}",
    ]
    rows = [["PARTITION", "LEADER", "REPLICAS", "ISR", "LOG-START-OFFSET", "LOG-END-OFFSET"]]
    for p in description.partitions:
        rows.append(
            [
                str(p.partition),
                "none" if p.leader < 0 else str(p.leader),
                _ids(p.replicas),
                _ids(p.isr),
                "-" if p.log_start_offset is None else str(p.log_start_offset),
                "-" if p.log_end_offset is None else str(p.log_end_offset),
            ]
        )
    return lines + _aligned(rows)


def under_replicated_lines(descriptions: Iterable[TopicDescription]) -> list[str]:
    """``Topic: T<tab>Partition: P<tab>Leader: L<tab>Replicas: …<tab>Isr: …`` for each
    partition whose ISR is smaller than its replica list, like ``kafka-topics.sh
    --describe --under-replicated-partitions``; nothing else, not even a header."""
    lines = []
    for description in descriptions:
        for p in description.partitions:
            if len(p.isr) < len(p.replicas):
                lines.append(
                    f"Topic: {description.name}\tPartition: {p.partition}\t"
                    f"Leader: {'none' if p.leader < 0 else p.leader}\t"
                    f"Replicas: {_ids(p.replicas)}\tIsr: {_ids(p.isr)}"
                )
    return lines


def _ids(ids: Sequence[int]) -> str:
    return ",".join(map(str, ids)) or "-"


def _aligned(rows: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
