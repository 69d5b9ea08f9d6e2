"""Consumers wired to an in-memory ``FakeBroker`` (no sockets), closed at teardown.

``make_member`` makes group members, on a ``FakeCoordinatorBroker`` (``group_fake``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from client.consumer import Consumer
from tests.client.consumer.fake_coordinator import FakeCoordinatorBroker
from tests.client.consumer.support import close_consumer
from tests.client.producer.fake_broker import FakeBroker

ConsumerFactory = Callable[..., Awaitable[Consumer]]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeBroker:
    """Topics ``t`` (1 partition) and ``two`` (2)."""
    return FakeBroker({"t": 1, "two": 2}).install(monkeypatch)


@pytest.fixture
async def make_consumer(fake: FakeBroker) -> AsyncIterator[ConsumerFactory]:
    """``await make_consumer(auto_offset_reset="none", ...)``: a started Consumer on the fake."""
    made: list[Consumer] = []

    async def make(**settings: Any) -> Consumer:
        settings.setdefault("fetch_max_wait_ms", 20)
        settings.setdefault("retry_backoff_ms", 10)
        consumer = Consumer(fake.address, **settings)
        await consumer.start()
        made.append(consumer)
        return consumer

    yield make
    for consumer in made:
        await close_consumer(consumer)


@pytest.fixture
def group_fake(monkeypatch: pytest.MonkeyPatch) -> FakeCoordinatorBroker:
    """Topics ``t`` (4 partitions) and ``u`` (2), and a group coordinator."""
    return FakeCoordinatorBroker({"t": 4, "u": 2}).install(monkeypatch)


@pytest.fixture
async def make_member(group_fake: FakeCoordinatorBroker) -> AsyncIterator[ConsumerFactory]:
    """``await make_member(group_id="g", ...)``: a started Consumer with fast group timings."""
    made: list[Consumer] = []

    async def make(**settings: Any) -> Consumer:
        settings.setdefault("group_id", "g")
        settings.setdefault("fetch_max_wait_ms", 20)
        settings.setdefault("retry_backoff_ms", 10)
        settings.setdefault("heartbeat_interval_ms", 50)
        settings.setdefault("session_timeout_ms", 2_000)
        settings.setdefault("max_poll_interval_ms", 3_000)
        settings.setdefault("auto_offset_reset", "earliest")
        consumer = Consumer(group_fake.address, **settings)
        await consumer.start()
        made.append(consumer)
        return consumer

    yield make
    for consumer in made:
        await close_consumer(consumer)
