"""The ``BrokerProcess`` helper itself: start, stop, kill, restart, and its failure messages."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.integration import wire
from tests.integration.conftest import BrokerFactory, Clients
from tests.support.broker_process import BrokerProcess, BrokerStartError


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


async def test_start_stop_kill_restart(broker_factory: BrokerFactory, clients: Clients) -> None:
    broker = broker_factory()
    assert broker.running
    assert broker.address == f"127.0.0.1:{broker.port}"
    conn = await clients.conn(broker)
    assert (await wire.metadata(conn, None))["brokers"][0][2] == broker.port

    assert await broker.stop_async() == 0
    assert not broker.running
    assert any("stopped cleanly" in line for line in broker.lines)

    # (Data surviving a restart is test_lifecycle's business.)
    await broker.restart_async()
    conn = await clients.conn(broker)
    assert (await wire.metadata(conn, None))["brokers"][0][2] == broker.port
    pid = broker.pid
    assert pid is not None
    assert await broker.kill9_async() == -signal.SIGKILL
    assert not alive(pid)
    assert broker.starts == 2


def test_a_broker_that_cannot_start_reports_its_output(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path, flags=["--log-segment-bytes", "tiny"])
    with pytest.raises(BrokerStartError, match=r"exited with 2(.|\n)*log.segment.bytes"):
        broker.start()
    assert not broker.running


def test_settings_in_the_environment_do_not_leak_into_the_broker(
    broker_factory: BrokerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LISTENERS", "PLAINTEXT://nowhere.invalid:1")
    monkeypatch.setenv("LOG_SEGMENT_BYTES", "not-a-number")
    broker = broker_factory()
    assert broker.running


def test_close_kills_by_pid(tmp_path: Path) -> None:
    broker = BrokerProcess(tmp_path).start()
    pid = broker.pid
    assert pid is not None
    broker.close()
    assert not alive(pid)
    broker.close()  # harmless twice
