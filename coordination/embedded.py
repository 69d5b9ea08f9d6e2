"""The standalone coordinator: one broker, no ZooKeeper, cluster state in the data dir.

    <data_dir>/__coordinator/
        topics/<topic>.json   one per topic: replicas, config overrides, partition states
        topics/.*.tmp         a topic file being written; a crash can leave one, start() removes it
        consumers/<group>.json  one per consumer group: its committed offsets
                              (``embedded_offsets``: the group id encoded, the format)
        consumers/.*.tmp      the same, being written

A topic file is replaced atomically (temp file, fsync, rename, fsync of the
directory), so after a crash it is the old or the new version, never a mix.
Its content mirrors the znodes it stands in for::

    {"version": 1, "name": "orders",
     "partitions": {"0": [1]},                                   # /brokers/topics/<t>
     "config": {"retention.ms": "3600000"},                      # /config/topics/<t>
     "state": {"0": {"leader": 1, "leader_epoch": 0, "isr": [1]}}}  # …/partitions/<p>/state

A topic file that cannot be read or parsed stops ``start()`` with a
``StorageError`` naming it: dropping it silently would make the broker treat
the topic's partition logs as strays. A corrupt offsets file does not stop
it: it is logged, and reported (``StorageError`` naming it) whenever that
group's offsets are read or committed, until they are deleted. Files that
are not ours are logged and left alone. Broker registration is not stored:
like an ephemeral znode it lives as long as this object.

The registered broker is the controller, at controller epoch 1, from the
moment it registers (controller and broker listeners hear of it then); the
session is always ``CONNECTED``. A partition state's version counts its
updates since ``start`` (it is not stored: like a znode version it only
matters to a reader that read it from this same object).

Topic changes are serialised by one ``asyncio.Lock``, offset commits and
deletions by another, and their file I/O runs in a worker thread. A thread
cannot be stopped, so a change runs to the end even if its caller is
cancelled; otherwise the lock would be released mid-write and memory and disk
could disagree. Offsets are never fenced here (``fence_for`` is None, a
commit's fence is ignored): one broker coordinates every group.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
from collections.abc import Coroutine, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from client.errors import (
    InvalidTopicError,
    StorageError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from client.topics import validate_topic_name
from coordination import embedded_offsets
from coordination.assignment import assign_replicas_to_brokers
from coordination.atomic_files import remove_file, replace_file, scan
from coordination.interface import (
    BrokerListener,
    ControllerListener,
    PartitionListener,
    PartitionStateConflictError,
    SessionListener,
    TopicListener,
    altered_config,
    check_partition_state,
    config_overrides,
)
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

__all__ = ["CONTROLLER_EPOCH", "COORDINATOR_DIR", "EmbeddedCoordinator"]

log = logging.getLogger(__name__)

COORDINATOR_DIR = "__coordinator"
"""Under the data dir; never a partition directory, which always ends in ``-<partition>``."""

_TOPICS_DIR = "topics"
_TOPIC_SUFFIX = ".json"
_VERSION = 1
CONTROLLER_EPOCH = 1
"""The controller epoch of standalone mode: there is one controller, never superseded."""

_T = TypeVar("_T")


@dataclasses.dataclass(frozen=True, slots=True)
class _Topic:
    """A topic as stored: what the file holds, minus the name."""

    replicas: dict[int, tuple[int, ...]]
    config: dict[str, str]
    states: dict[int, PartitionState]

    def assignment(self, name: str) -> TopicAssignment:
        return TopicAssignment(name, dict(self.replicas), dict(self.config))


class EmbeddedCoordinator:
    """``Coordinator`` for standalone mode: the one registered broker is the controller."""

    mode: str = "standalone"

    def __init__(self, data_dir: Path) -> None:
        self._topics_dir = Path(data_dir) / COORDINATOR_DIR / _TOPICS_DIR
        self._consumers_dir = Path(data_dir) / COORDINATOR_DIR / embedded_offsets.CONSUMERS_DIR
        self._topics: dict[str, _Topic] = {}
        self._offsets: dict[str, dict[tuple[str, int], CommittedOffset]] = {}  # by group
        self._corrupt_offsets: dict[str, str] = {}  # file name → what is wrong with it
        self._offsets_lock = asyncio.Lock()
        self._broker: BrokerInfo | None = None
        self._listeners: list[TopicListener] = []
        self._partition_listeners: list[PartitionListener] = []
        self._broker_listeners: list[BrokerListener] = []
        self._controller_listeners: list[ControllerListener] = []
        self._session_listeners: list[SessionListener] = []
        self._versions: dict[tuple[str, int], int] = {}  # state updates since start
        self._elected = False
        self._lock = asyncio.Lock()
        self._changes: set[asyncio.Task[Any]] = set()
        self._status = "new"

    def __repr__(self) -> str:
        return f"EmbeddedCoordinator({str(self._topics_dir.parent.parent)!r}, {self._status})"

    async def start(self) -> None:
        """Load every topic file. Raises ``StorageError`` naming a file that cannot be loaded."""
        if self._status != "new":
            raise RuntimeError(f"{self!r}: start() called twice")
        self._topics = await asyncio.to_thread(_load_topics, self._topics_dir)
        loaded = await asyncio.to_thread(embedded_offsets.load, self._consumers_dir)
        self._offsets, self._corrupt_offsets = loaded.groups, loaded.corrupt
        self._status = "started"
        log.info(
            "standalone coordinator: %d topics, offsets of %d consumer groups in %s",
            len(self._topics),
            len(self._offsets),
            self._topics_dir.parent,
        )

    async def close(self) -> None:
        self._status = "closed"
        if self._changes:
            await asyncio.wait(set(self._changes))
        self._broker = None

    @property
    def session_state(self) -> SessionState:
        return {
            "new": SessionState.CONNECTING,
            "started": SessionState.CONNECTED,
        }.get(self._status, SessionState.CLOSED)

    def add_session_listener(self, callback: SessionListener) -> None:
        """Kept, never called: the session of standalone mode never changes."""
        self._session_listeners.append(callback)

    # -- brokers and controller -------------------------------------------------------------

    async def register_broker(self, info: BrokerInfo) -> None:
        """Remember the one broker; registering it again (same id) updates its endpoint.

        Raises ``ValueError`` for a second broker id: standalone mode has one broker.
        """
        self._check_started()
        if self._broker is not None and self._broker.broker_id != info.broker_id:
            raise ValueError(
                f"standalone mode serves one broker: broker {self._broker.broker_id} is "
                f"registered, cannot register broker {info.broker_id}"
            )
        first = self._broker is None
        self._broker = info
        if first:
            self._notify_all(self._broker_listeners, (info.broker_id,), "broker")
            self._notify_all(self._controller_listeners, info.broker_id, "controller")
        elsewhere = sorted(
            name
            for name, topic in self._topics.items()
            if any(info.broker_id not in replicas for replicas in topic.replicas.values())
        )
        if elsewhere:
            log.warning(
                "broker %d is not a replica of every partition of %d topics (%s): "
                "were they created under another broker.id? Those partitions have no leader",
                info.broker_id,
                len(elsewhere),
                ", ".join(elsewhere[:10]),
            )

    async def live_brokers(self) -> list[BrokerInfo]:
        self._check_started()
        return [self._broker] if self._broker is not None else []

    async def controller_id(self) -> int | None:
        self._check_started()
        return self._broker.broker_id if self._broker is not None else None

    async def elect_controller(self) -> bool:
        """True once the broker registered: it is the controller (epoch 1) for as long.

        Like a won election, the first successful call tells the controller listeners.
        """
        self._check_started()
        if self.is_controller and not self._elected:
            self._elected = True
            assert self._broker is not None
            self._notify_all(self._controller_listeners, self._broker.broker_id, "controller")
        return self.is_controller

    async def depose_controller(self, broker_id: int) -> bool:
        """Never: standalone, the one broker is the controller for as long as it runs."""
        self._check_started()
        return False

    @property
    def is_controller(self) -> bool:
        return self._status == "started" and self._broker is not None

    @property
    def controller_epoch(self) -> int | None:
        return CONTROLLER_EPOCH if self.is_controller else None

    def add_controller_listener(self, callback: ControllerListener) -> None:
        """``callback(broker_id)`` when the broker registers (it becomes the controller)."""
        self._controller_listeners.append(callback)

    def add_broker_listener(self, callback: BrokerListener) -> None:
        """``callback((broker_id,))`` when the broker registers."""
        self._broker_listeners.append(callback)

    # -- topics -----------------------------------------------------------------------------

    async def create_topic(
        self,
        name: str,
        partitions: int,
        replication_factor: int,
        config: Mapping[str, str] | None = None,
    ) -> TopicAssignment:
        self._check_started()
        validate_topic_name(name)
        overrides = config_overrides(name, config)
        return await self._change(self._create(name, partitions, replication_factor, overrides))

    async def delete_topic(self, name: str) -> None:
        self._check_started()
        await self._change(self._delete(name))

    async def topics(self) -> dict[str, TopicAssignment]:
        self._check_started()
        return {name: topic.assignment(name) for name, topic in sorted(self._topics.items())}

    async def topic(self, name: str) -> TopicAssignment | None:
        self._check_started()
        topic = self._topics.get(name)
        return topic.assignment(name) if topic is not None else None

    async def alter_topic_config(
        self, name: str, set_: Mapping[str, str], delete: Iterable[str] = ()
    ) -> dict[str, str]:
        self._check_started()
        return await self._change(self._alter_config(name, set_, tuple(delete)))

    async def partition_state(self, topic: str, partition: int) -> PartitionState | None:
        self._check_started()
        stored = self._topics.get(topic)
        return stored.states.get(partition) if stored is not None else None

    async def partition_state_with_version(
        self, topic: str, partition: int
    ) -> VersionedPartitionState | None:
        self._check_started()
        stored = self._topics.get(topic)
        state = stored.states.get(partition) if stored is not None else None
        if state is None:
            return None
        return VersionedPartitionState(
            state, self._versions.get((topic, partition), 0), CONTROLLER_EPOCH
        )

    async def update_partition_state(
        self,
        topic: str,
        partition: int,
        state: PartitionState,
        expected_version: int,
        *,
        controller_epoch: int | None = None,
    ) -> int:
        """See ``Coordinator``; never stale here (one controller). The topic file is
        rewritten before the new version is returned and the listeners hear of it."""
        self._check_started()
        check_partition_state(topic, partition, state)
        state = PartitionState(state.leader, state.leader_epoch, tuple(state.isr))
        return await self._change(self._update_state(topic, partition, state, expected_version))

    def add_topic_listener(self, callback: TopicListener) -> None:
        self._listeners.append(callback)

    def add_partition_listener(self, callback: PartitionListener) -> None:
        """See ``Coordinator``: called after ``update_partition_state``, and for each
        partition of a new topic after the topic listeners."""
        self._partition_listeners.append(callback)

    # -- committed offsets --------------------------------------------------------------------

    async def commit_offsets(
        self,
        group: str,
        offsets: Mapping[tuple[str, int], CommittedOffset],
        *,
        fence: OffsetFence | None = None,
    ) -> None:
        """See ``Coordinator``: the group's file is rewritten (``fence`` is ignored)."""
        self._check_started()
        validate_group_id(group)
        checked = check_offsets(group, offsets)
        check_fence(group, fence)
        if checked:
            await self._change(self._commit(group, checked))

    async def fetch_offsets(
        self, group: str, partitions: Iterable[tuple[str, int]] | None = None
    ) -> dict[tuple[str, int], CommittedOffset]:
        self._check_started()
        validate_group_id(group)
        self._check_offsets_file(group)
        stored = self._offsets.get(group, {})
        if partitions is None:
            return dict(stored)
        keys = sorted({(key[0], key[1]) for key in partitions if is_partition_key(key)})
        return {key: stored[key] for key in keys if key in stored}

    async def groups(self) -> list[str]:
        """The groups with committed offsets, and those whose file is corrupt (when its
        name says whose it is), so that they can be seen and deleted."""
        self._check_started()
        found = {group for group, offsets in self._offsets.items() if offsets}
        for name in self._corrupt_offsets:
            group = embedded_offsets.group_of(name)
            if group is not None:
                found.add(group)
        return sorted(found)

    async def delete_group_offsets(self, group: str) -> bool:
        """See ``Coordinator``: removes the group's file, a corrupt one too."""
        self._check_started()
        validate_group_id(group)
        return await self._change(self._delete_offsets(group))

    async def fence_for(self, topic: str, partition: int) -> OffsetFence | None:
        """None: standalone, the one broker coordinates every group, and nobody can depose it."""
        self._check_started()
        return None

    async def _commit(self, group: str, offsets: dict[tuple[str, int], CommittedOffset]) -> None:
        async with self._offsets_lock:
            self._check_offsets_file(group)
            merged = dict(sorted({**self._offsets.get(group, {}), **offsets}.items()))
            await asyncio.to_thread(
                embedded_offsets.write_offsets_file, self._consumers_dir, group, merged
            )
            self._offsets[group] = merged

    async def _delete_offsets(self, group: str) -> bool:
        async with self._offsets_lock:
            name = embedded_offsets.file_name(group)
            if group not in self._offsets and name not in self._corrupt_offsets:
                return False
            stored = bool(self._offsets.get(group)) or name in self._corrupt_offsets
            await asyncio.to_thread(
                embedded_offsets.remove_offsets_file, self._consumers_dir, group
            )
            self._offsets.pop(group, None)
            self._corrupt_offsets.pop(name, None)
        log.info("deleted the committed offsets of group %r", group)
        return stored

    def _check_offsets_file(self, group: str) -> None:
        problem = self._corrupt_offsets.get(embedded_offsets.file_name(group))
        if problem is not None:
            raise StorageError(problem)

    # -- changes ----------------------------------------------------------------------------

    async def _create(
        self, name: str, partitions: int, replication_factor: int, config: dict[str, str]
    ) -> TopicAssignment:
        async with self._lock:
            if name in self._topics:
                raise TopicAlreadyExistsError(f"topic {name!r} already exists")
            brokers = [self._broker] if self._broker is not None else []
            replicas = assign_replicas_to_brokers(name, brokers, partitions, replication_factor)
            states = {p: PartitionState(r[0], 0, r) for p, r in replicas.items()}
            topic = _Topic(replicas, config, states)
            await asyncio.to_thread(_write_topic_file, self._topics_dir, name, topic)
            self._topics[name] = topic
            for p in replicas:
                self._versions[(name, p)] = 0
        log.info("created topic %r: %d partitions, config %s", name, partitions, config)
        self._notify(name)
        for p in replicas:
            self._notify_partition(name, p)
        return topic.assignment(name)

    async def _delete(self, name: str) -> None:
        async with self._lock:
            if name not in self._topics:
                raise UnknownTopicOrPartitionError(f"topic {name!r} does not exist")
            await asyncio.to_thread(_remove_topic_file, self._topics_dir, name)
            removed = self._topics.pop(name)
            for p in removed.replicas:
                self._versions.pop((name, p), None)
        log.info("deleted topic %r", name)
        self._notify(name)

    async def _alter_config(
        self, name: str, set_: Mapping[str, str], delete: tuple[str, ...]
    ) -> dict[str, str]:
        async with self._lock:
            current = self._topics.get(name)
            if current is None:
                raise UnknownTopicOrPartitionError(f"topic {name!r} does not exist")
            config = altered_config(name, current.config, set_, delete)
            if config == current.config:
                return dict(config)  # nothing changed: nothing to write, nobody to tell
            topic = dataclasses.replace(current, config=config)
            await asyncio.to_thread(_write_topic_file, self._topics_dir, name, topic)
            self._topics[name] = topic
        log.info("topic %r: config overrides now %s", name, config)
        self._notify(name)
        return dict(config)

    async def _update_state(
        self, name: str, partition: int, state: PartitionState, expected_version: int
    ) -> int:
        async with self._lock:
            current = self._topics.get(name)
            if current is None or partition not in current.states:
                raise UnknownTopicOrPartitionError(f"{name}-{partition} does not exist")
            version = self._versions.get((name, partition), 0)
            if version != expected_version:
                raise PartitionStateConflictError(
                    f"{name}-{partition} state: expected version {expected_version}, found "
                    f"{version}: changed since it was read",
                    expected_version=expected_version,
                    actual_version=version,
                )
            topic = dataclasses.replace(current, states={**current.states, partition: state})
            await asyncio.to_thread(_write_topic_file, self._topics_dir, name, topic)
            self._topics[name] = topic
            self._versions[(name, partition)] = version + 1
        log.info(
            "%s-%d: leader %d, leader epoch %d, isr %s",
            name,
            partition,
            state.leader,
            state.leader_epoch,
            list(state.isr),
        )
        self._notify_partition(name, partition)
        return version + 1

    async def _change(self, change: Coroutine[Any, Any, _T]) -> _T:
        """Run ``change`` in its own task, so cancelling the caller does not cut it short."""
        task = asyncio.ensure_future(change)
        self._changes.add(task)
        task.add_done_callback(self._changes.discard)
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(_log_unobserved_failure)
            raise

    def _notify(self, name: str) -> None:
        for callback in list(self._listeners):
            try:
                callback(name)
            except Exception:
                log.exception("topic listener %r failed for topic %r", callback, name)

    def _notify_partition(self, name: str, partition: int) -> None:
        for callback in list(self._partition_listeners):
            try:
                callback(name, partition)
            except Exception:
                log.exception("partition listener %r failed for %s-%d", callback, name, partition)

    def _notify_all(self, listeners: list[Any], value: object, what: str) -> None:
        for callback in list(listeners):
            try:
                callback(value)
            except Exception:
                log.exception("%s listener %r failed for %r", what, callback, value)

    def _check_started(self) -> None:
        if self._status != "started":
            raise RuntimeError(f"{self!r}: not started or already closed")


