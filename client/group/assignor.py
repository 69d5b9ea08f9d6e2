"""Partition assignors, chosen by name.

The group's leader runs one assignor over every member's subscription and
sends each member its share (docs/groups.md). Members must agree on the
algorithm, so each has a name that goes on the wire as the JoinGroup protocol
name, and the names are Kafka's: a group mixing this client with Kafka's
clients then picks the same algorithm by the same name.

Every assignor has the same contract:

- every member in ``subscriptions`` gets an entry, possibly empty;
- each partition of a subscribed topic goes to exactly one member that
  subscribes to its topic, and nothing else is assigned;
- topics missing from ``partitions_per_topic`` (not created yet, deleted, no
  metadata) are skipped, not an error;
- the result depends only on the contents of the two mappings, never on their
  order, so every member that could become leader computes the same thing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from client.group.member_metadata import Assignment, Subscription
from client.group.range_assignor import RangeAssignor
from client.group.round_robin_assignor import RoundRobinAssignor
from client.group.sticky_assignor import StickyAssignor

__all__ = ["ASSIGNORS", "PartitionAssignor", "UnknownAssignorError", "assignor_for"]


class PartitionAssignor(Protocol):
    """What the group leader runs: member id -> subscription in, member id -> assignment out."""

    name: str

    def assign(
        self,
        partitions_per_topic: Mapping[str, int],
        subscriptions: Mapping[str, Subscription],
    ) -> dict[str, Assignment]: ...


class UnknownAssignorError(ValueError):
    """A name that is not one of ``ASSIGNORS`` (a configuration mistake, so a ``ValueError``)."""


ASSIGNORS: dict[str, PartitionAssignor] = {
    assignor.name: assignor
    for assignor in (RangeAssignor(), RoundRobinAssignor(), StickyAssignor())
}


def assignor_for(name: str) -> PartitionAssignor:
    """The assignor called ``name``; raises ``UnknownAssignorError`` naming the known ones."""
    try:
        return ASSIGNORS[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(ASSIGNORS))
        raise UnknownAssignorError(
            f"unknown partition assignor {name!r}: use one of {known}"
        ) from None
