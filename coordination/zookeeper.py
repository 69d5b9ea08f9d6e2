"""The cluster coordinator: metadata in the znodes of DESIGN.md §4, through kazoo.

    coordinator = ZooKeeperCoordinator("zk1:2181,zk2:2181/logserver", broker_id=1)

It implements ``Coordinator`` and owns the asyncio side: lifecycle, session
states, the controller election, listeners. The znode layout, the JSON values
and the blocking topic work are in ``zk_paths``; the crossing between kazoo's
threads and the event loop is ``kazoo_bridge``.

For the controller and the replication work (all in the protocol too):

    elect_controller()            stand for controller; True if this broker now is it
    is_controller, controller_epoch
    add_controller_listener(cb)   cb(controller_id or None) when /controller changes, and when
                                  this broker wins an election
    add_broker_listener(cb)       cb(broker_ids) when /brokers/ids changes
    add_partition_listener(cb)    cb(topic, partition) when a state znode is created or changes
    partition_state_with_version(topic, p)             (state, znode version)
    update_partition_state(topic, p, state, version)   conditional set; returns the new version
    session_state, add_session_listener(cb)            cb(SessionState)

For the group coordinator: ``commit_offsets`` (one transaction, fenced by
``fence_for``'s version of the coordinator partition's state),
``fetch_offsets``, ``groups``, ``delete_group_offsets``; the znode work is
``zk_offsets``.

**Sessions.** SUSPENDED: the connection dropped, the session (with this
broker's ephemeral znodes) may still live; kazoo reconnects. LOST: the session
expired, the registration and (if this broker was controller) /controller are
gone, and other brokers may already have acted on that. Listeners hear LOST at
once: the broker must stop acting as controller and as partition leader until
it has read the state again. Once kazoo has a new session the coordinator
registers the broker again, stands for controller again if it did, and only
then tells the listeners CONNECTED.

**Controller.** The first broker to create the ephemeral /controller wins; in
the same transaction it moves /controller_epoch up by one, conditionally on
the version it read, so two winners can never share an epoch. A candidate
watches /controller and stands again when it disappears. While this broker is
controller, its state updates are fenced: the transaction also checks that
/controller_epoch is still the one it won (``StaleControllerEpochError``). An
update that names the epoch this broker won with, after it lost the
controllership, is refused at once, so a controller cut off in the middle of
its work cannot finish it.

**Deletion.** A marker /admin/delete_topics/<topic>, then one transaction
removes the topic's znodes, its config and the marker. In this version the
caller does both; a marker left by a caller that died in between is finished
by the next broker to become controller.

**Errors.** The shared ones from ``client.errors``. ZooKeeper out of reach (no
answer within ``connection_timeout_ms``, a connection dropped or a session
expired mid-request) is ``ZooKeeperUnavailableError``, a retriable
``CoordinatorNotAvailableError``; a corrupt znode is a ``StorageError`` naming
it. Blocking kazoo calls run in worker threads; a cancelled caller does not
stop one, and ``close`` waits for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from functools import partial
from typing import Any, TypeVar

from kazoo.exceptions import BadVersionError, NodeExistsError, NoNodeError
from kazoo.protocol.states import ZnodeStat
from kazoo.recipe.watchers import ChildrenWatch, DataWatch

from client.errors import (
    InvalidConfigurationError,
    InvalidTopicError,
    StaleControllerEpochError,
    StorageError,
    UnknownTopicOrPartitionError,
)
from client.topics import validate_topic_name
from coordination import zk_paths
from coordination.interface import (
    BrokerListener,
    ControllerListener,
    PartitionListener,
    PartitionStateConflictError,
    SessionListener,
    TopicListener,
    config_overrides,
)
from coordination.kazoo_bridge import KazooBridge, TopicWatcher, ZooKeeperUnavailableError
from coordination.model import (
    BrokerInfo,
    CommittedOffset,
    OffsetFence,
    PartitionState,
    SessionState,
    TopicAssignment,
    VersionedPartitionState,
)
from coordination.offsets import check_fence, check_offsets, is_partition_key, validate_group_id
from coordination.zk_offsets import ZooKeeperOffsets
from coordination.zk_paths import (
    BASE_PATHS,
    BROKER_IDS,
    CONTROLLER,
    CONTROLLER_EPOCH,
    RETRIES,
    broker_path,
    decode_controller,
    decode_epoch,
    encode_broker,
    encode_controller,
    encode_epoch,
    failed_op,
)

__all__ = [
    "BrokerIdInUseError",
    "PartitionStateConflictError",
    "SessionState",
    "VersionedPartitionState",
    "ZooKeeperCoordinator",
    "ZooKeeperUnavailableError",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")

REGISTRATION_WAIT_FACTOR = 1.5
"""How long, in session timeouts, registering waits for another session's /brokers/ids/<id>.
ZooKeeper expires a session at the first tick boundary after its timeout, so up to one tick
(``tickTime``, at most half of any session timeout it grants) after it: waiting just the
timeout made a broker restarted at once after kill -9 sometimes give up a moment before
its previous run's registration went."""


