"""The coordinator contract the broker codes against, and the rules every coordinator shares.

Two implementations: ``EmbeddedCoordinator`` (standalone mode, one broker,
files in the data dir) and, with the cluster issue, a kazoo one over the
ZooKeeper layout of DESIGN.md §4. Each method names the znodes it stands for,
so the ZooKeeper one is a translation, not a redesign:

    register_broker / live_brokers   /brokers/ids/<id> (ephemeral)
    add_broker_listener              a watch on /brokers/ids
    controller_id, elect_controller  /controller (ephemeral election), /controller_epoch
    is_controller, controller_epoch
    add_controller_listener          a watch on /controller
    create_topic / topic / topics    /brokers/topics/<topic>, …/partitions/<p>/state,
                                     /config/topics/<topic>
    alter_topic_config               /config/topics/<topic>
    delete_topic                     /admin/delete_topics/<topic>
    partition_state                  /brokers/topics/<topic>/partitions/<p>/state
    partition_state_with_version,    the same, with its znode version, and a set
    update_partition_state           conditional on that version (fenced by controller epoch)
    add_partition_listener           a watch on every state znode
    session_state,                   the ZooKeeper session (standalone: always connected)
    add_session_listener
    commit_offsets, fetch_offsets,   /consumers/<group>/offsets/<topic>/<p>, the group encoded
    groups, delete_group_offsets     as one segment (``coordination.offsets``)
    fence_for                        the version of …/partitions/<p>/state, checked by a commit

Every method is a coroutine because the ZooKeeper one runs blocking kazoo
calls off the event loop. Listeners are plain callables invoked on the event
loop; they must not block (schedule a task for real work).

The shared rules below (``config_overrides``, ``altered_config``,
``check_partition_state``) and ``PartitionStateConflictError`` live here so both
coordinators refuse the same inputs with the same errors and messages. Replica
assignment, shared the same way, is ``coordination.assignment``
(``assign_replicas`` is re-exported here).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Protocol, runtime_checkable

from client.errors import (
    FencedLeaderEpochError,
    InvalidConfigurationError,
    InvalidRequestError,
)
from coordination.assignment import IncompleteRackInformationError, assign_replicas
from coordination.model import (
    BrokerInfo,
    CommittedOffset,
    OffsetFence,
    PartitionState,
    SessionState,
    TopicAssignment,
    VersionedPartitionState,
)

__all__ = [
    "BrokerListener",
    "ControllerListener",
    "Coordinator",
    "IncompleteRackInformationError",
    "PartitionListener",
    "PartitionStateConflictError",
    "SessionListener",
    "TopicListener",
    "altered_config",
    "assign_replicas",
    "check_partition_state",
    "config_overrides",
]

TopicListener = Callable[[str], None]
"""Called with a topic's name after it was created, deleted or had its config altered."""

PartitionListener = Callable[[str, int], None]
"""Called with (topic, partition) after that partition's state was created or changed."""

BrokerListener = Callable[[tuple[int, ...]], None]
"""Called with the live broker ids, sorted, after a broker registered or went away."""

ControllerListener = Callable[[int | None], None]
"""Called with the controller's broker id (None: vacant) after the controller changed."""

SessionListener = Callable[[SessionState], None]
"""Called with the new state after the coordinator's session changed."""


class PartitionStateConflictError(FencedLeaderEpochError):
    """The state is not at the expected version: someone changed it since it was read.

    Read it again (``partition_state_with_version``) and decide again. Should it
    reach a client it reads FENCED_LEADER_EPOCH (retriable, refresh metadata).
    """

    def __init__(self, message: str, *, expected_version: int, actual_version: int | None):
        super().__init__(message)
        self.expected_version = expected_version
        self.actual_version = actual_version


