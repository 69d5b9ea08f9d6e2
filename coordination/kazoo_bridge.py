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
  per created, deleted or reconfigured topic, and one
  ``on_partition_change(topic, partition)`` per partition state created or changed.

``connect`` may end with a chroot (``h1:2181,h2:2181/logserver``); kazoo
prefixes every path with it, and ``start`` creates it first if it is missing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, TypeVar

from kazoo.client import KazooClient, TransactionRequest
from kazoo.exceptions import (
    ConnectionLoss,
    KazooException,
    NodeExistsError,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import EventType, KazooState, WatchedEvent, ZnodeStat
from kazoo.recipe.watchers import ChildrenWatch

from client.errors import CoordinatorNotAvailableError, LogServerError, StorageError
from coordination.model import SessionState
from coordination.zk_paths import TOPICS, config_path, partitions_path, state_path, topic_path

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
_CONNECT_QUIET_S = 0.5
"""How long ``start`` waits for a first connection before it says it is retrying."""


class ZooKeeperUnavailableError(CoordinatorNotAvailableError):
    """ZooKeeper did not answer in time, the connection dropped, or the session expired.

    Retriable (COORDINATOR_NOT_AVAILABLE on the wire). A change that failed
    this way may still be applied once the connection is back, so a retry
    must accept finding it done (``TopicAlreadyExistsError`` after a create).
    """


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
            connected = self.client.start_async()
            quiet_s = min(_CONNECT_QUIET_S, self.request_timeout_s)
            connected.wait(quiet_s)
            if not self.client.connected:
                # kazoo logs each failed attempt; say once what the broker is doing.
                log.warning(
                    "zookeeper %s: not reachable yet; retrying for up to %g s",
                    self.connect,
                    self.request_timeout_s,
                )
                connected.wait(self.request_timeout_s - quiet_s)
            if not self.client.connected:
                raise KazooTimeoutError(
                    f"no connection within {self.request_timeout_s:g} s; giving up"
                )
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

    def delete(self, path: str, version: int = -1) -> None:
        self.wait(self.client.delete_async(path, version=version))

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


class ZnodeWatch:
    """A watch on one znode's data that ends when it finds the znode missing.

    kazoo's ``DataWatch`` goes on watching a deleted znode with an
    exists-watch, which stays on the server and in the client until the path
    is created again or the session ends: one leaked watch per znode of every
    deleted topic. This one calls ``func(data, stat, first)`` after its first
    read and after every change, and ``func(None, None, first)`` once when it
    finds the znode missing, then stops; ``func`` returning False, or
    ``stop()``, stops it too. Its owner calls ``refresh()`` once the
    connection is back (after a session expiry kazoo drops every watch): it
    reads again, and calls ``func`` only if the znode changed meanwhile.

    It never blocks: reads are asynchronous and ``func`` runs on kazoo's
    completion thread, one call at a time (``ready`` is set after the first).
    Never start a read from kazoo's connection thread (a state listener): it
    wakes that thread through a socket whose buffer it alone drains.
    """

    def __init__(
        self,
        client: KazooClient,
        path: str,
        func: Callable[[bytes | None, ZnodeStat | None, bool], bool | None],
    ) -> None:
        self.path = path
        self.ready = threading.Event()
        self._client = client
        self._func = func
        self._stopped = False
        self._mzxid: int | None = None
        self.refresh()

    def stop(self) -> None:
        """No more calls (one already running finishes); the server's watch fires unheard."""
        self._stopped = True
        self.ready.set()

    def refresh(self) -> None:
        """Read (and watch) the znode again."""
        if not self._stopped:
            self._client.get_async(self.path, watch=self._watched).rawlink(self._got)

    def _watched(self, event: WatchedEvent) -> None:
        if event.type != EventType.NONE:  # NONE: the session went; the owner refreshes
            self.refresh()

    def _got(self, result: Any) -> None:
        # kazoo's completion thread: results arrive in the order the reads were sent
        if self._stopped:
            return
        try:
            data, stat = result.get_nowait()
        except NoNodeError:
            data, stat = None, None
        except (ConnectionLoss, SessionExpiredError):
            return  # read again once connected (the owner refreshes)
        except KazooException as exc:
            log.warning("watch on %s: cannot read it: %s", self.path, _describe(exc))
            return
        if stat is not None and self._mzxid is not None and stat.mzxid <= self._mzxid:
            return  # seen already (a read after a reconnect, or two reads in flight)
        first = not self.ready.is_set()
        try:
            if stat is None:
                self.stop()
                self._func(None, None, first)
                return
            self._mzxid = stat.mzxid
            if self._func(data, stat, first) is False:
                self.stop()
        except Exception:
            log.exception("watch on %s: callback failed", self.path)
        finally:
            self.ready.set()


class _TopicWatches:
    """The watches of one incarnation of a topic (its znode's ``czxid``), while ``alive``."""

    __slots__ = ("alive", "czxid", "name", "watches")

    def __init__(self, name: str, czxid: int | None) -> None:
        self.name = name
        self.czxid = czxid
        self.alive = True
        self.watches: list[ZnodeWatch] = []


class TopicWatcher:
    """One ``on_change(topic)`` per topic created, deleted or reconfigured, by anyone, and
    one ``on_partition_change(topic, partition)`` per partition state created or changed.

    A ``ChildrenWatch`` on /brokers/topics sees topics come and go; per topic,
    a ``ZnodeWatch`` on /config/topics/<topic> sees its config change and one
    on each …/partitions/<p>/state its partitions' leader, epoch and ISR. The
    partitions are listed once, when the topic appears (partitions are never
    added to a topic in this version).

    The watches of a topic belong to one incarnation of it, known by its
    znode's creation zxid. When one of them finds its znode missing, the
    topic is looked at again: gone, or created again meanwhile (a deletion
    and a creation can be seen as one change of the topic list), the old
    watches are retired and the topic reported, once, and a new incarnation
    is watched afresh; the same incarnation with a znode missing (removed by
    hand, or a topic written by another tool) leaves that znode unwatched,
    with a warning. No watch is ever left on a missing znode.

    Watches fire once and are re-armed by reading again, so changes in quick
    succession may be reported once; the callbacks only say "read this again".
    Topics and partitions present at ``start`` are not reported; a topic
    created later reports its partitions too, after the topic itself.

    Runs on kazoo's threads (``start`` on the caller's, and it waits for the
    first reads, so nothing that changes after it returned goes unreported):
    the callbacks must only hand over (``KazooBridge.call_soon``).
    """

    def __init__(
        self,
        client: KazooClient,
        on_change: Callable[[str], None],
        on_partition_change: Callable[[str, int], None] | None = None,
        *,
        request_timeout_s: float = 10.0,
    ) -> None:
        self._client = client
        self._on_change = on_change
        self._on_partition_change = on_partition_change
        self._timeout_s = request_timeout_s
        self._lock = threading.RLock()
        self._watches: dict[str, _TopicWatches] = {}
        self._started = False
        self._stopped = False

    def start(self) -> None:
        """Install the watches and wait for their first reads (blocking)."""
        ChildrenWatch(self._client, TOPICS, self._children_changed)
        self._client.add_listener(self._session_changed)
        with self._lock:
            pending = [w for record in self._watches.values() for w in record.watches]
        deadline = time.monotonic() + self._timeout_s
        for watch in pending:
            if not watch.ready.wait(max(0.0, deadline - time.monotonic())):
                raise KazooTimeoutError(f"no first read of {watch.path} within the timeout")

    def stop(self) -> None:
        self._client.remove_listener(self._session_changed)
        with self._lock:
            self._stopped = True
            for record in self._watches.values():
                self._stop_watches(record)
            self._watches.clear()

    def _session_changed(self, state: str) -> None:
        # kazoo's connection thread: hand the work to a thread of its own
        if state == KazooState.CONNECTED and not self._stopped:
            self._client.handler.spawn(self._resync)

    def _resync(self) -> None:
        """After a reconnection, read the topic list and every watched znode again.

        A topic whose watches could not be set up while the connection was down
        is watched now (the ChildrenWatch reads the list again too, but does
        not call back when it did not change), and the watches kazoo dropped
        with an expired session are set again.
        """
        try:
            children = self._client.get_children_async(TOPICS).get(timeout=self._timeout_s)
        except (KazooException, KazooTimeoutError) as exc:
            log.warning("cannot read the topic list again after reconnecting: %s", exc)
            return
        self._children_changed(children)
        with self._lock:
            watches = [w for record in self._watches.values() for w in record.watches]
        for watch in watches:
            watch.refresh()

    def _children_changed(self, children: list[str]) -> bool | None:
        # the caller's thread in start(), kazoo's callback thread after
        with self._lock:
            if self._stopped:
                return False
            report = self._started
            self._started = True
            current = set(children)
            for name in sorted(current - self._watches.keys()):
                self._add(name, self._topic_stat(name), report=report)
            for name in sorted(self._watches.keys() - current):
                self._retire(self._watches[name])
        return None

    def _add(self, name: str, stat: ZnodeStat | Exception | None, *, report: bool) -> None:
        if stat is None:
            return  # gone since the listing: the topic list changes again, nothing to report
        czxid = None if isinstance(stat, Exception) else stat.czxid
        record = self._watches[name] = _TopicWatches(name, czxid)
        if report:
            self._on_change(name)
        callback = partial(self._config_changed, record)
        record.watches.append(ZnodeWatch(self._client, config_path(name), callback))
        if self._on_partition_change is not None:
            self._watch_partitions(record, report)

    def _stop_watches(self, record: _TopicWatches) -> None:
        record.alive = False
        for watch in record.watches:
            watch.stop()
        record.watches.clear()

    def _retire(self, record: _TopicWatches) -> None:
        """This incarnation of the topic is gone: stop its watches and report it (once)."""
        if not record.alive:
            return
        self._stop_watches(record)
        if self._watches.get(record.name) is record:
            del self._watches[record.name]
        self._on_change(record.name)

    def _missing(self, record: _TopicWatches, path: str) -> None:
        """``path``, a znode of ``record``'s topic, was not found: look at the topic again."""
        stat = self._topic_stat(record.name)
        if isinstance(stat, Exception):
            log.warning("%s is missing and its topic cannot be read: %s", path, stat)
        elif stat is not None and stat.czxid == record.czxid:
            log.warning("%s is missing while its topic exists; not watching it", path)
            return
        self._retire(record)
        if isinstance(stat, ZnodeStat) and record.name not in self._watches:
            self._add(record.name, stat, report=True)  # created again meanwhile

    def _topic_stat(self, name: str) -> ZnodeStat | Exception | None:
        """The topic znode's stat, None if it is gone, the error if it cannot be read."""
        try:
            return self._client.exists_async(topic_path(name)).get(timeout=self._timeout_s)
        except (KazooException, KazooTimeoutError) as exc:
            return exc

    def _config_changed(
        self, record: _TopicWatches, data: bytes | None, stat: ZnodeStat | None, first: bool
    ) -> bool | None:
        with self._lock:
            if self._stopped or not record.alive:
                return False
            if stat is None:
                self._missing(record, config_path(record.name))
                return False
            if not first:
                self._on_change(record.name)
        return None

    def _watch_partitions(self, record: _TopicWatches, report: bool) -> None:
        try:
            names = self._client.get_children_async(partitions_path(record.name)).get(
                timeout=self._timeout_s
            )
        except NoNodeError:
            return  # deleted already (then the watches say so), or written by another tool
        except (KazooException, KazooTimeoutError) as exc:  # kazoo's thread must go on
            # Forget the topic for now: the topic list is read again when the connection
            # is back (ChildrenWatch does), and this topic then watched afresh.
            log.warning(
                "topic %r: cannot list its partitions to watch their state (%s); trying "
                "again once reconnected",
                record.name,
                _describe(exc),
            )
            self._stop_watches(record)
            if self._watches.get(record.name) is record:
                del self._watches[record.name]
            return
        for partition in sorted(int(n) for n in names if n.isdigit()):
            callback = partial(self._state_changed, record, partition, report)
            record.watches.append(
                ZnodeWatch(self._client, state_path(record.name, partition), callback)
            )

    def _state_changed(
        self,
        record: _TopicWatches,
        partition: int,
        report_first: bool,
        data: bytes | None,
        stat: ZnodeStat | None,
        first: bool,
    ) -> bool | None:
        with self._lock:
            if self._stopped or not record.alive:
                return False
            if stat is None:
                self._missing(record, state_path(record.name, partition))
                return False
            if first and not report_first:
                return None
            assert self._on_partition_change is not None
            self._on_partition_change(record.name, partition)
        return None
