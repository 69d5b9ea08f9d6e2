"""What goes in and out of a group's state machine (``group.py``): its states, its limits,
the JoinGroup request, the JoinGroup and SyncGroup results, and the answers to
requests that waited."""

from __future__ import annotations

import dataclasses
import enum
from typing import Literal, NamedTuple

from client.errors import LogServerError
from logserver.groups.member import Protocols

__all__ = [
    "Answer",
    "GroupLimits",
    "GroupState",
    "JoinRequest",
    "JoinResult",
    "SyncResult",
    "Wait",
]


class GroupState(enum.Enum):
    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


class Wait(NamedTuple):
    """The request of ``member_id`` waits; its answer comes out of ``take_answers`` later."""

    member_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class GroupLimits:
    """The broker's bounds (group.min/max.session.timeout.ms, group.initial.rebalance.delay.ms,
    group.max.size: None is no limit)."""

    min_session_timeout_ms: int = 6_000
    max_session_timeout_ms: int = 1_800_000
    initial_rebalance_delay_ms: int = 3_000
    max_size: int | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class JoinRequest:
    member_id: str
    group_instance_id: str | None
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocol_type: str
    protocols: Protocols
    client_id: str = ""
    client_host: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class JoinResult:
    member_id: str
    generation_id: int = -1
    protocol_name: str | None = None
    leader: str = ""
    members: tuple[tuple[str, str | None, bytes], ...] = ()
    """Every member's id, instance id and metadata for the chosen protocol: the leader's only."""
    error: LogServerError | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class SyncResult:
    assignment: bytes = b""
    error: LogServerError | None = None


class Answer(NamedTuple):
    """The answer to a JoinGroup or SyncGroup that waited."""

    kind: Literal["join", "sync"]
    member_id: str
    result: JoinResult | SyncResult
