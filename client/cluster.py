"""What a client knows of the cluster: brokers, partition leaders, and connections to them.

Metadata is fetched from any reachable bootstrap or known broker, cached, and
refreshed on demand: callers invalidate it when a response carries an error
whose class says ``invalid_metadata`` (``NOT_LEADER_OR_FOLLOWER``,
``UNKNOWN_TOPIC_OR_PARTITION``, connection loss), and the next lookup fetches
it again. One connection per broker is shared by everything using this object.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
from collections.abc import Iterable, Sequence

from client.connection import BrokerConnection
from client.errors import (
    LeaderNotAvailableError,
    LogServerError,
    NetworkError,
    UnknownTopicOrPartitionError,
    error_for_code,
)
from client.protocol import ApiKey

__all__ = ["BrokerAddress", "Cluster", "ClusterMetadata", "PartitionInfo", "parse_bootstrap"]

log = logging.getLogger(__name__)

DEFAULT_BOOTSTRAP = "localhost:9092"


@dataclasses.dataclass(frozen=True, slots=True)
class BrokerAddress:
    broker_id: int
    host: str
    port: int
    rack: str | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class PartitionInfo:
    topic: str
    partition: int
    leader: int
    leader_epoch: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    error: int = 0


@dataclasses.dataclass(frozen=True, slots=True)
class ClusterMetadata:
    brokers: dict[int, BrokerAddress]
    controller_id: int
    topics: dict[str, dict[int, PartitionInfo]]
    topic_errors: dict[str, int]


def parse_bootstrap(servers: str | Sequence[str] | None) -> list[tuple[str, int]]:
    """``host:port`` list from a comma string or a sequence; default ``$LOGSERVER_BROKERS``."""
    if servers is None:
        servers = os.environ.get("LOGSERVER_BROKERS") or DEFAULT_BOOTSTRAP
    items = servers.split(",") if isinstance(servers, str) else list(servers)
    out = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        host, sep, port = item.rpartition(":")
        if not sep or not port.isdigit():
            raise ValueError(f"bootstrap server {item!r} is not host:port")
        out.append((host.strip("[]") or "localhost", int(port)))
    if not out:
        raise ValueError("no bootstrap servers given")
    return out


class Cluster:
    def __init__(
        self,
        bootstrap_servers: str | Sequence[str] | None = None,
        *,
        client_id: str = "logserver-client",
        request_timeout_ms: int = 30_000,
        metadata_max_age_ms: int = 300_000,
        allow_auto_topic_creation: bool = True,
    ) -> None:
        self.bootstrap = parse_bootstrap(bootstrap_servers)
        self.client_id = client_id
        self.request_timeout_ms = request_timeout_ms
        self._max_age_s = metadata_max_age_ms / 1000
        self.allow_auto_topic_creation = allow_auto_topic_creation
        self.metadata = ClusterMetadata({}, -1, {}, {})
        self._fetched_at = -1e18
        self._stale = True
        self._topics: set[str] = set()
        self._connections: dict[tuple[str, int], BrokerConnection] = {}
        self._connecting: dict[tuple[str, int], asyncio.Future[BrokerConnection]] = {}
        self._refreshing: asyncio.Future[None] | None = None
        self._closed = False

    # -- connections ------------------------------------------------------------------

    async def connection_to(self, host: str, port: int, node_id: int = -1) -> BrokerConnection:
        if self._closed:
            raise NetworkError("the client is closed")
        key = (host, port)
        existing = self._connections.get(key)
        if existing is not None and not existing.closed:
            return existing
        pending = self._connecting.get(key)
        if pending is None:
            pending = asyncio.ensure_future(
                BrokerConnection.open(host, port, client_id=self.client_id, node_id=node_id)
            )
            self._connecting[key] = pending
            try:
                connection = await pending
            finally:
                self._connecting.pop(key, None)
            self._connections[key] = connection
            return connection
        return await asyncio.shield(pending)

    async def connection(self, broker_id: int) -> BrokerConnection:
        address = self.metadata.brokers.get(broker_id)
        if address is None:
            await self.refresh()
            address = self.metadata.brokers.get(broker_id)
            if address is None:
                raise LeaderNotAvailableError(f"broker {broker_id} is not in the cluster metadata")
        return await self.connection_to(address.host, address.port, broker_id)

    async def any_connection(self) -> BrokerConnection:
        """A connection to any broker: a known one first, then the bootstrap list."""
        for connection in self._connections.values():
            if not connection.closed:
                return connection
        candidates = [(b.host, b.port) for b in self.metadata.brokers.values()] + self.bootstrap
        errors = []
        for host, port in dict.fromkeys(candidates):
            try:
                return await self.connection_to(host, port)
            except NetworkError as exc:
                errors.append(str(exc))
        raise NetworkError("no broker reachable: " + "; ".join(errors))

    # -- metadata ---------------------------------------------------------------------

    def invalidate(self) -> None:
        self._stale = True

    def add_topics(self, topics: Iterable[str]) -> None:
        self._topics.update(topics)

    async def refresh(self, topics: Iterable[str] | None = None) -> ClusterMetadata:
        """Fetch metadata for the topics this client uses (all topics if ``topics`` is empty)."""
        if topics is not None:
            self._topics.update(topics)
        if self._refreshing is not None:
            await asyncio.shield(self._refreshing)
            return self.metadata
        self._refreshing = asyncio.get_running_loop().create_future()
        try:
            await self._fetch()
        except BaseException as exc:
            self._refreshing.set_exception(exc)
            self._refreshing.exception()  # retrieved: waiters re-raise their own copy
            raise
        else:
            self._refreshing.set_result(None)
        finally:
            self._refreshing = None
        return self.metadata

    async def _fetch(self) -> None:
        body = {
            "topics": sorted(self._topics) if self._topics else None,
            "allow_auto_topic_creation": self.allow_auto_topic_creation,
        }
        last: LogServerError | None = None
        for _ in range(3):
            try:
                connection = await self.any_connection()
                reply, _ = await connection.request(
                    ApiKey.METADATA, body, timeout_ms=self.request_timeout_ms
                )
                break
            except NetworkError as exc:
                last = exc
        else:
            assert last is not None
            raise last
        brokers = {
            b[0]: BrokerAddress(b[0], b[1], b[2], b[3] if len(b) > 3 else None)
            for b in reply["brokers"]
        }
        topics: dict[str, dict[int, PartitionInfo]] = {}
        errors: dict[str, int] = {}
        for name, error, partitions in reply["topics"]:
            if error:
                errors[name] = error
                continue
            topics[name] = {
                p[0]: PartitionInfo(name, p[0], p[2], p[3], tuple(p[4]), tuple(p[5]), p[1])
                for p in partitions
            }
        if self._topics:  # keep what we know of topics outside this request
            kept = {n: t for n, t in self.metadata.topics.items() if n not in topics}
            topics = {**kept, **topics}
            for name in errors:
                topics.pop(name, None)
        self.metadata = ClusterMetadata(brokers, reply["controller_id"], topics, errors)
        self._fetched_at = asyncio.get_running_loop().time()
        self._stale = False

    async def partitions_for(self, topic: str) -> dict[int, PartitionInfo]:
        """The topic's partitions, refreshing metadata when unknown or stale.

        Raises the topic's error (e.g. ``UnknownTopicOrPartitionError``).
        """
        self._topics.add(topic)
        loop = asyncio.get_running_loop()
        if (
            self._stale
            or loop.time() - self._fetched_at > self._max_age_s
            or (topic not in self.metadata.topics)
        ):
            await self.refresh()
        partitions = self.metadata.topics.get(topic)
        if partitions is None:
            code = self.metadata.topic_errors.get(topic)
            if code:
                raise error_for_code(code, f"topic {topic!r}")
            raise UnknownTopicOrPartitionError(f"topic {topic!r} is not in the metadata")
        return partitions

    def cached_partitions(self, topic: str) -> dict[int, PartitionInfo] | None:
        """The cached partitions without any I/O (the producer's per-record fast path)."""
        if self._stale:
            return None
        return self.metadata.topics.get(topic)

    async def close(self) -> None:
        self._closed = True
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()
