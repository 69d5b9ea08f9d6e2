"""OffsetsForLeaderEpoch: where a leader epoch ends in this broker's log.

Request: ``{"replica_id": -1, "topics": [[topic, [[partition, leader_epoch], …]], …]}``.
Response: ``{"topics": [[topic, [[partition, error, leader_epoch, end_offset], …]], …]}``:
the largest epoch at or below the one asked and where it ends (the next
epoch's start, or the log end for the latest); ``-1, -1`` when unknown. A
follower truncates to that offset when it starts following (KIP-101), never
to the high watermark alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from client.errors import InvalidRequestError, UnknownTopicOrPartitionError
from logserver.api.checks import list_field
from logserver.network.response import Response

if TYPE_CHECKING:
    from logserver.broker import Broker

__all__ = ["handle_offsets_for_leader_epoch"]


def handle_offsets_for_leader_epoch(
    broker: Broker, body: dict[str, Any], tail: memoryview
) -> Response:
    results = []
    for topic, partitions in list_field(body, "topics"):
        out: list[list[Any]] = []
        for partition, epoch in partitions:
            if type(epoch) is not int:
                raise InvalidRequestError(f"{topic}-{partition}: bad leader epoch {epoch!r}")
            partition_log = broker.logs.get(topic, partition)
            if partition_log is None:
                out.append([partition, UnknownTopicOrPartitionError.code, -1, -1])
                continue
            found = partition_log.end_offset_for_epoch(epoch)
            out.append([partition, 0, found.epoch, found.end_offset])
        results.append([topic, out])
    return Response({"topics": results})
