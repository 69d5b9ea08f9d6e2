"""What the admin client returns: frozen values, safe to share and compare."""

from __future__ import annotations

import dataclasses

from client.topic_partition import TopicPartition

__all__ = [
    "GROUP_STATES",
    "BrokerDescription",
    "ClusterDescription",
    "ConfigEntry",
    "GroupDescription",
    "GroupListing",
    "MemberDescription",
    "PartitionDescription",
    "TopicDescription",
]

# Kafka's names for a classic group's states (docs/groups.md).
GROUP_STATES = ("Empty", "PreparingRebalance", "CompletingRebalance", "Stable", "Dead")


@dataclasses.dataclass(frozen=True, slots=True)
class PartitionDescription:
    """One partition as the metadata and its leader see it.

    ``leader`` is -1 when the partition has no leader; then its offsets are
    unknown (None), as they are when the leader did not answer ListOffsets.
    """

    partition: int
    leader: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    log_start_offset: int | None
    log_end_offset: int | None


@dataclasses.dataclass(frozen=True, slots=True)
class TopicDescription:
    name: str
    partitions: tuple[PartitionDescription, ...]  # in partition order

    @property
    def replication_factor(self) -> int:
        return len(self.partitions[0].replicas) if self.partitions else 0


@dataclasses.dataclass(frozen=True, slots=True)
class ConfigEntry:
    """One topic setting; ``source`` is ``topic`` (an override), ``default`` or ``broker``."""

    name: str
    value: str
    source: str
    read_only: bool

    @property
    def is_override(self) -> bool:
        return self.source == "topic"


@dataclasses.dataclass(frozen=True, slots=True)
class BrokerDescription:
    broker_id: int
    host: str
    port: int
    rack: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterDescription:
    brokers: tuple[BrokerDescription, ...]  # in id order
    controller_id: int  # -1 when the answering broker does not know it

    @property
    def controller(self) -> BrokerDescription | None:
        """The controller among ``brokers``; None when it is not known."""
        for broker in self.brokers:
            if broker.broker_id == self.controller_id:
                return broker
        return None


@dataclasses.dataclass(frozen=True, slots=True)
class GroupListing:
    """One group as ListGroups names it; ``coordinator_id`` is the broker that answered."""

    group_id: str
    protocol_type: str  # "consumer" for the groups of this client (Kafka's name)
    state: str  # one of GROUP_STATES
    coordinator_id: int


@dataclasses.dataclass(frozen=True, slots=True)
class MemberDescription:
    """A member of a group, with the partitions its current assignment gives it.

    ``assignment`` is empty while the group rebalances, and when the bytes the
    leader sent cannot be decoded (another client's format).
    """

    member_id: str
    group_instance_id: str | None
    client_id: str
    host: str
    assignment: frozenset[TopicPartition]


@dataclasses.dataclass(frozen=True, slots=True)
class GroupDescription:
    """A group as its coordinator sees it; an unknown group is ``Dead`` with no members."""

    group_id: str
    state: str  # one of GROUP_STATES
    protocol_type: str
    protocol: str  # the assignor the group chose ("" before the first rebalance)
    members: tuple[MemberDescription, ...]
    coordinator_id: int

    @property
    def is_active(self) -> bool:
        """Members are in the group (a reset of its offsets would race them)."""
        return self.state not in ("Empty", "Dead")
