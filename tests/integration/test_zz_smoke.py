import asyncio, time
from client.protocol import ApiKey
from client.record import build_batch
from tests.integration import wire
from tests.support.broker_process import connect


async def test_smoke(broker_factory):
    broker = broker_factory(flags=["--connections-max-idle-ms", "300"])
    conn = await connect(broker)
    await wire.create_topic(conn, "t", partitions=2)
    b = build_batch([b"a", b"b"])
    body = {"acks": 1, "timeout_ms": 1000, "topics": [["t", [[0, len(b)]]]]}
    try:
        print(await conn.request(ApiKey.PRODUCE, body, [b, b"junk"]))
    except Exception as e:
        print("err", repr(e))
    conn = await connect(broker)
    print(await wire.list_offset(conn, "t", 0, -1))
    body = {"acks": 1, "timeout_ms": 1000, "topics": [["t", [[0, len(b)], [1, 1000]]]]}
    try:
        print(await conn.request(ApiKey.PRODUCE, body, [b]))
    except Exception as e:
        print("err", repr(e))
    print(await wire.list_offset(conn, "t", 0, -1))
    raw = await wire.RawClient.open(broker.host, broker.port)
    await raw.send(b"\x00\x00\x01\x00abc")
    t = time.monotonic()
    print("partial closed", await raw.closed_by_peer(3), time.monotonic() - t)
    raw = await wire.RawClient.open(broker.host, broker.port)
    t = time.monotonic()
    print("silent closed", await raw.closed_by_peer(3), time.monotonic() - t)
    print(await wire.list_offset(conn, "t", 0, -1))
