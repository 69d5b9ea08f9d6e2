"""The broker: ties the coordinator, the partition logs and the network together.

Topic metadata comes from the coordinator (embedded or ZooKeeper) and is
cached here; the broker opens, reconfigures and removes logs to match it
(``sync_topic``), whether a change came from one of its own requests or from
a coordinator notification.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from client.errors import LogServerError, StorageError
from client.protocol import RequestHeader
from coordination import BrokerInfo, Coordinator, PartitionState, TopicAssignment
from logserver.append_notifier import AppendNotifier
from logserver.config import BrokerConfig
from logserver.groups import OFFSETS_TOPIC, GroupCoordinator, GroupLimits
from logserver.liveness_probe import LivenessProbe
from logserver.log import PartitionLog
from logserver.log.segment import now_ms
from logserver.log_manager import LogManager
from logserver.metrics import (
    BrokerMetrics,
    BrokerStateCollector,
    MetricsServer,
    NullMetrics,
    not_ready_reason,
)
from logserver.network.connection import HandlerResult
from logserver.network.server import NetworkServer
from logserver.replication.leader_state import LeaderState
from logserver.replication.replica_fetcher import ReplicaFetcher
from logserver.replication.replica_manager import ReplicaManager

__all__ = ["Broker"]

log = logging.getLogger(__name__)

_RETRY_FIRST_S = 0.2
_RETRY_MAX_S = 5.0


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
        self.fetcher = ReplicaFetcher(
            config.broker_id,
            self.replicas,
            self.logs,
            self.broker_address,
            max_wait_ms=config.replica_fetch_wait_max_ms,
        )
        self.groups = GroupCoordinator(
            coordinator,
            broker_id=config.broker_id,
            limits=GroupLimits(
                min_session_timeout_ms=config.group_min_session_timeout_ms,
                max_session_timeout_ms=config.group_max_session_timeout_ms,
                initial_rebalance_delay_ms=config.group_initial_rebalance_delay_ms,
                max_size=config.group_max_size,
            ),
            partition_count=self._offsets_partition_count,
        )
        self.controller: Any = None  # logserver.controller.Controller in cluster mode
        self.controller_id = config.broker_id  # standalone: always this broker
        self.topics: dict[str, TopicAssignment] = {}
        self.partition_states: dict[tuple[str, int], PartitionState] = {}
        self.brokers: list[BrokerInfo] = []
        # Blocking storage work (fsync, open, delete, big reads) runs here, off the loop.
        self.executor = ThreadPoolExecutor(max_workers=4, thread_name_prefix="storage")
        self.metrics: NullMetrics = NullMetrics()
        self._metrics_server: MetricsServer | None = None
        if config.metrics_port is not None:
            self.metrics = metrics = BrokerMetrics()
            limit = config.metrics_partition_limit
            self._metrics_server = MetricsServer(
                metrics.registry,
                lambda: not_ready_reason(self),
                BrokerStateCollector(self, partition_limit=limit),
            )
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
        self._stopping = False
        self._registered = False  # no role is taken before the registration
        self._controller_probe: LivenessProbe | None = None

    @property
    def broker_id(self) -> int:
        return self.config.broker_id

    @property
    def registered(self) -> bool:
        return self._registered

    @property
    def stopping(self) -> bool:
        return self._stopping

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self._metrics_server is not None:  # first: a port in use refuses to start at once
            port = await self._metrics_server.start(self.config.metrics_port or 0)
            log.info(
                "broker %d: metrics on port %d (/metrics, /health, /ready)", self.broker_id, port
            )
        await self.coordinator.start()
        # Listen before reading, so a change made between the read and now is not lost.
        self.coordinator.add_topic_listener(self._on_topic_change)
        self.coordinator.add_partition_listener(self._on_partition_change)
        self.coordinator.add_broker_listener(self._on_brokers_change)
        self.coordinator.add_session_listener(self._on_session_change)
        topics = await self.coordinator.topics()
        await loop.run_in_executor(
            self.executor, self.logs.load, {name: t.config for name, t in topics.items()}
        )
        for endpoint in self.config.listeners:
            self.bound.append(await self.network.listen(endpoint.host, endpoint.port))
        advertised = self.config.advertised_listeners[0]
        port = advertised.port or self.bound[0][1]
        # Register before taking any role: a broker whose id another live broker holds
        # must be refused before it fetches (or leads) as that broker.
        await self.coordinator.register_broker(
            BrokerInfo(self.broker_id, advertised.host, port, self.config.broker_rack)
        )
        self._registered = True
        self.brokers = await self.coordinator.live_brokers()
        # Notifications before now were ignored: this read covers them.
        topics = await self.coordinator.topics()
        for name in set(topics) | self.logs.topics():
            await self.sync_topic(name)
        if self.coordinator.mode != "standalone":
            from logserver.controller import Controller

            self.controller = Controller(
                self.coordinator,
                broker_id=self.broker_id,
                unclean_leader_election=self.config.unclean_leader_election_enable,
                leader_imbalance_check_interval_s=(
                    self.config.leader_imbalance_check_interval_seconds
                    if self.config.auto_leader_rebalance_enable
                    else None
                ),
                liveness_probe_interval_s=self.config.controller_liveness_probe_interval_ms / 1000,
            )
            self.coordinator.add_controller_listener(self._on_controller_change)
            await self.controller.start()
            current = await self.coordinator.controller_id()
            self.controller_id = -1 if current is None else current
            probe_s = self.config.controller_liveness_probe_interval_ms / 1000
            if probe_s:
                self._controller_probe = LivenessProbe(
                    self.broker_id, self._on_controller_refusing, interval_s=probe_s
                )
                self._controller_probe.start()
                self._watch_controller()
        self.groups.start()
        self._spawn(self._isr_loop(), "isr-maintenance")
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
        # Background duties stop first: while requests drain, an ISR check would see the
        # followers (no longer served) as lagging and shrink the ISR to this broker alone.
        # Coordinator notifications arriving from now on start nothing.
        self._stopping = True
        if self._controller_probe is not None:
            await self._controller_probe.close()
        for task in self._tasks:
            task.cancel()
        # JoinGroup and SyncGroup requests may wait a whole rebalance: answer them now
        # (NOT_COORDINATOR: the members find the next coordinator) so the drain is quick.
        await self.groups.close()
        await self.network.shutdown(drain_timeout_s)
        await self.fetcher.close()
        if self.controller is not None:
            await self.controller.close()
        for task in self._tasks:
            task.cancel()
        # A task that failed was logged when it did; stopping must not fail because of it.
        await asyncio.gather(*self._tasks, return_exceptions=True)
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self.executor, self.logs.close)
        finally:
            self.executor.shutdown(wait=True)
            await self.coordinator.close()
            if self._metrics_server is not None:
                await self._metrics_server.close()
        log.info("broker %d stopped cleanly", self.broker_id)

    def _spawn(self, coro: Any, name: str) -> None:
        if self._stopping:
            coro.close()
            return
        self._tasks = [t for t in self._tasks if not t.done()]
        task = asyncio.create_task(coro, name=name)
        task.add_done_callback(_report_failure)
        self._tasks.append(task)

    def _spawn_retrying(self, step: Callable[[], Any], name: str) -> None:
        """Run a coordinator-driven step in the background until it succeeds.

        A ZooKeeper outage must not leave this broker on a stale role: the step is
        tried again with backoff while the broker runs (each try re-reads the state).
        """
        self._spawn(self._retry(step, name), name)

    async def _retry(self, step: Callable[[], Any], name: str) -> None:
        delay = _RETRY_FIRST_S
        while not self._stopping:
            try:
                await step()
                return
            except LogServerError as exc:
                log.info("%s: %s; trying again in %.1f s", name, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX_S)

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
        self._spawn_retrying(lambda: self.sync_topic(name), f"sync-topic-{name}")

    def _on_partition_change(self, topic: str, partition: int) -> None:
        self._spawn_retrying(
            lambda: self.sync_partition(topic, partition), f"sync-{topic}-{partition}"
        )

    def _on_controller_change(self, controller_id: int | None) -> None:
        self.controller_id = -1 if controller_id is None else controller_id
        self._watch_controller()

    def _watch_controller(self) -> None:
        """Probe the controller (another broker) so that a dead one is deposed at once
        rather than after its session expires (logserver/liveness_probe.py)."""
        if self._controller_probe is None:
            return
        info = None
        if self.controller_id not in (-1, self.broker_id):
            info = self.broker_address(self.controller_id)
        self._controller_probe.watch([info] if info is not None else [])

    def _on_controller_refusing(self, info: BrokerInfo) -> None:
        if self.controller is not None:
            self.controller.note_refusing(info)  # if elected next, it acts on this at once
        self._spawn(self._depose(info.broker_id), "depose-controller")

    async def _depose(self, broker_id: int) -> None:
        try:
            await self.coordinator.depose_controller(broker_id)
        except LogServerError as exc:
            log.info("could not depose controller %d: %s", broker_id, exc)

    def _on_brokers_change(self, broker_ids: tuple[int, ...]) -> None:
        self._spawn_retrying(self._refresh_brokers, "refresh-brokers")

    async def _refresh_brokers(self) -> None:
        self.brokers = await self.coordinator.live_brokers()
        self._watch_controller()

    def _on_session_change(self, state: object) -> None:
        """Session lost: stop leading (others may have taken over); back: re-read everything."""
        name = str(getattr(state, "name", state)).lower()
        if name == "lost":
            for tp in list(self.replicas.leaders):
                self.replicas.remove(tp)
            self.groups.resign_all("ZooKeeper session lost")
            log.warning("ZooKeeper session lost: no longer leading any partition")
        elif name == "connected":
            self._spawn_retrying(self._resync_all, "resync-after-session")

    async def _resync_all(self) -> None:
        await self._refresh_brokers()
        for name in list(self.topics):
            await self.sync_topic(name)

    def broker_address(self, broker_id: int) -> BrokerInfo | None:
        for info in self.brokers:
            if info.broker_id == broker_id:
                return info
        return None

    async def sync_partition(self, topic: str, partition: int) -> None:
        """Take the role the coordinator's partition state gives this broker.

        Under the topic's lock, so a state read here is never older than one a
        concurrent ``sync_topic`` applies; a topic not known yet is synced whole.
        """
        if not self._registered:
            return
        async with self._topic_lock(topic):
            assignment = self.topics.get(topic)
            if assignment is None:
                await self._sync_topic_locked(topic)
                return
            state = await self._read_state(topic, partition)
            if state is None:
                return
            self.partition_states[(topic, partition)] = state
            replicas = assignment.replicas.get(partition, ())
            partition_log = self.logs.get(topic, partition)
            if self.broker_id in replicas and partition_log is not None:
                self._take_role((topic, partition), partition_log, replicas, state)

    async def _read_state(self, topic: str, partition: int) -> PartitionState | None:
        """The partition's state; None when it is missing or unreadable.

        A state znode holding nonsense is logged and the partition left as it is: the
        rest keep serving, and the watch fires again when someone writes a valid state.
        """
        try:
            return await self.coordinator.partition_state(topic, partition)
        except StorageError as exc:
            log.error("%s-%d: ignoring its unreadable state: %s", topic, partition, exc)
            return None

    def _topic_lock(self, name: str) -> asyncio.Lock:
        return self._topic_locks.setdefault(name, asyncio.Lock())

    async def _isr_loop(self) -> None:
        """Leaders drop followers that fell behind from the ISR, and add those caught up."""
        period = max(0.05, min(self.config.replica_lag_time_max_ms / 2000, 5.0))
        while True:
            await asyncio.sleep(period)
            for tp, leader in list(self.replicas.leaders.items()):
                if not leader.followers or self._wanted_isr(leader) == leader.isr:
                    continue
                try:
                    await self._change_isr(tp)
                except LogServerError as exc:  # ZooKeeper away: try again next round
                    log.info("%s-%d: ISR change deferred: %s", tp[0], tp[1], exc)

    def _wanted_isr(self, leader: LeaderState) -> frozenset[int]:
        now, max_lag = now_ms(), self.config.replica_lag_time_max_ms
        return (leader.isr - leader.laggards(now, max_lag)) | leader.expandable(now, max_lag)

    async def _change_isr(self, tp: tuple[str, int]) -> None:
        found = await self.coordinator.partition_state_with_version(*tp)
        if found is None:
            return
        state, version = found
        if state.leader != self.broker_id or state.leader_epoch != self.leader_epoch(*tp):
            return  # the controller moved on; the partition listener will tell us
        leader = self.replicas.leaders.get(tp)
        assignment = self.topics.get(tp[0])
        if leader is None or assignment is None:
            return  # no longer leading it, or deleted meanwhile
        # Start from the ISR as stored, not as cached: the controller may have dropped a
        # dead follower since, and a change worked out from the cache would put it back.
        if leader.set_isr(state.isr):
            self.notifier.notify(tp)
        wanted = self._wanted_isr(leader)
        if wanted == leader.isr:
            return
        ordered = tuple(r for r in assignment.replicas.get(tp[1], ()) if r in wanted)
        try:
            await self.coordinator.update_partition_state(
                tp[0], tp[1], PartitionState(self.broker_id, state.leader_epoch, ordered), version
            )
        except LogServerError as exc:
            log.info(
                "%s-%d: ISR change to %s refused: %s",
                tp[0],
                tp[1],
                ordered,
                exc,
                extra={"topic": tp[0], "partition": tp[1]},
            )
            return
        self.metrics.isr_changed(frozenset(state.isr), frozenset(ordered))
        leader = self.replicas.leaders.get(tp)
        if leader is not None and leader.set_isr(ordered):
            self.notifier.notify(tp)
        log.info(
            "%s-%d: ISR is now %s",
            tp[0],
            tp[1],
            list(ordered),
            extra={"topic": tp[0], "partition": tp[1]},
        )

    async def sync_topic(self, name: str) -> None:
        """Make the local logs and caches match the coordinator's view of ``name``."""
        if not self._registered:
            return
        async with self._topic_lock(name):
            await self._sync_topic_locked(name)

    async def _sync_topic_locked(self, name: str) -> None:
        loop = asyncio.get_running_loop()
        assignment = await self.coordinator.topic(name)
        if assignment is None:
            self.topics.pop(name, None)
            for tp in [tp for tp in self.partition_states if tp[0] == name]:
                del self.partition_states[tp]
                self.replicas.remove(tp)
                self._follow_group_role(tp)
            if name in self.logs.topics():
                await loop.run_in_executor(self.executor, self.logs.delete_topic, name)
            self.metrics.forget_topic(name)
            self.notifier.notify_topic(name)
            return
        for partition, replicas in assignment.replicas.items():
            state = await self._read_state(name, partition)
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
        known = self.replicas.leader_epochs.get(tp)
        if known is not None and state.leader_epoch < known:
            # An older state read late (a slow reader raced a newer one): epochs only grow.
            log.info(
                "%s-%d: ignoring a state at epoch %d, older than %d",
                tp[0], tp[1], state.leader_epoch, known,
            )  # fmt: skip
            return
        if state.leader == self.broker_id:
            self.fetcher.unfollow(tp)
            self.replicas.become_leader(
                tp, partition_log, replicas=replicas, isr=state.isr, leader_epoch=state.leader_epoch
            )
        elif state.leader >= 0:
            if self.replicas.become_follower(
                tp, leader_id=state.leader, leader_epoch=state.leader_epoch
            ):
                self.fetcher.follow(tp, state.leader)
        else:
            self.fetcher.unfollow(tp)
            self.replicas.remove(tp)  # offline: nobody serves it
        self._follow_group_role(tp)

    def _follow_group_role(self, tp: tuple[str, int]) -> None:
        """Coordinate the groups of a ``__consumer_offsets`` partition exactly while leading it."""
        if tp[0] != OFFSETS_TOPIC:
            return
        if tp in self.replicas.leaders:
            self.groups.on_leader(tp[1], self.leader_epoch(*tp))
        else:
            self.groups.on_resign(tp[1])

    def _offsets_partition_count(self) -> int | None:
        assignment = self.topics.get(OFFSETS_TOPIC)
        return None if assignment is None else assignment.partition_count

    def leader_epoch(self, topic: str, partition: int) -> int:
        return self.replicas.leader_epochs.get((topic, partition), 0)

    def high_watermark(self, tp: tuple[str, int], partition_log: PartitionLog) -> int:
        """The end of what consumers may read: what every in-sync replica has."""
        return self.replicas.high_watermark(tp, partition_log)

    def min_insync_replicas(self, topic: str) -> int:
        """The topic's setting, else the broker's, else 2 with 3+ replicas (1 below)."""
        assignment = self.topics.get(topic)
        override = assignment.config.get("min.insync.replicas") if assignment else None
        if override:
            return int(override)
        if self.config.min_insync_replicas is not None:
            return self.config.min_insync_replicas
        replicas = next(iter(assignment.replicas.values()), ()) if assignment else ()
        return 2 if len(replicas) >= 3 else 1


def _report_failure(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background task %s failed", task.get_name(), exc_info=task.exception())
