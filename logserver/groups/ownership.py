"""The partitions an assignment names, when it is in this project's format.

Assignments are the client's bytes (docs/groups.md): Kafka's broker never looks
inside them, and neither does this one, with one exception. When the bytes
parse as this project's msgpack assignment, ``{"version": int, "partitions":
[[topic, [partition, …]], …], …}``, the coordinator refuses commits to
partitions the member was not given. Anything else (another client's format,
empty bytes) means "unknown", and commits are not checked, as in Kafka.
"""

from __future__ import annotations

import msgpack

__all__ = ["owned_partitions"]


def owned_partitions(assignment: bytes) -> frozenset[tuple[str, int]] | None:
    """The ``(topic, partition)`` pairs ``assignment`` names; None if it is not in our format."""
    if not assignment:
        return None
    try:
        data = msgpack.unpackb(assignment, raw=False)
    except (ValueError, TypeError, RecursionError):
        return None
    if not isinstance(data, dict) or type(data.get("version")) is not int:
        return None
    entries = data.get("partitions")
    if not isinstance(entries, list):
        return None
    owned: set[tuple[str, int]] = set()
    for entry in entries:
        if not isinstance(entry, list | tuple) or len(entry) != 2:
            return None
        topic, partitions = entry
        if not isinstance(topic, str) or not isinstance(partitions, list | tuple):
            return None
        for partition in partitions:
            if type(partition) is not int:
                return None
            owned.add((topic, partition))
    return frozenset(owned)
