"""Producers wired to an in-memory ``FakeBroker`` (no sockets), closed at teardown."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from client.producer import Producer
from tests.client.producer.fake_broker import FakeBroker

ProducerFactory = Callable[..., Awaitable[Producer]]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeBroker:
    """Topics ``t`` (1 partition), ``three`` (3), ``wide`` (12) and ``thousand`` (1000)."""
    return FakeBroker({"t": 1, "three": 3, "wide": 12, "thousand": 1000}).install(monkeypatch)


@pytest.fixture
async def make_producer(fake: FakeBroker) -> AsyncIterator[ProducerFactory]:
    """``await make_producer(linger_ms=50, ...)``: a started Producer on the fake broker."""
    made: list[Producer] = []

    async def make(**settings: Any) -> Producer:
        producer = Producer(fake.address, **settings)
        await producer.start()
        made.append(producer)
        return producer

    yield make
    fake.release()
    for producer in made:
        # A test that broke the producer on purpose may see its error again here.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.close(), 5)
