"""The tables ``logctl group`` prints, as pure functions of what the admin client returned.

Columns are ``kafka-consumer-groups.sh``'s, with ``-`` for what is unknown (a
partition no member owns, a partition without a committed offset, a log end
that could not be read), aligned the way the other ``logctl`` tables are.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from client.admin_types import BrokerDescription, GroupDescription, GroupListing
from client.cli.topic import _aligned
from client.topic_partition import OffsetAndMetadata, TopicPartition

__all__ = [
    "MISSING",
    "assignment_text",
    "group_list_lines",
    "members_table",
    "offsets_table",
    "plan_table",
    "state_table",
]

MISSING = "-"


def _text(value: object) -> str:
    return MISSING if value is None or value == "" else str(value)


def group_list_lines(listings: Iterable[GroupListing]) -> list[str]:
    """``GROUP STATE``, one group per line; nothing at all when there are no groups."""
    rows = [[listing.group_id, listing.state] for listing in listings]
    return _aligned([["GROUP", "STATE"], *rows]) if rows else []


def offsets_table(
    description: GroupDescription,
    committed: Mapping[TopicPartition, OffsetAndMetadata],
    log_end: Mapping[TopicPartition, int],
) -> list[str]:
    """``GROUP TOPIC PARTITION CURRENT-OFFSET LOG-END-OFFSET LAG CONSUMER-ID HOST CLIENT-ID``.

    One row per partition a member owns or the group has a committed offset
    for, in topic and partition order. LAG is the log end minus the committed
    offset, ``-`` when either is unknown. No rows: no lines.
    """
    owners = {tp: member for member in description.members for tp in member.assignment}
    partitions = sorted(set(owners) | set(committed))
    if not partitions:
        return []
    rows = [
        [
            "GROUP",
            "TOPIC",
            "PARTITION",
            "CURRENT-OFFSET",
            "LOG-END-OFFSET",
            "LAG",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
        ]
    ]
    for tp in partitions:
        offset = committed.get(tp)
        current = None if offset is None else offset.offset
        end = log_end.get(tp)
        lag = None if current is None or end is None else end - current
        owner = owners.get(tp)
        rows.append(
            [
                description.group_id,
                tp.topic,
                str(tp.partition),
                _text(current),
                _text(end),
                _text(lag),
                MISSING if owner is None else _text(owner.member_id),
                MISSING if owner is None else _text(owner.host),
                MISSING if owner is None else _text(owner.client_id),
            ]
        )
    return _aligned(rows)


def assignment_text(partitions: Iterable[TopicPartition]) -> str:
    """``topic:0,1;other:2`` (topics and partitions sorted), ``-`` for none, as Kafka writes it."""
    by_topic: dict[str, list[int]] = {}
    for tp in partitions:
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    if not by_topic:
        return MISSING
    return ";".join(
        f"{topic}:{','.join(map(str, sorted(ps)))}" for topic, ps in sorted(by_topic.items())
    )


def members_table(description: GroupDescription, *, verbose: bool = False) -> list[str]:
    """``GROUP CONSUMER-ID [GROUP-INSTANCE-ID] HOST CLIENT-ID #PARTITIONS [ASSIGNMENT]``.

    GROUP-INSTANCE-ID appears when a member is static (as in Kafka); ASSIGNMENT
    with ``verbose``. Members in id order; no members: no lines.
    """
    members = sorted(description.members, key=lambda m: m.member_id)
    if not members:
        return []
    static = any(m.group_instance_id for m in members)
    header = ["GROUP", "CONSUMER-ID", *(["GROUP-INSTANCE-ID"] if static else [])]
    header += ["HOST", "CLIENT-ID", "#PARTITIONS", *(["ASSIGNMENT"] if verbose else [])]
    rows = [header]
    for m in members:
        row = [description.group_id, _text(m.member_id)]
        if static:
            row.append(_text(m.group_instance_id))
        row += [_text(m.host), _text(m.client_id), str(len(m.assignment))]
        if verbose:
            row.append(assignment_text(m.assignment))
        rows.append(row)
    return _aligned(rows)


def state_table(description: GroupDescription, coordinator: BrokerDescription | None) -> list[str]:
    """``GROUP COORDINATOR (ID) ASSIGNMENT-STRATEGY STATE #MEMBERS``."""
    where = (
        f"{MISSING} ({description.coordinator_id})"
        if coordinator is None
        else f"{coordinator.host}:{coordinator.port} ({coordinator.broker_id})"
    )
    return _aligned(
        [
            ["GROUP", "COORDINATOR (ID)", "ASSIGNMENT-STRATEGY", "STATE", "#MEMBERS"],
            [
                description.group_id,
                where,
                _text(description.protocol),
                description.state,
                str(len(description.members)),
            ],
        ]
    )


def plan_table(group_id: str, plan: Mapping[TopicPartition, int]) -> list[str]:
    """``GROUP TOPIC PARTITION NEW-OFFSET``, in topic and partition order."""
    rows = [["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]]
    rows += [[group_id, tp.topic, str(tp.partition), str(plan[tp])] for tp in sorted(plan)]
    return _aligned(rows)
