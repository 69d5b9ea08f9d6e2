"""API keys with Kafka's numbers, so a Kafka user reading a trace recognises them."""

from __future__ import annotations

import enum

__all__ = ["SUPPORTED_VERSIONS", "ApiKey"]


class ApiKey(enum.IntEnum):
    PRODUCE = 0
    FETCH = 1
    LIST_OFFSETS = 2
    METADATA = 3
    OFFSET_COMMIT = 8
    OFFSET_FETCH = 9
    FIND_COORDINATOR = 10
    JOIN_GROUP = 11
    HEARTBEAT = 12
    LEAVE_GROUP = 13
    SYNC_GROUP = 14
    DESCRIBE_GROUPS = 15
    LIST_GROUPS = 16
    API_VERSIONS = 18
    CREATE_TOPICS = 19
    DELETE_TOPICS = 20
    OFFSETS_FOR_LEADER_EPOCH = 23
    DESCRIBE_CONFIGS = 32
    ALTER_CONFIGS = 33
    DELETE_GROUPS = 42
    ELECT_LEADERS = 43


# The (min, max) versions this code speaks; the broker answers ApiVersions with
# the subset it implements.
SUPPORTED_VERSIONS: dict[ApiKey, tuple[int, int]] = {
    ApiKey.PRODUCE: (0, 0),
    ApiKey.FETCH: (0, 0),
    ApiKey.LIST_OFFSETS: (0, 0),
    ApiKey.METADATA: (0, 0),
    ApiKey.API_VERSIONS: (0, 0),
    ApiKey.CREATE_TOPICS: (0, 0),
    ApiKey.DELETE_TOPICS: (0, 0),
    ApiKey.DESCRIBE_CONFIGS: (0, 0),
    ApiKey.ALTER_CONFIGS: (0, 0),
    ApiKey.OFFSETS_FOR_LEADER_EPOCH: (0, 0),
    ApiKey.ELECT_LEADERS: (0, 0),
    ApiKey.FIND_COORDINATOR: (0, 0),
    ApiKey.JOIN_GROUP: (0, 0),
    ApiKey.SYNC_GROUP: (0, 0),
    ApiKey.HEARTBEAT: (0, 0),
    ApiKey.LEAVE_GROUP: (0, 0),
    ApiKey.OFFSET_COMMIT: (0, 0),
    ApiKey.OFFSET_FETCH: (0, 0),
    ApiKey.LIST_GROUPS: (0, 0),
    ApiKey.DESCRIBE_GROUPS: (0, 0),
    ApiKey.DELETE_GROUPS: (0, 0),
}
