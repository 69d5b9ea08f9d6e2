"""The controller: who leads each partition, and which replicas are in sync (DESIGN.md §4).

Kafka's controller of the ZooKeeper era. Every broker runs a ``Controller``;
it stands for election through its coordinator and acts only while
``coordinator.is_controller``. Its work is a reconciliation, run when this
broker becomes controller, when the set of live brokers changes and when a
topic is created or reconfigured:

- read each partition's state with its version, decide (``decide``), and
  write the decision conditionally on that version, fenced by the controller
  epoch (``update_partition_state(..., controller_epoch=...)``);
- a conflict (someone, e.g. the leader shrinking its ISR, wrote first) means
  read again and decide again, a few times; a stale controller epoch means
  another controller took over: stop at once.

The rules (``decide``), for live brokers ``live``:

- leader dead (or -1, offline): the first replica, in assignment order, that
  is in the ISR and live becomes leader; ISR = old ISR ∩ live; epoch + 1.
- no ISR replica live: with unclean election enabled (the topic's
  ``unclean.leader.election.enable``, else the broker default) the first live
  replica leads and is the ISR alone; otherwise the partition goes offline:
  leader -1, epoch + 1, ISR unchanged, so that a returning ISR member can
  lead again (then epoch + 1 once more).
- leader live, a follower in the ISR dead: ISR = ISR ∩ live, same epoch.

A registered broker that refuses connections (``LivenessProbe``: killed, its
session not yet expired) counts as dead until it registers again, so its
partitions fail over in about a second rather than a session timeout.

A broker that re-registered since the controller last looked (its
registration ``BrokerInfo.epoch`` changed: it restarted or lost its session)
is first treated as dead, then as live, like Kafka's "bounced" brokers: it
may have lost what it had not flushed, so it must not keep leading in the
same epoch.

Preferred leader election (``elect_preferred_leaders``, on demand, and every
``leader_imbalance_check_interval_s`` in the background): a partition whose
leader is not its first replica, while that replica is live and in the ISR,
gets it back as leader, epoch + 1.

The rules are pure functions (``decide``, ``preferred_election``); the class
is the I/O around them: listeners feed one worker task, which coalesces
triggers and runs one reconciliation at a time.

Brokers learn the outcome from their coordinator (a partition listener: a
watch on the state znode), not from a request: there is no LeaderAndIsr.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from client.errors import (
    CoordinatorNotAvailableError,
    FencedLeaderEpochError,
    NotControllerError,
    PreferredLeaderNotAvailableError,
    StaleControllerEpochError,
    StorageError,
    UnknownTopicOrPartitionError,
)
from coordination import (
    BrokerInfo,
    Coordinator,
    PartitionState,
    PartitionStateConflictError,
    SessionState,
)
from logserver.liveness_probe import LivenessProbe

__all__ = [
    "ELECTED",
    "NOT_NEEDED",
    "Controller",
    "decide",
    "preferred_election",
    "unclean_election_enabled",
]

log = logging.getLogger(__name__)

ELECTED = "elected"
NOT_NEEDED = "not needed"
NO_LEADER = -1
RETRIES = 5
"""Conditional writes that lost a race (re-read, re-decided) before giving up on a partition."""
_CONCURRENCY = 16
_BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 5.0)

TopicPartition = tuple[str, int]
_T = TypeVar("_T")
_I = TypeVar("_I")


# -- the rules ---------------------------------------------------------------------------------


def decide(
    state: PartitionState,
    replicas: Sequence[int],
    live: Collection[int],
    unclean: bool,
) -> PartitionState | None:
    """The state a partition must move to with only ``live`` brokers up; None: no change.

    ``state`` is valid (its leader in its ISR, or -1). See the module doc for
    the rules. Whatever it returns has a live leader in its ISR and no dead
    broker in its ISR, or is offline (leader -1) with the ISR it had; the
    leader epoch grows by one exactly when the leader changes.
    """
    if state.leader != NO_LEADER and state.leader in live and state.leader in state.isr:
        isr = tuple(b for b in state.isr if b in live)
        if isr == tuple(state.isr):
            return None
        return PartitionState(state.leader, state.leader_epoch, isr)
    for replica in replicas:
        if replica in state.isr and replica in live:
            isr = tuple(b for b in state.isr if b in live)
            return PartitionState(replica, state.leader_epoch + 1, isr)
    if unclean:
        for replica in replicas:
            if replica in live:
                return PartitionState(replica, state.leader_epoch + 1, (replica,))
    if state.leader == NO_LEADER:
        return None  # offline already; it stays so until an ISR member returns
    return PartitionState(NO_LEADER, state.leader_epoch + 1, tuple(state.isr))


def preferred_election(
    state: PartitionState, replicas: Sequence[int], live: Collection[int]
) -> tuple[str, PartitionState | None]:
    """``(ELECTED, new state)`` to give the partition back to its first replica,
    ``(NOT_NEEDED, None)`` when it leads already, or
    ``("PREFERRED_LEADER_NOT_AVAILABLE", None)`` when it is dead or out of the ISR.

    The new state keeps the ISR, less any dead broker, at leader epoch + 1.
    """
    if not replicas:
        return PreferredLeaderNotAvailableError.name, None
    preferred = replicas[0]
    if state.leader == preferred:
        return NOT_NEEDED, None
    if preferred not in live or preferred not in state.isr:
        return PreferredLeaderNotAvailableError.name, None
    isr = tuple(b for b in state.isr if b in live)
    return ELECTED, PartitionState(preferred, state.leader_epoch + 1, isr)


def unclean_election_enabled(config: Mapping[str, str], default: bool) -> bool:
    """The topic's ``unclean.leader.election.enable`` override, else the broker default."""
    value = config.get("unclean.leader.election.enable")
    if value is None:
        return default
    return str(value).strip().lower() == "true"