@runtime_checkable
class Coordinator(Protocol):
    """Cluster metadata: brokers, the controller, topics, partition state, and the offsets
    consumer groups committed.

    Errors are the shared ones from ``client.errors`` so the broker can put
    their codes straight into a response: ``InvalidTopicError``,
    ``TopicAlreadyExistsError``, ``InvalidPartitionsError``,
    ``InvalidReplicationFactorError``, ``InvalidConfigurationError``,
    ``InvalidRequestError``, ``UnknownTopicOrPartitionError``,
    ``InvalidGroupIdError``, ``NotCoordinatorError``, and
    ``StorageError`` when the backing store fails (a disk, a corrupt file).
    """

    mode: str
    """``"standalone"`` or ``"zookeeper"``: for logs, metrics and the Metadata response."""

    async def start(self) -> None:
        """Load or connect; no other coroutine may be called before it returns."""
        ...

    async def close(self) -> None:
        """Finish changes in flight, drop this broker's registration, release resources.

        Idempotent.
        """
        ...

    # -- brokers and controller -------------------------------------------------------------

    async def register_broker(self, info: BrokerInfo) -> None:
        """Announce this broker as live (an ephemeral znode: it disappears with the session)."""
        ...

    async def live_brokers(self) -> list[BrokerInfo]:
        """The registered brokers, sorted by id."""
        ...

    async def controller_id(self) -> int | None:
        """The broker currently acting as controller, or None while there is none."""
        ...

    # -- topics -----------------------------------------------------------------------------

    async def create_topic(
        self,
        name: str,
        partitions: int,
        replication_factor: int,
        config: Mapping[str, str] | None = None,
    ) -> TopicAssignment:
        """Create a topic, assign its replicas round-robin over the live brokers, and return it.

        The assignment is ``coordination.assignment.assign_replicas_to_brokers``:
        rack-aware when every live broker registered a rack, Kafka's plain
        round-robin when none did. Each partition starts with its first replica
        as leader, leader epoch 0, and every replica in the ISR. ``config``
        values are stored, not validated: the broker checks them with
        ``LogConfig`` first.

        Raises ``InvalidTopicError``, ``TopicAlreadyExistsError``,
        ``InvalidPartitionsError`` (fewer than 1), ``InvalidReplicationFactorError``
        (fewer than 1, or more than the live brokers), ``IncompleteRackInformationError``
        (an ``InvalidReplicationFactorError``: some live brokers have a rack and
        some not), ``InvalidConfigurationError`` (a key or value that is not a string).
        """
        ...

    async def delete_topic(self, name: str) -> None:
        """Delete a topic; listeners hear about it once it is gone.

        Brokers delete the partition logs when told. Raises
        ``UnknownTopicOrPartitionError`` if there is no such topic.
        """
        ...

    async def topics(self) -> dict[str, TopicAssignment]:
        """Every topic, by name."""
        ...

    async def topic(self, name: str) -> TopicAssignment | None:
        """One topic, or None if it does not exist."""
        ...

    async def alter_topic_config(
        self, name: str, set_: Mapping[str, str], delete: Iterable[str] = ()
    ) -> dict[str, str]:
        """Set and remove config overrides (Kafka's incremental alter) and return the new ones.

        Deleting a key that is not set is not an error. Raises
        ``UnknownTopicOrPartitionError``, ``InvalidRequestError`` (a key both
        set and deleted), ``InvalidConfigurationError`` (not a string).
        """
        ...

    async def partition_state(self, topic: str, partition: int) -> PartitionState | None:
        """Leader, leader epoch and ISR of one partition; None if it does not exist."""
        ...

    async def partition_state_with_version(
        self, topic: str, partition: int
    ) -> VersionedPartitionState | None:
        """The state with the version to pass to ``update_partition_state``; None if the
        partition does not exist. The result unpacks as ``state, version``."""
        ...

    async def update_partition_state(
        self,
        topic: str,
        partition: int,
        state: PartitionState,
        expected_version: int,
        *,
        controller_epoch: int | None = None,
    ) -> int:
        """Replace the state if it is still at ``expected_version``; return the new version.

        Partition listeners hear of it. ``controller_epoch`` is stored with the
        state (default: this broker's epoch while it is the controller, else
        the one stored). A write by the controller (this broker is controller,
        or ``controller_epoch`` is the epoch it won with) is fenced: it fails
        with ``StaleControllerEpochError`` once another controller has been
        elected since, and at once if this broker is no longer the controller.

        Raises ``PartitionStateConflictError`` (changed since it was read: read
        again and decide again), ``StaleControllerEpochError``,
        ``UnknownTopicOrPartitionError``, ``InvalidRequestError`` (a malformed
        state, see ``check_partition_state``).
        """
        ...

    def add_topic_listener(self, callback: TopicListener) -> None:
        """Call ``callback(topic)`` on the event loop after a topic is created, deleted or
        has its config altered, whoever made the change.

        The callback is told only the name: it reads the new state with
        ``topic()`` (None means deleted), which is what a ZooKeeper watch can
        offer too. An exception from a callback is logged and does not undo
        the change or stop the other callbacks.
        """
        ...

    def add_partition_listener(self, callback: PartitionListener) -> None:
        """Call ``callback(topic, partition)`` on the event loop after that partition's state
        was created (with its topic) or changed, whoever made the change.

        Like topic listeners: told only which partition, it reads the state
        again; changes in quick succession may be heard once. Partitions of
        topics present before the listener was added are not announced.
        """
        ...

    # -- controller and session ------------------------------------------------------------

    async def elect_controller(self) -> bool:
        """Stand for controller: True if this broker is it now.

        The broker stays a candidate and stands again whenever the controller
        goes away; controller listeners hear who won.
        """
        ...

    async def depose_controller(self, broker_id: int) -> bool:
        """Vacate the controllership if broker ``broker_id`` holds it: found dead before
        its session ended, so that the live brokers stand again at once.

        True if it was vacated; False if another broker (or this one) holds it, or
        nobody does. A deposed controller that was alive after all is fenced by the
        controller epoch, which the next election raises.
        """
        ...

    @property
    def is_controller(self) -> bool:
        """Whether this broker is the controller right now (as far as it knows)."""
        ...

    @property
    def controller_epoch(self) -> int | None:
        """The epoch this broker won the controller election with; None unless controller."""
        ...

    def add_controller_listener(self, callback: ControllerListener) -> None:
        """``callback(controller_id or None)`` on the loop when the controller changes."""
        ...

    def add_broker_listener(self, callback: BrokerListener) -> None:
        """``callback(broker_ids)`` on the loop when brokers register or go away."""
        ...

    @property
    def session_state(self) -> SessionState:
        """The session with the store: while not ``CONNECTED`` the broker must not act as
        controller, and after ``LOST`` not as leader either until it read the state again."""
        ...

    def add_session_listener(self, callback: SessionListener) -> None:
        """``callback(state)`` on the loop at every session state change."""
        ...

    # -- committed consumer-group offsets (docs/groups.md) --------------------------------------
    # Group ids are 1 to 255 characters without control characters (``InvalidGroupIdError``
    # otherwise, from every method taking one); topics and partitions are not checked against
    # the topics that exist: that is the group coordinator's job.

    async def commit_offsets(
        self,
        group: str,
        offsets: Mapping[tuple[str, int], CommittedOffset],
        *,
        fence: OffsetFence | None = None,
    ) -> None:
        """Store ``offsets`` for ``group``, all or nothing; each replaces the one stored for
        its partition (which may be higher), the group's other partitions keep theirs.

        ``fence`` (from ``fence_for``) makes the commit conditional on the coordinator
        partition's state being unchanged since: ``NotCoordinatorError`` when it moved on
        (another broker may coordinate the group now), and nothing is written. Standalone,
        the fence is ignored. Raises ``InvalidGroupIdError``, ``InvalidTopicError``,
        ``InvalidRequestError`` (a partition, offset, metadata or timestamp that cannot be
        stored; in ZooKeeper also a commit larger than its 1 MB request limit), and
        ``StorageError`` (standalone: the group's file is corrupt).
        """
        ...

    async def fetch_offsets(
        self, group: str, partitions: Iterable[tuple[str, int]] | None = None
    ) -> dict[tuple[str, int], CommittedOffset]:
        """The offsets stored for ``partitions`` (default: every one of the group's); a
        partition without one is absent. Raises ``StorageError`` naming a corrupt one."""
        ...

    async def groups(self) -> list[str]:
        """The groups with committed offsets, sorted."""
        ...

    async def delete_group_offsets(self, group: str) -> bool:
        """Forget every offset of ``group`` (a corrupt one too); False if none was stored."""
        ...

    async def fence_for(self, topic: str, partition: int) -> OffsetFence | None:
        """The fence of a coordinator partition: its state's version now; None if it does
        not exist. Always None standalone, where one broker coordinates every group.

        Every state change moves the version, an ISR change too: a broker still leading
        the partition after a change takes a new fence."""
        ...


