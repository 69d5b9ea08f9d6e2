"""This broker's role for each partition it hosts: leader (with its followers' state) or follower.

The broker calls ``become_leader`` / ``become_follower`` when the coordinator's
partition state names a new leader or epoch. Request handlers ask it who may
serve a partition and where the high watermark is.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable

from client.errors import NotLeaderOrFollowerError
from logserver.append_notifier import AppendNotifier
from logserver.log import PartitionLog
from logserver.log.segment import now_ms
from logserver.replication.leader_state import LeaderState

__all__ = ["FollowerRole", "ReplicaManager"]

log = logging.getLogger(__name__)

TopicPartition = tuple[str, int]


class FollowerRole:
    __slots__ = ("high_watermark", "leader_epoch", "leader_id", "needs_truncation")

    def __init__(self, leader_id: int, leader_epoch: int) -> None:
        self.leader_id = leader_id
        self.leader_epoch = leader_epoch
        self.high_watermark = 0
        self.needs_truncation = True  # OffsetsForLeaderEpoch first, then fetch


class ReplicaManager:
    def __init__(
        self,
        broker_id: int,
        notifier: AppendNotifier,
        *,
        clock_ms: Callable[[], int] = now_ms,
    ) -> None:
        self.broker_id = broker_id
        self._notifier = notifier
        self._clock = clock_ms
        self.leaders: dict[TopicPartition, LeaderState] = {}
        self.leader_epochs: dict[TopicPartition, int] = {}
        self.followers: dict[TopicPartition, FollowerRole] = {}

    def become_leader(
        self,
        tp: TopicPartition,
        partition_log: PartitionLog,
        *,
        replicas: Iterable[int],
        isr: Iterable[int],
        leader_epoch: int,
    ) -> None:
        current = self.leaders.get(tp)
        if current is not None and self.leader_epochs.get(tp) == leader_epoch:
            current.set_isr(isr)
            return
        self._drop(tp, "became leader")
        follower = self.followers.pop(tp, None)
        start_hw = follower.high_watermark if follower is not None else 0
        self.leaders[tp] = LeaderState(
            leader_id=self.broker_id,
            replicas=replicas,
            isr=isr,
            leader_end=lambda: partition_log.log_end_offset,
            high_watermark=start_hw,
            now_ms=self._clock(),
        )
        self.leader_epochs[tp] = leader_epoch
        self.leaders[tp].update_high_watermark()
        log.info(
            "%s-%d: leader at epoch %d",
            tp[0],
            tp[1],
            leader_epoch,
            extra={"topic": tp[0], "partition": tp[1]},
        )

    def become_follower(self, tp: TopicPartition, *, leader_id: int, leader_epoch: int) -> bool:
        """Follow ``leader_id``; return True when this is a change (truncate, then fetch)."""
        role = self.followers.get(tp)
        if role is not None and role.leader_epoch == leader_epoch and role.leader_id == leader_id:
            return False
        hw = self.high_watermark(tp, None)
        self._drop(tp, "became follower")
        role = FollowerRole(leader_id, leader_epoch)
        role.high_watermark = hw
        self.followers[tp] = role
        self.leader_epochs[tp] = leader_epoch
        log.info(
            "%s-%d: following broker %d at epoch %d",
            tp[0],
            tp[1],
            leader_id,
            leader_epoch,
            extra={"topic": tp[0], "partition": tp[1]},
        )
        return True

    def remove(self, tp: TopicPartition) -> None:
        self._drop(tp, "partition removed")
        self.followers.pop(tp, None)
        self.leader_epochs.pop(tp, None)

    def _drop(self, tp: TopicPartition, why: str) -> None:
        state = self.leaders.pop(tp, None)
        if state is not None:
            state.fail_waiters(NotLeaderOrFollowerError(f"{tp[0]}-{tp[1]}: {why}"))
            self._notifier.notify(tp)

    # -- questions from request handlers ---------------------------------------------

    def leader_state(self, tp: TopicPartition) -> LeaderState | None:
        return self.leaders.get(tp)

    def require_leader(self, tp: TopicPartition) -> LeaderState:
        state = self.leaders.get(tp)
        if state is None:
            role = self.followers.get(tp)
            where = f"broker {role.leader_id} leads it" if role else "it has no leader here"
            raise NotLeaderOrFollowerError(
                f"{tp[0]}-{tp[1]}: broker {self.broker_id} is not its leader ({where})"
            )
        return state

    def high_watermark(self, tp: TopicPartition, partition_log: PartitionLog | None) -> int:
        state = self.leaders.get(tp)
        if state is not None:
            return state.high_watermark
        role = self.followers.get(tp)
        hw = role.high_watermark if role is not None else 0
        return hw if partition_log is None else min(hw, partition_log.log_end_offset)

    def after_append(self, tp: TopicPartition) -> None:
        """The leader's log grew: with no follower behind, the HW moves at once."""
        state = self.leaders.get(tp)
        if state is not None and state.update_high_watermark():
            self._notifier.notify(tp)

    def on_follower_fetch(self, tp: TopicPartition, replica_id: int, fetch_offset: int) -> None:
        state = self.require_leader(tp)
        if state.on_follower_fetch(replica_id, fetch_offset, self._clock()):
            self._notifier.notify(tp)
