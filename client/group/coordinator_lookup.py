"""Finding a group's coordinator broker, and sending it group requests.

The coordinator is whichever broker FindCoordinator names (docs/groups.md):
the leader of the group's ``__consumer_offsets`` partition. It moves when
that leadership moves, so every group request goes through ``request``,
which finds the coordinator (cached per group), sends, and on
``NOT_COORDINATOR``, ``COORDINATOR_NOT_AVAILABLE``,
``COORDINATOR_LOAD_IN_PROGRESS`` or a lost connection finds it again and
retries with backoff until ``timeout_ms`` has passed. Errors inside the
response (per partition, per member) are the caller's.

Group requests travel on connections of their own, not the ones fetches and
produces use: a broker answers a connection's requests in order, and a
JoinGroup may wait at the coordinator for as long as a rebalance takes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from client.cluster import Cluster
from client.connection import BrokerConnection, Reply
from client.errors import (
    CoordinatorLoadInProgressError,
    CoordinatorNotAvailableError,
    LogServerError,
    NetworkError,
    NotCoordinatorError,
    RequestTimedOutError,
    error_for_code,
)
from client.protocol import ApiKey

__all__ = ["CoordinatorLookup"]

log = logging.getLogger(__name__)

_FIRST_BACKOFF_S = 0.05
_MAX_BACKOFF_S = 1.0
_REFIND = (NotCoordinatorError, CoordinatorNotAvailableError, NetworkError)


class CoordinatorLookup:
    """Per-group coordinator cache over one ``Cluster``."""

    def __init__(self, cluster: Cluster, *, timeout_ms: int = 30_000) -> None:
        self._cluster = cluster
        self._timeout_ms = timeout_ms
        self._coordinators: dict[str, tuple[int, str, int]] = {}
        self._connections: dict[tuple[str, int], BrokerConnection] = {}
        self._lock = asyncio.Lock()

    async def coordinator(
        self, group_id: str, *, timeout_ms: int | None = None
    ) -> tuple[int, str, int]:
        """The coordinator's broker id, host and port (found now unless cached)."""
        known = self._coordinators.get(group_id)
        if known is not None:
            return known
        deadline = time.monotonic() + (timeout_ms or self._timeout_ms) / 1000
        backoff = _FIRST_BACKOFF_S
        while True:
            try:
                connection = await self._cluster.any_connection()
                body, _ = await connection.request(
                    ApiKey.FIND_COORDINATOR,
                    {"key": group_id, "key_type": 0},
                    timeout_ms=self._remaining_ms(deadline),
                )
                code = body.get("error", 0)
                if code:
                    raise error_for_code(code, body.get("error_message"))
                found = (int(body["node_id"]), str(body["host"]), int(body["port"]))
                self._coordinators[group_id] = found
                return found
            except LogServerError as exc:
                if not (exc.retriable or isinstance(exc, NetworkError)):
                    raise
                if time.monotonic() + backoff > deadline:
                    raise
                log.debug("group %s: finding the coordinator: %s", group_id, exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF_S)

    def forget(self, group_id: str) -> None:
        """The coordinator moved (or died): find it again next time."""
        self._coordinators.pop(group_id, None)

    async def connection(self, group_id: str, *, timeout_ms: int | None = None) -> BrokerConnection:
        node_id, host, port = await self.coordinator(group_id, timeout_ms=timeout_ms)
        async with self._lock:
            existing = self._connections.get((host, port))
            if existing is not None and not existing.closed:
                return existing
            connection = await BrokerConnection.open(
                host, port, client_id=self._cluster.client_id, node_id=node_id
            )
            self._connections[(host, port)] = connection
            return connection

    def close(self) -> None:
        """Close the group connections (the cluster's own are the cluster's)."""
        for connection in self._connections.values():
            connection.close()
        self._connections.clear()

    async def request(
        self,
        group_id: str,
        api_key: int,
        body: dict[str, Any],
        *,
        timeout_ms: int | None = None,
        retry: bool = True,
    ) -> Reply:
        """Send ``body`` to the group's coordinator; see the module doc for retries.

        ``retry=False`` still finds the coordinator, but raises the first error
        (a heartbeat, say, whose caller has its own schedule).
        """
        deadline = time.monotonic() + (timeout_ms or self._timeout_ms) / 1000
        backoff = _FIRST_BACKOFF_S
        while True:
            try:
                connection = await self.connection(
                    group_id, timeout_ms=self._remaining_ms(deadline)
                )
                return await connection.request(
                    api_key, body, timeout_ms=self._remaining_ms(deadline)
                )
            except _REFIND as exc:
                self.forget(group_id)
                if not retry or time.monotonic() + backoff > deadline:
                    raise
                log.debug("group %s: coordinator lost (%s); finding it again", group_id, exc)
            except CoordinatorLoadInProgressError:
                if not retry or time.monotonic() + backoff > deadline:
                    raise
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _MAX_BACKOFF_S)

    @staticmethod
    def _remaining_ms(deadline: float) -> int:
        remaining = int((deadline - time.monotonic()) * 1000)
        if remaining <= 0:
            raise RequestTimedOutError("no coordinator answered in time")
        return remaining
