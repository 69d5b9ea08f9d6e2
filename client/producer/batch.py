"""One partition's records on their way to the broker."""

from __future__ import annotations

import asyncio

from client.record.builder import encode_batch
from client.record.compression import Compression
from client.record.layout import HEADER_SIZE

__all__ = ["ProducerBatch"]

Row = tuple[int, int, object, object, object]


class ProducerBatch:
    """Records kept as body rows, so building the batch is one msgpack call."""

    __slots__ = (
        "attempts",
        "created",
        "data",
        "deadline",
        "first_timestamp",
        "future",
        "max_timestamp",
        "partition",
        "rows",
        "size",
        "topic",
    )

    def __init__(
        self,
        topic: str,
        partition: int,
        future: asyncio.Future[int],
        created: float,
        deadline: float,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.future = future
        self.created = created
        self.deadline = deadline
        self.rows: list[Row] = []
        self.size = HEADER_SIZE + 5  # estimate: header and the array's own header
        self.first_timestamp = -1
        self.max_timestamp = -1
        self.attempts = 0
        self.data: bytes | None = None

    def build(self, compression: Compression) -> bytes:
        """The batch's bytes, built once (a retry sends the same bytes)."""
        if self.data is None:
            self.data = encode_batch(
                self.rows, self.first_timestamp, self.max_timestamp, compression
            )
        return self.data

    def complete(self, base_offset: int) -> None:
        if not self.future.done():
            self.future.set_result(base_offset)

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)
            self.future.exception()  # the record futures re-raise it; do not warn here
