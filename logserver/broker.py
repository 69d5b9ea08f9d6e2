"""The broker: ties the coordinator, the partition logs and the network together.

Topic metadata comes from the coordinator (embedded or ZooKeeper) and is
cached here; the broker opens, reconfigures and removes logs to match it
(``sync_topic``), whether a change came from one of its own requests or from
a coordinator notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from client.protocol import RequestHeader
from coordination import BrokerInfo, Coordinator, PartitionState, TopicAssignment
from logserver.append_notifier import AppendNotifier
from logserver.config import BrokerConfig
from logserver.log import PartitionLog
from logserver.log_manager import LogManager
from logserver.network.connection import HandlerResult
from logserver.network.server import NetworkServer
from logserver.replication.replica_manager import ReplicaManager

__all__ = ["Broker"]

log = logging.getLogger(__name__)


class Broker:
    def __init__(
        self,
        config: BrokerConfig,
        coordinator: Coordinator,
        *,
        clock_ms: Callable[[], int] | None = None,
    ) -> None:
        from logserver.api.dispatcher import RequestDispatcher

        self.config = config
        self.coordinator = coordinator
        self.logs = LogManager(config.log_dirs, config.log_config(), clock_ms=clock_ms)
        self.notifier = AppendNotifier()
        self.replicas = ReplicaManager(config.broker_id, self.notifier)
        self.topics: dict[str, TopicAssignment] = {}
        self.partition_states: dict[tuple[str, int], PartitionState] = {}
        self.brokers: list[BrokerInfo] = []
        # Blocking storage work (fsync, open, delete, big reads) runs here, off the loop.
        self.executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="storage")
        self._dispatcher = RequestDispatcher(self)
        self.network = NetworkServer(
            self,
            max_request_bytes=config.socket_request_max_bytes,
            max_inflight=config.max_inflight_requests_per_connection,
            idle_timeout_ms=config.connections_max_idle_ms,
        )
        self.bound: list[tuple[str, int]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._topic_locks: dict[str, asyncio.Lock] = {}

    @property
    def broker_id(self) -> int:
        return self.config.broker_id

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        await self.coordinator.start()
        topics = await self.coordinator.topics()
        await loop.run_in_executor(
            self.executor, self.logs.load, {name: t.config for name, t in topics.items()}
        )
        # Roles first, so the first request finds every partition served.
        for name in set(topics) | self.logs.topics():
            await self.sync_topic(name)
        for endpoint in self.config.listeners:
            self.bound.append(await self.network.listen(endpoint.host, endpoint.port))
        advertised = self.config.advertised_listeners[0]
        port = advertised.port or self.bound[0][1]
        await self.coordinator.register_broker(
            BrokerInfo(self.broker_id, advertised.host, port, self.config.broker_rack)
        )
        self.brokers = await self.coordinator.live_brokers()
        self.coordinator.add_topic_listener(self._on_topic_change)
        self._spawn(self._retention_loop(), "retention")
        self._spawn(self._flush_loop(), "flusher")
        log.info(
            "broker %d serving on %s (%s mode)",
            self.broker_id,
            ", ".join(f"{h}:{p}" for h, p in self.bound),
            self.coordinator.mode,
        )

    async def stop(self, drain_timeout_s: float = 10.0) -> None:
        """Stop accepting, answer what is in flight, flush and close every log cleanly."""
        await self.network.shutdown(drain_timeout_s)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.executor, self.logs.close)
        finally:
            self.executor.shutdown(wait=True)
            await self.coordinator.close()
        log.info("broker %d stopped cleanly", self.broker_id)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(_report_failure)
        self._tasks.append(task)

    async def _retention_loop(self) -> None:
        loop = asyncio.get_running_loop()
        period = self.config.log_retention_check_interval_ms / 1000
        while True:
            await asyncio.sleep(period)
            await loop.run_in_executor(self.executor, self.logs.enforce_retention)

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        period = min(1.0, (self.config.log_flush_interval_ms or 1000) / 1000)
        while True:
            await asyncio.sleep(period)
            await loop.run_in_executor(self.executor, self.logs.flush_due)

    # -- requests --------------------------------------------------------------------

    def dispatch(
        self, header: RequestHeader, body: dict[str, Any], tail: memoryview, peer: str
    ) -> HandlerResult:
        return self._dispatcher.dispatch(header, body, tail, peer)

    # -- topics ----------------------------------------------------------------------

    def _on_topic_change(self, name: str) -> None:
        self._spawn(self.sync_topic(name), f"sync-topic-{name}")

    async def sync_topic(self, name: str) -> None:
        """Make the local logs and caches match the coordinator's view of ``name``."""
        lock = self._topic_locks.setdefault(name, asyncio.Lock())
        async with lock:
            loop = asyncio.get_running_loop()
            assignment = await self.coordinator.topic(name)
            if assignment is None:
                self.topics.pop(name, None)
                for tp in [tp for tp in self.partition_states if tp[0] == name]:
                    del self.partition_states[tp]
                    self.replicas.remove(tp)
                if name in self.logs.topics():
                    await loop.run_in_executor(self.executor, self.logs.delete_topic, name)
                self.notifier.notify_topic(name)
                return
            for partition, replicas in assignment.replicas.items():
                state = await self.coordinator.partition_state(name, partition)
                if state is not None:
                    self.partition_states[(name, partition)] = state
                if self.broker_id not in replicas:
                    continue
                partition_log = self.logs.get(name, partition)
                if partition_log is None:
                    partition_log = await loop.run_in_executor(
                        self.executor, self.logs.create, name, partition, assignment.config
                    )
                if state is not None:
                    self._take_role((name, partition), partition_log, replicas, state)
            previous = self.topics.get(name)
            self.topics[name] = assignment
            if previous is not None and previous.config != assignment.config:
                self.logs.update_topic_config(name, assignment.config)

    def _take_role(
        self,
        tp: tuple[str, int],
        partition_log: PartitionLog,
        replicas: tuple[int, ...],
        state: PartitionState,
    ) -> None:
        if state.leader == self.broker_id:
            self.replicas.become_leader(
                tp, partition_log, replicas=replicas, isr=state.isr, leader_epoch=state.leader_epoch
            )
        elif state.leader >= 0:
            self.replicas.become_follower(
                tp, leader_id=state.leader, leader_epoch=state.leader_epoch
            )
        else:
            self.replicas.remove(tp)  # offline: nobody serves it

    def leader_epoch(self, topic: str, partition: int) -> int:
        return self.replicas.leader_epochs.get((topic, partition), 0)

    def high_watermark(self, tp: tuple[str, int], partition_log: PartitionLog) -> int:
        """The end of what consumers may read: what every in-sync replica has."""
        return self.replicas.high_watermark(tp, partition_log)

    def min_insync_replicas(self, topic: str) -> int:
        assignment = self.topics.get(topic)
        override = assignment.config.get("min.insync.replicas") if assignment else None
        return int(override) if override else self.config.min_insync_replicas


def _report_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s failed", task.get_name(), exc_info=task.exception())
