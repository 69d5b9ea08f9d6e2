"""An event loop on a background thread: how the blocking clients run the asyncio core.

The blocking ``Producer``/``Consumer``/``Admin`` twins own one of these each and
submit coroutines to it, so scripts get the same batching, retries and
prefetching as asyncio code without writing any.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from client.errors import LogServerError

__all__ = ["ClientClosedError", "LoopThread"]

T = TypeVar("T")


class ClientClosedError(LogServerError):
    """A blocking client was used after ``close()``."""


class LoopThread:
    def __init__(self, name: str = "logserver-client") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def run(self, coro: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run ``coro`` on the loop and wait for its result (its exception is raised here)."""
        if threading.current_thread() is self._thread:
            coro.close()
            raise RuntimeError("a blocking client cannot be called from its own loop thread")
        if self.loop.is_closed() or not self._thread.is_alive():
            coro.close()
            raise ClientClosedError("the client is closed")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    def stop(self) -> None:
        """Stop the loop after its remaining callbacks and join the thread."""
        if not self._thread.is_alive():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        if not self.loop.is_running():
            self.loop.close()