def config_overrides(topic: str, config: Mapping[str, str] | None) -> dict[str, str]:
    """A copy of ``config``, refusing keys and values that are not strings.

    Only the type is checked: values are the broker's to validate, but a
    coordinator must be able to store and return what it was given.
    """
    result: dict[str, str] = {}
    for key, value in (config or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidConfigurationError(
                f"topic {topic!r}: config {key!r}={value!r}: keys and values must be strings"
            )
        result[key] = value
    return result


def altered_config(
    topic: str, current: Mapping[str, str], set_: Mapping[str, str], delete: Iterable[str]
) -> dict[str, str]:
    """``current`` with ``set_`` applied and ``delete`` removed, as a new dict."""
    updates = config_overrides(topic, set_)
    removals = list(delete)
    for key in removals:
        if not isinstance(key, str):
            raise InvalidConfigurationError(f"topic {topic!r}: config key {key!r} is not a string")
    both = sorted(updates.keys() & set(removals))
    if both:
        raise InvalidRequestError(f"topic {topic!r}: config keys both set and deleted: {both}")
    result = {**current, **updates}
    for key in removals:
        result.pop(key, None)
    return result


def check_partition_state(topic: str, partition: int, state: PartitionState) -> None:
    """Refuse (``InvalidRequestError``) a state no coordinator may store.

    The leader is a broker id or -1 (none); the epoch a non-negative integer;
    the ISR distinct broker ids, containing the leader when there is one.
    """
    problem = None
    if not isinstance(state, PartitionState):
        problem = f"{state!r} is not a PartitionState"
    elif type(state.leader) is not int or state.leader < -1:
        problem = f"leader {state.leader!r} is not a broker id (or -1 for none)"
    elif type(state.leader_epoch) is not int or state.leader_epoch < 0:
        problem = f"leader epoch {state.leader_epoch!r} is not an integer >= 0"
    elif (
        not isinstance(state.isr, tuple | list)
        or not all(type(b) is int and b >= 0 for b in state.isr)
        or len(set(state.isr)) != len(state.isr)
    ):
        problem = f"isr {state.isr!r} is not a list of distinct broker ids"
    elif state.leader != -1 and state.leader not in state.isr:
        problem = f"leader {state.leader} is not in the isr {list(state.isr)}"
    if problem is not None:
        raise InvalidRequestError(f"{topic}-{partition}: {problem}")
