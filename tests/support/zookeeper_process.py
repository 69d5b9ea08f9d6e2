"""The tests' ZooKeeper: the same launcher ``logserver dev-cluster`` uses."""

from coordination.zookeeper_server import (
    ZOOKEEPER_JAR,
    ZooKeeperEnsemble,
    ZooKeeperNotInstalledError,
    ZooKeeperProcess,
    ZooKeeperStartError,
    four_letter_word,
)

__all__ = [
    "ZOOKEEPER_JAR",
    "ZooKeeperEnsemble",
    "ZooKeeperNotInstalledError",
    "ZooKeeperProcess",
    "ZooKeeperStartError",
    "four_letter_word",
]
