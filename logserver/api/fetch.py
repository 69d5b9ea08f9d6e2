"""Fetch: file ranges of whole batches, with Kafka's long poll.

Request: ``{"replica_id": -1, "max_wait_ms", "min_bytes", "max_bytes",
"topics": [[topic, [[partition, fetch_offset, partition_max_bytes], …]], …]}``.
Response: ``{"topics": [[topic, [[partition, error, high_watermark,
log_start_offset, records_size, error_message], …]], …]}`` and a tail of each
partition's ``records_size`` bytes in that order, sent from the segment files.

The first batch of the first non-empty partition is served whole even past
``max_bytes`` (Kafka's rule), so a consumer always progresses. When fewer than
``min_bytes`` are ready, the response waits for appends up to ``max_wait_ms``.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from client.errors import (
    InvalidRequestError,
    LogServerError,
    OffsetOutOfRangeError,
    UnknownTopicOrPartitionError,
)
from logserver.api.checks import int_field, list_field
from logserver.log import FileSlice
from logserver.network.response import Response

if TYPE_CHECKING:
    from logserver.broker import Broker

__all__ = ["handle_fetch"]

_UNKNOWN = UnknownTopicOrPartitionError.code
_MAX_WAIT_CAP_MS = 5 * 60 * 1000

Wanted = list[tuple[str, int, int, int]]


def handle_fetch(broker: Broker, body: dict[str, Any], tail: memoryview) -> Any:
    max_wait_ms = min(int_field(body, "max_wait_ms", 500), _MAX_WAIT_CAP_MS)
    min_bytes = int_field(body, "min_bytes", 1)
    max_bytes = int_field(body, "max_bytes", 50 * 1024 * 1024)
    replica_id = int_field(body, "replica_id", -1)
    wanted: Wanted = []
    for topic, partitions in list_field(body, "topics"):
        for partition, offset, partition_max in partitions:
            if type(offset) is not int or type(partition_max) is not int or partition_max < 0:
                raise InvalidRequestError(f"{topic}-{partition}: bad offset or max bytes")
            wanted.append((topic, partition, offset, partition_max))
    total, rows, slices, failed = _collect(broker, wanted, max_bytes, replica_id)
    if total >= min_bytes or max_wait_ms <= 0 or failed:
        return _response(rows, slices)
    return _long_poll(broker, wanted, max_bytes, min_bytes, max_wait_ms, replica_id)


async def _long_poll(
    broker: Broker,
    wanted: Wanted,
    max_bytes: int,
    min_bytes: int,
    max_wait_ms: int,
    replica_id: int,
) -> Response:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_wait_ms / 1000
    tps = [(topic, partition) for topic, partition, _, _ in wanted]
    while True:
        remaining = deadline - loop.time()
        if remaining > 0:
            woken = broker.notifier.register(tps)
            try:
                await asyncio.wait_for(woken, remaining)
            except TimeoutError:
                pass
            finally:
                broker.notifier.unregister(woken, tps)
        total, rows, slices, failed = _collect(broker, wanted, max_bytes, replica_id)
        if total >= min_bytes or failed or loop.time() >= deadline:
            return _response(rows, slices)


def _collect(
    broker: Broker, wanted: Wanted, max_bytes: int, replica_id: int = -1
) -> tuple[int, list[list[Any]], list[FileSlice], bool]:
    """Read every partition asked; a follower (``replica_id`` >= 0) reads up to the log end."""
    total = 0
    failed = False
    rows: list[list[Any]] = []  # [topic, partitions] in request order, like the tail
    slices: list[FileSlice] = []
    out: list[list[Any]] = []
    for topic, partition, offset, partition_max in wanted:
        if not rows or rows[-1][0] != topic:
            out = []
            rows.append([topic, out])
        partition_log = broker.logs.get(topic, partition)
        if partition_log is None:
            out.append([partition, _UNKNOWN, -1, -1, 0, f"{topic}-{partition} is not here"])
            failed = True
            continue
        tp = (topic, partition)
        start = partition_log.log_start_offset
        budget = min(partition_max, max_bytes - total)
        try:
            if replica_id >= 0:
                # A follower's fetch offset is its log end: the leader learns its progress,
                # once the offset is known to be in its log. An offset past the log end
                # claims records nobody wrote: counted, it would move the high watermark
                # (and complete acks=all) for records the follower does not have.
                broker.replicas.require_leader(tp)
                end = partition_log.log_end_offset
                if offset > end:
                    raise OffsetOutOfRangeError(
                        f"{topic}-{partition}: replica {replica_id} fetches at offset "
                        f"{offset}, past the leader's log end {end}"
                    )
                broker.replicas.on_follower_fetch(tp, replica_id, offset)
                limit = None
            else:
                broker.replicas.require_leader(tp)
                limit = broker.high_watermark(tp, partition_log)
            high_watermark = broker.high_watermark(tp, partition_log)
            piece = (
                partition_log.read(offset, budget, max_offset=limit)
                if budget > 0 or not total
                else None
            )
        except LogServerError as exc:
            hw = broker.high_watermark(tp, partition_log)
            out.append([partition, exc.code, hw, start, 0, exc.message])
            failed = True
            continue
        size = 0 if piece is None else piece.size
        if piece is not None:
            slices.append(piece)
            total += size
        out.append([partition, 0, high_watermark, start, size, None])
    return total, rows, slices, failed


def _response(rows: list[list[Any]], slices: list[FileSlice]) -> Response:
    return Response({"topics": rows}, slices)
