"""FindCoordinator: which broker coordinates a group (docs/groups.md).

Request: ``{"key": group_id, "key_type": 0}``. Response: ``{"error",
"error_message", "node_id", "host", "port"}``: the leader of the group's
``__consumer_offsets`` partition. The first request creates that topic (the
way CreateTopics does) with ``offsets.topic.num.partitions`` partitions and
replication factor ``min(offsets.topic.replication.factor, live brokers)``.
While the partition has no leader (or a new topic's roles are still being
taken) the answer is ``COORDINATOR_NOT_AVAILABLE``, which clients retry.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from client.errors import (
    CoordinatorNotAvailableError,
    InvalidRequestError,
    LogServerError,
    TopicAlreadyExistsError,
)
from logserver.api import admin
from logserver.groups.placement import OFFSETS_TOPIC
from logserver.groups.validation import check_group_id
from logserver.network.response import Response

if TYPE_CHECKING:
    from logserver.broker import Broker

__all__ = ["handle_find_coordinator"]

log = logging.getLogger(__name__)


def handle_find_coordinator(broker: Broker, body: dict[str, Any], tail: memoryview) -> Any:
    try:
        key_type = body.get("key_type", 0)
        if key_type != 0:
            raise InvalidRequestError(
                f"key_type {key_type!r}: only groups (0) have coordinators here (no transactions)"
            )
        group_id = check_group_id(body.get("key"))
    except LogServerError as exc:
        return _error(exc)
    if OFFSETS_TOPIC in broker.topics:
        return _answer(broker, group_id)
    return _create_then_answer(broker, group_id)


async def _create_then_answer(broker: Broker, group_id: str) -> Response:
    async with broker.groups.offsets_topic_lock:
        if OFFSETS_TOPIC not in broker.topics:
            live = len(await broker.coordinator.live_brokers())
            factor = max(1, min(broker.config.offsets_topic_replication_factor, live))
            partitions = broker.config.offsets_topic_num_partitions
            try:
                await admin.create_topic(broker, OFFSETS_TOPIC, partitions, factor, {})
                log.info(
                    "created %s: %d partitions, replication factor %d",
                    OFFSETS_TOPIC, partitions, factor,
                )  # fmt: skip
            except TopicAlreadyExistsError:
                await broker.sync_topic(OFFSETS_TOPIC)  # another broker made it first
            except LogServerError as exc:
                log.warning("could not create %s: %s", OFFSETS_TOPIC, exc)
                return _error(
                    CoordinatorNotAvailableError(f"{OFFSETS_TOPIC} could not be created: {exc}")
                )
    return _answer(broker, group_id)


def _answer(broker: Broker, group_id: str) -> Response:
    try:
        partition = broker.groups.partition_of(group_id)
        if partition is None:
            raise CoordinatorNotAvailableError(f"{OFFSETS_TOPIC} is being created: try again")
        state = broker.partition_states.get((OFFSETS_TOPIC, partition))
        leader = -1 if state is None else state.leader
        info = broker.broker_address(leader) if leader >= 0 else None
        if info is None:
            raise CoordinatorNotAvailableError(
                f"{OFFSETS_TOPIC}-{partition}, which coordinates group {group_id!r}, has no "
                "live leader right now: try again"
            )
    except LogServerError as exc:
        return _error(exc)
    return Response(
        {
            "error": 0,
            "error_message": None,
            "node_id": info.broker_id,
            "host": info.host,
            "port": info.port,
        }
    )


def _error(exc: LogServerError) -> Response:
    return Response(
        {"error": exc.code, "error_message": exc.message, "node_id": -1, "host": "", "port": -1}
    )
