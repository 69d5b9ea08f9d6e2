"""The ZooKeeper layout (DESIGN.md §4): znode paths, their JSON values, and the topic work.

    /brokers/ids/<id>                             {"version": 1, "host": "h", "port": 9092,
                                                   "rack": null}                 ephemeral
    /controller                                   {"version": 1, "brokerid": 1,
                                                   "timestamp": "<ms>"}          ephemeral
    /controller_epoch                             7            a bare number, as in Kafka
    /brokers/topics/<topic>                       {"version": 1, "partitions": {"0": [1, 2]}}
    /brokers/topics/<topic>/partitions/<p>/state  {"version": 1, "leader": 1, "leader_epoch": 0,
                                                   "isr": [1, 2], "controller_epoch": 7}
    /config/topics/<topic>                        {"version": 1, "config": {"retention.ms": "1"}}
    /admin/delete_topics/<topic>                  empty: a deletion asked for and not finished
    /consumers/<group>/offsets/<topic>/<p>        {"version": 1, "offset": 42, "metadata": "",
                                                   "commit_timestamp": <ms>}
                                                  <group> as ``coordination.offsets.encode_group``

Values are Kafka's shapes (committed offsets are where Kafka's old
ZooKeeper-based consumers kept them, as JSON instead of a bare number). Every
decoder checks the whole value and raises ``StorageError`` naming the znode
(chroot included) and quoting the start of the bad value: a corrupt znode is
an operator's problem to look at, never something to guess around.

The second half is the blocking work on topic and partition-state znodes, as
plain functions of a ``KazooBridge`` run in its worker threads (no asyncio
here; the offsets' work is ``coordination.zk_offsets``). A topic's znodes
are created in one transaction and deleted in one, so no reader ever sees
half a topic; updates are conditional on the version read and retried
(``RETRIES``) when another change came first.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import random
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from kazoo.exceptions import (
    BadVersionError,
    NodeExistsError,
    NoNodeError,
    NotEmptyError,
    RolledBackError,
)

from client.errors import (
    StaleControllerEpochError,
    StorageError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from coordination.assignment import assign_replicas_to_brokers
from coordination.interface import (
    PartitionStateConflictError,
    altered_config,
    check_partition_state,
)
from coordination.model import (
    BrokerInfo,
    CommittedOffset,
    PartitionState,
    TopicAssignment,
    VersionedPartitionState,
)
from coordination.offsets import encode_group, offset_fields, parse_offset_fields

if TYPE_CHECKING:
    from coordination.kazoo_bridge import KazooBridge

__all__ = [
    "BASE_PATHS",
    "BROKER_IDS",
    "CONFIG_TOPICS",
    "CONSUMERS",
    "CONTROLLER",
    "CONTROLLER_EPOCH",
    "DELETE_TOPICS",
    "RETRIES",
    "TOPICS",
    "PartitionStateConflictError",
    "VersionedPartitionState",
    "alter_config",
    "broker_ids",
    "broker_path",
    "check_state",
    "config_path",
    "create_topic",
    "decode_broker",
    "decode_config",
    "decode_controller",
    "decode_epoch",
    "decode_offset",
    "decode_state",
    "decode_topic",
    "delete_marker_path",
    "delete_topic",
    "encode_broker",
    "encode_config",
    "encode_controller",
    "encode_epoch",
    "encode_offset",
    "encode_state",
    "encode_topic",
    "failed_op",
    "finish_pending_deletions",
    "group_offsets_path",
    "group_path",
    "live_brokers",
    "offset_path",
    "offsets_topic_path",
    "partition_path",
    "partitions_path",
    "read_state",
    "read_topic",
    "read_topics",
    "state_path",
    "subtree",
    "topic_path",
    "update_state",
]

BROKER_IDS = "/brokers/ids"
TOPICS = "/brokers/topics"
CONFIG_TOPICS = "/config/topics"
DELETE_TOPICS = "/admin/delete_topics"
CONTROLLER = "/controller"
CONTROLLER_EPOCH = "/controller_epoch"
CONSUMERS = "/consumers"
BASE_PATHS = (BROKER_IDS, TOPICS, CONFIG_TOPICS, DELETE_TOPICS, CONSUMERS)
"""Created at start: watches need their parents, and a transaction cannot create parents."""

RETRIES = 10
"""Conditional updates that lost a race, before giving up with ``StorageError``."""

log = logging.getLogger(__name__)

_VERSION = 1
_T = TypeVar("_T")


def broker_path(broker_id: int) -> str:
    return f"{BROKER_IDS}/{broker_id}"


def topic_path(topic: str) -> str:
    return f"{TOPICS}/{topic}"


def partitions_path(topic: str) -> str:
    return f"{TOPICS}/{topic}/partitions"


def partition_path(topic: str, partition: int) -> str:
    return f"{TOPICS}/{topic}/partitions/{partition}"


def state_path(topic: str, partition: int) -> str:
    return f"{TOPICS}/{topic}/partitions/{partition}/state"


def config_path(topic: str) -> str:
    return f"{CONFIG_TOPICS}/{topic}"


def delete_marker_path(topic: str) -> str:
    return f"{DELETE_TOPICS}/{topic}"


def group_path(group: str) -> str:
    return f"{CONSUMERS}/{encode_group(group)}"


def group_offsets_path(group: str) -> str:
    return f"{CONSUMERS}/{encode_group(group)}/offsets"


def offsets_topic_path(group: str, topic: str) -> str:
    return f"{CONSUMERS}/{encode_group(group)}/offsets/{topic}"


def offset_path(group: str, topic: str, partition: int) -> str:
    return f"{CONSUMERS}/{encode_group(group)}/offsets/{topic}/{partition}"


# -- encoding -------------------------------------------------------------------------------


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), sort_keys=True).encode()


def encode_broker(info: BrokerInfo) -> bytes:
    return _dump({"version": _VERSION, "host": info.host, "port": info.port, "rack": info.rack})


def encode_controller(broker_id: int) -> bytes:
    timestamp = str(time.time_ns() // 1_000_000)
    return _dump({"version": _VERSION, "brokerid": broker_id, "timestamp": timestamp})


def encode_epoch(epoch: int) -> bytes:
    return _dump(epoch)


def encode_topic(replicas: Mapping[int, tuple[int, ...]]) -> bytes:
    partitions = {str(p): list(r) for p, r in sorted(replicas.items())}
    return _dump({"version": _VERSION, "partitions": partitions})


def encode_config(config: Mapping[str, str]) -> bytes:
    return _dump({"version": _VERSION, "config": dict(config)})


def encode_state(state: PartitionState, controller_epoch: int) -> bytes:
    return _dump(
        {
            "version": _VERSION,
            "leader": state.leader,
            "leader_epoch": state.leader_epoch,
            "isr": list(state.isr),
            "controller_epoch": controller_epoch,
        }
    )


def encode_offset(offset: CommittedOffset) -> bytes:
    return _dump({"version": _VERSION, **offset_fields(offset)})


# -- decoding: ValueError inside, StorageError naming the znode outside ---------------------


def _decode(path: str, raw: bytes | None, parse: Callable[[Any], _T]) -> _T:
    try:
        if not raw:
            raise ValueError("empty")
        return parse(json.loads(raw))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        shown = (raw or b"")[:120]
        raise StorageError(
            f"zookeeper znode {path}: corrupt value ({type(exc).__name__}: {exc}): {shown!r}; "
            "fix or remove it"
        ) from exc


def _object(data: Any) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    if data.get("version") != _VERSION:
        raise ValueError(f"unknown version {data.get('version')!r}")
    return data


def _int(value: Any, what: str, minimum: int = 0) -> int:
    if type(value) is not int or value < minimum:
        raise ValueError(f"{what} {value!r} is not an integer >= {minimum}")
    return value


def _broker_ids(raw: Any, what: str) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(type(b) is int and b >= 0 for b in raw):
        raise ValueError(f"{what}: {raw!r} is not a list of broker ids")
    if len(set(raw)) != len(raw):
        raise ValueError(f"{what}: {raw!r} repeats a broker id")
    return tuple(raw)


def decode_broker(path: str, raw: bytes | None, broker_id: int) -> BrokerInfo:
    def parse(data: Any) -> BrokerInfo:
        data = _object(data)
        host, rack = data["host"], data.get("rack")
        if not isinstance(host, str) or not host:
            raise ValueError(f"host {host!r} is not a host name")
        if rack is not None and not isinstance(rack, str):
            raise ValueError(f"rack {rack!r} is not a string")
        return BrokerInfo(broker_id, host, _int(data["port"], "port"), rack)

    return _decode(path, raw, parse)


def decode_controller(path: str, raw: bytes | None) -> int:
    return _decode(path, raw, lambda data: _int(_object(data)["brokerid"], "brokerid"))


def decode_epoch(path: str, raw: bytes | None) -> int:
    return _decode(path, raw, lambda data: _int(data, "controller epoch"))


def decode_topic(path: str, raw: bytes | None) -> dict[int, tuple[int, ...]]:
    def parse(data: Any) -> dict[int, tuple[int, ...]]:
        partitions = _object(data)["partitions"]
        if not isinstance(partitions, dict) or not partitions:
            raise ValueError("no partitions")
        count = len(partitions)
        if set(partitions) != {str(p) for p in range(count)}:
            raise ValueError(f"partitions {sorted(partitions)} are not numbered 0 to {count - 1}")
        replicas = {p: _broker_ids(partitions[str(p)], f"partition {p}") for p in range(count)}
        if not all(replicas.values()):
            raise ValueError("a partition has no replicas")
        return replicas

    return _decode(path, raw, parse)


def decode_config(path: str, raw: bytes | None) -> dict[str, str]:
    def parse(data: Any) -> dict[str, str]:
        config = _object(data)["config"]
        if not isinstance(config, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in config.items()
        ):
            raise ValueError("config is not a map of strings to strings")
        return dict(config)

    return _decode(path, raw, parse)


def decode_state(path: str, raw: bytes | None) -> tuple[PartitionState, int]:
    """The state and the controller epoch that wrote it. A leader of -1 means none."""

    def parse(data: Any) -> tuple[PartitionState, int]:
        data = _object(data)
        state = PartitionState(
            _int(data["leader"], "leader", minimum=-1),
            _int(data["leader_epoch"], "leader_epoch"),
            _broker_ids(data["isr"], "isr"),
        )
        return state, _int(data["controller_epoch"], "controller_epoch")

    return _decode(path, raw, parse)


def decode_offset(path: str, raw: bytes | None) -> CommittedOffset:
    return _decode(path, raw, lambda data: parse_offset_fields(_object(data)))


# -- blocking work on topics and partition states (KazooBridge worker threads) --------------


def failed_op(results: list[Any]) -> tuple[int, Exception] | None:
    """The operation that failed a committed transaction (the others say ``RolledBackError``)."""
    for index, result in enumerate(results):
        if isinstance(result, Exception) and not isinstance(result, RolledBackError):
            return index, result
    return None


def broker_ids(zk: KazooBridge) -> list[int]:
    return sorted(int(name) for name in zk.children(BROKER_IDS) if name.isdigit())


def live_brokers(zk: KazooBridge) -> list[BrokerInfo]:
    """Every registered broker, sorted by id, each read once (a broker gone since the listing
    is left out). ``epoch`` is the czxid of its znode."""
    reads = [(b, zk.client.get_async(broker_path(b))) for b in broker_ids(zk)]
    brokers = []
    for broker_id, result in reads:
        try:
            raw, stat = zk.wait(result)
        except NoNodeError:
            continue  # gone since the listing
        info = decode_broker(zk.full_path(broker_path(broker_id)), raw, broker_id)
        brokers.append(dataclasses.replace(info, epoch=stat.czxid))
    return brokers


def current_controller_epoch(zk: KazooBridge) -> int:
    try:
        raw, _ = zk.get(CONTROLLER_EPOCH)
    except NoNodeError:
        return 0
    return decode_epoch(zk.full_path(CONTROLLER_EPOCH), raw)


def create_topic(
    zk: KazooBridge, name: str, partitions: int, replication_factor: int, config: dict[str, str]
) -> TopicAssignment:
    """Assign replicas over the live brokers, rack-aware if they registered racks (leaders
    from a random start, like Kafka's controller), and create config, assignment and every
    partition state at once."""
    brokers = live_brokers(zk)
    start = random.randrange(len(brokers)) if brokers else 0
    replicas = assign_replicas_to_brokers(
        name, brokers, partitions, replication_factor, start_index=start
    )
    if zk.exists(topic_path(name)) is not None:
        raise TopicAlreadyExistsError(f"topic {name!r} already exists")
    epoch = current_controller_epoch(zk)
    transaction = zk.transaction()
    left_over = zk.exists(config_path(name))  # a config for a topic that does not exist
    if left_over is None:
        transaction.create(config_path(name), encode_config(config))
    else:
        transaction.set_data(config_path(name), encode_config(config), version=left_over.version)
    transaction.create(topic_path(name), encode_topic(replicas))
    transaction.create(partitions_path(name))
    for partition, brokers_of in replicas.items():
        state = PartitionState(brokers_of[0], 0, brokers_of)
        transaction.create(partition_path(name, partition))
        transaction.create(state_path(name, partition), encode_state(state, epoch))
    failure = failed_op(zk.commit(transaction))
    if failure is not None:
        if isinstance(failure[1], NodeExistsError | BadVersionError):
            raise TopicAlreadyExistsError(f"topic {name!r} already exists")
        raise failure[1]
    return TopicAssignment(name, replicas, dict(config))


def delete_topic(zk: KazooBridge, name: str) -> None:
    if zk.exists(topic_path(name)) is None:
        raise UnknownTopicOrPartitionError(f"topic {name!r} does not exist")
    with contextlib.suppress(NodeExistsError):  # asked before by a caller that did not finish
        zk.create(delete_marker_path(name))
    if not finish_deletion(zk, name):
        raise UnknownTopicOrPartitionError(f"topic {name!r} does not exist")


def finish_deletion(zk: KazooBridge, name: str) -> bool:
    """Remove the topic's znodes, config and deletion mark at once; False if already gone."""
    for _ in range(RETRIES):
        try:
            paths = subtree(zk, topic_path(name))
        except NoNodeError:
            with contextlib.suppress(NoNodeError):
                zk.delete(delete_marker_path(name))
            return False
        transaction = zk.transaction()
        for path in paths:
            transaction.delete(path)
        for path in (config_path(name), delete_marker_path(name)):
            if zk.exists(path) is not None:
                transaction.delete(path)
        failure = failed_op(zk.commit(transaction))
        if failure is None:
            return True
        if not isinstance(failure[1], NoNodeError | NotEmptyError):
            raise failure[1]
    raise StorageError(f"topic {name!r}: its znodes kept changing while being deleted")


def finish_pending_deletions(zk: KazooBridge) -> None:
    """Finish deletions whose caller died between marking and removing (the controller's job)."""
    for name in zk.children(DELETE_TOPICS):
        log.warning("finishing the deletion of topic %r, left unfinished", name)
        finish_deletion(zk, name)


def subtree(zk: KazooBridge, root: str) -> list[str]:
    """``root`` and everything under it, children before parents (one round trip per level)."""
    found: list[str] = []
    level = [root]
    while level:
        found.extend(level)
        reads = [(path, zk.client.get_children_async(path)) for path in level]
        level = [f"{path}/{child}" for path, result in reads for child in zk.wait(result)]
    return found[::-1]


def read_topics(zk: KazooBridge) -> dict[str, TopicAssignment]:
    reads = [
        (name, zk.client.get_async(topic_path(name)), zk.client.get_async(config_path(name)))
        for name in sorted(zk.children(TOPICS))
    ]
    topics = {}
    for name, topic_read, config_read in reads:
        topic = _assignment(zk, name, topic_read, config_read)
        if topic is not None:  # deleted since the listing
            topics[name] = topic
    return topics


def read_topic(zk: KazooBridge, name: str) -> TopicAssignment | None:
    topic_read = zk.client.get_async(topic_path(name))
    return _assignment(zk, name, topic_read, zk.client.get_async(config_path(name)))


def _assignment(
    zk: KazooBridge, name: str, topic_read: Any, config_read: Any
) -> TopicAssignment | None:
    try:
        raw, _ = zk.wait(topic_read)
    except NoNodeError:
        return None
    replicas = decode_topic(zk.full_path(topic_path(name)), raw)
    try:
        raw_config, _ = zk.wait(config_read)
    except NoNodeError:
        return TopicAssignment(name, replicas, {})  # a topic made by another tool
    return TopicAssignment(
        name, replicas, decode_config(zk.full_path(config_path(name)), raw_config)
    )


def alter_config(
    zk: KazooBridge, name: str, set_: Mapping[str, str], delete: tuple[str, ...]
) -> dict[str, str]:
    """Set the config conditionally on its version and on the topic still being there."""
    path = config_path(name)
    for _ in range(RETRIES):
        topic_stat = zk.exists(topic_path(name))
        if topic_stat is None:
            raise UnknownTopicOrPartitionError(f"topic {name!r} does not exist")
        try:
            raw, stat = zk.get(path)
            current = decode_config(zk.full_path(path), raw)
        except NoNodeError:
            stat, current = None, {}
        config = altered_config(name, current, set_, delete)
        if config == current:
            return config  # nothing to write, nobody to tell
        transaction = zk.transaction()
        transaction.check(topic_path(name), topic_stat.version)
        if stat is None:
            transaction.create(path, encode_config(config))
        else:
            transaction.set_data(path, encode_config(config), version=stat.version)
        failure = failed_op(zk.commit(transaction))
        if failure is None:
            log.info("topic %r: config overrides now %s", name, config)
            return config
        if not isinstance(failure[1], NoNodeError | NodeExistsError | BadVersionError):
            raise failure[1]
    raise StorageError(f"topic {name!r}: {zk.full_path(path)} kept changing under the update")


def read_state(zk: KazooBridge, topic: str, partition: int) -> VersionedPartitionState | None:
    path = state_path(topic, partition)
    try:
        raw, stat = zk.get(path)
    except NoNodeError:
        return None
    state, controller_epoch = decode_state(zk.full_path(path), raw)
    return VersionedPartitionState(state, stat.version, controller_epoch)


def update_state(
    zk: KazooBridge,
    topic: str,
    partition: int,
    new_state: PartitionState,
    expected_version: int,
    *,
    controller_epoch: int | None,
    fence: tuple[int, int] | None,
) -> int:
    """Set the state znode at ``expected_version``; return its new version.

    ``fence`` is (epoch, /controller_epoch's version) of a controller: the
    transaction then also checks that no other controller came since.
    ``controller_epoch`` None stores the fence's epoch, else the one stored.
    """
    path = state_path(topic, partition)
    epoch = controller_epoch
    if epoch is None and fence is not None:
        epoch = fence[0]
    if epoch is None:
        found = read_state(zk, topic, partition)
        if found is None:
            raise UnknownTopicOrPartitionError(f"{topic}-{partition} does not exist")
        if found.version != expected_version:
            raise _conflict(zk.full_path(path), expected_version, found.version)
        epoch = found.controller_epoch
    transaction = zk.transaction()
    if fence is not None:
        transaction.check(CONTROLLER_EPOCH, fence[1])
    transaction.set_data(path, encode_state(new_state, epoch), version=expected_version)
    results = zk.commit(transaction)
    failure = failed_op(results)
    if failure is None:
        return results[-1].version
    index, exc = failure
    if fence is not None and index == 0:
        raise StaleControllerEpochError(
            f"controller epoch {fence[0]} is stale, another controller has been elected "
            f"since; {zk.full_path(path)} not updated"
        )
    if isinstance(exc, NoNodeError):
        raise UnknownTopicOrPartitionError(f"{topic}-{partition} does not exist")
    if isinstance(exc, BadVersionError):
        now = zk.exists(path)
        actual = None if now is None else now.version
        raise _conflict(zk.full_path(path), expected_version, actual)
    raise exc


def _conflict(path: str, expected: int, actual: int | None) -> PartitionStateConflictError:
    return PartitionStateConflictError(
        f"{path}: expected version {expected}, found {actual}: changed since it was read",
        expected_version=expected,
        actual_version=actual,
    )


check_state = check_partition_state
"""Refuse (``InvalidRequestError``) a state the decoder would call corrupt."""
