"""ListOffsets from the client side: each partition asked of its leader.

``EARLIEST``/``LATEST`` or a timestamp in ms per partition; the answer is an
``OffsetAndTimestamp`` or None (no record at or after the timestamp). Stale
metadata is refreshed and the question asked again, up to ``attempts`` times.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Mapping

from client.cluster import Cluster
from client.errors import (
    LogServerError,
    NetworkError,
    UnknownTopicOrPartitionError,
    error_for_code,
)
from client.protocol import ApiKey
from client.topic_partition import OffsetAndTimestamp, TopicPartition

__all__ = ["EARLIEST", "LATEST", "list_offsets"]

EARLIEST = -2
LATEST = -1


async def list_offsets(
    cluster: Cluster,
    requests: Mapping[TopicPartition, int],
    *,
    attempts: int = 5,
    backoff_ms: int = 100,
) -> dict[TopicPartition, OffsetAndTimestamp | None]:
    results: dict[TopicPartition, OffsetAndTimestamp | None] = {}
    pending = dict(requests)
    last_error: LogServerError | None = None
    for attempt in range(attempts):
        if not pending:
            break
        if attempt:
            await asyncio.sleep(backoff_ms / 1000 * attempt)
        by_leader: dict[int, list[TopicPartition]] = defaultdict(list)
        for tp in pending:
            partitions = await cluster.partitions_for(tp.topic)
            info = partitions.get(tp.partition)
            if info is None:
                raise UnknownTopicOrPartitionError(f"{tp} does not exist")
            by_leader[info.leader].append(tp)
        for leader, tps in by_leader.items():
            grouped: dict[str, list[list[int]]] = defaultdict(list)
            for tp in tps:
                grouped[tp.topic].append([tp.partition, pending[tp]])
            try:
                connection = await cluster.connection(leader)
                reply, _ = await connection.request(
                    ApiKey.LIST_OFFSETS,
                    {"replica_id": -1, "topics": [[t, ps] for t, ps in grouped.items()]},
                    timeout_ms=cluster.request_timeout_ms,
                )
            except NetworkError as exc:
                cluster.invalidate()
                last_error = exc
                continue
            for topic, rows in reply["topics"]:
                for partition, error, timestamp, offset in rows:
                    tp = TopicPartition(topic, partition)
                    if error:
                        exc = error_for_code(error, f"ListOffsets for {tp}")
                        if not exc.retriable:
                            raise exc
                        cluster.invalidate()
                        last_error = exc
                        continue
                    pending.pop(tp, None)
                    results[tp] = None if offset < 0 else OffsetAndTimestamp(offset, timestamp)
    if pending:
        assert last_error is not None
        raise last_error
    return results