# -- the controller ----------------------------------------------------------------------------


class _Fenced(Exception):
    """This broker stopped being the controller during a pass: drop the rest of it."""


class _KeptChanging(Exception):
    """A partition's state changed under every conditional write: left for the next pass."""


class Controller:
    """Runs on every broker; acts only while its coordinator says it is the controller."""

    def __init__(
        self,
        coordinator: Coordinator,
        *,
        broker_id: int,
        unclean_leader_election: bool,
        leader_imbalance_check_interval_s: float | None = 30.0,
        liveness_probe_interval_s: float | None = None,
    ) -> None:
        """``leader_imbalance_check_interval_s`` None or 0 turns the background preferred
        leader election off (``elect_preferred_leaders`` still works);
        ``liveness_probe_interval_s`` None or 0 leaves dead brokers to their sessions."""
        self.coordinator = coordinator
        self.broker_id = broker_id
        self.unclean_leader_election = unclean_leader_election
        self.leader_imbalance_check_interval_s = leader_imbalance_check_interval_s
        self.offline_partitions: set[TopicPartition] = set()
        """Partitions without a leader, as of the last reconciliation that looked at them
        (for the offline-partitions metric; meaningful on the controller only)."""
        self._lock = asyncio.Lock()  # one pass at a time: reconcile, preferred election
        self._wake = asyncio.Event()
        self._full_pending = False
        self._topics_pending: set[str] = set()
        self._broker_epochs: dict[int, int] = {}  # registration epochs as last seen
        self._active_epoch: int | None = None  # the controller epoch last acted under
        self._refusing: dict[int, int] = {}  # broker id → registration epoch found dead
        self._probe = (
            LivenessProbe(broker_id, self._on_refusing, interval_s=liveness_probe_interval_s)
            if liveness_probe_interval_s
            else None
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._status = "new"
        self.elections: collections.Counter[str] = collections.Counter()  # kind -> count

    def __repr__(self) -> str:
        return f"Controller(broker {self.broker_id}, {self._status})"

    @property
    def is_active(self) -> bool:
        """True while this broker is the controller (its coordinator says so)."""
        return self._status == "started" and self.coordinator.is_controller

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen to the coordinator and stand for controller.

        Call it after the broker registered: a controller that does not see
        its own broker live would move leadership away from it.
        """
        if self._status != "new":
            raise RuntimeError(f"{self!r}: start() called twice")
        self._status = "started"
        coordinator = self.coordinator
        coordinator.add_controller_listener(self._on_controller_change)
        coordinator.add_broker_listener(self._on_brokers_change)
        coordinator.add_topic_listener(self._on_topic_change)
        coordinator.add_session_listener(self._on_session_change)
        self._tasks.append(asyncio.create_task(self._work(), name="controller"))
        if self._probe is not None:
            self._probe.start()
        interval = self.leader_imbalance_check_interval_s
        if interval:
            task = asyncio.create_task(self._balance(interval), name="controller-preferred")
            self._tasks.append(task)
        try:
            if await coordinator.elect_controller():
                self._request()
        except CoordinatorNotAvailableError as exc:
            # Still a candidate: the coordinator stands again once it is reachable.
            log.warning("broker %d: cannot stand for controller yet: %s", self.broker_id, exc)

    async def close(self) -> None:
        """Stop working (a pass in flight is cancelled: every write it made stands).

        The controllership itself ends with the coordinator's session.
        """
        if self._status == "closed":
            return
        self._status = "closed"
        if self._probe is not None:
            await self._probe.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()

    # -- triggers (on the loop, from the coordinator) -----------------------------------

    def _request(self, topic: str | None = None) -> None:
        if self._status != "started":
            return
        if topic is None:
            self._full_pending = True
        else:
            self._topics_pending.add(topic)
        self._wake.set()

    def _on_controller_change(self, controller_id: int | None) -> None:
        if self.coordinator.is_controller:
            self._request()
        elif self._active_epoch is not None:
            log.info(
                "broker %d: no longer the controller (now: %s)",
                self.broker_id,
                "none" if controller_id is None else f"broker {controller_id}",
            )
            self._active_epoch = None
            if self._probe is not None:
                self._probe.watch(())

    def _on_refusing(self, info: BrokerInfo) -> None:
        self.note_refusing(info)

    def note_refusing(self, info: BrokerInfo) -> None:
        """``info``'s registration refuses connections: dead until it registers again.

        The broker's own probe of the controller calls this too, so that the controller
        elected next moves a dead controller's partitions without probing it again.
        """
        self._refusing[info.broker_id] = info.epoch
        self._request()

    def _live(self, brokers: Iterable[BrokerInfo]) -> set[int]:
        """Registered brokers, less those refusing connections in this registration."""
        registered = {b.broker_id: b.epoch for b in brokers}
        self._refusing = {
            i: e for i, e in self._refusing.items() if registered.get(i) == e
        }  # a new registration (or none) clears the verdict
        return {i for i, e in registered.items() if self._refusing.get(i) != e}

    def _on_brokers_change(self, broker_ids: tuple[int, ...]) -> None:
        if self.coordinator.is_controller:
            self._request()

    def _on_topic_change(self, topic: str) -> None:
        if self.coordinator.is_controller:
            self._request(topic)

    def _on_session_change(self, state: SessionState) -> None:
        if state is SessionState.CONNECTED and self.coordinator.is_controller:
            self._request()

    async def _work(self) -> None:
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            full, topics = self._full_pending, self._topics_pending
            self._full_pending, self._topics_pending = False, set()
            if not self.coordinator.is_controller:
                continue
            try:
                await self.reconcile(None if full else topics)
                failures = 0
            except (CoordinatorNotAvailableError, StorageError) as exc:
                delay = _BACKOFF_S[min(failures, len(_BACKOFF_S) - 1)]
                failures += 1
                log.warning("controller: reconciliation failed, again in %.1f s: %s", delay, exc)
                self._full_pending = self._full_pending or full
                self._topics_pending |= topics
                await asyncio.sleep(delay)
                self._wake.set()
            except Exception:
                log.exception("controller: reconciliation failed")

    async def _balance(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            if not self.coordinator.is_controller:
                continue
            try:
                await self._elect_preferred(None, automatic=True)
            except (CoordinatorNotAvailableError, StorageError, NotControllerError) as exc:
                log.warning("controller: preferred leader election skipped: %s", exc)
            except Exception:
                log.exception("controller: preferred leader election failed")

    # -- reconciliation -------------------------------------------------------------------

    async def reconcile(
        self, topics: Iterable[str] | None = None
    ) -> dict[TopicPartition, PartitionState]:
        """Bring every partition (of ``topics``, default all) in line with the live brokers.

        Returns the states written. Does nothing (returns ``{}``) unless this
        broker is the controller, or if no broker is live (nothing could lead,
        and this broker's own registration is missing). Raises
        ``CoordinatorNotAvailableError`` / ``StorageError`` when the
        coordinator fails; a stale controller epoch ends the pass quietly.
        """
        async with self._lock:
            epoch = self.coordinator.controller_epoch
            if self._status != "started" or not self.coordinator.is_controller or epoch is None:
                return {}
            if self._active_epoch != epoch:
                log.info("broker %d: acting as controller (epoch %d)", self.broker_id, epoch)
                self._active_epoch = epoch
                self._broker_epochs = {}  # what a previous term saw proves nothing now
                topics = None
            brokers = await self.coordinator.live_brokers()
            if self._probe is not None:
                self._probe.watch(brokers)
            live = self._live(brokers)
            if not live:
                log.warning("controller: no live broker (not even this one): nothing to do")
                return {}
            bounced = {
                b.broker_id
                for b in brokers
                if self._broker_epochs.get(b.broker_id, b.epoch) != b.epoch
            }
            if bounced:
                topics = None
            assignments = await self._assignments(topics)
            written: dict[TopicPartition, PartitionState] = {}
            offline: set[TopicPartition] = set()
            try:
                if bounced:
                    log.info(
                        "controller: brokers %s registered again since last seen: "
                        "moving their leadership and ISR places away first",
                        sorted(bounced),
                    )
                    why = f"brokers {sorted(bounced)} registered again"
                    written |= await self._pass(assignments, live - bounced, epoch, why, offline)
                    offline.clear()
                why = f"live brokers {sorted(live)}"
                written |= await self._pass(assignments, live, epoch, why, offline)
            except _Fenced:
                log.info("controller: epoch %d is over; this pass stops", epoch)
                return written
            self._broker_epochs = {b.broker_id: b.epoch for b in brokers}
            if topics is None:
                self.offline_partitions = offline
            else:
                looked_at = set(topics)
                self.offline_partitions = {
                    tp for tp in self.offline_partitions if tp[0] not in looked_at
                } | offline
            return written

    async def _assignments(
        self, topics: Iterable[str] | None
    ) -> dict[str, tuple[dict[int, tuple[int, ...]], bool]]:
        """topic → (replicas by partition, unclean election enabled)."""
        if topics is None:
            found = await self.coordinator.topics()
        else:
            found = {}
            for name in sorted(set(topics)):
                assignment = await self.coordinator.topic(name)
                if assignment is not None:
                    found[name] = assignment
        default = self.unclean_leader_election
        return {
            name: (a.replicas, unclean_election_enabled(a.config, default))
            for name, a in found.items()
        }

    async def _pass(
        self,
        assignments: Mapping[str, tuple[dict[int, tuple[int, ...]], bool]],
        live: set[int],
        epoch: int,
        why: str,
        offline: set[TopicPartition],
    ) -> dict[TopicPartition, PartitionState]:
        """Decide and write every partition of ``assignments``; return what it wrote, and
        add to ``offline`` the partitions left without a leader."""
        jobs = [
            (topic, partition, replicas, unclean)
            for topic, (by_partition, unclean) in assignments.items()
            for partition, replicas in sorted(by_partition.items())
        ]

        def decision(replicas: tuple[int, ...], unclean: bool) -> Callable[[PartitionState], Any]:
            return lambda state: decide(state, replicas, live, unclean)

        async def reconcile_one(
            topic: str, partition: int, replicas: tuple[int, ...], unclean: bool
        ) -> tuple[PartitionState, bool] | None:
            choose = decision(replicas, unclean)
            try:
                return await self._update(topic, partition, choose, epoch, why=why)
            except _KeptChanging:
                self._request(topic)  # another go soon
                return None

        results = await _bounded(jobs, lambda job: reconcile_one(*job))
        written = {}
        for (topic, partition, _, _), result in zip(jobs, results, strict=True):
            if result is None:
                continue
            state, changed = result
            tp = (topic, partition)
            if state.leader == NO_LEADER:
                offline.add(tp)
            if changed:
                written[tp] = state
        return written

    async def _update(
        self,
        topic: str,
        partition: int,
        choose: Callable[[PartitionState], PartitionState | None],
        epoch: int,
        *,
        why: str,
    ) -> tuple[PartitionState, bool] | None:
        """Read, decide, write conditionally; again on a conflict.

        Returns (the state now, whether this wrote it); None if the partition
        is gone. Raises ``_Fenced`` once this broker is no longer the
        controller of ``epoch`` (never ``StaleControllerEpochError``), and
        ``_KeptChanging`` after ``RETRIES`` conflicts.
        """
        for _ in range(RETRIES):
            try:
                found = await self.coordinator.partition_state_with_version(topic, partition)
            except StorageError as exc:
                # One unreadable state (written by hand?) must not stall every other
                # partition's election: left alone until someone writes a valid one.
                log.error(
                    "controller: %s-%d: unreadable state, left alone: %s", topic, partition, exc
                )
                return None
            if found is None:
                return None
            state, version = found
            new = choose(state)
            if new is None:
                return state, False
            if self.coordinator.controller_epoch != epoch:
                raise _Fenced
            try:
                await self.coordinator.update_partition_state(
                    topic, partition, new, version, controller_epoch=epoch
                )
            except PartitionStateConflictError:
                continue
            except StaleControllerEpochError as exc:
                raise _Fenced from exc
            except UnknownTopicOrPartitionError:
                return None
            _log_change(topic, partition, state, new, why)
            if new.leader != state.leader and new.leader != NO_LEADER:
                self.elections[_election_kind(state, new, why)] += 1
            return new, True
        log.warning(
            "controller: %s-%d: its state kept changing under %d attempts; left for the next pass",
            topic,
            partition,
            RETRIES,
        )
        raise _KeptChanging(f"{topic}-{partition}")

    # -- preferred leaders ----------------------------------------------------------------

    async def elect_preferred_leaders(
        self, topics: Iterable[str] | None = None
    ) -> dict[TopicPartition, str]:
        """Give each partition (of ``topics``, default all) back to its preferred leader.

        Per partition: ``"elected"``, ``"not needed"`` (it leads already), or
        an error name: ``PREFERRED_LEADER_NOT_AVAILABLE`` (dead or not in the
        ISR), ``UNKNOWN_TOPIC_OR_PARTITION`` (a topic that does not exist is
        reported as partition -1), ``STALE_CONTROLLER_EPOCH`` (this broker
        stopped being controller meanwhile), ``FENCED_LEADER_EPOCH`` (the
        state kept changing). Raises ``NotControllerError`` unless this broker
        is the controller.
        """
        return await self._elect_preferred(topics, automatic=False)

    async def _elect_preferred(
        self, topics: Iterable[str] | None, *, automatic: bool
    ) -> dict[TopicPartition, str]:
        async with self._lock:
            epoch = self.coordinator.controller_epoch
            if self._status != "started" or not self.coordinator.is_controller or epoch is None:
                raise NotControllerError(f"broker {self.broker_id} is not the controller")
            wanted = None if topics is None else sorted(set(topics))
            assignments = await self._assignments(wanted)
            outcome: dict[TopicPartition, str] = {}
            for name in wanted or ():
                if name not in assignments:
                    outcome[(name, -1)] = UnknownTopicOrPartitionError.name
            live = self._live(await self.coordinator.live_brokers())
            jobs = [
                (topic, partition, replicas)
                for topic, (by_partition, _) in assignments.items()
                for partition, replicas in sorted(by_partition.items())
            ]
            why = "automatic preferred leader election" if automatic else "preferred election"
            results = await _bounded(
                jobs, lambda job: self._prefer(*job, live=live, epoch=epoch, why=why)
            )
            for (topic, partition, _), result in zip(jobs, results, strict=True):
                outcome[(topic, partition)] = result
            return outcome

    async def _prefer(
        self,
        topic: str,
        partition: int,
        replicas: tuple[int, ...],
        *,
        live: set[int],
        epoch: int,
        why: str,
    ) -> str:
        verdict: list[str] = []

        def choose(state: PartitionState) -> PartitionState | None:
            verdict[:] = [(result := preferred_election(state, replicas, live))[0]]
            return result[1]

        try:
            found = await self._update(topic, partition, choose, epoch, why=why)
        except _Fenced:
            return StaleControllerEpochError.name
        except _KeptChanging:
            return FencedLeaderEpochError.name
        if found is None:
            return UnknownTopicOrPartitionError.name
        return ELECTED if found[1] else verdict[0]


async def _bounded(items: Sequence[_I], work: Callable[[_I], Awaitable[_T]]) -> list[_T]:
    """``work(item)`` for each item, at most ``_CONCURRENCY`` at a time; results in order.

    The first exception cancels the rest and is raised. A coroutine is only
    made once its turn comes, so none is left un-awaited by a cancellation.
    """
    gate = asyncio.Semaphore(_CONCURRENCY)

    async def run(item: _I) -> _T:
        async with gate:
            return await work(item)

    tasks = [asyncio.ensure_future(run(item)) for item in items]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _election_kind(old: PartitionState, new: PartitionState, why: str) -> str:
    if "preferred" in why:
        return "preferred"
    return "clean" if set(new.isr) & set(old.isr) else "unclean"


def _log_change(
    topic: str, partition: int, old: PartitionState, new: PartitionState, why: str
) -> None:
    if new.leader == NO_LEADER:
        log.warning(
            "controller: %s-%d is offline: no in-sync replica of %s is live (leader epoch %d; "
            "it comes back when one returns)",
            topic,
            partition,
            list(new.isr),
            new.leader_epoch,
            extra={"topic": topic, "partition": partition},
        )
        return
    if old.leader != new.leader:
        log.info(
            "controller: %s-%d: leader %s -> %d at epoch %d, isr %s (%s)",
            topic,
            partition,
            "none" if old.leader == NO_LEADER else old.leader,
            new.leader,
            new.leader_epoch,
            list(new.isr),
            why,
            extra={"topic": topic, "partition": partition},
        )
        if not set(new.isr) & set(old.isr):
            log.warning(
                "controller: %s-%d: unclean leader election: broker %d was not in sync; "
                "records acknowledged by %s may be lost",
                topic,
                partition,
                new.leader,
                list(old.isr),
                extra={"topic": topic, "partition": partition},
            )
        return
    log.info(
        "controller: %s-%d: isr %s -> %s (%s)",
        topic,
        partition,
        list(old.isr),
        list(new.isr),
        why,
        extra={"topic": topic, "partition": partition},
    )
