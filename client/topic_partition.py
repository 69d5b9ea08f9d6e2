"""Names shared by consumer and admin: a partition, an offset by time, a committed offset."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["OffsetAndMetadata", "OffsetAndTimestamp", "TopicPartition"]


class TopicPartition(NamedTuple):
    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}-{self.partition}"


class OffsetAndTimestamp(NamedTuple):
    offset: int
    timestamp: int


class OffsetAndMetadata(NamedTuple):
    """A group's committed offset for a partition: the next record to read, and free text."""

    offset: int
    metadata: str = ""
