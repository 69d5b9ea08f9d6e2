"""The admin client (``Admin`` and ``BlockingAdmin``) against a real broker process."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest

from client.admin import Admin, response_error
from client.admin_types import BrokerDescription, ConfigEntry, GroupListing, PartitionDescription
from client.blocking_admin import BlockingAdmin
from client.errors import (
    ElectionNotNeededError,
    GroupIdNotFoundError,
    InvalidConfigurationError,
    InvalidGroupIdError,
    InvalidPartitionsError,
    InvalidReplicationFactorError,
    InvalidTopicError,
    NetworkError,
    OffsetOutOfRangeError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from client.producer import Producer
from client.topic_partition import OffsetAndMetadata, OffsetAndTimestamp, TopicPartition
from tests.support.broker_process import BrokerProcess


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerProcess]:
    process = BrokerProcess(tmp_path_factory.mktemp("admin-broker"))
    process.start()
    try:
        yield process
    finally:
        process.close()
    assert process.tracebacks() == [], process.output(last=200)


@pytest.fixture
def name(request: pytest.FixtureRequest) -> str:
    raw = request.node.name.replace("[", "-").replace("]", "")
    return "".join(c if c.isalnum() or c in "._-" else "-" for c in raw)[:200]


@pytest.fixture
async def admin(broker: BrokerProcess) -> Admin:
    async with Admin(broker.address, request_timeout_ms=10_000) as client:
        yield client


async def produce(address: str, topic: str, rows: list[tuple[int, int]]) -> None:
    """(partition, timestamp_ms) rows, one record each, all acknowledged."""
    async with Producer(address) as producer:
        futures = [await producer.send(topic, b"v", partition=p, timestamp_ms=ts) for p, ts in rows]
        for future in futures:
            await future


# -- topics ------------------------------------------------------------------------


async def test_create_describe_list_delete(admin, name):
    await admin.create_topic(name, 3, 1)

    described = await admin.describe_topic(name)

    assert described.name == name
    assert described.replication_factor == 1
    assert described.partitions == tuple(
        PartitionDescription(p, 0, 0, (0,), (0,), 0, 0) for p in range(3)
    )
    assert name in await admin.list_topics()
    await admin.delete_topic(name)
    assert name not in await admin.list_topics()
    with pytest.raises(UnknownTopicOrPartitionError):
        await admin.describe_topic(name)


async def test_list_topics_is_sorted(admin, name):
    for suffix in "cab":
        await admin.create_topic(f"{name}.{suffix}", 1)

    topics = await admin.list_topics()

    assert topics == sorted(topics)
    assert [t for t in topics if t.startswith(f"{name}.")] == [f"{name}.{s}" for s in "abc"]


async def test_broker_defaults_apply_when_counts_are_not_given(admin, name):
    await admin.create_topic(name)

    described = await admin.describe_topic(name)

    assert len(described.partitions) >= 1
    assert described.replication_factor == 1


async def test_describe_reports_each_leaders_log_offsets(broker, admin, name):
    await admin.create_topic(name, 2, 1)
    await produce(broker.address, name, [(1, 100), (1, 200), (1, 300)])

    described = await admin.describe_topic(name)

    offsets = [(p.log_start_offset, p.log_end_offset) for p in described.partitions]
    assert offsets == [(0, 0), (0, 3)]


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "words"),
    [
        ((2, 3), {}, InvalidReplicationFactorError, "replication factor 3"),
        ((0, 1), {}, InvalidPartitionsError, "at least 1"),
        ((1, 1), {"config": {"no.such.key": "1"}}, InvalidConfigurationError, "no.such.key"),
        ((1, 1), {"config": {"retention.ms": "soon"}}, InvalidConfigurationError, "retention.ms"),
    ],
)
async def test_create_raises_the_typed_error(admin, name, args, kwargs, error, words):
    with pytest.raises(error) as caught:
        await admin.create_topic(name, *args, **kwargs)

    assert words in str(caught.value)
    assert str(caught.value).count(f"[{error.name}]") == 1
    assert name not in await admin.list_topics()


async def test_create_twice_and_illegal_names(admin, name):
    await admin.create_topic(name, 1)

    with pytest.raises(TopicAlreadyExistsError, match=f"topic '{name}' already exists"):
        await admin.create_topic(name, 1)
    with pytest.raises(InvalidTopicError, match="'a b'"):
        await admin.create_topic("a b", 1)


async def test_validate_only_checks_without_creating(admin, name):
    await admin.create_topic(name, 2, 1, {"retention.ms": "1000"}, validate_only=True)

    assert name not in await admin.list_topics()
    with pytest.raises(InvalidConfigurationError):
        await admin.create_topic(name, 1, 1, {"bogus": "1"}, validate_only=True)


async def test_deleting_an_unknown_topic_fails_without_retrying(admin, name):
    started = time.monotonic()

    with pytest.raises(UnknownTopicOrPartitionError, match=f"'{name}'"):
        await admin.delete_topic(name)

    assert time.monotonic() - started < 0.5  # the controller's answer is final


# -- configs -----------------------------------------------------------------------


async def test_describe_configs_marks_overrides(admin, name):
    await admin.create_topic(name, 1, 1, {"retention.ms": "123456"})

    configs = await admin.describe_configs(name)

    assert configs["retention.ms"] == ConfigEntry("retention.ms", "123456", "topic", False)
    assert configs["segment.bytes"].source == "default"
    assert not configs["segment.bytes"].is_override
    assert [c.name for c in configs.values() if c.is_override] == ["retention.ms"]


async def test_alter_configs_sets_and_deletes_only_the_keys_named(admin, name):
    await admin.create_topic(name, 1, 1, {"retention.ms": "1000", "segment.ms": "60000"})

    await admin.alter_configs(name, {"retention.bytes": "1048576"}, delete=["retention.ms"])

    overrides = {c.name: c.value for c in (await admin.describe_configs(name)).values()}
    sources = {c.name for c in (await admin.describe_configs(name)).values() if c.is_override}
    assert sources == {"retention.bytes", "segment.ms"}
    assert overrides["retention.bytes"] == "1048576"
    assert overrides["segment.ms"] == "60000"


async def test_alter_configs_rejects_bad_values_and_changes_nothing(admin, name):
    await admin.create_topic(name, 1, 1, {"retention.ms": "1000"})

    with pytest.raises(InvalidConfigurationError, match=r"segment\.bytes"):
        await admin.alter_configs(name, {"retention.ms": "2000", "segment.bytes": "-5"})

    assert (await admin.describe_configs(name))["retention.ms"].value == "1000"


async def test_configs_of_an_unknown_topic(admin, name):
    with pytest.raises(UnknownTopicOrPartitionError, match=f"'{name}'"):
        await admin.describe_configs(name)
    with pytest.raises(UnknownTopicOrPartitionError, match=f"'{name}'"):
        await admin.alter_configs(name, {"retention.ms": "1"})


# -- offsets and cluster -----------------------------------------------------------


async def test_list_offsets_earliest_latest_and_by_time(broker, admin, name):
    await admin.create_topic(name, 2, 1)
    await produce(broker.address, name, [(0, 1000), (0, 2000), (0, 3000)])
    p0, p1 = TopicPartition(name, 0), TopicPartition(name, 1)

    found = await admin.list_offsets({p0: "earliest", p1: "latest"})
    by_time = await admin.list_offsets({p0: 1500})
    exact = await admin.list_offsets({p0: 3000})
    too_late = await admin.list_offsets({p0: 3001, p1: 0})

    assert found == {p0: OffsetAndTimestamp(0, -1), p1: OffsetAndTimestamp(0, -1)}
    assert (await admin.list_offsets({p0: "latest"}))[p0].offset == 3
    assert by_time == {p0: OffsetAndTimestamp(1, 2000)}
    assert exact == {p0: OffsetAndTimestamp(2, 3000)}
    assert too_late == {p0: None, p1: None}


async def test_list_offsets_rejects_bad_specs_before_sending(admin):
    tp = TopicPartition("any", 0)

    for spec in ("first", -3, 1.5):
        with pytest.raises(ValueError, match="'earliest', 'latest' or a timestamp"):
            await admin.list_offsets({tp: spec})


async def test_list_offsets_for_partitions_that_do_not_exist(admin, name):
    await admin.create_topic(name, 1, 1)

    with pytest.raises(UnknownTopicOrPartitionError, match="no partition 4"):
        await admin.list_offsets({TopicPartition(name, 4): "latest"})
    with pytest.raises(UnknownTopicOrPartitionError):
        await admin.list_offsets({TopicPartition(f"{name}-nope", 0): "latest"})


async def test_stale_metadata_is_refreshed_and_the_request_retried(broker, admin, name):
    await admin.create_topic(name, 1, 1)
    assert (await admin.list_offsets({TopicPartition(name, 0): "latest"})) is not None
    async with Admin(broker.address) as other:  # recreate it behind the first client's back
        await other.delete_topic(name)
        await other.create_topic(name, 3, 1)
        await produce(broker.address, name, [(2, 10)])

    found = await admin.list_offsets({TopicPartition(name, 2): "latest"})

    assert found == {TopicPartition(name, 2): OffsetAndTimestamp(1, -1)}


async def test_describe_cluster(broker, admin):
    cluster = await admin.describe_cluster()

    assert cluster.brokers == (BrokerDescription(0, broker.host, broker.port, None),)
    assert cluster.controller_id == 0


async def test_describe_cluster_names_the_controller(broker, admin):
    cluster = await admin.describe_cluster()

    assert cluster.controller == BrokerDescription(0, broker.host, broker.port, None)


async def test_describe_topics_gives_replicas_and_isr_without_offsets(admin, name):
    await admin.create_topic(f"{name}.a", 2, 1)
    await admin.create_topic(f"{name}.b", 1, 1)

    named = await admin.describe_topics([f"{name}.b", f"{name}.a", f"{name}.b"])
    everything = await admin.describe_topics()

    assert list(named) == [f"{name}.a", f"{name}.b"]
    assert named[f"{name}.a"].partitions == tuple(
        PartitionDescription(p, 0, 0, (0,), (0,), None, None) for p in range(2)
    )
    assert everything[f"{name}.b"] == named[f"{name}.b"]
    assert list(everything) == sorted(everything)
    assert await admin.describe_topics([]) == {}
    with pytest.raises(UnknownTopicOrPartitionError, match="does not exist"):
        await admin.describe_topics([f"{name}.a", f"{name}.missing"])


async def test_elect_leaders_on_a_standalone_broker_is_never_needed(admin, name):
    await admin.create_topic(name, 2, 1)

    mine = await admin.elect_leaders([name])
    everything = await admin.elect_leaders()

    assert set(mine) == {TopicPartition(name, 0), TopicPartition(name, 1)}
    assert all(isinstance(error, ElectionNotNeededError) for error in mine.values())
    assert set(mine) <= set(everything)
    assert all(isinstance(error, ElectionNotNeededError) for error in everything.values())


async def test_elect_leaders_reports_unknown_topics_as_partition_minus_one(admin, name):
    await admin.create_topic(name, 1, 1)

    results = await admin.elect_leaders([name, f"{name}.missing"])

    assert set(results) == {TopicPartition(name, 0), TopicPartition(f"{name}.missing", -1)}
    assert isinstance(results[TopicPartition(f"{name}.missing", -1)], UnknownTopicOrPartitionError)
    assert await admin.elect_leaders([]) == {}


async def test_no_broker_fails_within_the_request_timeout():
    started = time.monotonic()

    with pytest.raises(NetworkError, match=r"127\.0\.0\.1:1"):
        async with Admin("127.0.0.1:1", request_timeout_ms=2_000):
            pass

    assert time.monotonic() - started < 5


async def test_a_closed_admin_refuses_calls(broker):
    admin = Admin(broker.address)
    await admin.start()
    await admin.close()
    await admin.close()  # twice is harmless

    with pytest.raises(RuntimeError, match="closed"):
        await admin.list_topics()


async def test_calls_connect_on_demand_without_start(broker):
    admin = Admin(broker.address)
    try:
        assert isinstance(await admin.list_topics(), list)
    finally:
        await admin.close()


def test_response_error_drops_the_repeated_name_prefix():
    error = response_error(36, "[TOPIC_ALREADY_EXISTS] topic 't' already exists")

    assert isinstance(error, TopicAlreadyExistsError)
    assert str(error) == "[TOPIC_ALREADY_EXISTS] topic 't' already exists"
    assert str(response_error(36, None)) == "TOPIC_ALREADY_EXISTS"
    assert str(response_error(999, "odd")).startswith("[UNKNOWN_SERVER_ERROR]")


# -- the blocking twin -------------------------------------------------------------


def test_blocking_admin_does_the_same_synchronously(broker, name):
    with BlockingAdmin(broker.address) as admin:
        admin.create_topic(name, 2, 1, {"retention.ms": "5000"})
        described = admin.describe_topic(name)
        configs = admin.describe_configs(name)
        admin.alter_configs(name, {"segment.ms": "7000"}, ["retention.ms"])
        altered = admin.describe_configs(name)
        offsets = admin.list_offsets({TopicPartition(name, 1): "earliest"})
        cluster = admin.describe_cluster()
        listed = admin.list_topics()
        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topic(name, 1)
        admin.delete_topic(name)
        after = admin.list_topics()

    assert len(described.partitions) == 2
    assert configs["retention.ms"].is_override
    assert altered["segment.ms"].value == "7000"
    assert not altered["retention.ms"].is_override
    assert offsets == {TopicPartition(name, 1): OffsetAndTimestamp(0, -1)}
    assert cluster.controller_id == 0
    assert name in listed
    assert name not in after


def test_blocking_admin_close_stops_its_thread(broker):
    before = set(threading.enumerate())
    admin = BlockingAdmin(broker.address, client_id="blocking-close-test")
    admin.list_topics()
    started = [t for t in threading.enumerate() if t not in before]

    admin.close()
    admin.close()

    assert [t.name for t in started] == ["blocking-close-test-loop"]
    assert not started[0].is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        admin.list_topics()


def test_blocking_admin_raises_connection_errors_and_still_closes():
    before = set(threading.enumerate())

    with pytest.raises(NetworkError), BlockingAdmin("127.0.0.1:1", request_timeout_ms=1_000):
        pass

    assert set(threading.enumerate()) - before == set()


async def test_blocking_admin_works_from_a_thread_while_a_loop_runs(broker, name):
    def in_thread() -> list[str]:
        with BlockingAdmin(broker.address) as admin:
            admin.create_topic(name, 1)
            return admin.list_topics()

    assert name in await asyncio.to_thread(in_thread)


def test_blocking_admin_elects_leaders_and_describes_topics(broker, name):
    with BlockingAdmin(broker.address) as admin:
        admin.create_topic(name, 1, 1)
        elected = admin.elect_leaders(iter([name]))
        described = admin.describe_topics(iter([name]))

    assert list(elected) == [TopicPartition(name, 0)]
    assert isinstance(elected[TopicPartition(name, 0)], ElectionNotNeededError)
    assert described[name].partitions == (PartitionDescription(0, 0, 0, (0,), (0,), None, None),)


# -- consumer groups (the same calls against the in-memory fake: test_admin_groups.py) ----


async def test_group_offsets_altered_listed_and_deleted(broker, admin, name):
    await admin.create_topic(name, 2, 1)
    await produce(broker.address, name, [(0, 100), (0, 200), (1, 300)])
    group = f"g-{name}"

    before = await admin.describe_groups([group])
    await admin.alter_group_offsets(
        group, {TopicPartition(name, 0): OffsetAndMetadata(2, "done"), TopicPartition(name, 1): 0}
    )
    committed = await admin.list_group_offsets(group)
    some = await admin.list_group_offsets(group, [TopicPartition(name, 1)])
    listed = await admin.list_groups()
    described = await admin.describe_groups([group])
    deleted = await admin.delete_groups([group, f"nobody-{name}"])

    assert before[group].state == "Dead"
    assert committed == {
        TopicPartition(name, 0): OffsetAndMetadata(2, "done"),
        TopicPartition(name, 1): OffsetAndMetadata(0, ""),
    }
    assert some == {TopicPartition(name, 1): OffsetAndMetadata(0, "")}
    assert [g for g in listed if g.group_id == group] == [
        GroupListing(group, "consumer", "Empty", 0)
    ]
    assert described[group].state in ("Empty", "Dead")
    assert not described[group].is_active
    assert deleted[group] is None
    assert isinstance(deleted[f"nobody-{name}"], GroupIdNotFoundError)
    assert await admin.list_group_offsets(group) == {}


async def test_group_offset_commit_bad_input_raises_the_typed_error(admin, name):
    await admin.create_topic(name, 1, 1)
    group = f"g-{name}"

    with pytest.raises(OffsetOutOfRangeError, match="negative"):
        await admin.alter_group_offsets(group, {TopicPartition(name, 0): -5})
    with pytest.raises(OffsetOutOfRangeError, match="beyond the log end"):
        await admin.alter_group_offsets(group, {TopicPartition(name, 0): 7})
    with pytest.raises(UnknownTopicOrPartitionError):
        await admin.alter_group_offsets(group, {TopicPartition(f"no-{name}", 0): 0})
    with pytest.raises(InvalidGroupIdError, match="255"):
        await admin.describe_groups(["x" * 10_000])


def test_blocking_admin_group_calls(broker, name):
    group = f"g-{name}"
    with BlockingAdmin(broker.address) as admin:
        admin.create_topic(name, 1, 1)
        admin.alter_group_offsets(group, {TopicPartition(name, 0): 0})
        committed = admin.list_group_offsets(group)
        described = admin.describe_groups([group])
        deleted = admin.delete_groups([group])

    assert committed == {TopicPartition(name, 0): OffsetAndMetadata(0)}
    assert not described[group].is_active
    assert deleted == {group: None}
