"""CreateTopics and DeleteTopics.

CreateTopics request: ``{"topics": [{"name", "num_partitions" (-1: broker
default), "replication_factor" (-1: broker default), "configs": {k: v}}, …],
"validate_only": bool}``. DeleteTopics request: ``{"topics": [name, …]}``.
Both answer ``{"topics": [[name, error, error_message], …]}``; the topic is
usable (or gone) on this broker when the response is sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from client.errors import (
    InvalidPartitionsError,
    InvalidReplicationFactorError,
    InvalidRequestError,
    InvalidTopicError,
    LogServerError,
    PolicyViolationError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from client.topics import validate_topic_name
from logserver.api.checks import list_field
from logserver.groups.placement import OFFSETS_TOPIC
from logserver.network.response import Response
from logserver.topic_config import check_topic_config

if TYPE_CHECKING:
    from logserver.broker import Broker

__all__ = ["create_topic", "handle_create_topics", "handle_delete_topics"]


async def create_topic(
    broker: Broker,
    name: str,
    partitions: int,
    replication_factor: int,
    configs: Mapping[str, str],
    *,
    validate_only: bool = False,
) -> None:
    validate_topic_name(name)
    check_topic_config(configs)
    partitions = broker.config.num_partitions if partitions == -1 else partitions
    if replication_factor == -1:
        replication_factor = broker.config.replication_factor
    if validate_only:
        if name in broker.topics or await broker.coordinator.topic(name) is not None:
            raise TopicAlreadyExistsError(f"topic {name!r} already exists")
        if partitions < 1:
            raise InvalidPartitionsError(f"{partitions} partitions: must be at least 1")
        live = len(await broker.coordinator.live_brokers())
        if not 1 <= replication_factor <= live:
            raise InvalidReplicationFactorError(
                f"replication factor {replication_factor}: must be between 1 and the "
                f"{live} live broker(s)"
            )
        return
    await broker.coordinator.create_topic(name, partitions, replication_factor, dict(configs))
    await broker.sync_topic(name)


async def _create_topics(broker: Broker, body: dict[str, Any]) -> Response:
    validate_only = bool(body.get("validate_only", False))
    results = []
    for spec in list_field(body, "topics"):
        if not isinstance(spec, dict):
            raise InvalidRequestError("each topic to create must be a map")
        name = spec.get("name")
        try:
            partitions = spec.get("num_partitions", -1)
            factor = spec.get("replication_factor", -1)
            configs = spec.get("configs") or {}
            if type(partitions) is not int or type(factor) is not int:
                raise InvalidRequestError("num_partitions and replication_factor must be integers")
            if not isinstance(configs, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in configs.items()
            ):
                raise InvalidRequestError("configs must map strings to strings")
            await create_topic(
                broker,
                name,
                partitions,
                factor,
                configs,
                validate_only=validate_only,  # type: ignore[arg-type]
            )
        except LogServerError as exc:
            results.append([name, exc.code, exc.message])
        else:
            results.append([name, 0, None])
    return Response({"topics": results})


def handle_create_topics(broker: Broker, body: dict[str, Any], tail: memoryview) -> Any:
    return _create_topics(broker, body)


async def _delete_topics(broker: Broker, body: dict[str, Any]) -> Response:
    results = []
    for name in list_field(body, "topics"):
        try:
            validate_topic_name(name)
            if name == OFFSETS_TOPIC:
                raise InvalidTopicError(
                    f"{OFFSETS_TOPIC} is an internal topic: its partition leaders coordinate the "
                    "consumer groups, so it cannot be deleted (delete groups with DeleteGroups)"
                )
            if not broker.config.delete_topic_enable:
                raise PolicyViolationError("topic deletion is disabled (delete.topic.enable=false)")
            if name not in broker.topics and await broker.coordinator.topic(name) is None:
                raise UnknownTopicOrPartitionError(f"topic {name!r} does not exist")
            await broker.coordinator.delete_topic(name)
            await broker.sync_topic(name)
        except LogServerError as exc:
            results.append([name, exc.code, exc.message])
        else:
            results.append([name, 0, None])
    return Response({"topics": results})


def handle_delete_topics(broker: Broker, body: dict[str, Any], tail: memoryview) -> Any:
    return _delete_topics(broker, body)
