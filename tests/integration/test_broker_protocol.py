"""Each API of a real broker, as a client sees it over the wire."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Any

import pytest

from client.connection import BrokerConnection
from client.errors import InvalidRequestError, UnknownTopicOrPartitionError
from client.protocol import SUPPORTED_VERSIONS, ApiKey
from client.record import BatchBuilder, build_batch, iter_batches
from tests.integration import wire
from tests.integration.conftest import BrokerFactory, Clients
from tests.support.batches import BASE_TIMESTAMP
from tests.support.broker_process import BrokerProcess

TOPIC_ALREADY_EXISTS = 36
INVALID_TOPIC_EXCEPTION = 17
INVALID_PARTITIONS = 37
INVALID_REPLICATION_FACTOR = 38
INVALID_REQUIRED_ACKS = 21


@pytest.fixture
async def conn(broker: BrokerProcess, clients: Clients) -> BrokerConnection:
    return await clients.conn(broker)


async def test_api_versions_lists_every_implemented_api(conn: BrokerConnection) -> None:
    body, tail = await conn.request(ApiKey.API_VERSIONS, {})
    assert body["error"] == wire.NONE
    assert sorted(map(tuple, body["api_versions"])) == sorted(
        (int(key), low, high) for key, (low, high) in SUPPORTED_VERSIONS.items()
    )
    assert bytes(tail) == b""


# -- topics ---------------------------------------------------------------------------


async def create(conn: BrokerConnection, spec: dict[str, Any], **body: Any) -> list[Any]:
    reply, _ = await conn.request(ApiKey.CREATE_TOPICS, {"topics": [spec], **body})
    [row] = reply["topics"]
    return row


async def delete(conn: BrokerConnection, name: str) -> list[Any]:
    reply, _ = await conn.request(ApiKey.DELETE_TOPICS, {"topics": [name]})
    [row] = reply["topics"]
    return row


async def test_create_describe_delete_topic(broker: BrokerProcess, conn: BrokerConnection) -> None:
    await wire.create_topic(conn, "orders", partitions=3, configs={"retention.ms": "1000000"})
    body = await wire.metadata(conn, ["orders"])
    assert body["brokers"] == [[0, broker.host, broker.port, None]]
    assert body["controller_id"] == 0
    [[name, error, partitions]] = body["topics"]
    assert (name, error) == ("orders", wire.NONE)
    assert [p[:3] for p in partitions] == [[0, 0, 0], [1, 0, 0], [2, 0, 0]]
    assert all(p[4] == [0] and p[5] == [0] for p in partitions)
    assert {p.name for p in broker.data_dir.glob("orders-*")} == {
        "orders-0",
        "orders-1",
        "orders-2",
    }
    configs = await wire.describe_topic(conn, "orders")
    assert configs["retention.ms"] == ("1000000", "topic")
    assert configs["cleanup.policy"] == ("delete", "default")
    for partition in range(3):
        await wire.produce_values(conn, "orders", partition, [f"p{partition}".encode()])

    assert (await create(conn, {"name": "orders"}))[1] == TOPIC_ALREADY_EXISTS
    assert await delete(conn, "orders") == ["orders", wire.NONE, None]
    [[_, error, _]] = (await wire.metadata(conn, ["orders"]))["topics"]
    assert error == wire.UNKNOWN_TOPIC_OR_PARTITION
    assert list(broker.data_dir.glob("orders-*")) == []
    row = await wire.produce(conn, "orders", 0, build_batch([b"gone"]))
    assert row[1] == wire.UNKNOWN_TOPIC_OR_PARTITION
    assert (await delete(conn, "orders"))[1] == wire.UNKNOWN_TOPIC_OR_PARTITION

    # The same name again is a new, empty topic.
    await wire.create_topic(conn, "orders")
    assert await wire.list_offset(conn, "orders", 0, wire.LATEST) == [0, wire.NONE, -1, 0]
    assert (await wire.describe_topic(conn, "orders"))["retention.ms"][1] == "default"


@pytest.mark.parametrize(
    ("spec", "code"),
    [
        ({"name": "t", "num_partitions": 0}, INVALID_PARTITIONS),
        ({"name": "t", "replication_factor": 3}, INVALID_REPLICATION_FACTOR),
        ({"name": ""}, INVALID_TOPIC_EXCEPTION),
        ({"name": "a/b"}, INVALID_TOPIC_EXCEPTION),
        ({"name": "x" * 250}, INVALID_TOPIC_EXCEPTION),
        ({"name": "t", "configs": {"cleanup.policy": "compact"}}, wire.INVALID_CONFIG),
        ({"name": "t", "configs": {"retention.ms": "soon"}}, wire.INVALID_CONFIG),
        ({"name": "t", "configs": {"no.such.config": "1"}}, wire.INVALID_CONFIG),
    ],
)
async def test_create_topic_refusals(
    broker: BrokerProcess, conn: BrokerConnection, spec: dict[str, Any], code: int
) -> None:
    row = await create(conn, spec)
    assert row[1] == code, row
    assert (await wire.metadata(conn, None))["topics"] == []
    assert [p.name for p in broker.data_dir.iterdir()] == ["__coordinator"]


async def test_create_validate_only_creates_nothing(conn: BrokerConnection) -> None:
    assert await create(conn, {"name": "dry"}, validate_only=True) == ["dry", wire.NONE, None]
    assert (await wire.metadata(conn, None))["topics"] == []


# -- configs --------------------------------------------------------------------------


async def test_describe_and_alter_topic_configs(
    broker_factory: BrokerFactory, clients: Clients
) -> None:
    broker = broker_factory(flags=["--log-segment-bytes", "500000"])
    conn = await clients.conn(broker)
    await wire.create_topic(conn, "t")
    configs = await wire.describe_topic(conn, "t")
    assert configs["segment.bytes"] == ("500000", "default")
    assert configs["retention.ms"] == ("604800000", "default")

    entry = await wire.alter_topic(conn, "t", {"retention.ms": "3600000", "segment.bytes": "4096"})
    assert entry["error"] == wire.NONE, entry
    configs = await wire.describe_topic(conn, "t")
    assert configs["retention.ms"] == ("3600000", "topic")
    assert configs["segment.bytes"] == ("4096", "topic")

    for bad in (
        {"cleanup.policy": "compact"},
        {"retention.ms": "-7"},
        {"segment.bytes": "ten"},
        {"no.such.config": "1"},
    ):
        entry = await wire.alter_topic(conn, "t", bad)
        assert entry["error"] == wire.INVALID_CONFIG, (bad, entry)
    assert await wire.describe_topic(conn, "t") == configs, "a refused change changed something"

    entry = await wire.alter_topic(conn, "t", {}, delete=["retention.ms"])
    assert entry["error"] == wire.NONE
    configs = await wire.describe_topic(conn, "t")
    assert configs["retention.ms"] == ("604800000", "default")
    assert configs["segment.bytes"] == ("4096", "topic")

    entry = await wire.alter_topic(conn, "nope", {"retention.ms": "1"})
    assert entry["error"] == wire.UNKNOWN_TOPIC_OR_PARTITION

    reply, _ = await conn.request(
        ApiKey.ALTER_CONFIGS,
        {
            "resources": [{"type": "topic", "name": "t", "set": {"retention.ms": "5"}}],
            "validate_only": True,
        },
    )
    assert reply["resources"][0]["error"] == wire.NONE
    assert (await wire.describe_topic(conn, "t"))["retention.ms"][0] == "604800000"

    # Overrides are stored: a restarted broker still has them.
    conn.close()
    await broker.restart_async()
    conn = await clients.conn(broker)
    assert (await wire.describe_topic(conn, "t"))["segment.bytes"] == ("4096", "topic")


async def test_describe_broker_configs(conn: BrokerConnection) -> None:
    reply, _ = await conn.request(
        ApiKey.DESCRIBE_CONFIGS,
        {"resources": [{"type": "broker", "name": "0", "keys": ["auto.create.topics.enable"]}]},
    )
    [entry] = reply["resources"]
    assert entry["error"] == wire.NONE
    assert entry["configs"] == [["auto.create.topics.enable", "true", "broker", True]]


# -- produce --------------------------------------------------------------------------


@pytest.mark.parametrize("acks", [1, -1])
async def test_produce_acks_returns_base_offsets(conn: BrokerConnection, acks: int) -> None:
    await wire.create_topic(conn, "t")
    bases = []
    for i in range(5):
        row = await wire.produce(conn, "t", 0, build_batch([b"a", b"b", b"c"]), acks=acks)
        assert row[1] == wire.NONE, row
        assert row[3] == 0  # log start offset
        bases.append(row[2])
        assert i == len(bases) - 1
    assert bases == [0, 3, 6, 9, 12]
    assert len(await wire.fetch_values(conn, "t")) == 15


async def test_produce_acks_zero_gets_no_response_and_data_appears(
    conn: BrokerConnection,
) -> None:
    await wire.create_topic(conn, "t")
    values = [f"fire-and-forget-{i}".encode() for i in range(20)]
    for value in values:
        body, tail = wire.produce_body("t", 0, [build_batch([value])], acks=0)
        assert conn.send(ApiKey.PRODUCE, body, tail, expect_response=False) is None
    # The next response on this connection must be this request's: any response to an
    # acks=0 produce would arrive first and break the correlation order.
    assert await wire.list_offset(conn, "t", 0, wire.LATEST) == [0, wire.NONE, -1, 20]
    assert [v for _, v in await wire.fetch_values(conn, "t")] == values


@pytest.mark.parametrize("problem", ["unknown-partition", "bad-tail-size", "corrupt-batch"])
async def test_produce_acks_zero_gets_no_response_even_when_it_fails(
    broker: BrokerProcess, conn: BrokerConnection, clients: Clients, problem: str
) -> None:
    """Kafka never answers acks=0 (docs/protocol.md says so too); it may close the connection.

    A response would be taken for the next request's: the client's stream is broken.
    """
    await wire.create_topic(conn, "t")
    batch = build_batch([b"x"])
    partition, size = (7, len(batch)) if problem == "unknown-partition" else (0, len(batch))
    if problem == "bad-tail-size":
        size += 5
    if problem == "corrupt-batch":
        batch = batch[:-1] + bytes([batch[-1] ^ 1])
    body = {"acks": 0, "timeout_ms": 1000, "topics": [["t", [[partition, size]]]]}
    raw = await clients.raw(broker)
    await raw.send(wire.frame(wire.request_meta(ApiKey.PRODUCE, body, correlation_id=1), batch))
    latest = {"replica_id": -1, "topics": [["t", [[0, wire.LATEST]]]]}
    with contextlib.suppress(ConnectionError):
        await raw.send(wire.frame(wire.request_meta(ApiKey.LIST_OFFSETS, latest, correlation_id=2)))
    try:
        correlation_id, reply, _ = await raw.read_response()
    except (asyncio.IncompleteReadError, ConnectionError):
        return  # closed instead of answered: Kafka's way of reporting an acks=0 failure
    assert correlation_id == 2, f"an acks=0 produce was answered: {reply}"
    assert reply["topics"] == [["t", [[0, wire.NONE, -1, 0]]]]


async def test_produce_with_invalid_acks(conn: BrokerConnection) -> None:
    await wire.create_topic(conn, "t")
    row = await wire.produce(conn, "t", 0, build_batch([b"x"]), acks=2)
    assert row[1] == INVALID_REQUIRED_ACKS
    assert await wire.list_offset(conn, "t", 0, wire.LATEST) == [0, wire.NONE, -1, 0]


# -- fetch ----------------------------------------------------------------------------


async def test_fetch_long_poll_on_an_empty_partition_waits_max_wait(
    conn: BrokerConnection,
) -> None:
    await wire.create_topic(conn, "t")
    started = time.monotonic()
    row, tail = await wire.fetch(conn, "t", 0, 0, max_wait_ms=500)
    elapsed = time.monotonic() - started
    assert (row[1], row[2], bytes(tail)) == (wire.NONE, 0, b"")
    assert 0.45 <= elapsed < 2.0, elapsed


async def test_fetch_long_poll_returns_when_an_append_arrives(
    broker: BrokerProcess, conn: BrokerConnection, clients: Clients
) -> None:
    await wire.create_topic(conn, "t")
    producer = await clients.conn(broker, "producer")
    started = time.monotonic()
    waiting = asyncio.ensure_future(wire.fetch(conn, "t", 0, 0, max_wait_ms=8000))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    await wire.produce_values(producer, "t", 0, [b"wake-up"])
    row, tail = await asyncio.wait_for(waiting, wire.REPLY_TIMEOUT_S)
    elapsed = time.monotonic() - started
    assert wire.records_of(tail) == [(0, b"wake-up")]
    assert row[2] == 1
    assert 0.3 <= elapsed < 1.5, elapsed


async def test_fetch_long_poll_waits_for_min_bytes(
    broker: BrokerProcess, conn: BrokerConnection, clients: Clients
) -> None:
    await wire.create_topic(conn, "t")
    producer = await clients.conn(broker, "producer")
    await wire.produce_values(producer, "t", 0, [b"small"])

    # Too little for min_bytes: the fetch waits the whole max_wait, then returns what there is.
    started = time.monotonic()
    row, tail = await wire.fetch(conn, "t", 0, 0, max_wait_ms=600, min_bytes=5000)
    assert 0.55 <= time.monotonic() - started < 2.5
    assert wire.records_of(tail) == [(0, b"small")]

    # A small append does not satisfy it; a big one does, at once.
    started = time.monotonic()
    waiting = asyncio.ensure_future(wire.fetch(conn, "t", 0, 0, max_wait_ms=8000, min_bytes=5000))
    await asyncio.sleep(0.2)
    await wire.produce_values(producer, "t", 0, [b"still-small"])
    await asyncio.sleep(0.3)
    assert not waiting.done(), "returned before min_bytes were there"
    big = b"B" * 6000
    await wire.produce_values(producer, "t", 0, [big])
    row, tail = await asyncio.wait_for(waiting, wire.REPLY_TIMEOUT_S)
    assert time.monotonic() - started < 2.0
    assert [v for _, v in wire.records_of(tail)] == [b"small", b"still-small", big]
    assert row[4] >= 5000


async def _fill(conn: BrokerConnection, topic: str, partition: int, batches: int) -> int:
    """``batches`` one-record batches of equal size; return that size."""
    for i in range(batches):
        await wire.produce_values(conn, topic, partition, [f"{i:03d}".encode() + b"x" * 950])
    return len(build_batch([b"x" * 953]))


def whole_batches(tail: memoryview) -> list[int]:
    """Base offsets of the batches in ``tail``, which must hold only whole, valid batches."""
    return [batch.base_offset for batch in iter_batches(tail)]


@pytest.mark.parametrize("limit", ["max_bytes", "partition_max_bytes"])
async def test_fetch_is_cut_at_batch_boundaries(conn: BrokerConnection, limit: str) -> None:
    await wire.create_topic(conn, "t")
    size = await _fill(conn, "t", 0, 10)
    row, tail = await wire.fetch(conn, "t", 0, 0, **{limit: 3 * size + size // 2})
    assert whole_batches(tail) == [0, 1, 2]
    assert row[4] == 3 * size
    # A limit below one batch still returns the first batch whole (Kafka's rule).
    row, tail = await wire.fetch(conn, "t", 0, 4, **{limit: 10})
    assert whole_batches(tail) == [4]


async def test_fetch_max_bytes_spans_partitions(conn: BrokerConnection) -> None:
    await wire.create_topic(conn, "t", partitions=2)
    size = await _fill(conn, "t", 0, 10)
    await _fill(conn, "t", 1, 10)
    body = {
        "replica_id": -1,
        "max_wait_ms": 0,
        "min_bytes": 1,
        "max_bytes": 5 * size - 1,
        "topics": [["t", [[0, 0, 3 * size], [1, 0, 3 * size]]]],
    }
    reply, tail = await conn.request(ApiKey.FETCH, body)
    [[_, [row0, row1]]] = reply["topics"]
    assert (row0[4], row1[4]) == (3 * size, size)
    assert whole_batches(tail[: row0[4]]) == [0, 1, 2]
    assert whole_batches(tail[row0[4] :]) == [0]


async def test_fetch_from_the_middle_of_a_batch(conn: BrokerConnection) -> None:
    await wire.create_topic(conn, "t")
    await wire.produce_values(conn, "t", 0, [b"a", b"b", b"c"])
    await wire.produce_values(conn, "t", 0, [b"d", b"e", b"f"])
    _, tail = await wire.fetch(conn, "t", 0, 4)
    assert whole_batches(tail) == [3]  # the batch holding offset 4, from its start
    assert await wire.fetch_values(conn, "t", 0, 4) == [(4, b"e"), (5, b"f")]


# -- several requests in flight ---------------------------------------------------------


async def test_requests_in_flight_are_answered_in_order(conn: BrokerConnection) -> None:
    await wire.create_topic(conn, "t")
    futures: list[asyncio.Future[Any]] = []
    kinds: list[str] = []

    def send(kind: str, api_key: ApiKey, body: dict[str, Any], tail: Sequence[bytes] = ()) -> None:
        future = conn.send(api_key, body, tail)
        assert future is not None
        futures.append(future)
        kinds.append(kind)

    # A long poll first: everything behind it is dispatched at once, and its own
    # produces wake it, yet the responses still leave in request order.
    send("poll", ApiKey.FETCH, wire.fetch_body("t", 0, 0, max_wait_ms=3000, min_bytes=1))
    for i in range(40):
        body, tail = wire.produce_body("t", 0, [build_batch([f"v{i}".encode()])])
        send("produce", ApiKey.PRODUCE, body, tail)
        send("versions", ApiKey.API_VERSIONS, {})
        if i % 10 == 0:
            send("metadata", ApiKey.METADATA, {"topics": ["t"]})
            send("latest", ApiKey.LIST_OFFSETS, {"topics": [["t", [[0, wire.LATEST]]]]})
    started = time.monotonic()
    replies = await asyncio.wait_for(asyncio.gather(*futures), wire.REPLY_TIMEOUT_S)
    assert time.monotonic() - started < 2.5, "the long poll was not woken by the appends"
    bases = [
        r[0]["topics"][0][1][0][2] for k, r in zip(kinds, replies, strict=True) if k == "produce"
    ]
    assert bases == list(range(40))
    assert wire.records_of(replies[0][1])[0] == (0, b"v0")
    latest = [
        r[0]["topics"][0][1][0][3] for k, r in zip(kinds, replies, strict=True) if k == "latest"
    ]
    assert latest == [1, 11, 21, 31]


async def test_responses_carry_the_request_correlation_ids(
    broker: BrokerProcess, clients: Clients
) -> None:
    raw = await clients.raw(broker)
    ids = [100, 7, 2**31 - 1, 5, -3, 42]
    await raw.send(
        b"".join(
            wire.frame(wire.request_meta(ApiKey.API_VERSIONS, {}, correlation_id=i)) for i in ids
        )
    )
    got = [(await raw.read_response())[0] for _ in ids]
    assert got == ids


# -- list offsets ---------------------------------------------------------------------


async def test_list_offsets_earliest_latest_and_by_timestamp(conn: BrokerConnection) -> None:
    await wire.create_topic(conn, "t")
    for first_ts, count in (
        (BASE_TIMESTAMP, 3),
        (BASE_TIMESTAMP + 100, 2),
        (BASE_TIMESTAMP + 200, 1),
    ):
        builder = BatchBuilder()
        for i in range(count):
            builder.append(b"v", timestamp_ms=first_ts + i)
        row = await wire.produce(conn, "t", 0, builder.build())
        assert row[1] == wire.NONE

    async def offset_at(timestamp: int) -> tuple[int, int]:
        row = await wire.list_offset(conn, "t", 0, timestamp)
        assert row[1] == wire.NONE, row
        return row[3], row[2]

    assert await offset_at(wire.EARLIEST) == (0, -1)
    assert await offset_at(wire.LATEST) == (6, -1)
    assert await offset_at(0) == (0, BASE_TIMESTAMP)
    assert await offset_at(BASE_TIMESTAMP + 1) == (1, BASE_TIMESTAMP + 1)
    assert await offset_at(BASE_TIMESTAMP + 3) == (3, BASE_TIMESTAMP + 100)
    assert await offset_at(BASE_TIMESTAMP + 101) == (4, BASE_TIMESTAMP + 101)
    assert await offset_at(BASE_TIMESTAMP + 200) == (5, BASE_TIMESTAMP + 200)
    assert await offset_at(BASE_TIMESTAMP + 201) == (-1, -1)
    assert await offset_at(2**62) == (-1, -1)

    row = await wire.list_offset(conn, "t", 3, wire.LATEST)
    assert row[1] == wire.UNKNOWN_TOPIC_OR_PARTITION
    with pytest.raises(InvalidRequestError):
        await wire.list_offset(conn, "t", 0, -3)


async def test_list_offsets_on_an_empty_partition(conn: BrokerConnection) -> None:
    await wire.create_topic(conn, "t")
    assert await wire.list_offset(conn, "t", 0, wire.EARLIEST) == [0, wire.NONE, -1, 0]
    assert await wire.list_offset(conn, "t", 0, wire.LATEST) == [0, wire.NONE, -1, 0]
    assert await wire.list_offset(conn, "t", 0, 0) == [0, wire.NONE, -1, -1]


# -- auto-creation ----------------------------------------------------------------------


@pytest.mark.broker_flags("--num-partitions", "3")
async def test_metadata_auto_creates_when_allowed(
    broker: BrokerProcess, conn: BrokerConnection
) -> None:
    body = await wire.metadata(conn, ["auto", "bad name!"], auto_create=True)
    [[name, error, partitions], [_, bad_error, _]] = body["topics"]
    assert (name, error, len(partitions)) == ("auto", wire.NONE, 3)
    assert bad_error == INVALID_TOPIC_EXCEPTION
    assert await wire.produce_values(conn, "auto", 2, [b"hello"]) == 0
    assert await wire.fetch_values(conn, "auto", 2) == [(0, b"hello")]
    # Without the request's permission nothing is created, whatever the broker allows.
    body = await wire.metadata(conn, ["manual"], auto_create=False)
    assert body["topics"] == [["manual", wire.UNKNOWN_TOPIC_OR_PARTITION, []]]
    assert [t[0] for t in (await wire.metadata(conn, None))["topics"]] == ["auto"]


@pytest.mark.broker_flags("--auto-create-topics-enable", "false")
async def test_no_auto_create_when_the_broker_forbids_it(
    broker: BrokerProcess, conn: BrokerConnection
) -> None:
    body = await wire.metadata(conn, ["auto"], auto_create=True)
    assert body["topics"] == [["auto", wire.UNKNOWN_TOPIC_OR_PARTITION, []]]
    assert (await wire.metadata(conn, None))["topics"] == []
    assert not list(broker.data_dir.glob("auto-*"))
    row = await wire.produce(conn, "auto", 0, build_batch([b"x"]))
    assert row[1] == UnknownTopicOrPartitionError.code
