"""The ``start`` fixture: a NetworkServer with a FakeDispatcher, and clients to it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from client.connection import BrokerConnection as ClientConnection
from logserver.network.server import NetworkServer
from tests.logserver.network.harness import FakeDispatcher, start_server

Started = tuple[NetworkServer, FakeDispatcher, Callable[[], Awaitable[ClientConnection]]]


@pytest.fixture
async def start() -> AsyncIterator[Callable[..., Awaitable[Started]]]:
    """``await start(**server_settings)`` -> (server, dispatcher, connect)."""
    servers: list[NetworkServer] = []
    clients: list[ClientConnection] = []

    async def factory(**settings: Any) -> Started:
        dispatcher = FakeDispatcher()
        server, port = await start_server(dispatcher, **settings)
        servers.append(server)

        async def connect() -> ClientConnection:
            client = await ClientConnection.open("127.0.0.1", port, client_id="test")
            clients.append(client)
            return client

        return server, dispatcher, connect

    yield factory
    for client in clients:
        client.close()
    for server in servers:
        await server.shutdown(1.0)
