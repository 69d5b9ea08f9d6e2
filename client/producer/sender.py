"""The one background task that sends ready batches, grouped by partition leader.

Each leader gets at most ``max_in_flight`` requests at a time and requests of
at most ``max_request_size`` bytes. Responses complete or fail the batches;
retriable errors send a batch again after ``retry_backoff_ms`` (refreshing
metadata first when the error says it is stale) until ``retries`` or
``delivery_timeout_ms`` runs out.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections import defaultdict
from typing import Any

from client.cluster import Cluster
from client.connection import BrokerConnection, Reply
from client.errors import (
    LeaderNotAvailableError,
    LogServerError,
    RequestTimedOutError,
    error_for_code,
)
from client.producer.accumulator import RecordAccumulator
from client.producer.batch import ProducerBatch
from client.protocol import ApiKey
from client.record.compression import Compression

__all__ = ["Sender"]

log = logging.getLogger(__name__)


class Sender:
    def __init__(
        self,
        cluster: Cluster,
        accumulator: RecordAccumulator,
        *,
        acks: int,
        compression: Compression,
        max_request_size: int,
        max_in_flight: int,
        retries: int,
        retry_backoff_ms: int,
        request_timeout_ms: int,
    ) -> None:
        self._cluster = cluster
        self._acc = accumulator
        self._acks = acks
        self._compression = compression
        self._max_request_size = max_request_size
        self._max_in_flight = max_in_flight
        self._retries = retries
        self._backoff_s = retry_backoff_ms / 1000
        self._request_timeout_ms = request_timeout_ms
        self._in_flight: dict[int, int] = defaultdict(int)
        self._slot_freed = asyncio.Event()
        self._stopping = False
        self._loop = asyncio.get_running_loop()

    def stop(self) -> None:
        self._stopping = True
        self._acc.wakeup.set()

    async def run(self) -> None:
        acc = self._acc
        while True:
            await acc.wakeup.wait()
            acc.wakeup.clear()
            batches = acc.drain()
            if batches:
                await self._send(batches)
            elif self._stopping and not acc.incomplete:
                return

    async def _send(self, batches: list[ProducerBatch]) -> None:
        by_leader: dict[int, list[ProducerBatch]] = defaultdict(list)
        for batch in batches:
            leader = await self._leader_for(batch)
            if leader is not None:
                by_leader[leader].append(batch)
        for leader, group in by_leader.items():
            try:
                connection = await self._cluster.connection(leader)
            except LogServerError as exc:
                for batch in group:
                    self._retry_or_fail(batch, exc)
                continue
            start = 0
            while start < len(group):
                while self._in_flight[leader] >= self._max_in_flight:
                    self._slot_freed.clear()
                    await self._slot_freed.wait()
                group[start:] = [b for b in group[start:] if self._buildable(b)]
                if start >= len(group):
                    break
                end, size = start, 0
                while end < len(group):
                    data = group[end].build(self._compression)
                    if end > start and size + len(data) > self._max_request_size:
                        break
                    size += len(data)
                    end += 1
                self._send_request(leader, connection, group[start:end])
                start = end

    def _buildable(self, batch: ProducerBatch) -> bool:
        if batch.future.done():  # failed or cancelled meanwhile
            return False
        try:
            batch.build(self._compression)
        except (ValueError, TypeError, OverflowError, struct.error) as exc:
            batch.fail(LogServerError(f"{batch.topic}-{batch.partition}: cannot build: {exc}"))
            return False
        return True

    async def _leader_for(self, batch: ProducerBatch) -> int | None:
        partitions = self._cluster.cached_partitions(batch.topic)
        if partitions is None:
            try:
                partitions = await self._cluster.partitions_for(batch.topic)
            except LogServerError as exc:
                self._retry_or_fail(batch, exc)
                return None
        info = partitions.get(batch.partition)
        if info is None or info.leader < 0:
            self._cluster.invalidate()
            self._retry_or_fail(
                batch, LeaderNotAvailableError(f"{batch.topic}-{batch.partition} has no leader")
            )
            return None
        return info.leader

    def _send_request(
        self, leader: int, connection: BrokerConnection, batches: list[ProducerBatch]
    ) -> None:
        topics: dict[str, list[list[int]]] = {}
        tail = []
        for batch in sorted(batches, key=lambda b: b.topic):
            data = batch.build(self._compression)
            topics.setdefault(batch.topic, []).append([batch.partition, len(data)])
            tail.append(data)
        batches = sorted(batches, key=lambda b: b.topic)
        body = {
            "acks": self._acks,
            "timeout_ms": self._request_timeout_ms,
            "topics": [[t, parts] for t, parts in topics.items()],
        }
        for batch in batches:
            batch.attempts += 1
        try:
            future = connection.send(ApiKey.PRODUCE, body, tail, expect_response=self._acks != 0)
        except LogServerError as exc:
            for batch in batches:
                self._retry_or_fail(batch, exc)
            return
        if future is None:  # acks=0: written is all we will ever know
            for batch in batches:
                batch.complete(-1)
            return
        self._in_flight[leader] += 1
        timeout = self._loop.call_later(
            self._request_timeout_ms / 1000 + 1, _expire, future, connection
        )
        future.add_done_callback(lambda f: self._on_response(f, leader, batches, timeout))

    def _on_response(
        self,
        future: asyncio.Future[Reply],
        leader: int,
        batches: list[ProducerBatch],
        timeout: asyncio.TimerHandle,
    ) -> None:
        timeout.cancel()
        self._in_flight[leader] -= 1
        self._slot_freed.set()
        if future.cancelled():
            error: LogServerError = RequestTimedOutError("produce request cancelled")
            for batch in batches:
                self._retry_or_fail(batch, error)
            return
        exc = future.exception()
        if exc is not None:
            if not isinstance(exc, LogServerError):
                raise exc
            self._cluster.invalidate()
            for batch in batches:
                self._retry_or_fail(batch, exc)
            return
        body: dict[str, Any] = future.result()[0]
        if body.get("error"):
            top = error_for_code(body["error"], body.get("error_message"))
            for batch in batches:
                self._retry_or_fail(batch, top)
            return
        rows = [(topic, row) for topic, out in body["topics"] for row in out]
        if len(rows) != len(batches):
            error = LogServerError(f"{len(rows)} results for {len(batches)} batches")
            for batch in batches:
                batch.fail(error)
            return
        # The broker answers in request order (a partition may appear twice on a retry).
        for batch, (topic, row) in zip(batches, rows, strict=True):
            if (topic, row[0]) != (batch.topic, batch.partition):
                batch.fail(LogServerError(f"result for {topic}-{row[0]} out of order"))
            elif row[1] == 0:
                batch.complete(row[2])
            else:
                message = f"{batch.topic}-{batch.partition}: {row[4] or ''}".rstrip(": ")
                self._retry_or_fail(batch, error_for_code(row[1], message))

    def _retry_or_fail(self, batch: ProducerBatch, error: LogServerError) -> None:
        if error.invalid_metadata:
            self._cluster.invalidate()
        if (
            error.retriable
            and batch.attempts <= self._retries
            and self._loop.time() + self._backoff_s < batch.deadline
            and not batch.future.done()
        ):
            log.debug("retrying %s-%d after %s", batch.topic, batch.partition, error)
            self._loop.call_later(self._backoff_s, self._acc.requeue, batch)
            return
        batch.fail(error)


def _expire(future: asyncio.Future[Reply], connection: BrokerConnection) -> None:
    if not future.done():
        connection.close()  # fails the future with NetworkError; metadata is refreshed
