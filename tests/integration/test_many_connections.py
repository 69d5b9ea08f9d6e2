"""Many clients at once, each checking that it reads back exactly what it wrote."""

from __future__ import annotations

import asyncio
import time

from client.connection import BrokerConnection
from tests.integration import wire
from tests.integration.conftest import Clients
from tests.support.broker_process import BrokerProcess

CONNECTIONS = 200
PARTITIONS = 4
BATCHES_EACH = 3


async def _own_records(conn: BrokerConnection, client: int) -> list[tuple[int, bytes]]:
    """Produce this client's batches to its partition; return (offset, value) acknowledged."""
    partition = client % PARTITIONS
    written = []
    for batch in range(BATCHES_EACH):
        values = [f"client-{client}-batch-{batch}-{i}".encode() for i in range(batch + 1)]
        base = await wire.produce_values(conn, "many", partition, values)
        written.extend((base + i, v) for i, v in enumerate(values))
    # Read back exactly its own offsets (the batches may be interleaved with others').
    for offset, value in written:
        _, tail = await wire.fetch(conn, "many", partition, offset, partition_max_bytes=1)
        found = dict(wire.records_of(tail))
        assert found.get(offset) == value, (client, offset)
    return written


async def test_two_hundred_concurrent_connections(broker: BrokerProcess, clients: Clients) -> None:
    admin = await clients.conn(broker, "admin")
    await wire.create_topic(admin, "many", partitions=PARTITIONS)
    started = time.monotonic()
    conns = await asyncio.wait_for(
        asyncio.gather(*(clients.conn(broker, f"client-{i}") for i in range(CONNECTIONS))), 20
    )
    results = await asyncio.wait_for(
        asyncio.gather(*(_own_records(c, i) for i, c in enumerate(conns))), 30
    )
    elapsed = time.monotonic() - started
    assert elapsed < 20, f"200 clients took {elapsed:.1f} s"
    assert all(not c.closed for c in conns)

    # Every acknowledged offset is unique per partition and the logs hold exactly these.
    per_partition: dict[int, dict[int, bytes]] = {p: {} for p in range(PARTITIONS)}
    for client, written in enumerate(results):
        for offset, value in written:
            assert offset not in per_partition[client % PARTITIONS]
            per_partition[client % PARTITIONS][offset] = value
    for partition, expected in per_partition.items():
        stored = await wire.fetch_values(admin, "many", partition)
        assert dict(stored) == expected
