"""ListOffsets from the client side: each partition asked of its leader.

``EARLIEST``/``LATEST`` or a timestamp in ms per partition; the answer is an
``OffsetAndTimestamp`` or None (no record at or after the timestamp). Errors
that say the metadata is stale, or that are retriable, refresh the metadata
and ask again with backoff, within ``request_timeout_ms`` of the call. Used by
the consumer (seek, reset, offsets by time) and the admin client alike.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Mapping

from client.cluster import Cluster
from client.errors import (
    LeaderNotAvailableError,
    LogServerError,
    UnknownTopicOrPartitionError,
    error_for_code,
)
from client.protocol import ApiKey
from client.topic_partition import OffsetAndTimestamp, TopicPartition

__all__ = ["EARLIEST", "LATEST", "list_offsets"]

log = logging.getLogger(__name__)

EARLIEST = -2
LATEST = -1
_FIRST_BACKOFF_S = 0.1
_MAX_BACKOFF_S = 1.0
_MAX_ATTEMPTS = 5


async def list_offsets(
    cluster: Cluster,
    requests: Mapping[TopicPartition, int],
    *,
    raise_errors: bool = True,
) -> dict[TopicPartition, OffsetAndTimestamp | None]:
    """The answer for every partition asked.

    With ``raise_errors`` false, partitions still failing when the retries run
    out are left out of the result instead of raising their error.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + cluster.request_timeout_ms / 1000
    found: dict[TopicPartition, OffsetAndTimestamp | None] = {}
    delay = _FIRST_BACKOFF_S
    for attempt in range(1, _MAX_ATTEMPTS + 1):
        pending = {tp: ts for tp, ts in requests.items() if tp not in found}
        failed = await _ask_leaders(cluster, pending, found, deadline)
        if not failed:
            return found
        error = next(iter(failed.values()))
        retry = all(e.retriable or e.invalid_metadata for e in failed.values())
        if not retry or attempt == _MAX_ATTEMPTS or loop.time() + delay >= deadline:
            if raise_errors:
                raise error
            log.debug("offsets unknown for %s: %s", sorted(failed), error)
            return found
        cluster.invalidate()
        await asyncio.sleep(delay)
        delay = min(delay * 2, _MAX_BACKOFF_S)
    return found


async def _ask_leaders(
    cluster: Cluster,
    pending: dict[TopicPartition, int],
    found: dict[TopicPartition, OffsetAndTimestamp | None],
    deadline: float,
) -> dict[TopicPartition, LogServerError]:
    failed: dict[TopicPartition, LogServerError] = {}
    by_leader: dict[int, dict[TopicPartition, int]] = defaultdict(dict)
    for tp, timestamp in pending.items():
        try:
            partitions = await cluster.partitions_for(tp.topic)
        except LogServerError as exc:
            failed[tp] = exc
            continue
        info = partitions.get(tp.partition)
        if info is None:
            failed[tp] = UnknownTopicOrPartitionError(
                f"topic {tp.topic!r} has no partition {tp.partition} (it has {len(partitions)})"
            )
        elif info.leader < 0:
            failed[tp] = LeaderNotAvailableError(f"{tp} has no leader")
        else:
            by_leader[info.leader][tp] = timestamp
    timeout_ms = max(1, int((deadline - asyncio.get_running_loop().time()) * 1000))
    answers = await asyncio.gather(
        *(_ask(cluster, leader, group, timeout_ms) for leader, group in by_leader.items()),
        return_exceptions=True,
    )
    for group, answer in zip(by_leader.values(), answers, strict=True):
        if isinstance(answer, LogServerError):
            failed.update(dict.fromkeys(group, answer))
        elif isinstance(answer, BaseException):
            raise answer
        else:
            offsets, errors = answer
            found.update(offsets)
            failed.update(errors)
    return failed


async def _ask(
    cluster: Cluster, leader: int, group: dict[TopicPartition, int], timeout_ms: int
) -> tuple[dict[TopicPartition, OffsetAndTimestamp | None], dict[TopicPartition, LogServerError]]:
    by_topic: dict[str, list[list[int]]] = defaultdict(list)
    for tp, timestamp in group.items():
        by_topic[tp.topic].append([tp.partition, timestamp])
    connection = await cluster.connection(leader)
    reply, _ = await connection.request(
        ApiKey.LIST_OFFSETS,
        {"replica_id": -1, "topics": [[t, ps] for t, ps in by_topic.items()]},
        timeout_ms=timeout_ms,
    )
    offsets: dict[TopicPartition, OffsetAndTimestamp | None] = {}
    errors: dict[TopicPartition, LogServerError] = {}
    for topic, rows in reply["topics"]:
        for partition, error, timestamp, offset in rows:
            tp = TopicPartition(topic, partition)
            if error:
                errors[tp] = error_for_code(error, f"ListOffsets for {tp} on broker {leader}")
            else:
                offsets[tp] = None if offset < 0 else OffsetAndTimestamp(offset, timestamp)
    return offsets, errors
