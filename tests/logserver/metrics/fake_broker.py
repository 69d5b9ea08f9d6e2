"""A broker-shaped object holding just the state the metrics collector and /ready read."""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from coordination import CommittedOffset, PartitionState, SessionState, TopicAssignment
from logserver.append_notifier import AppendNotifier
from logserver.groups.group import Group, GroupLimits
from logserver.replication.replica_manager import ReplicaManager


@dataclass
class FakeLog:
    log_end_offset: int = 0
    log_start_offset: int = 0
    size_bytes: int = 0

    def read(self, offset: int, max_bytes: int, *, max_offset: int | None = None) -> None:
        return None  # lag in seconds: unknown


@dataclass
class FakeLogs:
    log_dirs: list[Path]
    logs: dict[tuple[str, int], FakeLog] = field(default_factory=dict)

    def partitions(self) -> dict[tuple[str, int], FakeLog]:
        return dict(self.logs)


@dataclass
class FakeGroups:
    groups: list[tuple[str, Group, dict[tuple[str, int], CommittedOffset] | None]] = field(
        default_factory=list
    )
    rebalances: int = 0

    def snapshot(self) -> list[Any]:
        return list(self.groups)


class FakeBroker:
    """Broker 1 of a ZooKeeper cluster; ``host`` adds a partition with its role."""

    def __init__(self, log_dir: Path, *, mode: str = "zookeeper", broker_id: int = 1) -> None:
        self.broker_id = broker_id
        self.coordinator = SimpleNamespace(
            mode=mode, session_state=SessionState.CONNECTED, session_expirations=0
        )
        self.replicas = ReplicaManager(broker_id, AppendNotifier())
        self.controller: Any = SimpleNamespace(is_active=False, elections=collections.Counter())
        self.partition_states: dict[tuple[str, int], PartitionState] = {}
        self.topics: dict[str, TopicAssignment] = {}
        self.logs = FakeLogs([log_dir])
        self.groups = FakeGroups()
        self.registered = True
        self.stopping = False

    def min_insync_replicas(self, topic: str) -> int:
        return 2

    def host(
        self,
        topic: str,
        partition: int,
        *,
        replicas: tuple[int, ...] = (1, 2, 3),
        leader: int = 1,
        isr: tuple[int, ...] = (1, 2, 3),
        end: int = 10,
        epoch: int = 1,
    ) -> FakeLog:
        """Host ``topic-partition`` and take the role its state gives (as the broker does)."""
        log = self.logs.logs.setdefault((topic, partition), FakeLog(end, 0, end * 100))
        previous = self.topics.get(topic)
        by_partition = dict(previous.replicas) if previous else {}
        by_partition[partition] = replicas
        self.topics[topic] = TopicAssignment(topic, by_partition, {})
        state = PartitionState(leader, epoch, isr)
        self.partition_states[(topic, partition)] = state
        self.take_role(topic, partition, state)
        return log

    def take_role(self, topic: str, partition: int, state: PartitionState) -> None:
        tp = (topic, partition)
        self.partition_states[tp] = state
        if state.leader == self.broker_id:
            replicas = self.topics[topic].replicas[partition]
            log = self.logs.logs[tp]
            self.replicas.become_leader(
                tp, log, replicas=replicas, isr=state.isr, leader_epoch=state.leader_epoch
            )  # type: ignore[arg-type]
        elif state.leader >= 0:
            self.replicas.become_follower(
                tp, leader_id=state.leader, leader_epoch=state.leader_epoch
            )
        else:
            self.replicas.remove(tp)


def a_group(group_id: str) -> Group:
    return Group(group_id, GroupLimits(0, 60_000, 0, None))
