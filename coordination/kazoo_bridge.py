"""A ``KazooClient`` seen from asyncio: the one place that crosses between the two.

kazoo is synchronous and calls back on its own threads. Here:

- ``KazooBridge.run(fn, what)`` runs a blocking function in the bridge's
  worker threads and converts kazoo's errors at the boundary: no answer in
  time, a dropped connection or an expired session become
  ``ZooKeeperUnavailableError``; any other ZooKeeper error a ``StorageError``.
  Both name the ensemble and what was being done.
- The blocking helpers (``get``, ``children``, ``create``, ``commit``, …) wait
  at most ``request_timeout_ms`` for an answer. kazoo's own synchronous calls
  would wait for ever while disconnected, because it queues requests until
  the connection is back; a request that timed out here may therefore still
  be applied later.
- ``call_soon(fn, *args)`` hands a call from a kazoo thread to the event loop
  (``loop.call_soon_threadsafe``); after ``close``, or once the loop is gone,
  it is dropped. kazoo's connection states arrive on the loop as
  ``SessionState``.
- ``TopicWatcher`` turns the topic znodes' watches into one ``on_change(topic)``
  per created, deleted or reconfigured topic.

``connect`` may end with a chroot (``h1:2181,h2:2181/logserver``); kazoo
prefixes every path with it, and ``start`` creates it first if it is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from kazoo.client import KazooClient, TransactionRequest
from kazoo.exceptions import (
    ConnectionLoss,
    KazooException,
    NodeExistsError,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KazooState, ZnodeStat
from kazoo.recipe.watchers import ChildrenWatch, DataWatch

from client.errors import CoordinatorNotAvailableError, LogServerError, StorageError
from coordination.zk_paths import TOPICS, config_path

__all__ = [
    "KazooBridge",
    "SessionState",
    "TopicWatcher",
    "ZooKeeperUnavailableError",
    "split_connect",
]

log = logging.getLogger(__name__)

_T = TypeVar("_T")
_UNAVAILABLE = (ConnectionLoss, SessionExpiredError, OperationTimeoutError, KazooTimeoutError)


class ZooKeeperUnavailableError(CoordinatorNotAvailableError):
    """ZooKeeper did not answer in time, the connection dropped, or the session expired.

    Retriable (COORDINATOR_NOT_AVAILABLE on the wire). A change that failed
    this way may still be applied once the connection is back, so a retry
    must accept finding it done (``TopicAlreadyExistsError`` after a create).
    """


class SessionState(enum.Enum):
    """The ZooKeeper session as the broker sees it (kazoo's states, plus before and after)."""

    CONNECTING = "connecting"
    CONNECTED = "connected"
    SUSPENDED = "suspended"  # connection lost, session maybe still alive: ephemerals still there
    LOST = "lost"  # session expired: its ephemeral znodes are gone
    CLOSED = "closed"


_STATES = {
    KazooState.CONNECTED: SessionState.CONNECTED,
    KazooState.SUSPENDED: SessionState.SUSPENDED,
    KazooState.LOST: SessionState.LOST,
}


def split_connect(connect: str) -> tuple[str, str]:
    """``"h1:2181,h2:2181/logserver"`` → ``("h1:2181,h2:2181", "/logserver")``; no chroot: ``""``.

    Raises ``ValueError`` for an empty host list or a malformed chroot.
    """
    hosts, slash, chroot = connect.partition("/")
    if not hosts.strip() or any(not h.strip() for h in hosts.split(",")):
        raise ValueError(f"ZooKeeper connect string {connect!r}: no host list before the chroot")
    if not slash:
        return hosts, ""
    chroot = "/" + chroot.rstrip("/")
    if "//" in chroot:
        raise ValueError(f"ZooKeeper connect string {connect!r}: empty element in chroot")
    return hosts, "" if chroot == "/" else chroot


class KazooBridge:
    def __init__(
        self, connect: str, *, session_timeout_ms: int, request_timeout_ms: int, name: str
    ) -> None:
        self.connect = connect
        self.hosts, self.chroot = split_connect(connect)
        self.request_timeout_s = request_timeout_ms / 1000
        self.session_timeout_s = session_timeout_ms / 1000
        self.client = KazooClient(
            hosts=self.hosts + self.chroot,
            timeout=self.session_timeout_s,
            # Reconnect quickly after an outage (kazoo's default backs off to a minute).
            connection_retry={"max_tries": -1, "delay": 0.1, "backoff": 2, "max_delay": 2.0},
        )
        self.closing = threading.Event()
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix=f"{name}-zk")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_state: Callable[[SessionState], None] | None = None

    def full_path(self, path: str) -> str:
        """``path`` as the ensemble sees it (chroot included), for messages."""
        return self.chroot + path if path != "/" or not self.chroot else self.chroot

    @property
    def session_id(self) -> int | None:
        client_id = self.client.client_id
        return None if client_id is None else client_id[0]

    # -- lifecycle --------------------------------------------------------------------

    async def start(self, on_state: Callable[[SessionState], None]) -> None:
        """Connect (creating the chroot if needed); ``on_state`` then hears every state change."""
        self._loop = asyncio.get_running_loop()
        self._on_state = on_state
        await self.run(self._start, "connect")

    def _start(self) -> None:
        self.client.add_listener(self._state_listener)
        try:
            # Not client.start(): it checks the chroot with an unbounded call, and warns.
            self.client.start_async().wait(self.request_timeout_s)
            if not self.client.connected:
                raise KazooTimeoutError(f"no connection within {self.request_timeout_s:g} s")
            if self.chroot and self.exists("/") is None:
                self._create_chroot()
        except BaseException:
            self._stop_client()
            raise

    def _create_chroot(self) -> None:
        bare = KazooClient(hosts=self.hosts, timeout=self.session_timeout_s)
        try:
            bare.start_async().wait(self.request_timeout_s)
            if not bare.connected:
                raise KazooTimeoutError(f"no connection within {self.request_timeout_s:g} s")
            bare.ensure_path_async(self.chroot).get(timeout=self.request_timeout_s)
        finally:
            with contextlib.suppress(Exception):
                bare.stop()
            bare.close()

    async def close(self) -> None:
        """Wait for the calls in flight, then end the session (its ephemeral znodes go with it)."""
        if self.closing.is_set():
            return
        self.closing.set()
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        self._executor.shutdown(wait=True)
        self._stop_client()

    def _stop_client(self) -> None:
        with contextlib.suppress(Exception):
            self.client.stop()
        with contextlib.suppress(Exception):
            self.client.close()

    # -- crossing threads -------------------------------------------------------------

    async def run(self, fn: Callable[[], _T], what: str) -> _T:
        """``fn()`` in a worker thread, with kazoo's errors converted; ``what`` names the job.

        Cancelling the caller does not stop the thread: the call runs to its end
        (bounded by the request timeout) and ``close`` waits for it.
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, partial(self._converted, fn, what))

    def _converted(self, fn: Callable[[], _T], what: str) -> _T:
        try:
            return fn()
        except LogServerError:
            raise
        except _UNAVAILABLE as exc:
            raise ZooKeeperUnavailableError(
                f"zookeeper {self.connect}: {what}: {_describe(exc)}"
            ) from exc
        except KazooException as exc:
            raise StorageError(f"zookeeper {self.connect}: {what}: {_describe(exc)}") from exc

    def call_soon(self, fn: Callable[..., object], *args: object) -> None:
        """From any thread: run ``fn(*args)`` on the loop, unless the bridge is closed."""
        loop = self._loop
        if loop is None or self.closing.is_set():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed under us: nobody to tell
            loop.call_soon_threadsafe(fn, *args)

    def _state_listener(self, state: str) -> None:
        # kazoo's connection thread: hand over, never block.
        if self._on_state is not None:
            self.call_soon(self._on_state, _STATES[state])

    # -- blocking calls, bounded (worker or kazoo threads only) -------------------------

    def wait(self, result: Any) -> Any:
        return result.get(timeout=self.request_timeout_s)

    def get(self, path: str, watch: Callable[..., None] | None = None) -> tuple[bytes, ZnodeStat]:
        return self.wait(self.client.get_async(path, watch))

    def children(self, path: str) -> list[str]:
        return self.wait(self.client.get_children_async(path))

    def exists(self, path: str, watch: Callable[..., None] | None = None) -> ZnodeStat | None:
        return self.wait(self.client.exists_async(path, watch))

    def create(self, path: str, value: bytes = b"", *, ephemeral: bool = False) -> str:
        return self.wait(self.client.create_async(path, value, ephemeral=ephemeral))

    def set(self, path: str, value: bytes, version: int = -1) -> ZnodeStat:
        return self.wait(self.client.set_async(path, value, version))

    def delete(self, path: str) -> None:
        self.wait(self.client.delete_async(path))

    def ensure_path(self, path: str) -> None:
        with contextlib.suppress(NodeExistsError):
            self.wait(self.client.ensure_path_async(path))

    def transaction(self) -> TransactionRequest:
        return self.client.transaction()

    def commit(self, transaction: TransactionRequest) -> list[Any]:
        return self.wait(transaction.commit_async())


def _describe(exc: BaseException) -> str:
    detail = str(exc)
    return type(exc).__name__ + (f": {detail}" if detail and detail != "()" else "")


class _ConfigWatch:
    __slots__ = ("alive", "called", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.alive = True
        self.called = False


class TopicWatcher:
    """One ``on_change(topic)`` per topic created, deleted or reconfigured, by anyone.

    A ``ChildrenWatch`` on /brokers/topics sees topics come and go; a
    ``DataWatch`` per topic on /config/topics/<topic> sees its config change.
    A deletion removes both znodes in one transaction, so both watches fire:
    whichever comes first reports it. Watches fire once and kazoo re-arms
    them by reading again, so changes in quick succession may be reported
    once; ``on_change`` only says "read this topic again". Topics present at
    ``start`` are not reported.

    Runs on kazoo's threads (``start`` on the caller's): ``on_change`` must only
    hand over (``KazooBridge.call_soon``).
    """

    def __init__(self, client: KazooClient, on_change: Callable[[str], None]) -> None:
        self._client = client
        self._on_change = on_change
        self._lock = threading.RLock()  # a DataWatch calls back inside its constructor
        self._watches: dict[str, _ConfigWatch] = {}
        self._started = False
        self._stopped = False

    def start(self) -> None:
        """Install the watches (blocking: one read per topic)."""
        ChildrenWatch(self._client, TOPICS, self._children_changed)

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            for watch in self._watches.values():
                watch.alive = False
            self._watches.clear()

    def _children_changed(self, children: list[str]) -> bool | None:
        with self._lock:
            if self._stopped:
                return False
            report = self._started
            self._started = True
            current = set(children)
            for name in sorted(current - self._watches.keys()):
                watch = self._watches[name] = _ConfigWatch(name)
                DataWatch(self._client, config_path(name), partial(self._config_changed, watch))
                if report:
                    self._on_change(name)
            for name in sorted(self._watches.keys() - current):
                self._watches.pop(name).alive = False
                self._on_change(name)
        return None

    def _config_changed(
        self,
        watch: _ConfigWatch,
        data: bytes | None,
        stat: ZnodeStat | None,
        event: object = None,
    ) -> bool | None:
        with self._lock:
            if self._stopped or not watch.alive:
                return False
            if not watch.called:  # the first read, in the DataWatch's constructor
                watch.called = True
                return None
            if stat is None:  # the config went with its topic
                if self._watches.get(watch.name) is watch:
                    del self._watches[watch.name]
                watch.alive = False
                self._on_change(watch.name)
                return False
            self._on_change(watch.name)
        return None
