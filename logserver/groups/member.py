"""A group member as the coordinator sees it, and the choice of the group's protocol.

The member's protocol metadata and assignment are the client's bytes: stored
and handed back, never read (``ownership.owned_partitions`` is the one,
optional, exception).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

__all__ = ["Member", "Protocols", "common_protocols", "select_protocol"]

Protocols = tuple[tuple[str, bytes], ...]
"""A member's protocols (assignor names with their metadata), most preferred first."""


@dataclasses.dataclass(slots=True)
class Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: Protocols
    last_seen_ms: int
    """The last request from this member (join, sync, heartbeat, commit): its session clock."""
    assignment: bytes = b""
    owned: frozenset[tuple[str, int]] | None = None
    """The partitions ``assignment`` names, when it is in this project's format."""
    join_waiting_since_ms: int | None = None
    """Set while a JoinGroup from this member waits for the join phase to end."""
    sync_waiting: bool = False
    """Set while a SyncGroup from this member waits for the leader's assignments."""
    synced: bool = True
    """Sent SyncGroup in the current generation (False from a generation's start until then)."""
    join_order: int = 0
    """When it last joined; the earliest joiner of a generation leads when the leader left."""

    @property
    def waiting(self) -> bool:
        """A JoinGroup or SyncGroup of this member is pending: its session does not expire."""
        return self.join_waiting_since_ms is not None or self.sync_waiting

    def protocol_names(self) -> list[str]:
        return [name for name, _ in self.protocols]

    def metadata(self, protocol: str | None) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol:
                return metadata
        return b""


def common_protocols(members: Iterable[Member]) -> set[str] | None:
    """The protocol names every member supports; None for no members."""
    common: set[str] | None = None
    for member in members:
        names = set(member.protocol_names())
        common = names if common is None else common & names
    return common


def select_protocol(members: Sequence[Member]) -> str | None:
    """Kafka's rule: among the protocols every member supports, each member votes for the
    one it lists first; most votes wins. Ties go to the one the earliest joiner prefers.
    None when the members share none."""
    candidates = common_protocols(members)
    if not candidates:
        return None
    votes: dict[str, int] = dict.fromkeys(sorted(candidates), 0)
    for member in members:
        choice = next(name for name in member.protocol_names() if name in candidates)
        votes[choice] += 1
    best = max(votes.values())
    first = min(members, key=lambda m: m.join_order)
    return next(n for n in first.protocol_names() if n in candidates and votes[n] == best)