def _log_unobserved_failure(task: asyncio.Task[Any]) -> None:
    if not task.cancelled() and (exc := task.exception()) is not None:
        log.error("a coordinator change failed after its caller was cancelled", exc_info=exc)


# -- files (run in a worker thread) ---------------------------------------------------------


def _topic_path(topics_dir: Path, name: str) -> Path:
    return topics_dir / (name + _TOPIC_SUFFIX)


def _load_topics(topics_dir: Path) -> dict[str, _Topic]:
    topics: dict[str, _Topic] = {}
    for entry in scan(topics_dir, "topic file"):
        path = Path(entry.path)
        name = entry.name.removesuffix(_TOPIC_SUFFIX)
        if (
            not entry.is_file(follow_symlinks=False)
            or name == entry.name
            or not _is_topic_name(name)
        ):
            log.warning("%s: not a topic file; left alone", path)
            continue
        topics[name] = _read_topic_file(path, name)
    return topics


def _is_topic_name(name: str) -> bool:
    try:
        validate_topic_name(name)
    except InvalidTopicError:
        return False
    return True


def _read_topic_file(path: Path, name: str) -> _Topic:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise StorageError(f"{path}: cannot read topic file of {name!r}: {exc}") from exc
    try:
        return _decode(raw, name)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise StorageError(
            f"{path}: corrupt topic file of {name!r} ({type(exc).__name__}: {exc}); "
            "restore it, or remove it to forget the topic"
        ) from exc


