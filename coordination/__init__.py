"""Cluster coordination: who the brokers are, who leads what, which topics exist, and
where consumer groups stand (committed offsets).

The broker codes against ``Coordinator`` (``coordination.interface``), a
protocol shaped after the ZooKeeper layout of DESIGN.md §4. Standalone mode
uses ``EmbeddedCoordinator``, which keeps the same state in files under the
data dir; cluster mode uses ``coordination.zookeeper.ZooKeeperCoordinator``
(imported from there, so standalone mode never loads kazoo). kazoo stays
inside this package.
"""

from coordination.embedded import EmbeddedCoordinator
from coordination.interface import Coordinator, PartitionStateConflictError
from coordination.model import (
    BrokerInfo,
    CommittedOffset,
    OffsetFence,
    PartitionState,
    SessionState,
    TopicAssignment,
    VersionedPartitionState,
)

__all__ = [
    "BrokerInfo",
    "CommittedOffset",
    "Coordinator",
    "EmbeddedCoordinator",
    "OffsetFence",
    "PartitionState",
    "PartitionStateConflictError",
    "SessionState",
    "TopicAssignment",
    "VersionedPartitionState",
]
