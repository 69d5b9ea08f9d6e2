"""Produce: append each partition's batches straight from the request buffer.

Request: ``{"acks": 0|1|-1, "timeout_ms": int, "topics": [[topic, [[partition,
size], …]], …]}``; the tail holds each partition's batches, ``size`` bytes
each, in that order. The broker checks each batch's CRC, stamps its base
offset in place and appends it (``PartitionLog.append``): no record is decoded.
Response: ``{"topics": [[topic, [[partition, error, base_offset, log_start_offset,
error_message], …]], …]}``; none at all for ``acks=0``, as in Kafka.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from client.errors import (
    InvalidRequestError,
    InvalidRequiredAcksError,
    LogServerError,
    StorageError,
    UnknownTopicOrPartitionError,
)
from client.protocol import NO_RESPONSE
from logserver.log import PartitionLog
from logserver.network.response import Response

if TYPE_CHECKING:
    from logserver.broker import Broker

__all__ = ["handle_produce"]

log = logging.getLogger(__name__)

_UNKNOWN = UnknownTopicOrPartitionError.code


def handle_produce(broker: Broker, body: dict[str, Any], tail: memoryview) -> Any:
    acks = body.get("acks")
    try:
        plan = _split_tail(body, tail)
    except InvalidRequestError:
        if acks == 0:
            log.info("dropping a malformed acks=0 produce request (acks=0 gets no response)")
            return NO_RESPONSE
        raise
    results: list[list[Any]] = []
    to_flush: list[PartitionLog] = []
    logs = broker.logs
    notify = broker.notifier.notify
    bad_acks = acks not in (0, 1, -1)
    for topic, partitions in plan:
        out: list[list[Any]] = []
        for partition, chunk in partitions:
            if bad_acks:
                out.append([partition, InvalidRequiredAcksError.code, -1, -1, f"acks={acks!r}"])
                continue
            partition_log = logs.get(topic, partition)
            if partition_log is None:
                out.append([partition, _UNKNOWN, -1, -1, f"{topic}-{partition} is not here"])
                continue
            try:
                info = partition_log.append(
                    chunk, leader_epoch=broker.leader_epoch(topic, partition)
                )
            except LogServerError as exc:
                out.append([partition, exc.code, -1, partition_log.log_start_offset, exc.message])
                continue
            notify((topic, partition))
            if partition_log.config.flush_messages is not None:
                to_flush.append(partition_log)
            out.append([partition, 0, info.first_offset, partition_log.log_start_offset, None])
        results.append([topic, out])
    if to_flush:
        return _flush_then_answer(broker, to_flush, results, acks)
    if acks == 0:
        return NO_RESPONSE
    return Response({"topics": results})


def _split_tail(
    body: dict[str, Any], tail: memoryview
) -> list[tuple[str, list[tuple[int, memoryview]]]]:
    """Each partition's bytes; the sizes must claim the tail exactly, or nothing is appended."""
    topics = body["topics"]
    if type(topics) is not list:
        raise InvalidRequestError("field 'topics' must be an array")
    plan = []
    pos, end = 0, len(tail)
    for topic, partitions in topics:
        chunks = []
        for partition, size in partitions:
            if type(size) is not int or size < 0 or pos + size > end:
                raise InvalidRequestError(
                    f"{topic}-{partition}: {size!r} bytes do not fit the {end - pos} left"
                )
            chunks.append((partition, tail[pos : pos + size]))
            pos += size
        plan.append((topic, chunks))
    if pos != end:
        raise InvalidRequestError(f"{end - pos} tail bytes are not claimed by any partition")
    return plan


async def _flush_then_answer(
    broker: Broker, logs: list[PartitionLog], results: list[list[Any]], acks: int
) -> Response | None:
    """``flush.messages`` reached: fsync (off the loop) before acknowledging, as Kafka does."""
    loop = asyncio.get_running_loop()
    failures: dict[str, str] = {}
    for partition_log in logs:
        try:
            await loop.run_in_executor(broker.executor, partition_log.maybe_flush)
        except LogServerError as exc:
            failures[partition_log.directory.name] = exc.message
    if failures:
        # The data is appended but not durable as configured: report it, do not ack.
        for topic, out in results:
            for row in out:
                message = failures.get(f"{topic}-{row[0]}")
                if message is not None:
                    row[1], row[4] = StorageError.code, message
    return None if acks == 0 else Response({"topics": results})
