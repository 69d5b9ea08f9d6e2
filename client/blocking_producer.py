"""The blocking twin of ``Producer``, for scripts: the same core on a background loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Sequence
from typing import Any

from client.loop_thread import LoopThread
from client.producer import Producer, ProducerClosedError, RecordMetadata

__all__ = ["BlockingProducer"]


class BlockingProducer:
    """``send`` returns a ``concurrent.futures.Future`` of ``RecordMetadata``.

    Settings are the ``Producer``'s. Errors raised at send time by the asyncio
    producer (a bad type, a record too large) surface from ``future.result()``.
    """

    def __init__(self, bootstrap_servers: str | Sequence[str] | None = None, **settings: Any):
        self._thread = LoopThread("logserver-producer")
        self._producer = Producer(bootstrap_servers, **settings)
        try:
            self._thread.run(self._producer.start())
        except BaseException:
            self._thread.stop()
            raise

    async def _send(
        self, topic: str, value: bytes | None, kwargs: dict[str, Any]
    ) -> RecordMetadata:
        return await (await self._producer.send(topic, value, **kwargs))

    def send(
        self, topic: str, value: bytes | None = None, **kwargs: Any
    ) -> concurrent.futures.Future[RecordMetadata]:
        """Queue a record; keyword arguments are those of ``Producer.send``."""
        if self._thread.loop.is_closed():
            raise ProducerClosedError("the producer is closed")
        return asyncio.run_coroutine_threadsafe(self._send(topic, value, kwargs), self._thread.loop)

    def send_and_wait(
        self, topic: str, value: bytes | None = None, **kwargs: Any
    ) -> RecordMetadata:
        return self.send(topic, value, **kwargs).result()

    def flush(self, timeout_s: float | None = None) -> None:
        self._thread.run(self._producer.flush(), timeout_s)

    def close(self, timeout_s: float | None = 30.0) -> None:
        if self._thread.loop.is_closed():
            return
        try:
            self._thread.run(self._producer.close(), timeout_s)
        finally:
            self._thread.stop()

    def __enter__(self) -> BlockingProducer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
