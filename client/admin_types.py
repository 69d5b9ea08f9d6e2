"""What the admin client returns: frozen values, safe to share and compare."""

from __future__ import annotations

import dataclasses

__all__ = [
    "BrokerDescription",
    "ClusterDescription",
    "ConfigEntry",
    "PartitionDescription",
    "TopicDescription",
]


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
