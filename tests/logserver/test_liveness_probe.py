"""The controller's liveness probe, against real sockets on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from coordination import BrokerInfo
from logserver.liveness_probe import REFUSALS, LivenessProbe

INTERVAL_S = 0.02


def closed_port() -> int:
    """A port nobody listens on (bound once, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def listening() -> AsyncIterator[int]:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


async def probe_for(brokers: list[BrokerInfo], rounds: int) -> list[BrokerInfo]:
    dead: list[BrokerInfo] = []
    probe = LivenessProbe(0, dead.append, interval_s=INTERVAL_S, connect_timeout_s=0.5)
    probe.watch(brokers)
    probe.start()
    try:
        await asyncio.sleep(INTERVAL_S * rounds + 0.3)
    finally:
        await probe.close()
    return dead


async def test_a_listening_broker_is_alive(listening: int) -> None:
    assert await probe_for([BrokerInfo(1, "127.0.0.1", listening, epoch=7)], rounds=10) == []


async def test_a_refusing_broker_is_reported_once_per_registration() -> None:
    info = BrokerInfo(2, "127.0.0.1", closed_port(), epoch=7)
    dead: list[BrokerInfo] = []
    probe = LivenessProbe(0, dead.append, interval_s=INTERVAL_S, connect_timeout_s=0.5)
    probe.watch([info])
    probe.start()
    try:
        for _ in range(250):  # until reported (5 s at most)
            if dead:
                break
            await asyncio.sleep(0.02)
        assert dead == [info]
        await asyncio.sleep(INTERVAL_S * 10)  # more refusals: still reported once
    finally:
        await probe.close()
    assert dead == [info]
    assert dead[0].epoch == 7


async def test_the_own_broker_is_never_probed() -> None:
    assert await probe_for([BrokerInfo(0, "127.0.0.1", closed_port())], rounds=10) == []


async def test_an_unresolvable_host_is_not_proof_of_death() -> None:
    info = BrokerInfo(3, "no-such-host.invalid", 9092, epoch=1)
    assert await probe_for([info], rounds=5) == []


async def test_refusals_must_come_in_a_row(listening: int) -> None:
    dead: list[BrokerInfo] = []
    probe = LivenessProbe(0, dead.append)
    refusing = BrokerInfo(1, "127.0.0.1", closed_port(), epoch=1)
    probe.watch([refusing])
    for _ in range(REFUSALS - 1):
        probe._count(refusing, refused=True)
    probe._count(refusing, refused=False)
    probe._count(refusing, refused=True)
    assert dead == []
    for _ in range(REFUSALS - 1):
        probe._count(refusing, refused=True)
    assert dead == [refusing]


async def test_a_new_registration_is_judged_afresh() -> None:
    dead: list[BrokerInfo] = []
    probe = LivenessProbe(0, dead.append)
    first = BrokerInfo(1, "127.0.0.1", 1, epoch=1)
    probe.watch([first])
    for _ in range(REFUSALS + 2):
        probe._count(first, refused=True)
    assert dead == [first]
    again = BrokerInfo(1, "127.0.0.1", 1, epoch=2)
    probe.watch([again])
    probe._count(first, refused=True)  # an answer about the old registration is dropped
    assert dead == [first]
    for _ in range(REFUSALS):
        probe._count(again, refused=True)
    assert dead == [first, again]


async def test_a_broker_no_longer_watched_is_not_reported() -> None:
    dead: list[BrokerInfo] = []
    probe = LivenessProbe(0, dead.append)
    info = BrokerInfo(1, "127.0.0.1", 1, epoch=1)
    probe.watch([info])
    probe._count(info, refused=True)
    probe.watch([])
    for _ in range(REFUSALS):
        probe._count(info, refused=True)
    assert dead == []
