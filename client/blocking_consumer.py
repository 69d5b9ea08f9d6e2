"""The blocking twin of ``Consumer``, for scripts: the same core on a background loop.

The rebalance callbacks (``on_assign``, ``on_revoke``, ``on_lost``) and the
``commit_async`` callbacks run in the application's thread, as in Kafka's
Java client: rebalance callbacks inside the ``poll`` (or ``unsubscribe``,
``close``) that handles the rebalance, commit callbacks at the next call of
``poll``, ``commit``, ``commit_async`` or ``close``. So a callback may call
the consumer (``commit()`` in ``on_revoke``, say).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import queue
import re
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from client.consumer import Consumer, ConsumerRecord
from client.loop_thread import ClientClosedError, LoopThread
from client.record import Record
from client.topic_partition import OffsetAndMetadata, OffsetAndTimestamp, TopicPartition

__all__ = ["BlockingConsumer"]

TP = TopicPartition | tuple[str, int]
T = TypeVar("T")
_Call = tuple[Callable[..., Any], tuple[Any, ...], concurrent.futures.Future[Any]]


class BlockingConsumer:
    def __init__(self, bootstrap_servers: str | Sequence[str] | None = None, **settings: Any):
        self._thread = LoopThread("logserver-consumer")
        self._consumer = Consumer(bootstrap_servers, **settings)
        self._serving: queue.SimpleQueue[_Call | None] | None = None
        self._commit_callbacks: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]]] = (
            queue.SimpleQueue()
        )
        try:
            self._thread.run(self._consumer.start())
        except BaseException:
            self._thread.stop()
            raise

    def _call(self, method: Any, *args: Any, **kwargs: Any) -> Any:
        async def call() -> Any:
            return method(*args, **kwargs)

        return self._thread.run(call())

    def _serve(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run ``coro`` on the loop; meanwhile run here the callbacks it hands over."""
        loop = self._thread.loop
        if loop.is_closed():
            coro.close()
            raise ClientClosedError("the client is closed")
        if threading.current_thread() is getattr(self._thread, "_thread", None):
            coro.close()
            raise RuntimeError("a blocking client cannot be called from its own loop thread")
        calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        previous, self._serving = self._serving, calls
        future = asyncio.run_coroutine_threadsafe(coro, loop)
        future.add_done_callback(lambda _: calls.put(None))
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        try:
            while True:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                try:
                    item = calls.get(timeout=remaining)
                except queue.Empty:
                    raise TimeoutError(f"no answer within {timeout_s} s") from None
                if item is None:
                    return future.result()
                function, args, reply = item
                try:
                    reply.set_result(function(*args))
                except BaseException as exc:  # noqa: BLE001 - handed back to the loop's side
                    reply.set_exception(exc)
        finally:
            self._serving = previous

    def _here(self, function: Callable[..., Any] | None) -> Callable[..., Any] | None:
        """``function`` as a coroutine function that runs it in the thread calling ``_serve``."""
        if function is None:
            return None

        async def in_caller_thread(*args: Any) -> Any:
            calls = self._serving
            if calls is None:  # nobody is waiting in a call: run it here, on the loop
                return function(*args)
            reply: concurrent.futures.Future[Any] = concurrent.futures.Future()
            calls.put((function, args, reply))
            return await asyncio.wrap_future(reply)

        return in_caller_thread

    def _run_commit_callbacks(self) -> None:
        while True:
            try:
                function, args = self._commit_callbacks.get_nowait()
            except queue.Empty:
                return
            function(*args)

    # -- groups ------------------------------------------------------------------------

    def subscribe(
        self,
        topics: Iterable[str] | None = None,
        *,
        pattern: str | re.Pattern[str] | None = None,
        on_assign: Callable[[set[TopicPartition]], Any] | None = None,
        on_revoke: Callable[[set[TopicPartition]], Any] | None = None,
        on_lost: Callable[[set[TopicPartition]], Any] | None = None,
    ) -> None:
        """As ``Consumer.subscribe``; the callbacks run in the thread that calls ``poll``."""
        self._call(
            self._consumer.subscribe,
            None if topics is None else list(topics),
            pattern=pattern,
            on_assign=self._here(on_assign),
            on_revoke=self._here(on_revoke),
            on_lost=self._here(on_lost),
        )

    def unsubscribe(self) -> None:
        self._serve(self._consumer.unsubscribe())

    def subscription(self) -> set[str]:
        return self._call(self._consumer.subscription)  # type: ignore[no-any-return]

    def commit(self, offsets: Mapping[TP, int | OffsetAndMetadata] | None = None) -> None:
        self._run_commit_callbacks()
        self._thread.run(self._consumer.commit(None if offsets is None else dict(offsets)))

    def commit_async(
        self,
        offsets: Mapping[TP, int | OffsetAndMetadata] | None = None,
        callback: Callable[[dict[TopicPartition, OffsetAndMetadata], BaseException | None], Any]
        | None = None,
    ) -> concurrent.futures.Future[None]:
        """As ``Consumer.commit_async``; ``callback`` runs in this thread at a later call."""
        self._run_commit_callbacks()
        chosen = None if offsets is None else dict(offsets)

        def queued(done: dict[TopicPartition, OffsetAndMetadata], error: Any) -> None:
            if callback is not None:
                self._commit_callbacks.put((callback, (done, error)))

        async def commit() -> None:
            await self._consumer.commit_async(chosen, queued if callback is not None else None)

        return asyncio.run_coroutine_threadsafe(commit(), self._thread.loop)

    def committed(self, tp: TP, *, metadata: bool = False) -> int | OffsetAndMetadata | None:
        return self._thread.run(self._consumer.committed(tp, metadata=metadata))

    def lag(self, tp: TP) -> int:
        return self._thread.run(self._consumer.lag(tp))

    # -- assignment and positions ------------------------------------------------------

    def assign(self, partitions: Iterable[TP]) -> None:
        self._call(self._consumer.assign, list(partitions))

    def assignment(self) -> set[TopicPartition]:
        return self._call(self._consumer.assignment)  # type: ignore[no-any-return]

    def seek(self, tp: TP, offset: int) -> None:
        self._call(self._consumer.seek, tp, offset)

    def seek_to_beginning(self, *tps: TP) -> None:
        self._thread.run(self._consumer.seek_to_beginning(*tps))

    def seek_to_end(self, *tps: TP) -> None:
        self._thread.run(self._consumer.seek_to_end(*tps))

    def position(self, tp: TP) -> int:
        return self._thread.run(self._consumer.position(tp))

    def pause(self, *tps: TP) -> None:
        self._call(self._consumer.pause, *tps)

    def resume(self, *tps: TP) -> None:
        self._call(self._consumer.resume, *tps)

    def paused(self) -> set[TopicPartition]:
        return self._call(self._consumer.paused)

    def beginning_offsets(self, tps: Iterable[TP]) -> dict[TopicPartition, int]:
        return self._thread.run(self._consumer.beginning_offsets(list(tps)))

    def end_offsets(self, tps: Iterable[TP]) -> dict[TopicPartition, int]:
        return self._thread.run(self._consumer.end_offsets(list(tps)))

    def offsets_for_times(
        self, timestamps: Mapping[TP, int]
    ) -> dict[TopicPartition, OffsetAndTimestamp | None]:
        return self._thread.run(self._consumer.offsets_for_times(dict(timestamps)))

    def partitions_for_topic(self, topic: str) -> set[int]:
        return self._thread.run(self._consumer.partitions_for_topic(topic))

    # -- reading -------------------------------------------------------------------------

    def poll(
        self, timeout_ms: int = 1000, max_records: int | None = None
    ) -> dict[TopicPartition, list[Record]]:
        self._run_commit_callbacks()
        return self._serve(self._consumer.poll(timeout_ms, max_records))

    def __iter__(self) -> Iterator[ConsumerRecord]:
        while True:
            for tp, records in self.poll().items():
                for record in records:
                    yield ConsumerRecord(tp.topic, tp.partition, *record)

    def close(self) -> None:
        if self._thread.loop.is_closed():
            return
        try:
            self._serve(self._consumer.close(), 60)
            self._run_commit_callbacks()
        finally:
            self._thread.stop()

    def __enter__(self) -> BlockingConsumer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
