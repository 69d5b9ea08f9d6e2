"""What a member tells the group when it joins, and what the leader hands back.

Both are bytes the broker never looks inside (docs/groups.md, "Member
metadata and assignments"); only members read them, and the members of one
group may run different versions of this client. Each is a msgpack map::

    subscription  {"version": 1, "topics": [topic, ...], "user_data": bytes | nil,
                   "owned": [[topic, [partition, ...]], ...]}
    assignment    {"version": 1, "partitions": [[topic, [partition, ...]], ...],
                   "user_data": bytes | nil}

Partitions are grouped by topic, topics and partitions sorted, so equal values
encode to equal bytes. Like Kafka's ``ConsumerProtocol``, a reader accepts a
higher version and ignores the fields it does not know (a newer member may add
some); ``user_data`` and ``owned`` may be absent (an older or simpler writer).
Anything else is refused with ``MemberMetadataError``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgpack

from client.errors import InconsistentGroupProtocolError
from client.topic_partition import TopicPartition

__all__ = ["VERSION", "Assignment", "MemberMetadataError", "Subscription"]

VERSION = 1
_MAX_PARTITION = 2**31 - 1


class MemberMetadataError(InconsistentGroupProtocolError):
    """Bytes that are not a subscription or assignment this client can read.

    A member whose metadata cannot be read does not speak the group's protocol,
    hence ``INCONSISTENT_GROUP_PROTOCOL``.
    """


@dataclass(frozen=True)
class Subscription:
    """A member's JoinGroup metadata: the topics it wants and what it owned until now.

    ``owned`` is what the sticky assignor keeps in place. Topics are kept sorted
    and unique, ``owned`` sorted and unique, so equal subscriptions compare equal.
    """

    topics: tuple[str, ...]
    user_data: bytes | None = None
    owned: tuple[TopicPartition, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "topics", _topics(self.topics, "subscription topics"))
        object.__setattr__(self, "user_data", _user_data(self.user_data))
        object.__setattr__(self, "owned", _partitions(self.owned, "owned partitions"))

    def encode(self) -> bytes:
        return msgpack.packb(
            {
                "version": VERSION,
                "topics": list(self.topics),
                "user_data": self.user_data,
                "owned": _grouped(self.owned),
            },
            use_bin_type=True,
        )

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> Subscription:
        """Raises ``MemberMetadataError`` for anything but a subscription map."""
        body = _unpack(data, "subscription")
        topics = body.get("topics")
        if not isinstance(topics, list) or not all(isinstance(t, str) for t in topics):
            raise MemberMetadataError(f"subscription topics must be a list of strings: {topics!r}")
        return cls(
            topics=tuple(topics),
            user_data=_decoded_user_data(body, "subscription"),
            owned=_decoded_partitions(body.get("owned", []), "subscription owned"),
        )


@dataclass(frozen=True)
class Assignment:
    """The partitions the leader gave one member (SyncGroup), sorted and unique."""

    partitions: tuple[TopicPartition, ...]
    user_data: bytes | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "partitions", _partitions(self.partitions, "assigned partitions"))
        object.__setattr__(self, "user_data", _user_data(self.user_data))

    def encode(self) -> bytes:
        return msgpack.packb(
            {
                "version": VERSION,
                "partitions": _grouped(self.partitions),
                "user_data": self.user_data,
            },
            use_bin_type=True,
        )

    @classmethod
    def decode(cls, data: bytes | bytearray | memoryview) -> Assignment:
        """Raises ``MemberMetadataError`` for anything but an assignment map."""
        body = _unpack(data, "assignment")
        if "partitions" not in body:
            raise MemberMetadataError("assignment has no partitions")
        return cls(
            partitions=_decoded_partitions(body["partitions"], "assignment partitions"),
            user_data=_decoded_user_data(body, "assignment"),
        )


def _topics(topics: Iterable[str], what: str) -> tuple[str, ...]:
    if isinstance(topics, str):
        raise TypeError(f"{what} must be a collection of topic names, not one string")
    topics = tuple(topics)
    for topic in topics:
        if not isinstance(topic, str):
            raise TypeError(f"{what} must be strings, not {type(topic).__name__}")
    return tuple(sorted(set(topics)))


def _user_data(user_data: bytes | bytearray | memoryview | None) -> bytes | None:
    if user_data is None or isinstance(user_data, bytes):
        return user_data
    if isinstance(user_data, bytearray | memoryview):
        return bytes(user_data)
    raise TypeError(f"user_data must be bytes or None, not {type(user_data).__name__}")


def _partitions(partitions: Iterable[tuple[str, int]], what: str) -> tuple[TopicPartition, ...]:
    result = set()
    for topic, partition in partitions:
        if not isinstance(topic, str) or not _is_partition(partition):
            raise TypeError(f"{what}: ({topic!r}, {partition!r}) is not (topic, partition >= 0)")
        result.add(TopicPartition(topic, partition))
    return tuple(sorted(result))


def _is_partition(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_PARTITION


def _grouped(partitions: tuple[TopicPartition, ...]) -> list[list[Any]]:
    """[[topic, [partition, ...]], ...] from partitions already sorted by (topic, partition)."""
    grouped: list[list[Any]] = []
    for topic, partition in partitions:
        if not grouped or grouped[-1][0] != topic:
            grouped.append([topic, []])
        grouped[-1][1].append(partition)
    return grouped


def _unpack(data: bytes | bytearray | memoryview, what: str) -> dict[str, Any]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise MemberMetadataError(f"{what} must be bytes, not {type(data).__name__}")
    try:
        body = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise MemberMetadataError(f"{what} is not valid msgpack: {exc!r}") from exc
    if not isinstance(body, dict):
        raise MemberMetadataError(f"{what} must be a msgpack map, not {type(body).__name__}")
    version = body.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < VERSION:
        raise MemberMetadataError(f"{what} has no valid version (>= {VERSION}): {version!r}")
    return body


def _decoded_user_data(body: dict[str, Any], what: str) -> bytes | None:
    user_data = body.get("user_data")
    if user_data is not None and not isinstance(user_data, bytes):
        raise MemberMetadataError(f"{what} user_data must be bytes or nil: {user_data!r}")
    return user_data


def _decoded_partitions(grouped: object, what: str) -> tuple[TopicPartition, ...]:
    if not isinstance(grouped, list):
        raise MemberMetadataError(f"{what} must be a list of [topic, [partition, ...]]")
    partitions = []
    for entry in grouped:
        if (
            not isinstance(entry, list)
            or len(entry) != 2
            or not isinstance(entry[0], str)
            or not isinstance(entry[1], list)
        ):
            raise MemberMetadataError(f"{what}: {entry!r} is not [topic, [partition, ...]]")
        topic, numbers = entry
        for number in numbers:
            if not _is_partition(number):
                raise MemberMetadataError(
                    f"{what}: partition {number!r} of {topic!r} is not an int in [0, 2**31)"
                )
            partitions.append(TopicPartition(topic, number))
    return tuple(partitions)
