"""ListOffsets: the earliest (-2), latest (-1) or first offset at or after a timestamp.

Request: ``{"replica_id": -1, "topics": [[topic, [[partition, timestamp], …]], …]}``.
Response: ``{"topics": [[topic, [[partition, error, timestamp, offset], …]], …]}``;
a timestamp after every record gives offset -1 and timestamp -1, as in Kafka.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from client.errors import InvalidRequestError, LogServerError, UnknownTopicOrPartitionError
from logserver.api.checks import list_field
from logserver.network.response import Response

if TYPE_CHECKING:
    from logserver.broker import Broker

__all__ = ["EARLIEST", "LATEST", "handle_list_offsets"]

EARLIEST = -2
LATEST = -1


def handle_list_offsets(broker: Broker, body: dict[str, Any], tail: memoryview) -> Response:
    results = []
    for topic, partitions in list_field(body, "topics"):
        out: list[list[Any]] = []
        for partition, timestamp in partitions:
            if type(timestamp) is not int or timestamp < EARLIEST:
                raise InvalidRequestError(f"{topic}-{partition}: bad timestamp {timestamp!r}")
            partition_log = broker.logs.get(topic, partition)
            if partition_log is None:
                out.append([partition, UnknownTopicOrPartitionError.code, -1, -1])
                continue
            if timestamp == EARLIEST:
                out.append([partition, 0, -1, partition_log.log_start_offset])
            elif timestamp == LATEST:
                out.append(
                    [partition, 0, -1, broker.high_watermark((topic, partition), partition_log)]
                )
            else:
                try:
                    found = partition_log.offset_for_timestamp(timestamp)
                except LogServerError as exc:
                    out.append([partition, exc.code, -1, -1])
                    continue
                if found is None or found.offset >= broker.high_watermark(
                    (topic, partition), partition_log
                ):
                    out.append([partition, 0, -1, -1])
                else:
                    out.append([partition, 0, found.timestamp, found.offset])
        results.append([topic, out])
    return Response({"topics": results})
