from client.protocol import ApiKey
from tests.integration import wire
from tests.support.broker_process import connect


async def test_smoke(broker):
    conn = await connect(broker)
    body, _ = await conn.request(ApiKey.API_VERSIONS, {})
    print(body)
    await wire.create_topic(conn, "t")
    off = await wire.produce_values(conn, "t", 0, [b"a", b"b"])
    print(off, await wire.fetch_values(conn, "t"))
    conn.close()
    assert broker.stop() == 0
    print(broker.output())