class BrokerIdInUseError(InvalidConfigurationError, ValueError):
    """Another live session holds /brokers/ids/<id>: two brokers were given one broker.id.

    A ``LogServerError`` (INVALID_CONFIG), so ``logserver`` reports it in one line and
    exits 1 instead of printing a traceback.
    """


class ZooKeeperCoordinator:
    """``Coordinator`` over ZooKeeper for broker ``broker_id`` (see the module doc)."""

    mode: str = "zookeeper"

    def __init__(
        self,
        connect: str,
        *,
        broker_id: int,
        session_timeout_ms: int = 18_000,
        connection_timeout_ms: int | None = None,
    ) -> None:
        """``connection_timeout_ms`` (default: the session timeout) bounds connecting at
        ``start`` and how long one request waits for its answer."""
        self.connect = connect
        self.broker_id = broker_id
        self._bridge = KazooBridge(
            connect,
            session_timeout_ms=session_timeout_ms,
            request_timeout_ms=connection_timeout_ms or session_timeout_ms,
            name=f"broker{broker_id}",
        )
        self._status = "new"
        self._session_state = SessionState.CONNECTING
        self._session_lost = False
        self.session_expirations = 0  # sessions lost, for the metrics
        self._registration: BrokerInfo | None = None
        self._candidate = False
        self._is_controller = False
        self._controller_epoch: int | None = None
        self._controller_epoch_version = -1
        self._last_won_epoch: int | None = None  # kept after losing: fences late writes
        self._election_lock = asyncio.Lock()
        self._topic_listeners: list[TopicListener] = []
        self._partition_listeners: list[PartitionListener] = []
        self._broker_listeners: list[BrokerListener] = []
        self._controller_listeners: list[ControllerListener] = []
        self._session_listeners: list[SessionListener] = []
        self._tasks: set[asyncio.Task[Any]] = set()
        self._topic_watcher = TopicWatcher(
            self._bridge.client,
            partial(self._bridge.call_soon, self._notify_topic),
            partial(self._bridge.call_soon, self._notify_partition),
            request_timeout_s=self._bridge.request_timeout_s,
        )
        self._brokers_watched = False
        self._offsets = ZooKeeperOffsets(self._bridge)

    def __repr__(self) -> str:
        return f"ZooKeeperCoordinator({self.connect!r}, broker {self.broker_id}, {self._status})"

    # -- state beyond the protocol ------------------------------------------------------

    @property
    def session_state(self) -> SessionState:
        return self._session_state

    @property
    def session_id(self) -> int | None:
        """The ZooKeeper session's id while connected (it owns the ephemeral znodes)."""
        return self._bridge.session_id

    @property
    def is_controller(self) -> bool:
        return self._is_controller

    @property
    def controller_epoch(self) -> int | None:
        """The epoch this broker won the controller election with; None unless controller."""
        return self._controller_epoch if self._is_controller else None

    def add_session_listener(self, callback: SessionListener) -> None:
        """``callback(state)`` on the loop at every session state change (see the module doc)."""
        self._session_listeners.append(callback)

    def add_broker_listener(self, callback: BrokerListener) -> None:
        """``callback(broker_ids)`` on the loop when brokers register or go away."""
        self._broker_listeners.append(callback)

    def add_controller_listener(self, callback: ControllerListener) -> None:
        """``callback(controller_id)`` on the loop when /controller changes (None: vacant),
        and with this broker's id as soon as it won an election (before the watch says so)."""
        self._controller_listeners.append(callback)

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, create the base znodes and the chroot if missing, install the watches.

        Raises ``ZooKeeperUnavailableError`` naming the connect string.
        """
        if self._status != "new":
            raise RuntimeError(f"{self!r}: start() called twice")
        self._status = "starting"
        try:
            await self._bridge.start(self._on_session_state)
            await self._bridge.run(self._install, "create the base znodes and watches")
        except BaseException:
            self._status = "closed"
            await self._bridge.close()
            raise
        self._status = "started"
        self._session_state = SessionState.CONNECTED
        log.info("zookeeper coordinator: broker %d connected to %s", self.broker_id, self.connect)

    def _install(self) -> None:
        for path in BASE_PATHS:
            self._bridge.ensure_path(path)
        self._topic_watcher.start()
        ChildrenWatch(self._bridge.client, BROKER_IDS, self._brokers_changed)
        DataWatch(self._bridge.client, CONTROLLER, self._controller_changed)

    async def close(self) -> None:
        """Wait for calls in flight, then end the session: the registration goes with it."""
        if self._status == "closed":
            return
        self._status = "closed"
        self._topic_watcher.stop()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._bridge.close()
        self._registration = None
        self._candidate = self._is_controller = False
        self._session_state = SessionState.CLOSED

    # -- brokers ------------------------------------------------------------------------

    async def register_broker(self, info: BrokerInfo) -> None:
        """Create the ephemeral /brokers/ids/<id>; registering again updates the endpoint.

        If another session holds the znode (this broker's previous run, not yet
        expired, or another broker with the same id) it waits up to 1.5 times the
        session timeout for it to go (``REGISTRATION_WAIT_FACTOR``), then raises
        ``BrokerIdInUseError``. Raises ``ValueError`` for an id other than this
        coordinator's.
        """
        self._check_started()
        if info.broker_id != self.broker_id:
            raise ValueError(
                f"this coordinator serves broker {self.broker_id}: "
                f"cannot register broker {info.broker_id}"
            )
        await self._run(partial(self._register, info), f"register broker {info.broker_id}")
        self._registration = info
        log.info("broker %d registered at %s:%d", info.broker_id, info.host, info.port)

    def _register(self, info: BrokerInfo) -> None:
        path, value = broker_path(info.broker_id), encode_broker(info)
        wait_s = self._bridge.session_timeout_s * REGISTRATION_WAIT_FACTOR
        deadline = time.monotonic() + wait_s
        holder: str | None = None  # host:port of the other registration, once seen
        while True:
            try:
                self._bridge.create(path, value, ephemeral=True)
                return
            except NodeExistsError:
                pass
            gone = threading.Event()
            stat = self._bridge.exists(path, watch=partial(_set_event, gone))
            if stat is None:
                continue
            if stat.ephemeralOwner == self._bridge.session_id:
                self._bridge.set(path, value)
                return
            if holder is None:
                holder = self._registered_address(path, info.broker_id)
                log.warning(
                    "%s is held by the broker at %s (ZooKeeper session 0x%x); waiting up to "
                    "%.0f s for it to expire (this broker's previous run?)",
                    self._bridge.full_path(path),
                    holder,
                    stat.ephemeralOwner,
                    wait_s,
                )
            while not gone.wait(0.1):
                if time.monotonic() >= deadline or self._bridge.closing.is_set():
                    raise BrokerIdInUseError(
                        f"broker.id {info.broker_id} is taken: {self._bridge.full_path(path)} "
                        f"is held by the broker at {holder}, in another live ZooKeeper session "
                        f"(0x{stat.ephemeralOwner:x}), so another broker runs with this id "
                        f"(waited {wait_s:.0f} s for it to go); give each broker its own "
                        "broker.id"
                    )

    def _registered_address(self, path: str, broker_id: int) -> str:
        """``host:port`` of the registration at ``path``, for messages (best effort)."""
        try:
            raw, _ = self._bridge.get(path)
            found = zk_paths.decode_broker(self._bridge.full_path(path), raw, broker_id)
        except (NoNodeError, StorageError):
            return "an unknown address"
        return f"{found.host}:{found.port}"

    async def live_brokers(self) -> list[BrokerInfo]:
        self._check_started()
        return await self._run(self._live_brokers, "list the live brokers")

    def _live_brokers(self) -> list[BrokerInfo]:
        return zk_paths.live_brokers(self._bridge)

    def _brokers_changed(self, children: list[str], event: object = None) -> bool | None:
        # kazoo's thread; the first call comes from the constructor, in _install
        if self._bridge.closing.is_set():
            return False
        if self._brokers_watched:
            ids = tuple(sorted(int(name) for name in children if name.isdigit()))
            self._bridge.call_soon(self._notify, self._broker_listeners, ids, "broker")
        self._brokers_watched = True
        return None

    # -- controller ---------------------------------------------------------------------

    async def controller_id(self) -> int | None:
        self._check_started()
        return await self._run(self._controller_id, "read /controller")

    def _controller_id(self) -> int | None:
        try:
            raw, _ = self._bridge.get(CONTROLLER)
        except NoNodeError:
            return None
        return decode_controller(self._bridge.full_path(CONTROLLER), raw)

    async def depose_controller(self, broker_id: int) -> bool:
        self._check_started()
        return await self._run(
            partial(self._depose_controller, broker_id), f"depose controller {broker_id}"
        )

    def _depose_controller(self, broker_id: int) -> bool:
        try:
            raw, stat = self._bridge.get(CONTROLLER)
        except NoNodeError:
            return False
        holder = decode_controller(self._bridge.full_path(CONTROLLER), raw)
        if holder != broker_id or stat.ephemeralOwner == self._bridge.session_id:
            return False
        try:
            self._bridge.delete(CONTROLLER, version=stat.version)
        except (NoNodeError, BadVersionError):
            return False  # it changed hands meanwhile
        log.warning(
            "broker %d: deposed controller %d (its session 0x%x was still open): "
            "the live brokers stand again",
            self.broker_id,
            broker_id,
            stat.ephemeralOwner,
        )
        return True

    async def elect_controller(self) -> bool:
        """Stand for controller: True if this broker is it now.

        The broker stays a candidate: whenever /controller disappears (its
        holder's session ended) or this broker's session comes back, it stands
        again; controller listeners hear who won.
        """
        self._check_started()
        self._candidate = True
        return await self._campaign()

    async def _campaign(self) -> bool:
        async with self._election_lock:
            won = await self._run(self._try_elect, "controller election")
            was_controller = self._is_controller
            self._is_controller = won is not None
            if won is None:
                self._controller_epoch = None
                if was_controller:
                    log.warning("broker %d is no longer the controller", self.broker_id)
                return False
            self._controller_epoch, self._controller_epoch_version = won
            self._last_won_epoch = self._controller_epoch
            if not was_controller:
                log.info(
                    "broker %d is the controller (controller epoch %d)",
                    self.broker_id,
                    self._controller_epoch,
                )
                finish = partial(zk_paths.finish_pending_deletions, self._bridge)
                self._spawn(self._run(finish, "finish pending deletions"), "topic-deletions")
                self._notify(self._controller_listeners, self.broker_id, "controller")
            return True

    def _try_elect(self) -> tuple[int, int] | None:
        """(epoch, /controller_epoch's version) if this session holds /controller, else None."""
        epoch_path = self._bridge.full_path(CONTROLLER_EPOCH)
        for _ in range(RETRIES):
            try:
                raw, stat = self._bridge.get(CONTROLLER_EPOCH)
            except NoNodeError:
                with contextlib.suppress(NodeExistsError):
                    self._bridge.create(CONTROLLER_EPOCH, encode_epoch(0))
                continue
            epoch = decode_epoch(epoch_path, raw)
            transaction = self._bridge.transaction()
            transaction.create(CONTROLLER, encode_controller(self.broker_id), ephemeral=True)
            transaction.set_data(CONTROLLER_EPOCH, encode_epoch(epoch + 1), version=stat.version)
            results = self._bridge.commit(transaction)
            failure = failed_op(results)
            if failure is None:
                return epoch + 1, results[1].version
            if isinstance(failure[1], NodeExistsError):
                holder = self._bridge.exists(CONTROLLER)
                if holder is not None and holder.ephemeralOwner == self._bridge.session_id:
                    return epoch, stat.version  # won before, in this session
                return None
            if not isinstance(failure[1], BadVersionError):
                raise failure[1]
        raise StorageError(f"controller election: {epoch_path} kept changing under it")

    def _controller_changed(
        self, data: bytes | None, stat: ZnodeStat | None, event: object = None
    ) -> bool | None:
        # kazoo's thread
        if self._bridge.closing.is_set():
            return False
        controller = None
        if data is not None:
            try:
                controller = decode_controller(self._bridge.full_path(CONTROLLER), data)
            except StorageError as exc:
                log.error("%s", exc)
        owner = stat.ephemeralOwner if stat is not None else None
        self._bridge.call_soon(self._on_controller_changed, controller, owner)
        return None

    def _on_controller_changed(self, controller: int | None, owner: int | None) -> None:
        if self._status != "started":
            return
        mine = owner is not None and owner == self._bridge.session_id
        if self._candidate and (controller is None or (self._is_controller and not mine)):
            self._spawn(self._campaign(), "controller-election")
        self._notify(self._controller_listeners, controller, "controller")

    # -- topics (the znode work is in zk_paths) ----------------------------------------

    async def create_topic(
        self,
        name: str,
        partitions: int,
        replication_factor: int,
        config: Mapping[str, str] | None = None,
    ) -> TopicAssignment:
        """Write the config, the assignment and every partition state in one transaction."""
        self._check_started()
        validate_topic_name(name)
        overrides = config_overrides(name, config)
        create = partial(
            zk_paths.create_topic, self._bridge, name, partitions, replication_factor, overrides
        )
        created = await self._run(create, f"create topic {name!r}")
        log.info("created topic %r: %d partitions, config %s", name, partitions, overrides)
        return created

    async def delete_topic(self, name: str) -> None:
        """Mark the topic for deletion, then remove its znodes, config and the mark at once."""
        self._check_started()
        if not _is_topic_name(name):
            raise UnknownTopicOrPartitionError(f"topic {name!r} does not exist")
        await self._run(partial(zk_paths.delete_topic, self._bridge, name), f"delete {name!r}")
        log.info("deleted topic %r", name)

    async def topics(self) -> dict[str, TopicAssignment]:
        self._check_started()
        return await self._run(partial(zk_paths.read_topics, self._bridge), "list the topics")

    async def topic(self, name: str) -> TopicAssignment | None:
        self._check_started()
        if not _is_topic_name(name):
            return None
        return await self._run(partial(zk_paths.read_topic, self._bridge, name), f"read {name!r}")

    async def alter_topic_config(
        self, name: str, set_: Mapping[str, str], delete: Iterable[str] = ()
    ) -> dict[str, str]:
        """A conditional set of /config/topics/<topic>, retried if another change came first."""
        self._check_started()
        if not _is_topic_name(name):
            raise UnknownTopicOrPartitionError(f"topic {name!r} does not exist")
        alter = partial(zk_paths.alter_config, self._bridge, name, set_, tuple(delete))
        return await self._run(alter, f"alter config of topic {name!r}")

    def add_topic_listener(self, callback: TopicListener) -> None:
        """See ``Coordinator``: fed by watches, so it also hears other brokers' changes.

        Changes in quick succession may be heard once (a watch re-reads the
        latest state); the callback reads the topic again in any case.
        """
        self._topic_listeners.append(callback)

    def _notify_topic(self, name: str) -> None:
        self._notify(self._topic_listeners, name, "topic")

    def add_partition_listener(self, callback: PartitionListener) -> None:
        """See ``Coordinator``: a watch on every state znode, so it hears every writer.

        Partitions of a topic created after ``start`` are announced once they
        exist; those present at ``start`` only when they change.
        """
        self._partition_listeners.append(callback)

    def _notify_partition(self, topic: str, partition: int) -> None:
        if self._status != "started":
            return
        for callback in list(self._partition_listeners):
            try:
                callback(topic, partition)
            except Exception:
                log.exception("partition listener %r failed for %s-%d", callback, topic, partition)

    # -- partition state ----------------------------------------------------------------

    async def partition_state(self, topic: str, partition: int) -> PartitionState | None:
        found = await self.partition_state_with_version(topic, partition)
        return None if found is None else found.state

    async def partition_state_with_version(
        self, topic: str, partition: int
    ) -> VersionedPartitionState | None:
        """The state znode with its version, the base of ``update_partition_state``."""
        self._check_started()
        if not _is_topic_name(topic) or type(partition) is not int or partition < 0:
            return None
        read = partial(zk_paths.read_state, self._bridge, topic, partition)
        return await self._run(read, f"read {topic}-{partition} state")

    async def update_partition_state(
        self,
        topic: str,
        partition: int,
        new_state: PartitionState,
        expected_version: int,
        *,
        controller_epoch: int | None = None,
    ) -> int:
        """Set the state znode if it is still at ``expected_version``; return its new version.

        ``controller_epoch`` is stored with the state; by default this broker's
        epoch if it is the controller, else the one already stored. While this
        broker is controller the write is fenced by its epoch; a write naming
        the epoch this broker won with, once it is no longer the controller, is
        refused without trying. Raises ``PartitionStateConflictError`` (the
        znode moved on: read it again), ``StaleControllerEpochError`` (another
        controller has been elected since), ``UnknownTopicOrPartitionError``,
        ``InvalidRequestError`` (a malformed state).
        """
        self._check_started()
        zk_paths.check_state(topic, partition, new_state)
        fence = None
        if self._is_controller and self._controller_epoch is not None:
            fence = (self._controller_epoch, self._controller_epoch_version)
        elif controller_epoch is not None and controller_epoch == self._last_won_epoch:
            raise StaleControllerEpochError(
                f"broker {self.broker_id} is no longer the controller (it was, with controller "
                f"epoch {controller_epoch}); {topic}-{partition} state not updated"
            )
        update = partial(
            zk_paths.update_state,
            self._bridge,
            topic,
            partition,
            new_state,
            expected_version,
            controller_epoch=controller_epoch,
            fence=fence,
        )
        return await self._run(update, f"update {topic}-{partition} state")

    # -- committed offsets (the znode work is in zk_offsets) ----------------------------

    async def commit_offsets(
        self,
        group: str,
        offsets: Mapping[tuple[str, int], CommittedOffset],
        *,
        fence: OffsetFence | None = None,
    ) -> None:
        """See ``Coordinator``: one transaction, which also checks ``fence`` when given."""
        self._check_started()
        validate_group_id(group)
        checked = check_offsets(group, offsets)
        check_fence(group, fence)
        commit = partial(self._offsets.commit, group, checked, fence)
        await self._run(commit, f"commit {len(checked)} offsets of group {group!r}")

    async def fetch_offsets(
        self, group: str, partitions: Iterable[tuple[str, int]] | None = None
    ) -> dict[tuple[str, int], CommittedOffset]:
        self._check_started()
        validate_group_id(group)
        keys = None if partitions is None else list(partitions)
        fetch = partial(self._offsets.fetch, group, keys)
        return await self._run(fetch, f"fetch the offsets of group {group!r}")

    async def groups(self) -> list[str]:
        self._check_started()
        return await self._run(self._offsets.groups, "list the consumer groups")

    async def delete_group_offsets(self, group: str) -> bool:
        self._check_started()
        validate_group_id(group)
        delete = partial(self._offsets.delete, group)
        deleted = await self._run(delete, f"delete the offsets of group {group!r}")
        if deleted:
            log.info("deleted the committed offsets of group %r", group)
        return deleted

    async def fence_for(self, topic: str, partition: int) -> OffsetFence | None:
        """The version of ``topic``-``partition``'s state znode now; None if it is missing."""
        self._check_started()
        if not is_partition_key((topic, partition)):
            return None
        read = partial(self._offsets.fence_for, topic, partition)
        return await self._run(read, f"read the version of {topic}-{partition} state")

    # -- sessions -----------------------------------------------------------------------

    def _on_session_state(self, state: SessionState) -> None:
        if self._status != "started" or state is self._session_state:
            return
        self._session_state = state
        if state is SessionState.LOST:
            self._session_lost = True
            self.session_expirations += 1
            if self._is_controller:
                log.warning("broker %d is no longer the controller", self.broker_id)
            self._is_controller = False
            self._controller_epoch = None
            log.warning(
                "zookeeper session expired: broker %d is unregistered until a new session "
                "is established; it must not act as controller or leader until then",
                self.broker_id,
            )
        elif state is SessionState.CONNECTED and self._session_lost:
            self._session_lost = False
            self._spawn(self._recover_session(), "zookeeper-session-recovery")
            return  # listeners hear CONNECTED once registered again
        elif state is SessionState.CONNECTED:
            log.info("zookeeper connection of broker %d is back", self.broker_id)
            if self._candidate and not self._is_controller:
                self._spawn(self._campaign(), "controller-election")
        else:
            log.warning(
                "zookeeper connection of broker %d lost; reconnecting (the session may live on)",
                self.broker_id,
            )
        self._notify(self._session_listeners, state, "session")

    async def _recover_session(self) -> None:
        if self._registration is not None:
            try:
                await self._run(partial(self._register, self._registration), "register again")
                log.info("broker %d registered again in a new session", self.broker_id)
            except (StorageError, ZooKeeperUnavailableError, BrokerIdInUseError) as exc:
                log.error("broker %d could not register again: %s", self.broker_id, exc)
        if self._candidate:
            try:
                await self._campaign()
            except (StorageError, ZooKeeperUnavailableError) as exc:
                log.warning("broker %d could not stand for controller: %s", self.broker_id, exc)
        if self._session_state is SessionState.CONNECTED:
            self._notify(self._session_listeners, SessionState.CONNECTED, "session")

    # -- plumbing -----------------------------------------------------------------------

    async def _run(self, fn: Callable[[], _T], what: str) -> _T:
        return await self._bridge.run(fn, what)

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        if self._status != "started":
            coro.close()
            return
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or (exc := task.exception()) is None:
            return
        if isinstance(exc, ZooKeeperUnavailableError):
            log.warning("broker %d: %s failed: %s", self.broker_id, task.get_name(), exc)
        else:
            log.error("broker %d: %s failed", self.broker_id, task.get_name(), exc_info=exc)

    def _notify(self, listeners: list[Callable[[Any], None]], value: object, what: str) -> None:
        if self._status != "started":
            return
        for callback in list(listeners):
            try:
                callback(value)
            except Exception:
                log.exception("%s listener %r failed for %r", what, callback, value)

    def _check_started(self) -> None:
        if self._status != "started":
            raise RuntimeError(f"{self!r}: not started or already closed")


def _set_event(event: threading.Event, _watched: object) -> None:
    event.set()


def _is_topic_name(name: object) -> bool:
    try:
        validate_topic_name(name)  # type: ignore[arg-type]
    except InvalidTopicError:
        return False
    return True
