"""What the coordinator knows about the cluster, as plain immutable values.

These mirror the ZooKeeper layout (DESIGN.md §4) so that both coordinators, and
the broker reading them, speak the same shapes:

    BrokerInfo        /brokers/ids/<id>                              endpoint, rack
    TopicAssignment   /brokers/topics/<topic> + /config/topics/<t>  replicas, overrides
    PartitionState    /brokers/topics/<t>/partitions/<p>/state      leader, epoch, ISR

The dataclasses are frozen so a value handed to the broker cannot change under
it; coordinators hand out fresh dicts, so mutating one never reaches the
coordinator's own state. ``TopicAssignment`` holds dicts and is therefore not
hashable.
"""

from __future__ import annotations

import dataclasses

__all__ = ["BrokerInfo", "PartitionState", "TopicAssignment"]


@dataclasses.dataclass(frozen=True, slots=True)
class BrokerInfo:
    """A live broker: its id and the endpoint clients and followers connect to."""

    broker_id: int
    host: str
    port: int
    rack: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class PartitionState:
    """Who leads a partition and who is in sync with it.

    ``leader_epoch`` grows by one on every leader change; the leader stamps it
    into every batch it appends, and followers use it to find where their log
    diverges. ``isr`` always contains the leader while there is one.
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
