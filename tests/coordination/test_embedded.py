"""The standalone coordinator: topics on disk, the errors the broker relays, restarts.

Also the rules every coordinator shares (``coordination.interface``): config
overrides. Replica assignment is tested in ``test_assignment.py``.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from client.errors import (
    InvalidConfigurationError,
    InvalidPartitionsError,
    InvalidReplicationFactorError,
    InvalidRequestError,
    InvalidTopicError,
    StorageError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from coordination import (
    BrokerInfo,
    CommittedOffset,
    Coordinator,
    EmbeddedCoordinator,
    OffsetFence,
    PartitionState,
    TopicAssignment,
    atomic_files,
)
from coordination import embedded as embedded_module
from coordination.embedded import COORDINATOR_DIR
from tests.coordination.contract import at

BROKER = BrokerInfo(broker_id=1, host="localhost", port=9092)


def topics_dir(data_dir: Path) -> Path:
    return data_dir / COORDINATOR_DIR / "topics"


def listing(data_dir: Path) -> list[str]:
    return sorted(os.listdir(topics_dir(data_dir)))


def consumers_dir(data_dir: Path) -> Path:
    return data_dir / COORDINATOR_DIR / "consumers"


def consumer_files(data_dir: Path) -> list[str]:
    return sorted(os.listdir(consumers_dir(data_dir)))


@pytest.fixture
async def open_coordinator(tmp_path: Path) -> AsyncIterator:
    """``await open_coordinator(register=True)``: a started coordinator on ``tmp_path``.

    Every one opened is closed at teardown.
    """
    opened: list[EmbeddedCoordinator] = []

    async def factory(*, register: bool = True) -> EmbeddedCoordinator:
        coordinator = EmbeddedCoordinator(tmp_path)
        await coordinator.start()
        opened.append(coordinator)
        if register:
            await coordinator.register_broker(BROKER)
        return coordinator

    yield factory
    for coordinator in opened:
        await coordinator.close()


@pytest.fixture
async def coord(open_coordinator) -> EmbeddedCoordinator:
    return await open_coordinator()


# -- the contract ---------------------------------------------------------------------------


async def test_it_is_a_coordinator_in_standalone_mode(coord):
    assert isinstance(coord, Coordinator)
    assert coord.mode == "standalone"


async def test_the_registered_broker_is_live_and_the_controller(open_coordinator):
    coord = await open_coordinator(register=False)
    assert await coord.live_brokers() == []
    assert await coord.controller_id() is None

    await coord.register_broker(BROKER)

    assert await coord.live_brokers() == [BROKER]
    assert await coord.controller_id() == 1
    assert await coord.depose_controller(1) is False  # the one broker stays controller
    assert await coord.controller_id() == 1


async def test_registering_again_updates_the_endpoint_but_a_second_id_is_refused(coord):
    moved = BrokerInfo(1, "10.0.0.5", 9093, rack="r1")

    await coord.register_broker(moved)
    with pytest.raises(ValueError, match="broker 1 is registered, cannot register broker 2"):
        await coord.register_broker(BrokerInfo(2, "localhost", 9094))

    assert await coord.live_brokers() == [moved]


async def test_calls_before_start_or_after_close_are_refused(tmp_path):
    coord = EmbeddedCoordinator(tmp_path)
    with pytest.raises(RuntimeError, match="not started"):
        await coord.topics()

    await coord.start()
    with pytest.raises(RuntimeError, match="twice"):
        await coord.start()
    await coord.close()
    await coord.close()  # idempotent

    with pytest.raises(RuntimeError):
        await coord.create_topic("orders", 1, 1)


# -- create, describe, delete ---------------------------------------------------------------


async def test_create_assigns_the_broker_and_sets_the_initial_state(coord):
    created = await coord.create_topic("orders", 3, 1, {"retention.ms": "1000"})

    assert created == TopicAssignment(
        "orders", {0: (1,), 1: (1,), 2: (1,)}, {"retention.ms": "1000"}
    )
    assert created.partition_count == 3
    for p in range(3):
        assert await coord.partition_state("orders", p) == PartitionState(1, 0, (1,))
    assert await coord.partition_state("orders", 3) is None
    assert await coord.partition_state("missing", 0) is None


async def test_topics_lists_every_topic_by_name_and_topic_describes_one(coord):
    await coord.create_topic("b", 1, 1)
    await coord.create_topic("a", 2, 1, {"cleanup.policy": "delete"})

    topics = await coord.topics()

    assert list(topics) == ["a", "b"]
    assert topics["a"] == await coord.topic("a")
    assert topics["a"].config == {"cleanup.policy": "delete"}
    assert await coord.topic("c") is None


async def test_what_the_caller_gets_is_a_copy(coord):
    created = await coord.create_topic("orders", 1, 1, {"retention.ms": "1"})
    created.config["retention.ms"] = "2"
    created.replicas[5] = (9,)

    assert await coord.topic("orders") == TopicAssignment(
        "orders", {0: (1,)}, {"retention.ms": "1"}
    )


async def test_delete_removes_the_topic_and_its_file(coord, tmp_path):
    await coord.create_topic("orders", 2, 1)
    await coord.create_topic("keep", 1, 1)

    await coord.delete_topic("orders")

    assert await coord.topic("orders") is None
    assert await coord.partition_state("orders", 0) is None
    assert list(await coord.topics()) == ["keep"]
    assert listing(tmp_path) == ["keep.json"]


async def test_a_deleted_topic_can_be_created_again(coord):
    await coord.create_topic("orders", 2, 1, {"retention.ms": "1"})
    await coord.delete_topic("orders")

    again = await coord.create_topic("orders", 1, 1)

    assert again == TopicAssignment("orders", {0: (1,)}, {})


async def test_deleting_a_missing_topic_is_refused_naming_it(coord):
    with pytest.raises(UnknownTopicOrPartitionError, match="'ghost'"):
        await coord.delete_topic("ghost")


# -- bad input: the same errors the broker puts in a CreateTopics response ------------------


@pytest.mark.parametrize(
    ("args", "error", "match"),
    [
        (("a/b", 1, 1), InvalidTopicError, "'a/b'"),
        (("..", 1, 1), InvalidTopicError, r"'\.\.'"),
        (("x" * 250, 1, 1), InvalidTopicError, "250 characters"),
        ((7, 1, 1), InvalidTopicError, "int"),
        (("orders", 0, 1), InvalidPartitionsError, "at least 1, not 0"),
        (("orders", -3, 1), InvalidPartitionsError, "not -3"),
        (("orders", True, 1), InvalidPartitionsError, "not True"),
        (("orders", 1, 0), InvalidReplicationFactorError, "at least 1, not 0"),
        (
            ("orders", 1, 2),
            InvalidReplicationFactorError,
            "factor 2 is larger than the 1 available",
        ),
        (("orders", 1, 1, {"retention.ms": 1000}), InvalidConfigurationError, "retention.ms"),
    ],
)
async def test_bad_input_is_refused_and_nothing_is_stored(coord, tmp_path, args, error, match):
    with pytest.raises(error, match=match):
        await coord.create_topic(*args)

    assert await coord.topics() == {}
    assert listing(tmp_path) == []


async def test_replication_is_refused_before_any_broker_registered(open_coordinator):
    coord = await open_coordinator(register=False)

    with pytest.raises(InvalidReplicationFactorError, match="1 is larger than the 0 available"):
        await coord.create_topic("orders", 1, 1)


async def test_an_existing_topic_is_refused_and_left_as_it_was(coord):
    await coord.create_topic("orders", 2, 1, {"retention.ms": "1"})

    with pytest.raises(TopicAlreadyExistsError, match="'orders'"):
        await coord.create_topic("orders", 5, 1)

    assert (await coord.topic("orders")).partition_count == 2


# -- config overrides -----------------------------------------------------------------------


async def test_alter_sets_and_deletes_overrides_and_returns_them(coord):
    await coord.create_topic("orders", 1, 1, {"retention.ms": "1", "segment.bytes": "4096"})

    new = await coord.alter_topic_config(
        "orders", {"retention.ms": "2", "cleanup.policy": "delete"}, delete=["segment.bytes", "x"]
    )

    assert new == {"retention.ms": "2", "cleanup.policy": "delete"}
    assert (await coord.topic("orders")).config == new


async def test_alter_stores_values_without_judging_them(coord):
    await coord.create_topic("orders", 1, 1)

    assert await coord.alter_topic_config("orders", {"no.such.key": "banana"}) == {
        "no.such.key": "banana"
    }


async def test_alter_refuses_an_unknown_topic_and_a_key_both_set_and_deleted(coord):
    await coord.create_topic("orders", 1, 1, {"retention.ms": "1"})

    with pytest.raises(UnknownTopicOrPartitionError, match="'ghost'"):
        await coord.alter_topic_config("ghost", {"retention.ms": "2"})
    with pytest.raises(InvalidRequestError, match=r"retention\.ms"):
        await coord.alter_topic_config("orders", {"retention.ms": "2"}, delete=["retention.ms"])
    with pytest.raises(InvalidConfigurationError):
        await coord.alter_topic_config("orders", {"retention.ms": None})

    assert (await coord.topic("orders")).config == {"retention.ms": "1"}


# -- listeners ------------------------------------------------------------------------------


async def test_listeners_hear_each_successful_change_once(coord):
    heard: list[str] = []
    coord.add_topic_listener(heard.append)

    await coord.create_topic("orders", 1, 1)
    await coord.alter_topic_config("orders", {"retention.ms": "5"})
    await coord.alter_topic_config("orders", {"retention.ms": "5"})  # no change
    await coord.delete_topic("orders")
    refused = (InvalidTopicError, InvalidReplicationFactorError, UnknownTopicOrPartitionError)
    for failing in (
        coord.create_topic("bad/name", 1, 1),
        coord.create_topic("other", 1, 3),
        coord.delete_topic("orders"),
        coord.alter_topic_config("orders", {}),
    ):
        with pytest.raises(refused):
            await failing

    assert heard == ["orders", "orders", "orders"]


async def test_a_failing_listener_is_logged_and_does_not_undo_the_change(coord, caplog):
    heard: list[str] = []

    def broken(topic: str) -> None:
        raise RuntimeError("listener bug")

    coord.add_topic_listener(broken)
    coord.add_topic_listener(heard.append)

    with caplog.at_level(logging.ERROR, logger="coordination.embedded"):
        await coord.create_topic("orders", 1, 1)

    assert heard == ["orders"]
    assert await coord.topic("orders") is not None
    assert "listener bug" in caplog.text


# -- on disk --------------------------------------------------------------------------------


async def test_state_survives_a_new_instance_on_the_same_dir(tmp_path):
    first = EmbeddedCoordinator(tmp_path)
    await first.start()
    await first.register_broker(BROKER)
    await first.create_topic("orders", 3, 1, {"retention.ms": "1000"})
    await first.create_topic("gone", 1, 1)
    await first.create_topic("x" * 249, 1, 1)
    await first.alter_topic_config("orders", {"segment.bytes": "4096"}, delete=["retention.ms"])
    await first.delete_topic("gone")
    before = await first.topics()
    await first.close()

    second = EmbeddedCoordinator(tmp_path)
    await second.start()
    try:
        assert await second.topics() == before
        assert await second.topic("orders") == TopicAssignment(
            "orders", {0: (1,), 1: (1,), 2: (1,)}, {"segment.bytes": "4096"}
        )
        assert await second.partition_state("orders", 2) == PartitionState(1, 0, (1,))
        assert await second.live_brokers() == []  # registration is not stored: it is ephemeral
    finally:
        await second.close()


async def test_writes_leave_only_topic_files(coord, tmp_path):
    long_name = "x" * 249  # its file name is 254 bytes: a "<name>.json.tmp" would not fit
    await coord.create_topic(long_name, 1, 1)
    await coord.create_topic("orders", 4, 1)
    await coord.alter_topic_config("orders", {"retention.ms": "1"})
    await coord.alter_topic_config(long_name, {"retention.ms": "1"})

    assert listing(tmp_path) == sorted([f"{long_name}.json", "orders.json"])


async def test_the_file_mirrors_the_znodes(coord, tmp_path):
    await coord.create_topic("orders", 2, 1, {"retention.ms": "1"})

    data = json.loads((topics_dir(tmp_path) / "orders.json").read_text())

    assert data == {
        "version": 1,
        "name": "orders",
        "partitions": {"0": [1], "1": [1]},
        "config": {"retention.ms": "1"},
        "state": {
            "0": {"leader": 1, "leader_epoch": 0, "isr": [1]},
            "1": {"leader": 1, "leader_epoch": 0, "isr": [1]},
        },
    }


async def test_start_removes_temp_files_and_leaves_foreign_files_alone(tmp_path, caplog):
    first = EmbeddedCoordinator(tmp_path)
    await first.start()
    await first.register_broker(BROKER)
    await first.create_topic("orders", 1, 1)
    await first.close()
    directory = topics_dir(tmp_path)
    (directory / ".abc123.tmp").write_bytes(b'{"version": 1, "na')  # a crash mid-write
    (directory / "orders.json.tmp").write_bytes(b"")
    (directory / "README").write_text("notes")
    (directory / "bad name.json").write_text("{}")
    (directory / "sub.json").mkdir()

    second = EmbeddedCoordinator(tmp_path)
    with caplog.at_level(logging.WARNING, logger="coordination.embedded"):
        await second.start()
    try:
        assert list(await second.topics()) == ["orders"]
        assert listing(tmp_path) == ["README", "bad name.json", "orders.json", "sub.json"]
        assert "README: not a topic file" in caplog.text
    finally:
        await second.close()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\x00\xff garbage", "JSONDecodeError|UnicodeDecodeError"),
        (b'{"version": 1, "name": "orders", "partitions"', "JSONDecodeError"),
        (b"[]", "not a JSON object"),
        (b'{"version": 2}', "unknown version 2"),
        (b'{"version": 1, "name": "other"}', "names topic 'other'"),
        (b'{"version": 1, "name": "orders", "state": {}, "config": {}}', "partitions"),
        (
            b'{"version": 1, "name": "orders", "partitions": {"0": [1], "2": [1]},'
            b' "state": {}, "config": {}}',
            "not numbered 0 to 1",
        ),
        (
            b'{"version": 1, "name": "orders", "partitions": {"0": [1, 1]},'
            b' "state": {"0": {"leader": 1, "leader_epoch": 0, "isr": [1]}}, "config": {}}',
            "repeats a broker id",
        ),
        (
            b'{"version": 1, "name": "orders", "partitions": {"0": [1]},'
            b' "state": {"0": {"leader": 1, "leader_epoch": -1, "isr": [1]}}, "config": {}}',
            "bad leader 1 or epoch -1",
        ),
        (
            b'{"version": 1, "name": "orders", "partitions": {"0": [1]},'
            b' "state": {"0": {"leader": 1, "leader_epoch": 0, "isr": [1]}}, "config": {"a": 1}}',
            "config is not a map",
        ),
    ],
)
async def test_a_corrupt_topic_file_stops_start_naming_the_path(tmp_path, content, reason):
    first = EmbeddedCoordinator(tmp_path)
    await first.start()
    await first.register_broker(BROKER)
    await first.create_topic("orders", 1, 1)
    await first.close()
    path = topics_dir(tmp_path) / "orders.json"
    path.write_bytes(content)

    second = EmbeddedCoordinator(tmp_path)
    with pytest.raises(StorageError, match=reason) as info:
        await second.start()

    assert str(path) in str(info.value)
    assert "corrupt topic file of 'orders'" in str(info.value)
    assert path.read_bytes() == content  # evidence kept


async def test_a_failed_write_changes_nothing(coord, tmp_path, monkeypatch):
    await coord.create_topic("orders", 1, 1, {"retention.ms": "1"})
    heard: list[str] = []
    coord.add_topic_listener(heard.append)

    def disk_full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic_files.os, "replace", disk_full)
    with pytest.raises(StorageError, match=r"orders\.json.*No space left"):
        await coord.alter_topic_config("orders", {"retention.ms": "2"})
    with pytest.raises(StorageError, match=r"other\.json"):
        await coord.create_topic("other", 1, 1)
    monkeypatch.undo()

    assert (await coord.topic("orders")).config == {"retention.ms": "1"}
    assert await coord.topic("other") is None
    assert heard == []
    assert listing(tmp_path) == ["orders.json"]


# -- concurrency ----------------------------------------------------------------------------


async def test_concurrent_creates_of_one_name_yield_one_topic(coord, tmp_path):
    names = [f"t{i}" for i in range(10)] + ["same"] * 5

    results = await asyncio.gather(
        *(coord.create_topic(name, 2, 1) for name in names), return_exceptions=True
    )

    assert sum(isinstance(r, TopicAlreadyExistsError) for r in results) == 4
    assert sum(isinstance(r, TopicAssignment) for r in results) == 11
    assert len(await coord.topics()) == 11
    assert len(listing(tmp_path)) == 11


async def test_a_cancelled_caller_does_not_cut_a_write_short(coord, tmp_path, monkeypatch):
    entered, release = threading.Event(), threading.Event()
    real_write = embedded_module._write_topic_file

    def slow_write(directory, name, topic):
        if name == "slow":
            entered.set()
            release.wait(10)
        real_write(directory, name, topic)

    monkeypatch.setattr(embedded_module, "_write_topic_file", slow_write)
    heard: list[str] = []
    coord.add_topic_listener(heard.append)

    caller = asyncio.create_task(coord.create_topic("slow", 1, 1))
    while not entered.is_set():
        await asyncio.sleep(0.001)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    follower = asyncio.create_task(coord.create_topic("next", 1, 1))
    await asyncio.sleep(0.01)
    assert not follower.done()  # still queued behind the write in flight
    release.set()
    await follower

    assert heard == ["slow", "next"]
    assert list(await coord.topics()) == ["next", "slow"]
    assert listing(tmp_path) == ["next.json", "slow.json"]


async def test_close_waits_for_a_change_in_flight(coord, tmp_path, monkeypatch):
    entered, release = threading.Event(), threading.Event()
    real_write = embedded_module._write_topic_file

    def slow_write(directory, name, topic):
        entered.set()
        release.wait(10)
        real_write(directory, name, topic)

    monkeypatch.setattr(embedded_module, "_write_topic_file", slow_write)
    caller = asyncio.create_task(coord.create_topic("orders", 1, 1))
    while not entered.is_set():
        await asyncio.sleep(0.001)
    closing = asyncio.create_task(coord.close())
    await asyncio.sleep(0.01)
    assert not closing.done()

    release.set()
    await closing

    assert (await caller).name == "orders"
    assert listing(tmp_path) == ["orders.json"]


# -- committed offsets on disk (the contract is run in test_zookeeper.py) ---------------------


async def test_a_group_file_holds_its_offsets_by_topic_and_partition(coord, tmp_path):
    await coord.commit_offsets(
        "a/b", {("orders", 10): CommittedOffset(7, "m", 1_700_000), ("orders", 2): at(3)}
    )
    await coord.commit_offsets("..", {("payments", 0): at(1)})

    assert consumer_files(tmp_path) == ["%2E..json", "a%2Fb.json"]
    assert json.loads((consumers_dir(tmp_path) / "a%2Fb.json").read_text()) == {
        "version": 1,
        "group": "a/b",
        "offsets": {
            "orders": {
                "2": {"offset": 3, "metadata": "", "commit_timestamp": 1_700_000_000_000},
                "10": {"offset": 7, "metadata": "m", "commit_timestamp": 1_700_000},
            }
        },
    }
    assert await coord.delete_group_offsets("a/b") is True
    assert consumer_files(tmp_path) == ["%2E..json"]


async def test_a_group_id_too_long_for_a_file_name_gets_a_hashed_one(coord, tmp_path):
    groups = ["x" * 255, "x" * 254 + "y", "/" * 255]

    for index, group in enumerate(groups):
        await coord.commit_offsets(group, {("orders", 0): at(index)})

    names = consumer_files(tmp_path)
    assert len(names) == 3
    assert all(len(name.encode()) <= 255 and "+" in name for name in names)
    for index, group in enumerate(groups):
        assert await coord.fetch_offsets(group) == {("orders", 0): at(index)}
    assert await coord.groups() == sorted(groups)


async def test_the_fence_is_ignored_standalone(coord):
    await coord.create_topic("__consumer_offsets", 1, 1)
    assert await coord.fence_for("__consumer_offsets", 0) is None

    await coord.commit_offsets("app", {("orders", 0): at(1)}, fence=OffsetFence("x", 0, 99))

    assert await coord.fetch_offsets("app") == {("orders", 0): at(1)}


CORRUPT_OFFSETS = [
    (b"\x00\xff garbage", "JSONDecodeError|UnicodeDecodeError"),
    (b'{"version": 1, "group": "app", "offs', "JSONDecodeError"),
    (b"[]", "not a JSON object"),
    (b'{"version": 2}', "unknown version 2"),
    (b'{"version": 1, "group": "other", "offsets": {}}', "names group 'other'"),
    (b'{"version": 1, "group": "", "offsets": {}}', "group id is empty"),
    (b'{"version": 1, "group": "app", "offsets": {"a/b": {}}}', "InvalidTopicError"),
    (b'{"version": 1, "group": "app", "offsets": {"t": {"01": {}}}}', "'01' is not a number"),
    (
        b'{"version": 1, "group": "app", "offsets": {"t": {"0": {"offset": -1, "metadata": "",'
        b' "commit_timestamp": 0}}}}',
        "offset -1",
    ),
    (b'{"version": 1, "group": "app", "offsets": {"t": {"0": {"offset": 1}}}}', "KeyError"),
]


@pytest.mark.parametrize(("content", "reason"), CORRUPT_OFFSETS)
async def test_a_corrupt_offsets_file_is_reported_when_its_group_is_read(
    tmp_path, caplog, content, reason
):
    first = EmbeddedCoordinator(tmp_path)
    await first.start()
    await first.commit_offsets("app", {("orders", 0): at(1)})
    await first.commit_offsets("fine", {("orders", 0): at(2)})
    await first.close()
    path = consumers_dir(tmp_path) / "app.json"
    path.write_bytes(content)

    second = EmbeddedCoordinator(tmp_path)
    with caplog.at_level(logging.ERROR, logger="coordination"):
        await second.start()  # the broker goes on
    try:
        assert f"{path}: corrupt consumer group offsets file" in caplog.text
        with pytest.raises(StorageError, match=reason) as info:
            await second.fetch_offsets("app")
        assert str(path) in str(info.value)
        with pytest.raises(StorageError, match=reason):
            await second.commit_offsets("app", {("orders", 0): at(5)})
        assert path.read_bytes() == content  # evidence kept
        assert await second.fetch_offsets("fine") == {("orders", 0): at(2)}
        assert await second.groups() == ["app", "fine"]

        assert await second.delete_group_offsets("app") is True  # the way out

        assert not path.exists()
        await second.commit_offsets("app", {("orders", 0): at(5)})
        assert await second.fetch_offsets("app") == {("orders", 0): at(5)}
    finally:
        await second.close()


async def test_a_corrupt_hashed_offsets_file_is_reported_too(tmp_path):
    group = "x" * 255
    first = EmbeddedCoordinator(tmp_path)
    await first.start()
    await first.commit_offsets(group, {("orders", 0): at(1)})
    await first.close()
    [name] = consumer_files(tmp_path)
    (consumers_dir(tmp_path) / name).write_bytes(b"{")

    second = EmbeddedCoordinator(tmp_path)
    await second.start()
    try:
        with pytest.raises(StorageError, match=name.replace("+", r"\+")):
            await second.fetch_offsets(group)
        assert await second.groups() == []  # whose it is, only the file knew
        assert await second.delete_group_offsets(group) is True
        assert consumer_files(tmp_path) == []
    finally:
        await second.close()


async def test_start_removes_offsets_temp_files_and_leaves_foreign_files_alone(tmp_path, caplog):
    first = EmbeddedCoordinator(tmp_path)
    await first.start()
    await first.commit_offsets("app", {("orders", 0): at(1)})
    await first.close()
    directory = consumers_dir(tmp_path)
    (directory / ".abc123.tmp").write_bytes(b'{"version": 1, "gr')  # a crash mid-write
    (directory / "README").write_text("notes")
    (directory / ".hidden.json").write_text("{}")  # a group ".hidden" is %2Ehidden.json
    (directory / "a%2fb.json").write_text("{}")  # "a/b" is a%2Fb.json
    (directory / "sub.json").mkdir()

    second = EmbeddedCoordinator(tmp_path)
    with caplog.at_level(logging.WARNING, logger="coordination"):
        await second.start()
    try:
        assert await second.groups() == ["app"]
        assert consumer_files(tmp_path) == [
            ".hidden.json",
            "README",
            "a%2fb.json",
            "app.json",
            "sub.json",
        ]
        assert "README: not a consumer group offsets file" in caplog.text
        assert "ERROR" not in caplog.text
    finally:
        await second.close()


async def test_a_failed_offsets_write_changes_nothing(coord, tmp_path, monkeypatch):
    await coord.commit_offsets("app", {("orders", 0): at(1)})

    def disk_full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic_files.os, "replace", disk_full)
    with pytest.raises(StorageError, match=r"app\.json: cannot write the offsets.*No space left"):
        await coord.commit_offsets("app", {("orders", 0): at(2), ("orders", 1): at(2)})
    with pytest.raises(StorageError, match=r"new\.json"):
        await coord.commit_offsets("new", {("orders", 0): at(2)})
    monkeypatch.undo()

    assert await coord.fetch_offsets("app") == {("orders", 0): at(1)}
    assert await coord.groups() == ["app"]
    assert consumer_files(tmp_path) == ["app.json"]


async def test_commits_run_off_the_event_loop_and_close_waits_for_them(coord, monkeypatch):
    entered, release = threading.Event(), threading.Event()
    real_write = embedded_module.embedded_offsets.write_offsets_file

    def slow_write(directory, group, offsets):
        entered.set()
        release.wait(10)
        real_write(directory, group, offsets)

    monkeypatch.setattr(embedded_module.embedded_offsets, "write_offsets_file", slow_write)
    caller = asyncio.create_task(coord.commit_offsets("app", {("orders", 0): at(1)}))
    while not entered.is_set():
        await asyncio.sleep(0.001)  # the loop runs while the write waits
    assert await coord.topics() == {}  # topics do not wait for offsets
    closing = asyncio.create_task(coord.close())
    await asyncio.sleep(0.01)
    assert not closing.done()

    release.set()
    await closing
    await caller
