"""The asyncio admin client: topics, their settings, offsets and the brokers of a cluster.

Requests go to any broker (the first live connection), except ListOffsets,
which goes to each partition's leader as the metadata names it. An error whose
class says ``invalid_metadata`` (a lost connection, ``NOT_LEADER_OR_FOLLOWER``,
a topic the answering broker does not know yet) refreshes the metadata and
retries, a few times with doubling backoff and never past ``request_timeout_ms``
from the call. CreateTopics' and DeleteTopics' per-topic answers come from the
coordinator and are final, so only their transport failures are retried (a
create retried after a lost response may then report TOPIC_ALREADY_EXISTS, as
in Kafka). Every failure is raised as its ``client.errors`` class.

ElectLeaders goes to the controller that Metadata names (to each broker in
turn while it names none); ``NOT_CONTROLLER`` is retried like stale metadata.

Group requests go to the group's coordinator (``CoordinatorLookup``), except
ListGroups, which asks every broker and merges the answers. ``NOT_COORDINATOR``,
``COORDINATOR_NOT_AVAILABLE`` and ``COORDINATOR_LOAD_IN_PROGRESS``, for the whole
request or for the group inside it, find the coordinator again and retry until
``request_timeout_ms`` has passed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from client.admin_types import (
    GROUP_STATES,
    BrokerDescription,
    ClusterDescription,
    ConfigEntry,
    GroupDescription,
    GroupListing,
    MemberDescription,
    PartitionDescription,
    TopicDescription,
)
from client.cluster import Cluster
from client.errors import (
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    LogServerError,
    NetworkError,
    NotControllerError,
    NotCoordinatorError,
    UnknownServerError,
    UnknownTopicOrPartitionError,
    error_class_for_code,
    error_for_code,
)
from client.group.coordinator_lookup import CoordinatorLookup
from client.group.member_metadata import Assignment, MemberMetadataError
from client.list_offsets import EARLIEST, LATEST, list_offsets
from client.protocol import ApiKey
from client.topic_partition import OffsetAndMetadata, OffsetAndTimestamp, TopicPartition

__all__ = ["EARLIEST", "LATEST", "Admin", "OffsetSpec"]

log = logging.getLogger(__name__)

OffsetSpec = int | str  # "earliest", "latest" or a timestamp in ms

_MAX_ATTEMPTS = 4
_FIRST_BACKOFF_S = 0.1
_MAX_BACKOFF_S = 1.0

T = TypeVar("T")

# A group's coordinator moved, is being elected, or is still loading the group.
_COORDINATOR_MOVED = (
    NotCoordinatorError,
    CoordinatorNotAvailableError,
    CoordinatorLoadInProgressError,
)


def response_error(code: int, message: str | None) -> LogServerError:
    """The error for a per-item code, without the ``[NAME]`` prefix the broker's text repeats."""
    prefix = f"[{error_class_for_code(code).name}] "
    if message and message.startswith(prefix):
        message = message[len(prefix) :]
    return error_for_code(code, message)


def _timestamp_for(tp: TopicPartition, spec: OffsetSpec) -> int:
    if spec == "earliest":
        return EARLIEST
    if spec == "latest":
        return LATEST
    if type(spec) is int and spec >= EARLIEST:
        return spec
    raise ValueError(
        f"{tp}: offset spec must be 'earliest', 'latest' or a timestamp in ms, not {spec!r}"
    )


