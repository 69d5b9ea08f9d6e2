"""Metadata: brokers, controller and each topic's partitions (leader, replicas, ISR).

Request: ``{"topics": null | [name, …], "allow_auto_topic_creation": bool}``
(null: every topic). Response: ``{"brokers": [[id, host, port, rack], …],
"controller_id": int, "topics": [[name, error, [[partition, error, leader,
leader_epoch, replicas, isr], …]], …]}``. An unknown topic is created here
when both the request and ``auto.create.topics.enable`` allow it, which is how
a producer's first send creates its topic (as in Kafka).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from client.errors import (
    InvalidRequestError,
    InvalidTopicError,
    LogServerError,
    UnknownTopicOrPartitionError,
)
from client.topics import validate_topic_name
from logserver.api import admin
from logserver.network.response import Response

if TYPE_CHECKING:
    from logserver.broker import Broker

__all__ = ["handle_metadata"]

# Topics one Metadata request may auto-create; the rest are answered "unknown"
# (retriable) and created by the client's next refresh. Bounds the work one
# request can cause.
MAX_AUTO_CREATE_PER_REQUEST = 100


def handle_metadata(broker: Broker, body: dict[str, Any], tail: memoryview) -> Any:
    names = body.get("topics")
    if names is None:
        return _response(broker, sorted(broker.topics), {})
    if not isinstance(names, list):
        raise InvalidRequestError("field 'topics' must be an array or null")
    auto_create = bool(body.get("allow_auto_topic_creation", False)) and (
        broker.config.auto_create_topics_enable
    )
    errors: dict[str, LogServerError] = {}
    missing: list[str] = []
    for name in names:
        try:
            validate_topic_name(name)
        except InvalidTopicError as exc:
            errors[str(name)] = exc
            continue
        if name not in broker.topics:
            if auto_create and len(missing) < MAX_AUTO_CREATE_PER_REQUEST:
                missing.append(name)
            else:
                errors[name] = UnknownTopicOrPartitionError(f"topic {name!r} does not exist")
    requested = [n if isinstance(n, str) else str(n) for n in names]
    if not missing:
        return _response(broker, requested, errors)
    return _create_then_answer(broker, requested, missing, errors)


async def _create_then_answer(
    broker: Broker, requested: list[str], missing: list[str], errors: dict[str, LogServerError]
) -> Response:
    for name in dict.fromkeys(missing):
        try:
            await admin.create_topic(broker, name, -1, -1, {})
        except LogServerError as exc:
            if name not in broker.topics:
                errors[name] = exc
    return _response(broker, requested, errors)


def _response(broker: Broker, names: list[str], errors: dict[str, LogServerError]) -> Response:
    topics: list[list[Any]] = []
    states = broker.partition_states
    for name in dict.fromkeys(names):
        error = errors.get(name)
        assignment = broker.topics.get(name)
        if error is not None or assignment is None:
            code = (error or UnknownTopicOrPartitionError()).code
            topics.append([name, code, []])
            continue
        partitions = []
        for partition, replicas in sorted(assignment.replicas.items()):
            state = states.get((name, partition))
            if state is None:
                partitions.append(
                    [partition, 5, -1, -1, list(replicas), []]
                )  # LEADER_NOT_AVAILABLE
            else:
                partitions.append(
                    [
                        partition,
                        0,
                        state.leader,
                        state.leader_epoch,
                        list(replicas),
                        list(state.isr),
                    ]
                )
        topics.append([name, 0, partitions])
    brokers = [[b.broker_id, b.host, b.port, b.rack] for b in broker.brokers]
    controller = broker.controller_id
    return Response({"brokers": brokers, "controller_id": controller, "topics": topics})
