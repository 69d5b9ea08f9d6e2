"""Real brokers for the integration tests: ``broker`` (one, started) and ``broker_factory``.

``broker`` takes its flags from the test's ``broker_flags`` marker:
``@pytest.mark.broker_flags("--connections-max-idle-ms", "300")``. ``clients``
opens connections (``await clients.conn(broker)``, ``await clients.raw(broker)``)
and closes them all at teardown.

Every broker started here is killed by PID at teardown, whatever the test did.
When a test fails, each broker's output is attached to the report. A broker
that logged a Python traceback fails the test at teardown (an unexpected
failure inside the broker is a bug even when the client saw nothing), unless
the test is marked ``broker_tracebacks_ok``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from client.connection import BrokerConnection
from tests.integration.wire import RawClient
from tests.support.broker_process import BrokerProcess, connect

BrokerFactory = Callable[..., BrokerProcess]

_BROKERS = pytest.StashKey[list[BrokerProcess]]()
_CALL_FAILED = pytest.StashKey[bool]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "broker_tracebacks_ok: the broker may log tracebacks in this test"
    )
    config.addinivalue_line("markers", "broker_flags(*flags): flags for the broker fixture")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_CALL_FAILED] = report.failed
    brokers = item.stash.get(_BROKERS, [])
    if report.failed and brokers:
        for i, broker in enumerate(brokers):
            report.sections.append((f"broker {i} output ({broker!r})", broker.output(last=200)))
    return report


@pytest.fixture
def broker_factory(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[BrokerFactory]:
    """``broker_factory(flags=[...], env={...}, data_dir=None, start=True)`` -> BrokerProcess."""
    brokers: list[BrokerProcess] = []
    request.node.stash[_BROKERS] = brokers

    def factory(
        *,
        flags: Sequence[str] = (),
        env: dict[str, str] | None = None,
        data_dir: Path | None = None,
        start: bool = True,
    ) -> BrokerProcess:
        directory = data_dir or tmp_path / f"broker-{len(brokers)}"
        broker = BrokerProcess(directory, flags=flags, env=env)
        brokers.append(broker)
        return broker.start() if start else broker

    yield factory
    for broker in brokers:
        broker.close()
    # A test that failed already says so; its broker output is in the report.
    if request.node.get_closest_marker("broker_tracebacks_ok") is None and not (
        request.node.stash.get(_CALL_FAILED, False)
    ):
        for broker in brokers:
            found = broker.tracebacks()
            if found:
                pytest.fail(
                    f"{broker!r} logged {len(found)} traceback(s):\n{broker.output(last=200)}",
                    pytrace=False,
                )


@pytest.fixture
def broker(broker_factory: BrokerFactory, request: pytest.FixtureRequest) -> BrokerProcess:
    """One standalone broker on a fresh data directory, with the ``broker_flags`` marker's flags."""
    marker = request.node.get_closest_marker("broker_flags")
    return broker_factory(flags=list(marker.args) if marker else [])


class Clients:
    """Opens connections to brokers; ``aclose`` closes every one still open."""

    def __init__(self) -> None:
        self._conns: list[BrokerConnection] = []
        self._raws: list[RawClient] = []

    async def conn(self, broker: BrokerProcess, client_id: str = "test") -> BrokerConnection:
        opened = await connect(broker, client_id=client_id)
        self._conns.append(opened)
        return opened

    async def raw(self, broker: BrokerProcess) -> RawClient:
        opened = await RawClient.open(broker.host, broker.port)
        self._raws.append(opened)
        return opened

    async def aclose(self) -> None:
        for conn in self._conns:
            conn.close()
        for raw in self._raws:
            raw.close()
        await asyncio.sleep(0.01)  # let the transports finish closing before the loop goes


@pytest.fixture
async def clients() -> AsyncIterator[Clients]:
    opened = Clients()
    yield opened
    await opened.aclose()
