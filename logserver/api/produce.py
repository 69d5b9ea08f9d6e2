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
    NotEnoughReplicasAfterAppendError,
    NotEnoughReplicasError,
    RequestTimedOutError,
    StorageError,
    UnknownTopicOrPartitionError,
)
from client.protocol import NO_RESPONSE
from logserver.log import PartitionLog
from logserver.network.response import Response
from logserver.replication.leader_state import LeaderState

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
    # acks=all: (result row, leader state, offset the high watermark must reach)
    to_replicate: list[tuple[list[Any], LeaderState, int, int]] = []
    logs = broker.logs
    replicas = broker.replicas
    notify = broker.notifier.notify
    appended = broker.metrics.appended
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
            tp = (topic, partition)
            try:
                leader = replicas.require_leader(tp)
                min_isr = broker.min_insync_replicas(topic) if acks == -1 else 0
                if len(leader.isr) < min_isr:
                    raise NotEnoughReplicasError(
                        f"{topic}-{partition}: {len(leader.isr)} in-sync replica(s), "
                        f"min.insync.replicas is {min_isr}"
                    )
                info = partition_log.append(chunk, leader_epoch=broker.leader_epoch(*tp))
            except LogServerError as exc:
                out.append([partition, exc.code, -1, partition_log.log_start_offset, exc.message])
                continue
            notify(tp)
            replicas.after_append(tp)
            appended(topic, info.size_bytes, info.record_count)
            if partition_log.config.flush_messages is not None:
                to_flush.append(partition_log)
            row = [partition, 0, info.first_offset, partition_log.log_start_offset, None]
            out.append(row)
            if acks == -1:
                to_replicate.append((row, leader, info.last_offset + 1, min_isr))
        results.append([topic, out])
    if to_flush or to_replicate:
        timeout_ms = body.get("timeout_ms", 30_000)
        return _complete_then_answer(broker, to_flush, to_replicate, results, acks, timeout_ms)
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


async def _complete_then_answer(
    broker: Broker,
    logs: list[PartitionLog],
    to_replicate: list[tuple[list[Any], LeaderState, int, int]],
    results: list[list[Any]],
    acks: int,
    timeout_ms: Any,
) -> Response | None:
    """Answer once the fsyncs ``flush.messages`` asks for are done and, for acks=all,
    once every in-sync replica has the data (the high watermark passed it)."""
    loop = asyncio.get_running_loop()
    if to_replicate:
        wait_s = (timeout_ms if type(timeout_ms) is int and timeout_ms >= 0 else 30_000) / 1000
        waits = [leader.wait_for(offset) for _, leader, offset, _ in to_replicate]
        await asyncio.wait(waits, timeout=wait_s)
        for (row, leader, offset, min_isr), wait in zip(to_replicate, waits, strict=True):
            if not wait.done():
                wait.cancel()
                row[1], row[4] = (
                    RequestTimedOutError.code,
                    (
                        f"not replicated to every in-sync replica within {timeout_ms} ms "
                        f"(offset {offset - 1})"
                    ),
                )
            elif wait.exception() is not None:
                error = wait.exception()
                row[1] = getattr(error, "code", -1)
                row[4] = getattr(error, "message", str(error))
            elif len(leader.isr) < min_isr:
                # Written, but the ISR shrank below the minimum meanwhile (Kafka's rule).
                row[1] = NotEnoughReplicasAfterAppendError.code
                row[4] = (
                    f"{len(leader.isr)} in-sync replica(s) after the append, "
                    f"min.insync.replicas is {min_isr}"
                )
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
