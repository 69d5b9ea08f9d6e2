"""What the coordinator knows about the cluster, as plain immutable values.

These mirror the ZooKeeper layout (DESIGN.md §4) so that both coordinators, and
the broker reading them, speak the same shapes:

    BrokerInfo              /brokers/ids/<id>                              endpoint, rack
    TopicAssignment         /brokers/topics/<topic> + /config/topics/<t>  replicas, overrides
    PartitionState          /brokers/topics/<t>/partitions/<p>/state      leader, epoch, ISR
    VersionedPartitionState the same, with the znode version it was read at
    SessionState            the coordinator's link to its store (always CONNECTED standalone)
    CommittedOffset         /consumers/<group>/offsets/<topic>/<p>         a group's position
    OffsetFence             the version of the coordinator partition's state znode, checked by
                            a commit so that a deposed group coordinator cannot overwrite

The dataclasses are frozen so a value handed to the broker cannot change under
it; coordinators hand out fresh dicts, so mutating one never reaches the
coordinator's own state. ``TopicAssignment`` holds dicts and is therefore not
hashable.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import NamedTuple

__all__ = [
    "BrokerInfo",
    "CommittedOffset",
    "OffsetFence",
    "PartitionState",
    "SessionState",
    "TopicAssignment",
    "VersionedPartitionState",
]


@dataclasses.dataclass(frozen=True, slots=True)
class BrokerInfo:
    """A live broker: its id and the endpoint clients and followers connect to."""

    broker_id: int
    host: str
    port: int
    rack: str | None = None
    epoch: int = dataclasses.field(default=0, compare=False)
    """Which registration this is: ZooKeeper's czxid of /brokers/ids/<id>, so it changes when
    the broker registers again (a restart, a lost session); 0 standalone. Not compared."""


@dataclasses.dataclass(frozen=True, slots=True)
class PartitionState:
    """Who leads a partition and who is in sync with it.

    ``leader_epoch`` grows by one on every leader change; the leader stamps it
    into every batch it appends, and followers use it to find where their log
    diverges. ``isr`` always contains the leader while there is one. A
    ``leader`` of -1 means none: the partition is offline, and ``isr`` keeps
    the last in-sync replicas so that one of them can lead again.
    """

    leader: int
    leader_epoch: int
    isr: tuple[int, ...]


@dataclasses.dataclass(frozen=True, slots=True)
class TopicAssignment:
    """A topic: which brokers hold each partition, and its config overrides.

    ``replicas`` maps partition → replica broker ids, preferred leader first;
    partitions are numbered 0 to ``partition_count - 1``. ``config`` holds only
    the overrides (Kafka names, string values); the broker merges them over its
    defaults and validates them with ``LogConfig``.
    """

    name: str
    replicas: dict[int, tuple[int, ...]]
    config: dict[str, str]

    @property
    def partition_count(self) -> int:
        return len(self.replicas)


class _StateAndVersion(NamedTuple):
    state: PartitionState
    version: int


class VersionedPartitionState(_StateAndVersion):
    """A partition's state as read, with the version to base a conditional update on.

    It is the pair ``(state, version)``, so ``state, version = found`` works;
    ``version`` is what ``update_partition_state`` takes as
    ``expected_version``. ``controller_epoch`` is the epoch of the controller
    that wrote it (an attribute, not part of the pair: equal versions of one
    znode always carry the same epoch). ``_replace`` and ``_make`` drop it.
    """

    controller_epoch: int

    def __new__(
        cls, state: PartitionState, version: int, controller_epoch: int = 0
    ) -> VersionedPartitionState:
        self = super().__new__(cls, state, version)
        self.controller_epoch = controller_epoch
        return self

    def __repr__(self) -> str:
        return (
            f"VersionedPartitionState(state={self.state!r}, version={self.version}, "
            f"controller_epoch={self.controller_epoch})"
        )


class SessionState(enum.Enum):
    """The coordinator's session with its store, as the broker sees it (kazoo's states, plus
    before and after). The embedded coordinator is always ``CONNECTED`` once started."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    SUSPENDED = "suspended"  # connection lost, session maybe still alive: ephemerals still there
    LOST = "lost"  # session expired: its ephemeral znodes are gone
    CLOSED = "closed"


@dataclasses.dataclass(frozen=True, slots=True)
class CommittedOffset:
    """Where a consumer group stands in one partition: the next offset it will consume.

    ``metadata`` is the application's own string, stored and returned as given;
    ``commit_timestamp`` is when the coordinator accepted the commit, in ms since
    the epoch (0: unknown).
    """

    offset: int
    metadata: str = ""
    commit_timestamp: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class OffsetFence:
    """The state znode version of a coordinator partition (``__consumer_offsets``-<p>), as
    its leader read it on becoming the groups' coordinator (``Coordinator.fence_for``).

    A commit that carries it is refused (``NotCoordinatorError``) once that state
    has changed: another broker may lead the partition, and coordinate the group, now.
    """

    topic: str
    partition: int
    version: int
