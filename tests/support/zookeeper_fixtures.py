"""A real ZooKeeper for the coordination and controller tests, and ways to hurt a session.

A pytest plugin, loaded by ``tests/conftest.py`` (``pytest_plugins``), so any
test directory can use these fixtures.

``zookeeper`` is one server per test module (starting a JVM takes most of a
second); each test gets a chroot of its own (``zk_connect``), so tests never
see each other's znodes. Without Debian's zookeeper package the fixture fails,
naming the package: these tests are part of the suite, never skipped.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator

import pytest
from kazoo.client import KazooClient

from tests.support.zookeeper_process import ZooKeeperNotInstalledError, ZooKeeperProcess

_TIMEOUT_S = 10.0


@pytest.fixture(scope="module")
def zookeeper(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperProcess]:
    server = ZooKeeperProcess(tmp_path_factory.mktemp("zookeeper"))
    try:
        server.start()
    except ZooKeeperNotInstalledError as exc:
        server.close()
        pytest.fail(str(exc), pytrace=False)
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def zk_connect(zookeeper: ZooKeeperProcess) -> str:
    """A connect string with a chroot of this test's own (not created yet)."""
    return f"{zookeeper.address}/test-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def raw_zk(zookeeper: ZooKeeperProcess) -> Iterator[KazooClient]:
    """A plain kazoo client on the server's root, to look at or damage znodes directly."""
    client = KazooClient(hosts=zookeeper.address, timeout=_TIMEOUT_S)
    client.start(timeout=_TIMEOUT_S)
    try:
        yield client
    finally:
        client.stop()
        client.close()


def expire_kazoo_session(address: str, client: KazooClient, timeout_s: float = _TIMEOUT_S) -> None:
    """Make the server expire ``client``'s session, and wait until ``client`` has a new one.

    kazoo's old test harness trick: a second client joins the session with its
    id and password, then closes it, which ends the session on the server (its
    ephemeral znodes go at once). The first client finds out when it next talks
    to the server, sees LOST, and kazoo opens a new session.
    """
    original = client.client_id
    if original is None:
        raise RuntimeError("expire_kazoo_session: the client is not connected")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        twin = KazooClient(hosts=address, client_id=original, timeout=_TIMEOUT_S)
        try:
            twin.start(timeout=_TIMEOUT_S)
            twin.stop()
        finally:
            twin.close()
        settle = min(deadline, time.monotonic() + 3.0)
        while time.monotonic() < settle:
            current = client.client_id
            if current is not None and current[0] != original[0]:
                return
            time.sleep(0.02)
    raise TimeoutError(f"session 0x{original[0]:x} not replaced within {timeout_s} s")


@pytest.fixture
def expire_session(zookeeper: ZooKeeperProcess) -> Callable[[object], Awaitable[None]]:
    """``await expire_session(coordinator)``: its session expires and kazoo opens a new one.

    Returns once the new session exists; the coordinator's own recovery
    (registering again, notifying listeners) may still be under way.
    """

    async def expire(coordinator: object) -> None:
        client = coordinator._bridge.client  # type: ignore[attr-defined]
        await asyncio.to_thread(expire_kazoo_session, zookeeper.address, client)

    return expire
