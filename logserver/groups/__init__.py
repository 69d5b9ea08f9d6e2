"""Consumer groups, broker side (docs/groups.md).

``placement``: which ``__consumer_offsets`` partition (and so which broker)
coordinates a group. ``group``: one group's state machine, pure. ``group_coordinator``:
this broker's groups, their waiting requests, timers and committed offsets.
"""

from logserver.groups.group import Group, GroupLimits, GroupState, JoinRequest
from logserver.groups.group_coordinator import GroupCoordinator
from logserver.groups.placement import OFFSETS_TOPIC, coordinator_partition, java_string_hash

__all__ = [
    "OFFSETS_TOPIC",
    "Group",
    "GroupCoordinator",
    "GroupLimits",
    "GroupState",
    "JoinRequest",
    "coordinator_partition",
    "java_string_hash",
]
