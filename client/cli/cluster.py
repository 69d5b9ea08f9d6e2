"""``logctl cluster info|elect-leaders``: the brokers, the controller, preferred leaders.

``cluster info`` prints ``Controller: ID`` (``none`` while the cluster names
none), then a table of the live brokers: ``ID``, ``HOST:PORT``, ``RACK`` and
``CONTROLLER`` (``yes``/``no``).

``cluster elect-leaders [--topic T …]`` gives every partition (of the topics
named, default all) back to its preferred leader, its first replica, like
``kafka-leader-election.sh --election-type preferred``. It prints one line per
partition, ``TOPIC PARTITION RESULT``, the result being ``elected``, ``not
needed`` (the preferred replica leads already) or ``error: [NAME] message``,
and exits 1 when any partition failed.
"""

from __future__ import annotations

import argparse
import sys

from client.admin import Admin
from client.cli.topic import _aligned
from client.errors import ElectionNotNeededError, LogServerError
from client.topic_partition import TopicPartition

__all__ = ["add_parser", "election_lines"]


def add_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    noun = commands.add_parser(
        "cluster", parents=[common], help="brokers, the controller and leader elections"
    )
    verbs = noun.add_subparsers(dest="verb", required=True, metavar="VERB")

    info = verbs.add_parser("info", parents=[common], help="the live brokers and the controller")
    info.set_defaults(run=_info)

    elect = verbs.add_parser(
        "elect-leaders",
        parents=[common],
        help="give partitions back to their preferred leader (their first replica)",
    )
    elect.add_argument(
        "--topic",
        action="append",
        default=None,
        metavar="TOPIC",
        help="only this topic's partitions (repeatable; default: every topic)",
    )
    elect.set_defaults(run=_elect)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _info(args: argparse.Namespace) -> int:
    async with Admin(args.bootstrap_server, client_id="logctl") as admin:
        cluster = await admin.describe_cluster()
    controller = cluster.controller
    _say(f"Controller: {'none' if controller is None else controller.broker_id}")
    rows = [["ID", "HOST:PORT", "RACK", "CONTROLLER"]]
    for broker in cluster.brokers:
        rows.append(
            [
                str(broker.broker_id),
                f"{broker.host}:{broker.port}",
                broker.rack or "-",
                "yes" if broker is controller else "no",
            ]
        )
    for line in _aligned(rows):
        _say(line)
    return 0


async def _elect(args: argparse.Namespace) -> int:
    async with Admin(args.bootstrap_server, client_id="logctl") as admin:
        results = await admin.elect_leaders(args.topic)
    for line in election_lines(results):
        _say(line)
    failed = [e for e in results.values() if _failed(e)]
    if failed:
        sys.stderr.write(
            f"logctl: {len(failed)} of {len(results)} partition(s) failed leader election\n"
        )
        sys.stderr.flush()
        return 1
    return 0


def _failed(error: LogServerError | None) -> bool:
    return error is not None and not isinstance(error, ElectionNotNeededError)


def election_lines(results: dict[TopicPartition, LogServerError | None]) -> list[str]:
    """``TOPIC PARTITION RESULT`` per partition, aligned, in topic and partition order."""
    if not results:
        return []
    rows = [["TOPIC", "PARTITION", "RESULT"]]
    for tp in sorted(results, key=lambda tp: (tp.topic, tp.partition)):
        error = results[tp]
        if error is None:
            result = "elected"
        elif isinstance(error, ElectionNotNeededError):
            result = "not needed"
        else:
            result = f"error: {error}"
        rows.append([tp.topic, "-" if tp.partition < 0 else str(tp.partition), result])
    return _aligned(rows)