def _write_topic_file(topics_dir: Path, name: str, topic: _Topic) -> None:
    """Replace the topic's file atomically (``atomic_files.replace_file``)."""
    path = _topic_path(topics_dir, name)
    try:
        replace_file(path, _encode(name, topic))
    except OSError as exc:
        raise StorageError(f"{path}: cannot write topic file of {name!r}: {exc}") from exc


def _remove_topic_file(topics_dir: Path, name: str) -> None:
    path = _topic_path(topics_dir, name)
    try:
        remove_file(path)
    except OSError as exc:
        raise StorageError(f"{path}: cannot remove topic file of {name!r}: {exc}") from exc


def _encode(name: str, topic: _Topic) -> bytes:
    payload = {
        "version": _VERSION,
        "name": name,
        "partitions": {str(p): list(replicas) for p, replicas in topic.replicas.items()},
        "config": topic.config,
        "state": {
            str(p): {"leader": s.leader, "leader_epoch": s.leader_epoch, "isr": list(s.isr)}
            for p, s in topic.states.items()
        },
    }
    return json.dumps(payload, indent=1).encode() + b"\n"


def _decode(raw: bytes, name: str) -> _Topic:
    """Parse and check a topic file; ``ValueError`` (or a lookup error) for anything off."""
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if data.get("version") != _VERSION:
        raise ValueError(f"unknown version {data.get('version')!r}")
    if data.get("name") != name:
        raise ValueError(f"the file names topic {data.get('name')!r}")
    partitions, state, config = data["partitions"], data["state"], data["config"]
    if not isinstance(partitions, dict) or not partitions:
        raise ValueError("no partitions")
    count = len(partitions)
    if set(partitions) != {str(p) for p in range(count)}:
        raise ValueError(f"partitions {sorted(partitions)} are not numbered 0 to {count - 1}")
    if not isinstance(state, dict) or set(state) != set(partitions):
        raise ValueError("partition states do not match the partitions")
    if not isinstance(config, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in config.items()
    ):
        raise ValueError("config is not a map of strings to strings")
    replicas = {p: _broker_ids(partitions[str(p)], f"partition {p} replicas") for p in range(count)}
    if not all(replicas.values()):
        raise ValueError("a partition has no replicas")
    states = {p: _partition_state(state[str(p)], p) for p in range(count)}
    return _Topic(replicas, dict(config), states)


def _partition_state(raw: Any, partition: int) -> PartitionState:
    leader, epoch = raw["leader"], raw["leader_epoch"]
    if type(leader) is not int or type(epoch) is not int or epoch < 0:
        raise ValueError(f"partition {partition}: bad leader {leader!r} or epoch {epoch!r}")
    return PartitionState(leader, epoch, _broker_ids(raw["isr"], f"partition {partition} isr"))


def _broker_ids(raw: Any, what: str) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(type(b) is int and b >= 0 for b in raw):
        raise ValueError(f"{what}: {raw!r} is not a list of broker ids")
    if len(set(raw)) != len(raw):
        raise ValueError(f"{what}: {raw!r} repeats a broker id")
    return tuple(raw)
