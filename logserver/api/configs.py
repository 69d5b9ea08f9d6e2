"""DescribeConfigs and AlterConfigs, for topics (and reading the broker's own settings).

DescribeConfigs request: ``{"resources": [{"type": "topic"|"broker", "name",
"keys": null | [key, …]}, …]}``; response: ``{"resources": [{"type", "name",
"error", "error_message", "configs": [[key, value, source, read_only], …]}, …]}``
with ``source`` one of ``topic`` (an override), ``default`` (the broker's
default) or ``broker``.

AlterConfigs request: ``{"resources": [{"type": "topic", "name", "set": {k: v},
"delete": [k, …]}, …], "validate_only": bool}``; it changes only the keys named
(Kafka's IncrementalAlterConfigs semantics, which is what operators mean).
Response: ``{"resources": [{"type", "name", "error", "error_message"}, …]}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from client.errors import (
    InvalidConfigurationError,
    InvalidRequestError,
    LogServerError,
    UnknownTopicOrPartitionError,
)
from logserver.api.checks import list_field
from logserver.network.response import Response
from logserver.topic_config import check_topic_config, log_config_for

if TYPE_CHECKING:
    from logserver.broker import Broker

__all__ = ["handle_alter_configs", "handle_describe_configs"]


def _topic_defaults(broker: Broker) -> dict[str, str]:
    defaults = broker.config.log_config().to_properties()
    defaults.update(
        {
            "cleanup.policy": "delete",
            "min.insync.replicas": str(broker.config.min_insync_replicas or 1),  # per topic
            "unclean.leader.election.enable": "false",
        }
    )
    return defaults


def _describe_topic(broker: Broker, name: str) -> list[list[Any]]:
    assignment = broker.topics.get(name)
    if assignment is None:
        raise UnknownTopicOrPartitionError(f"topic {name!r} does not exist")
    overrides = assignment.config
    effective = _topic_defaults(broker)
    effective["min.insync.replicas"] = str(broker.min_insync_replicas(name))
    effective.update(log_config_for(overrides, broker.config.log_config()).to_properties())
    effective.update(overrides)
    return [
        [key, value, "topic" if key in overrides else "default", False]
        for key, value in sorted(effective.items())
    ]


def handle_describe_configs(broker: Broker, body: dict[str, Any], tail: memoryview) -> Response:
    results = []
    for resource in list_field(body, "resources"):
        kind, name, keys = resource["type"], resource["name"], resource.get("keys")
        entry: dict[str, Any] = {"type": kind, "name": name, "error": 0, "error_message": None}
        try:
            if kind == "topic":
                configs = _describe_topic(broker, name)
            elif kind == "broker":
                if str(name) not in ("", str(broker.broker_id)):
                    raise InvalidRequestError(f"this is broker {broker.broker_id}, not {name!r}")
                configs = [
                    [k, v, "broker", True] for k, v in sorted(broker.config.to_properties().items())
                ]
            else:
                raise InvalidRequestError(f"unknown resource type {kind!r}")
        except LogServerError as exc:
            entry.update(error=exc.code, error_message=exc.message, configs=[])
        else:
            if keys is not None:
                wanted = set(keys)
                configs = [c for c in configs if c[0] in wanted]
            entry["configs"] = configs
        results.append(entry)
    return Response({"resources": results})


async def _alter(broker: Broker, body: dict[str, Any]) -> Response:
    validate_only = bool(body.get("validate_only", False))
    results = []
    for resource in list_field(body, "resources"):
        kind, name = resource["type"], resource["name"]
        to_set = resource.get("set") or {}
        to_delete = resource.get("delete") or []
        entry: dict[str, Any] = {"type": kind, "name": name, "error": 0, "error_message": None}
        try:
            if kind != "topic":
                raise InvalidRequestError(
                    f"only topic configs can be altered, not {kind!r} (broker settings are "
                    "read at startup)"
                )
            if not isinstance(to_set, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in to_set.items()
            ):
                raise InvalidRequestError("'set' must map strings to strings")
            if not isinstance(to_delete, list) or not all(isinstance(k, str) for k in to_delete):
                raise InvalidRequestError("'delete' must be an array of strings")
            assignment = broker.topics.get(name)
            if assignment is None:
                raise UnknownTopicOrPartitionError(f"topic {name!r} does not exist")
            merged = {k: v for k, v in assignment.config.items() if k not in to_delete}
            merged.update(to_set)
            unknown = set(to_delete) - set(_topic_defaults(broker))
            if unknown:
                raise InvalidConfigurationError(f"unknown topic config {sorted(unknown)[0]!r}")
            check_topic_config(merged)
            if not validate_only:
                await broker.coordinator.alter_topic_config(name, to_set, to_delete)
                await broker.sync_topic(name)
        except LogServerError as exc:
            entry.update(error=exc.code, error_message=exc.message)
        results.append(entry)
    return Response({"resources": results})


def handle_alter_configs(broker: Broker, body: dict[str, Any], tail: memoryview) -> Any:
    return _alter(broker, body)
