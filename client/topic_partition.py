"""Names for a partition and for an offset found by time, shared by consumer and admin."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["OffsetAndTimestamp", "TopicPartition"]


class TopicPartition(NamedTuple):
    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}-{self.partition}"


class OffsetAndTimestamp(NamedTuple):
    offset: int
    timestamp: int