class Admin:
    def __init__(
        self,
        bootstrap_servers: str | Sequence[str] | None = None,
        *,
        client_id: str = "logserver-admin",
        request_timeout_ms: int = 30_000,
    ) -> None:
        if request_timeout_ms < 1:
            raise ValueError(f"request_timeout_ms must be >= 1, not {request_timeout_ms}")
        self.request_timeout_ms = request_timeout_ms
        self._cluster = Cluster(
            bootstrap_servers,
            client_id=client_id,
            request_timeout_ms=request_timeout_ms,
            allow_auto_topic_creation=False,
        )
        self._coordinators = CoordinatorLookup(self._cluster, timeout_ms=request_timeout_ms)
        self._closed = False

    # -- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        """Connect to a bootstrap broker now (optional: every call connects on demand).

        Raises ``NetworkError`` naming each address tried when none answers.
        """
        self._check_open()
        await self._with_retries(lambda timeout_ms: self._cluster.any_connection())

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._coordinators.close()
            await self._cluster.close()

    async def __aenter__(self) -> Admin:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- topics -----------------------------------------------------------------------

    async def create_topic(
        self,
        name: str,
        num_partitions: int = -1,
        replication_factor: int = -1,
        config: Mapping[str, str] | None = None,
        *,
        validate_only: bool = False,
    ) -> None:
        """Create ``name`` (-1: the broker's default partitions / replication factor).

        Raises ``TopicAlreadyExistsError``, ``InvalidTopicError``,
        ``InvalidPartitionsError``, ``InvalidReplicationFactorError`` or
        ``InvalidConfigurationError``, each naming what is wrong.
        """
        spec = {
            "name": name,
            "num_partitions": num_partitions,
            "replication_factor": replication_factor,
            "configs": dict(config or {}),
        }
        body = {"topics": [spec], "validate_only": validate_only}
        reply = await self._with_retries(self._to_any(ApiKey.CREATE_TOPICS, body))
        _raise_for_topic(reply, name)

    async def delete_topic(self, name: str) -> None:
        """Delete ``name``; raises ``UnknownTopicOrPartitionError`` when it does not exist."""
        body = {"topics": [name]}
        reply = await self._with_retries(self._to_any(ApiKey.DELETE_TOPICS, body))
        _raise_for_topic(reply, name)

    async def list_topics(self) -> list[str]:
        """Every topic's name, sorted."""
        body = {"topics": None, "allow_auto_topic_creation": False}
        reply = await self._with_retries(self._to_any(ApiKey.METADATA, body))
        return sorted(name for name, error, _ in reply["topics"] if not error)

    async def describe_topic(self, name: str) -> TopicDescription:
        """Partitions with leader, replicas, ISR and the leader's log start and end offsets.

        Raises ``UnknownTopicOrPartitionError`` when the topic does not exist. A
        partition without a leader, or whose leader did not answer, has offsets None.
        """

        async def fetch(timeout_ms: int) -> dict[int, Any]:
            metadata = await self._cluster.refresh([name])
            partitions = metadata.topics.get(name)
            if partitions is None:
                code = metadata.topic_errors.get(name) or UnknownTopicOrPartitionError.code
                raise response_error(code, f"topic {name!r} does not exist")
            return partitions

        partitions = await self._with_retries(fetch)
        led = [TopicPartition(name, p) for p, info in partitions.items() if info.leader >= 0]
        earliest, latest = await asyncio.gather(
            self._list_offsets(dict.fromkeys(led, EARLIEST), raise_errors=False),
            self._list_offsets(dict.fromkeys(led, LATEST), raise_errors=False),
        )
        described = []
        for p, info in sorted(partitions.items()):
            start = earliest.get(TopicPartition(name, p))
            end = latest.get(TopicPartition(name, p))
            described.append(
                PartitionDescription(
                    partition=p,
                    leader=info.leader,
                    leader_epoch=info.leader_epoch,
                    replicas=info.replicas,
                    isr=info.isr,
                    log_start_offset=None if start is None else start.offset,
                    log_end_offset=None if end is None else end.offset,
                )
            )
        return TopicDescription(name, tuple(described))

    # -- configs ----------------------------------------------------------------------

    async def describe_configs(self, topic: str) -> dict[str, ConfigEntry]:
        """Every setting of ``topic`` (overrides and defaults), by name."""
        body = {"resources": [{"type": "topic", "name": topic, "keys": None}]}

        async def describe(timeout_ms: int) -> dict[str, ConfigEntry]:
            reply = await self._to_any(ApiKey.DESCRIBE_CONFIGS, body)(timeout_ms)
            resource = _the_resource(reply, topic)
            return {
                name: ConfigEntry(name, value, source, bool(read_only))
                for name, value, source, read_only in resource["configs"]
            }

        return await self._with_retries(describe)

    async def alter_configs(
        self,
        topic: str,
        set: Mapping[str, str] | None = None,
        delete: Iterable[str] = (),
    ) -> None:
        """Set and remove overrides of ``topic``, leaving its other overrides as they are.

        Raises ``InvalidConfigurationError`` for an unknown key or a bad value
        (nothing is changed then), ``UnknownTopicOrPartitionError`` for no such topic.
        """
        resource = {"type": "topic", "name": topic, "set": dict(set or {}), "delete": list(delete)}
        body = {"resources": [resource], "validate_only": False}

        async def alter(timeout_ms: int) -> None:
            reply = await self._to_any(ApiKey.ALTER_CONFIGS, body)(timeout_ms)
            _the_resource(reply, topic)

        await self._with_retries(alter)

    # -- offsets and cluster ----------------------------------------------------------

    async def list_offsets(
        self, requests: Mapping[TopicPartition, OffsetSpec]
    ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        """Each partition's earliest or latest offset, or its first record at/after a timestamp.

        ``earliest``/``latest`` give ``OffsetAndTimestamp(offset, -1)``; a
        timestamp after every record gives None. Raises ``ValueError`` for a bad
        spec, and the partition's error (``UnknownTopicOrPartitionError``, …).
        """
        wanted = {TopicPartition(*tp): _timestamp_for(tp, spec) for tp, spec in requests.items()}
        found = await self._list_offsets(wanted, raise_errors=True)
        return {tp: found.get(tp) for tp in wanted}

    async def describe_cluster(self) -> ClusterDescription:
        body = {"topics": [], "allow_auto_topic_creation": False}
        reply = await self._with_retries(self._to_any(ApiKey.METADATA, body))
        brokers = sorted(
            (
                BrokerDescription(b[0], b[1], b[2], b[3] if len(b) > 3 else None)
                for b in reply["brokers"]
            ),
            key=lambda b: b.broker_id,
        )
        return ClusterDescription(tuple(brokers), reply["controller_id"])

    async def describe_topics(
        self, names: Iterable[str] | None = None
    ) -> dict[str, TopicDescription]:
        """Leader, replicas and ISR of every partition of ``names`` (default: every topic).

        One Metadata request and no ListOffsets, so the descriptions' offsets are
        None: what a health check (under-replicated partitions) needs, cheap even
        while a leader is down. Raises ``UnknownTopicOrPartitionError`` when a
        topic named does not exist.
        """
        wanted = None if names is None else sorted(set(names))
        body = {"topics": wanted, "allow_auto_topic_creation": False}
        reply = await self._with_retries(self._to_any(ApiKey.METADATA, body))
        described = {}
        for name, error, partitions in reply["topics"]:
            if error:
                raise response_error(error, f"topic {name!r} does not exist")
            described[name] = TopicDescription(
                name,
                tuple(
                    PartitionDescription(p[0], p[2], p[3], tuple(p[4]), tuple(p[5]), None, None)
                    for p in sorted(partitions)
                ),
            )
        return dict(sorted(described.items()))

    async def elect_leaders(
        self, topics: Iterable[str] | None = None
    ) -> dict[TopicPartition, LogServerError | None]:
        """Give each partition (of ``topics``, default every topic) back to its preferred leader.

        The preferred leader is the partition's first replica. Per partition:
        None (elected), ``ElectionNotNeededError`` (it leads already),
        ``PreferredLeaderNotAvailableError`` (it is dead or out of the ISR),
        ``UnknownTopicOrPartitionError`` (a topic that does not exist appears as
        partition -1), or another error of the controller's. The request goes to
        the controller that Metadata names (each broker in turn while none is
        named); ``NOT_CONTROLLER`` or a lost connection refreshes and retries.
        """
        wanted = None if topics is None else [[t, None] for t in dict.fromkeys(topics)]
        body = {"topics": wanted}

        async def elect(timeout_ms: int) -> dict[str, Any]:
            return await self._to_controller(ApiKey.ELECT_LEADERS, body, timeout_ms)

        reply = await self._with_retries(elect)
        results: dict[TopicPartition, LogServerError | None] = {}
        for topic, partition, error, message in reply["results"]:
            tp = TopicPartition(topic, partition)
            results[tp] = response_error(error, message) if error else None
        return results

    # -- consumer groups --------------------------------------------------------------

    async def list_groups(self, states: Iterable[str] | None = None) -> list[GroupListing]:
        """Every group of every broker, sorted by id (ListGroups to each broker in the metadata).

        ``states`` keeps only the groups in those states (Kafka's names, see
        ``GROUP_STATES``; ``ValueError`` for others). A group with committed
        offsets and no members is listed ``Empty``. A broker that does not answer
        fails the call (``NetworkError`` naming it) rather than leave its groups out.
        """
        wanted = None if states is None else _group_states(states)
        body = {"states_filter": sorted(wanted or ())}

        async def ask(broker: BrokerDescription, timeout_ms: int) -> list[GroupListing]:
            connection = await self._cluster.connection_to(
                broker.host, broker.port, broker.broker_id
            )
            reply, _ = await connection.request(ApiKey.LIST_GROUPS, body, timeout_ms=timeout_ms)
            return [
                GroupListing(group_id, protocol_type or "", state, broker.broker_id)
                for group_id, protocol_type, state in reply["groups"]
            ]

        async def attempt(timeout_ms: int) -> list[GroupListing]:
            metadata = {"topics": [], "allow_auto_topic_creation": False}
            found = await self._to_any(ApiKey.METADATA, metadata)(timeout_ms)
            brokers = [BrokerDescription(b[0], b[1], b[2]) for b in found["brokers"]]
            answers = await asyncio.gather(
                *(ask(broker, timeout_ms) for broker in brokers), return_exceptions=True
            )
            merged: dict[str, GroupListing] = {}
            for answer in answers:
                if isinstance(answer, BaseException):
                    raise answer
                for listing in answer:
                    # While a coordinator moves, two brokers may both name a group.
                    known = merged.get(listing.group_id)
                    if known is None or known.state == "Dead":
                        merged[listing.group_id] = listing
            return [
                listing
                for _, listing in sorted(merged.items())
                if wanted is None or listing.state in wanted
            ]

        return await self._with_retries(attempt, retriable=True)

    async def describe_groups(self, group_ids: Iterable[str]) -> dict[str, GroupDescription]:
        """State, assignor and members (with their assignments) of each group, by id.

        An unknown group is described ``Dead`` with no members, as Kafka does.
        Raises the group's error otherwise (``InvalidGroupIdError``, …).
        """
        ids = list(dict.fromkeys(group_ids))
        described = await asyncio.gather(*(self._describe_group(g) for g in ids))
        return dict(zip(ids, described, strict=True))

    async def delete_groups(self, group_ids: Iterable[str]) -> dict[str, LogServerError | None]:
        """Delete each group's committed offsets and the group itself; per group, None or the error.

        ``NonEmptyGroupError`` for a group with members, ``GroupIdNotFoundError``
        for a group the coordinator does not know; a failure to reach the
        coordinator is that group's error too.
        """
        ids = list(dict.fromkeys(group_ids))
        results = await asyncio.gather(*(self._delete_group(g) for g in ids))
        return dict(zip(ids, results, strict=True))

    async def list_group_offsets(
        self, group_id: str, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, OffsetAndMetadata]:
        """The group's committed offsets (of ``partitions``, default all), by partition.

        Partitions without a committed offset are left out; an unknown group has none.
        """
        topics = None
        if partitions is not None:
            by_topic: dict[str, set[int]] = defaultdict(set)
            for tp in partitions:
                by_topic[tp[0]].add(tp[1])
            if not by_topic:
                return {}
            topics = [[topic, sorted(ps)] for topic, ps in sorted(by_topic.items())]
        body = {"group_id": group_id, "topics": topics}

        async def attempt(timeout_ms: int) -> dict[TopicPartition, OffsetAndMetadata]:
            reply = await self._to_coordinator(group_id, ApiKey.OFFSET_FETCH, body, timeout_ms)
            found: dict[TopicPartition, OffsetAndMetadata] = {}
            for topic, rows in reply["topics"]:
                for partition, offset, metadata, error in rows:
                    tp = TopicPartition(topic, partition)
                    if error:
                        raise response_error(
                            error, f"committed offset of {tp} in group {group_id!r}"
                        )
                    if offset >= 0:
                        found[tp] = OffsetAndMetadata(offset, metadata or "")
            return dict(sorted(found.items()))

        return await self._with_coordinator(group_id, attempt)

    async def alter_group_offsets(
        self, group_id: str, offsets: Mapping[TopicPartition, int | OffsetAndMetadata]
    ) -> None:
        """Commit ``offsets`` for the group from outside it (generation -1, no member id).

        The coordinator allows this only while the group has no members. Raises
        the first partition's error (``OffsetOutOfRangeError`` for a negative
        offset or one past the log end, ``UnknownTopicOrPartitionError``, …),
        naming how many others failed too, and ``ValueError`` for an offset that
        is not an int.
        """
        by_topic: dict[str, list[list[Any]]] = defaultdict(list)
        for tp, value in offsets.items():
            committed = value if isinstance(value, OffsetAndMetadata) else OffsetAndMetadata(value)
            if type(committed.offset) is not int:
                raise ValueError(f"{TopicPartition(*tp)}: offset must be an int, not {value!r}")
            by_topic[tp[0]].append([tp[1], committed.offset, committed.metadata])
        if not by_topic:
            return
        body = {
            "group_id": group_id,
            "generation_id": -1,
            "member_id": "",
            "group_instance_id": None,
            "topics": [[topic, sorted(rows)] for topic, rows in sorted(by_topic.items())],
        }

        async def attempt(timeout_ms: int) -> None:
            reply = await self._to_coordinator(group_id, ApiKey.OFFSET_COMMIT, body, timeout_ms)
            failed = [
                response_error(error, message or f"{TopicPartition(topic, partition)}")
                for topic, rows in reply["topics"]
                for partition, error, message in rows
                if error
            ]
            if failed:
                first = failed[0]
                if len(failed) > 1 and not isinstance(first, _COORDINATOR_MOVED):
                    raise type(first)(f"{first.message} (and {len(failed) - 1} more partitions)")
                raise first

        await self._with_coordinator(group_id, attempt)

    # -- internals --------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the admin client is closed")

    def _to_any(
        self, api_key: ApiKey, body: dict[str, Any]
    ) -> Callable[[int], Awaitable[dict[str, Any]]]:
        async def send(timeout_ms: int) -> dict[str, Any]:
            connection = await self._cluster.any_connection()
            reply, _ = await connection.request(api_key, body, timeout_ms=timeout_ms)
            return reply

        return send

    async def _to_controller(
        self, api_key: ApiKey, body: dict[str, Any], timeout_ms: int
    ) -> dict[str, Any]:
        """Send to the controller Metadata names; while it names none, to each broker in turn."""
        metadata = {"topics": [], "allow_auto_topic_creation": False}
        found = await self._to_any(ApiKey.METADATA, metadata)(timeout_ms)
        brokers = {b[0]: (b[1], b[2]) for b in found["brokers"]}
        controller = found["controller_id"]
        candidates = [controller] if controller in brokers else sorted(brokers)
        if not candidates:
            raise NotControllerError("the cluster metadata names no broker")
        last: LogServerError | None = None
        for broker_id in candidates:
            host, port = brokers[broker_id]
            try:
                connection = await self._cluster.connection_to(host, port, broker_id)
                reply, _ = await connection.request(api_key, body, timeout_ms=timeout_ms)
            except (NotControllerError, NetworkError) as exc:
                last = exc
                continue
            return reply
        assert last is not None
        raise last

    async def _describe_group(self, group_id: str) -> GroupDescription:
        body = {"groups": [group_id]}

        async def attempt(timeout_ms: int) -> GroupDescription:
            reply = await self._to_coordinator(group_id, ApiKey.DESCRIBE_GROUPS, body, timeout_ms)
            for error, found, state, protocol_type, protocol, members in reply["groups"]:
                if found != group_id:
                    continue
                if error:
                    raise response_error(error, f"describing group {group_id!r}")
                coordinator_id, _, _ = await self._coordinators.coordinator(group_id)
                return GroupDescription(
                    group_id=group_id,
                    state=state,
                    protocol_type=protocol_type or "",
                    protocol=protocol or "",
                    members=tuple(
                        MemberDescription(
                            member_id, instance_id, client_id, host, _assigned_partitions(data)
                        )
                        for member_id, instance_id, client_id, host, _, data in members
                    ),
                    coordinator_id=coordinator_id,
                )
            raise UnknownServerError(
                f"the coordinator's answer does not mention group {group_id!r}"
            )

        return await self._with_coordinator(group_id, attempt)

    async def _delete_group(self, group_id: str) -> LogServerError | None:
        body = {"groups": [group_id]}

        async def attempt(timeout_ms: int) -> LogServerError | None:
            reply = await self._to_coordinator(group_id, ApiKey.DELETE_GROUPS, body, timeout_ms)
            for found, error, message in reply["results"]:
                if found != group_id:
                    continue
                if not error:
                    return None
                failure = response_error(error, message or f"group {group_id!r}")
                if isinstance(failure, _COORDINATOR_MOVED):
                    raise failure
                return failure
            raise UnknownServerError(
                f"the coordinator's answer does not mention group {group_id!r}"
            )

        try:
            return await self._with_coordinator(group_id, attempt)
        except LogServerError as exc:
            return exc

    async def _to_coordinator(
        self, group_id: str, api_key: ApiKey, body: dict[str, Any], timeout_ms: int
    ) -> dict[str, Any]:
        reply, _ = await self._coordinators.request(group_id, api_key, body, timeout_ms=timeout_ms)
        return reply

    async def _with_coordinator(self, group_id: str, attempt: Callable[[int], Awaitable[T]]) -> T:
        """Run ``attempt(timeout_ms)``; a coordinator error inside the answer finds it again."""
        self._check_open()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout_ms / 1000
        delay = _FIRST_BACKOFF_S
        while True:
            remaining_ms = max(1, int((deadline - loop.time()) * 1000))
            try:
                return await attempt(remaining_ms)
            except _COORDINATOR_MOVED as exc:
                if loop.time() + delay >= deadline:
                    raise
                if not isinstance(exc, CoordinatorLoadInProgressError):
                    self._coordinators.forget(group_id)
                log.debug("group %s: %s; retrying in %.1f s", group_id, exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_BACKOFF_S)

    async def _with_retries(
        self, attempt: Callable[[int], Awaitable[T]], *, retriable: bool = False
    ) -> T:
        """Run ``attempt(timeout_ms)``, retrying ``invalid_metadata`` errors within the deadline
        (and any ``retriable`` one when asked)."""
        self._check_open()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.request_timeout_ms / 1000
        delay = _FIRST_BACKOFF_S
        tries = 0
        while True:
            tries += 1
            remaining_ms = max(1, int((deadline - loop.time()) * 1000))
            try:
                return await attempt(remaining_ms)
            except LogServerError as exc:
                if (
                    not (
                        exc.invalid_metadata
                        or isinstance(exc, NotControllerError)
                        or (retriable and exc.retriable)
                    )
                    or tries >= _MAX_ATTEMPTS
                    or loop.time() + delay >= deadline
                ):
                    raise
                log.debug("admin request failed (%s); retrying in %.1f s", exc, delay)
            self._cluster.invalidate()
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_BACKOFF_S)

    async def _list_offsets(
        self, wanted: dict[TopicPartition, int], *, raise_errors: bool
    ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        self._check_open()
        return await list_offsets(self._cluster, wanted, raise_errors=raise_errors)


def _raise_for_topic(reply: dict[str, Any], name: str) -> None:
    for topic, error, message in reply["topics"]:
        if topic == name and error:
            raise response_error(error, message)


def _the_resource(reply: dict[str, Any], name: str) -> dict[str, Any]:
    for resource in reply["resources"]:
        if resource["name"] == name:
            if resource["error"]:
                raise response_error(resource["error"], resource.get("error_message"))
            return resource
    raise UnknownTopicOrPartitionError(f"the broker's answer does not mention topic {name!r}")


def _group_states(states: Iterable[str]) -> frozenset[str]:
    """Kafka's state names, matched case-insensitively; ``ValueError`` for others."""
    canonical = {state.lower(): state for state in GROUP_STATES}
    wanted = set()
    for state in states:
        found = canonical.get(state.strip().lower())
        if found is None:
            raise ValueError(
                f"unknown group state {state!r}: expected one of {', '.join(GROUP_STATES)}"
            )
        wanted.add(found)
    return frozenset(wanted)


def _assigned_partitions(data: bytes | None) -> frozenset[TopicPartition]:
    """The partitions of a member's assignment; empty when the bytes are not ours to read
    (another client's format) or there are none yet (a rebalance under way)."""
    if not data:
        return frozenset()
    try:
        return frozenset(Assignment.decode(data).partitions)
    except MemberMetadataError as exc:
        log.debug("undecodable assignment (%d bytes): %s", len(data), exc)
        return frozenset()
