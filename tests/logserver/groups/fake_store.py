"""An in-memory stand-in for the coordinator's offset store and partition states.

Only the calls ``GroupCoordinator`` makes: ``commit_offsets`` (fenced, as the
ZooKeeper one: a fence whose version is not the state's now is refused with
``NotCoordinatorError``), ``fetch_offsets``, ``groups``,
``delete_group_offsets``, ``fence_for`` and ``partition_state``. Tests move
the state (``set_state``) and count the calls.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable, Mapping

from client.errors import NotCoordinatorError
from coordination import CommittedOffset, OffsetFence, PartitionState
from logserver.groups.placement import OFFSETS_TOPIC

TopicPartition = tuple[str, int]


class FakeStore:
    def __init__(self, broker_id: int = 0, partitions: int = 4, *, fenced: bool = True) -> None:
        self.fenced = fenced
        self.offsets: dict[str, dict[TopicPartition, CommittedOffset]] = {}
        self.states: dict[int, tuple[PartitionState, int]] = {
            p: (PartitionState(broker_id, 0, (broker_id,)), 0) for p in range(partitions)
        }
        self.calls: Counter[str] = Counter()
        self.fence_gate: asyncio.Event | None = None  # set: fence_for waits on it

    def set_state(self, partition: int, leader: int, leader_epoch: int, isr: Iterable[int]) -> None:
        """A change of the state znode: its version moves on."""
        _, version = self.states[partition]
        self.states[partition] = (PartitionState(leader, leader_epoch, tuple(isr)), version + 1)

    async def commit_offsets(
        self,
        group: str,
        offsets: Mapping[TopicPartition, CommittedOffset],
        *,
        fence: OffsetFence | None = None,
    ) -> None:
        self.calls["commit_offsets"] += 1
        await asyncio.sleep(0)
        if self.fenced:
            assert fence is not None, "an unfenced commit"
            if self.states[fence.partition][1] != fence.version:
                raise NotCoordinatorError(f"fence {fence} no longer holds")
        self.offsets.setdefault(group, {}).update(offsets)

    async def fetch_offsets(
        self, group: str, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, CommittedOffset]:
        self.calls["fetch_offsets"] += 1
        await asyncio.sleep(0)
        stored = self.offsets.get(group, {})
        if partitions is None:
            return dict(stored)
        return {tp: stored[tp] for tp in partitions if tp in stored}

    async def groups(self) -> list[str]:
        return sorted(g for g, offsets in self.offsets.items() if offsets)

    async def delete_group_offsets(self, group: str) -> bool:
        self.calls["delete_group_offsets"] += 1
        return bool(self.offsets.pop(group, None))

    async def fence_for(self, topic: str, partition: int) -> OffsetFence | None:
        assert topic == OFFSETS_TOPIC
        self.calls["fence_for"] += 1
        if self.fence_gate is not None:
            await self.fence_gate.wait()
        if not self.fenced:
            return None
        return OffsetFence(topic, partition, self.states[partition][1])

    async def partition_state(self, topic: str, partition: int) -> PartitionState | None:
        found = self.states.get(partition)
        return None if found is None else found[0]
