"""Which ``__consumer_offsets`` partitions this broker coordinates, and with which fence.

A broker coordinates a partition's groups exactly while it leads the
partition. ``on_leader(partition, leader_epoch)`` starts reading the
partition's fence (``Coordinator.fence_for``), retrying while the store is
away; the partition is ``loaded`` once the fence is read and the state still
names this broker leader at that epoch. ``on_resign`` (or another epoch)
drops it at once and tells the owner (``on_drop``), which drops its groups.

The fence is read before the state is checked: read in that order, a fence is
always one taken while this broker led at that epoch (epochs only grow).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from client.errors import LogServerError
from coordination import Coordinator, OffsetFence
from logserver.groups.placement import OFFSETS_TOPIC

__all__ = ["Leadership", "LedPartition"]

log = logging.getLogger(__name__)

_LOAD_RETRY_FIRST_S = 0.1
_LOAD_RETRY_MAX_S = 2.0


class LedPartition:
    """One ``__consumer_offsets`` partition this broker leads, at one leader epoch."""

    def __init__(self, partition: int, leader_epoch: int) -> None:
        self.partition = partition
        self.leader_epoch = leader_epoch
        self.fence: OffsetFence | None = None
        self.loaded = False
        self.task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"{OFFSETS_TOPIC}-{self.partition}@{self.leader_epoch}"


class Leadership:
    def __init__(
        self,
        store: Coordinator,
        broker_id: int,
        on_drop: Callable[[LedPartition, str], None],
    ) -> None:
        self._store = store
        self.broker_id = broker_id
        self._on_drop = on_drop
        self._partitions: dict[int, LedPartition] = {}
        self._closed = False

    def get(self, partition: int) -> LedPartition | None:
        return self._partitions.get(partition)

    def is_current(self, led: LedPartition) -> bool:
        """Still led at that epoch: not dropped since."""
        return self._partitions.get(led.partition) is led

    def is_loaded(self, partition: int) -> bool:
        led = self._partitions.get(partition)
        return led is not None and led.loaded

    def on_leader(self, partition: int, leader_epoch: int) -> None:
        if self._closed:
            return
        current = self._partitions.get(partition)
        if current is not None and current.leader_epoch == leader_epoch:
            return  # the same leadership (an ISR change, a re-read): nothing to do
        if current is not None:
            # Another epoch: someone else may have led in between. Start afresh.
            self.drop(partition, f"leader epoch {current.leader_epoch} -> {leader_epoch}")
        led = LedPartition(partition, leader_epoch)
        self._partitions[partition] = led
        led.task = asyncio.create_task(self._load(led), name=f"load-{led}")
        led.task.add_done_callback(_report_failure)

    def on_resign(self, partition: int) -> None:
        if partition in self._partitions:
            self.drop(partition, "this broker no longer leads it")

    def drop(self, partition: int, why: str) -> None:
        led = self._partitions.pop(partition)
        if led.task is not None:
            led.task.cancel()
        self._on_drop(led, why)

    def drop_all(self, why: str) -> None:
        for partition in list(self._partitions):
            self.drop(partition, why)

    async def close(self, why: str) -> None:
        self._closed = True
        tasks = [led.task for led in self._partitions.values() if led.task is not None]
        self.drop_all(why)
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _load(self, led: LedPartition) -> None:
        delay = _LOAD_RETRY_FIRST_S
        while self.is_current(led):
            try:
                if await self.refresh_fence(led):
                    led.loaded = True
                    log.debug("coordinating the groups of %r", led)
                    return
            except LogServerError as exc:
                log.info("%r: reading its fence: %s", led, exc)
            # Not the leader at that epoch as far as the store says: the broker hears of the
            # change through its watch and calls on_leader or on_resign. Until then, ask again.
            await asyncio.sleep(delay)
            delay = min(delay * 2, _LOAD_RETRY_MAX_S)

    async def refresh_fence(self, led: LedPartition) -> bool:
        """Take the partition's fence now; False if this broker no longer leads it at
        ``led.leader_epoch`` (or it was dropped meanwhile)."""
        fence = await self._store.fence_for(OFFSETS_TOPIC, led.partition)
        state = await self._store.partition_state(OFFSETS_TOPIC, led.partition)
        if not self.is_current(led) or state is None:
            return False
        if state.leader != self.broker_id or state.leader_epoch != led.leader_epoch:
            return False
        led.fence = fence
        return True


def _report_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("task %s failed", task.get_name(), exc_info=task.exception())
