"""Real brokers for the integration tests: ``broker`` (one, started) and ``broker_factory``.

Every broker started here is killed by PID at teardown, whatever the test did.
When a test fails, each broker's output is attached to the report. A broker
that logged a Python traceback fails the test at teardown (an unexpected
failure inside the broker is a bug even when the client saw nothing), unless
the test is marked ``broker_tracebacks_ok``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.support.broker_process import BrokerProcess

BrokerFactory = Callable[..., BrokerProcess]

_BROKERS = pytest.StashKey[list[BrokerProcess]]()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "broker_tracebacks_ok: the broker may log tracebacks in this test"
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
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
    if request.node.get_closest_marker("broker_tracebacks_ok") is None:
        for broker in brokers:
            found = broker.tracebacks()
            if found:
                pytest.fail(
                    f"{broker!r} logged {len(found)} traceback(s):\n{broker.output(last=200)}",
                    pytrace=False,
                )


@pytest.fixture
def broker(broker_factory: BrokerFactory) -> BrokerProcess:
    """One standalone broker with default settings, on a fresh data directory."""
    return broker_factory()
