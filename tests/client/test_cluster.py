"""The client's view of the cluster: bootstrap parsing, metadata cache and refresh, connections.

Runs against the in-memory ``FakeBroker`` (``tests/client/producer/fake_broker.py``),
counting the Metadata requests that reach it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from client.cluster import Cluster, parse_bootstrap
from client.errors import InvalidTopicError, NetworkError, UnknownTopicOrPartitionError
from client.protocol import ApiKey
from tests.client.producer.fake_broker import FakeBroker


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeBroker:
    return FakeBroker({"t": 2, "u": 1}).install(monkeypatch)


@pytest.fixture
async def cluster(fake: FakeBroker) -> AsyncIterator[Cluster]:
    opened = Cluster(fake.address, metadata_max_age_ms=60_000)
    yield opened
    await opened.close()


def _metadata_requests(fake: FakeBroker) -> list[object]:
    return [body["topics"] for key, body in fake.requests if key == ApiKey.METADATA]


# -- bootstrap ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("servers", "parsed"),
    [
        ("a:1", [("a", 1)]),
        ("a:1, b:2,", [("a", 1), ("b", 2)]),
        (["a:1", "b:2"], [("a", 1), ("b", 2)]),
        ("[::1]:9092", [("::1", 9092)]),
        (":9092", [("localhost", 9092)]),
    ],
)
def test_bootstrap_servers_parse(servers: str | list[str], parsed: list[tuple[str, int]]) -> None:
    assert parse_bootstrap(servers) == parsed


@pytest.mark.parametrize("servers", ["a", "a:b", "", " , ", []])
def test_bad_bootstrap_servers_are_refused(servers: str | list[str]) -> None:
    with pytest.raises(ValueError, match="bootstrap"):
        parse_bootstrap(servers)


def test_the_default_bootstrap_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOGSERVER_BROKERS", "x:1,y:2")
    assert parse_bootstrap(None) == [("x", 1), ("y", 2)]
    monkeypatch.delenv("LOGSERVER_BROKERS")
    assert parse_bootstrap(None) == [("localhost", 9092)]


# -- metadata ----------------------------------------------------------------------------------


async def test_partitions_come_from_one_metadata_request_then_the_cache(
    cluster: Cluster, fake: FakeBroker
) -> None:
    partitions = await cluster.partitions_for("t")
    again = await cluster.partitions_for("t")

    assert sorted(partitions) == [0, 1]
    assert partitions[1].leader == 0
    assert again is partitions
    assert cluster.cached_partitions("t") is partitions
    assert _metadata_requests(fake) == [["t"]]


async def test_invalidate_makes_the_next_lookup_refresh(cluster: Cluster, fake: FakeBroker) -> None:
    await cluster.partitions_for("t")
    fake.topics["t"] = 3  # partitions added behind the client's back

    assert sorted(await cluster.partitions_for("t")) == [0, 1]  # cached
    cluster.invalidate()
    assert cluster.cached_partitions("t") is None  # stale: no answer without I/O
    assert sorted(await cluster.partitions_for("t")) == [0, 1, 2]
    assert len(_metadata_requests(fake)) == 2


async def test_metadata_older_than_its_max_age_is_refreshed(fake: FakeBroker) -> None:
    cluster = Cluster(fake.address, metadata_max_age_ms=50)
    try:
        await cluster.partitions_for("t")
        await asyncio.sleep(0.08)
        await cluster.partitions_for("t")
    finally:
        await cluster.close()

    assert len(_metadata_requests(fake)) == 2


async def test_a_new_topic_is_fetched_and_the_known_ones_are_asked_again(
    cluster: Cluster, fake: FakeBroker
) -> None:
    await cluster.partitions_for("t")
    await cluster.partitions_for("u")

    assert _metadata_requests(fake) == [["t"], ["t", "u"]]
    assert cluster.cached_partitions("t") is not None
    assert cluster.cached_partitions("u") is not None


async def test_concurrent_lookups_share_one_refresh(cluster: Cluster, fake: FakeBroker) -> None:
    results = await asyncio.gather(*(cluster.partitions_for("t") for _ in range(5)))

    assert all(sorted(r) == [0, 1] for r in results)
    assert len(_metadata_requests(fake)) == 1


@pytest.mark.parametrize(
    ("code", "error"),
    [(3, UnknownTopicOrPartitionError), (17, InvalidTopicError)],
)
async def test_a_topic_error_is_raised_as_its_class_naming_the_topic(
    cluster: Cluster, fake: FakeBroker, code: int, error: type[Exception]
) -> None:
    fake.topic_errors["bad"] = code

    with pytest.raises(error, match="'bad'"):
        await cluster.partitions_for("bad")


async def test_a_topic_that_went_away_is_dropped_from_the_cache(
    cluster: Cluster, fake: FakeBroker
) -> None:
    await cluster.partitions_for("t")
    await cluster.partitions_for("u")
    del fake.topics["u"]
    cluster.invalidate()

    await cluster.partitions_for("t")

    assert cluster.cached_partitions("u") is None
    with pytest.raises(UnknownTopicOrPartitionError, match="'u'"):
        await cluster.partitions_for("u")


async def test_allow_auto_topic_creation_reaches_the_request(fake: FakeBroker) -> None:
    for allow in (True, False):
        cluster = Cluster(fake.address, allow_auto_topic_creation=allow)
        try:
            await cluster.partitions_for("t")
        finally:
            await cluster.close()
        assert fake.requests[-1][1]["allow_auto_topic_creation"] is allow


# -- connections -------------------------------------------------------------------------------


async def test_one_connection_per_broker_is_shared(cluster: Cluster, fake: FakeBroker) -> None:
    await cluster.partitions_for("t")

    first = await cluster.connection(0)
    second = await cluster.connection(0)

    assert first is second
    assert len(fake.connections) == 1


async def test_a_closed_connection_is_replaced_on_next_use(
    cluster: Cluster, fake: FakeBroker
) -> None:
    await cluster.partitions_for("t")
    first = await cluster.connection(0)
    first.close()

    second = await cluster.connection(0)

    assert second is not first
    assert not second.closed
    assert len(fake.connections) == 2


async def test_metadata_is_refreshed_after_a_lost_connection(
    cluster: Cluster, fake: FakeBroker
) -> None:
    await cluster.partitions_for("t")
    (await cluster.any_connection()).close()
    cluster.invalidate()

    assert sorted(await cluster.partitions_for("t")) == [0, 1]
    assert len(_metadata_requests(fake)) == 2
    assert len(fake.connections) == 2


async def test_an_unreachable_bootstrap_names_every_address_tried(fake: FakeBroker) -> None:
    fake.reachable = False
    cluster = Cluster(["fake:9092", "other:1"])
    try:
        with pytest.raises(NetworkError, match=r"fake:9092.*other:1"):
            await cluster.any_connection()
    finally:
        await cluster.close()


async def test_a_later_bootstrap_address_is_used_when_the_first_is_down(
    fake: FakeBroker,
) -> None:
    cluster = Cluster(["down:1", fake.address])
    try:
        assert sorted(await cluster.partitions_for("t")) == [0, 1]
    finally:
        await cluster.close()


async def test_a_closed_cluster_refuses_new_connections(cluster: Cluster, fake: FakeBroker) -> None:
    connection = await cluster.any_connection()
    await cluster.close()

    assert connection.closed
    with pytest.raises(NetworkError, match="closed"):
        await cluster.any_connection()
