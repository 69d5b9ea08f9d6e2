"""OffsetsForLeaderEpoch on a real broker: standalone, every append is leader epoch 0."""

from __future__ import annotations

from client.connection import BrokerConnection
from client.errors import UnknownTopicOrPartitionError
from client.protocol import ApiKey
from tests.integration import wire
from tests.integration.conftest import Clients
from tests.support.broker_process import BrokerProcess


async def ask(conn: BrokerConnection, topic: str, partition: int, epoch: int) -> list[int]:
    body = {"replica_id": -1, "topics": [[topic, [[partition, epoch]]]]}
    reply, _ = await conn.request(ApiKey.OFFSETS_FOR_LEADER_EPOCH, body)
    [[name, [row]]] = reply["topics"]
    assert name == topic
    return row


async def test_the_latest_epoch_ends_at_the_log_end(broker: BrokerProcess, clients: Clients):
    conn = await clients.conn(broker)
    await wire.create_topic(conn, "epochs", partitions=1)
    assert await ask(conn, "epochs", 0, 0) == [0, 0, -1, -1]  # nothing written yet

    await wire.produce_values(conn, "epochs", 0, [b"a", b"b", b"c"])

    assert await ask(conn, "epochs", 0, 0) == [0, 0, 0, 3]
    assert await ask(conn, "epochs", 0, 7) == [0, 0, 0, 3]  # a later epoch: the latest known
    assert await ask(conn, "epochs", 0, -1) == [0, 0, -1, -1]  # below every epoch


async def test_the_epoch_cache_survives_a_restart(broker: BrokerProcess, clients: Clients):
    conn = await clients.conn(broker)
    await wire.create_topic(conn, "kept", partitions=1)
    await wire.produce_values(conn, "kept", 0, [b"x"] * 5)
    assert await broker.stop_async() == 0

    await broker.start_async()
    conn = await clients.conn(broker)

    assert await ask(conn, "kept", 0, 0) == [0, 0, 0, 5]


async def test_unknown_partition(broker: BrokerProcess, clients: Clients):
    conn = await clients.conn(broker)

    row = await ask(conn, "nowhere", 0, 0)

    assert row == [0, UnknownTopicOrPartitionError.code, -1, -1]
