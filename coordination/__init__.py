"""Cluster coordination: who the brokers are, who leads what, which topics exist.

The broker codes against ``Coordinator`` (``coordination.interface``), a
protocol shaped after the ZooKeeper layout of DESIGN.md §4. Standalone mode
uses ``EmbeddedCoordinator``, which keeps the same state in files under the
data dir; the cluster issue (4) adds the kazoo implementation. kazoo stays
inside this package.
"""

from coordination.embedded import EmbeddedCoordinator
from coordination.interface import Coordinator
from coordination.model import BrokerInfo, PartitionState, TopicAssignment

__all__ = [
    "BrokerInfo",
    "Coordinator",
    "EmbeddedCoordinator",
    "PartitionState",
    "TopicAssignment",
]
