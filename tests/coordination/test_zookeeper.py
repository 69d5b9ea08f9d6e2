"""The ZooKeeper coordinator against a real ZooKeeper (Debian's package, see conftest).

First the shared contract, run over both coordinators so they cannot drift
apart; then what only ZooKeeper has: the znode layout, chroots, ephemeral
registration and session expiry, the controller election, conditional
partition-state updates, watches fed by other brokers, fenced offset commits
and their round trips, corrupt znodes, and an unreachable server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kazoo.client import KazooClient

from client.errors import (
    InvalidRequestError,
    NotCoordinatorError,
    StaleControllerEpochError,
    StorageError,
    UnknownTopicOrPartitionError,
)
from coordination import (
    BrokerInfo,
    CommittedOffset,
    EmbeddedCoordinator,
    OffsetFence,
    PartitionState,
    zk_offsets,
    zookeeper_server,
)
from coordination.assignment import IncompleteRackInformationError
from coordination.kazoo_bridge import split_connect
from coordination.zookeeper import (
    BrokerIdInUseError,
    PartitionStateConflictError,
    SessionState,
    ZooKeeperCoordinator,
    ZooKeeperUnavailableError,
)
from tests.coordination.contract import BROKER, CoordinatorContract, at, eventually, quietly
from tests.support.zookeeper_process import ZooKeeperNotInstalledError, ZooKeeperProcess


def broker(broker_id: int, rack: str | None = None) -> BrokerInfo:
    return BrokerInfo(broker_id, "localhost", 9090 + broker_id, rack)


@pytest.fixture
async def open_zk(zk_connect: str) -> AsyncIterator:
    """``await open_zk(broker_id=1, register=True, connect=zk_connect, **kwargs)``.

    A started ZooKeeperCoordinator; every one opened is closed at teardown.
    """
    opened: list[ZooKeeperCoordinator] = []

    async def factory(
        broker_id: int = 1, *, register: bool = True, connect: str | None = None, **kwargs
    ) -> ZooKeeperCoordinator:
        coordinator = ZooKeeperCoordinator(connect or zk_connect, broker_id=broker_id, **kwargs)
        opened.append(coordinator)
        await coordinator.start()
        if register:
            await coordinator.register_broker(broker(broker_id))
        return coordinator

    yield factory
    for coordinator in opened:
        await coordinator.close()


# -- the contract, over both coordinators ----------------------------------------------------


@pytest.fixture(params=["standalone", "zookeeper"])
async def open_coordinator(request, tmp_path: Path) -> AsyncIterator:
    connect = request.getfixturevalue("zk_connect") if request.param == "zookeeper" else ""
    opened: list = []

    async def factory(*, register: bool = True, start: bool = True):
        if request.param == "standalone":
            coordinator = EmbeddedCoordinator(tmp_path)
        else:
            coordinator = ZooKeeperCoordinator(connect, broker_id=1)
        opened.append(coordinator)
        if start:
            await coordinator.start()
            if register:
                await coordinator.register_broker(BROKER)
        return coordinator

    yield factory
    for coordinator in opened:
        await coordinator.close()


@pytest.fixture
async def coord(open_coordinator):
    return await open_coordinator()


class TestCoordinatorContract(CoordinatorContract):
    pass


# -- layout and chroot -----------------------------------------------------------------------


async def test_the_znodes_hold_kafkas_json(open_zk, zk_connect, raw_zk: KazooClient):
    coord = await open_zk(1)
    assert coord.mode == "zookeeper"
    root = split_connect(zk_connect)[1]
    await coord.create_topic("orders", 2, 1, {"retention.ms": "1"})

    def read(path: str):
        return json.loads(raw_zk.get(root + path)[0])

    assert read("/brokers/ids/1") == {"version": 1, "host": "localhost", "port": 9091, "rack": None}
    assert raw_zk.exists(root + "/brokers/ids/1").ephemeralOwner == coord.session_id
    assert read("/brokers/topics/orders") == {"version": 1, "partitions": {"0": [1], "1": [1]}}
    assert read("/brokers/topics/orders/partitions/1/state") == {
        "version": 1,
        "leader": 1,
        "leader_epoch": 0,
        "isr": [1],
        "controller_epoch": 0,
    }
    assert read("/config/topics/orders") == {"version": 1, "config": {"retention.ms": "1"}}

    await coord.delete_topic("orders")

    assert raw_zk.get_children(root + "/brokers/topics") == []
    assert raw_zk.get_children(root + "/config/topics") == []
    assert raw_zk.get_children(root + "/admin/delete_topics") == []


async def test_chroots_keep_clusters_apart(open_zk, zookeeper, raw_zk):
    blue = await open_zk(1, connect=f"{zookeeper.address}/clusters/blue")
    green = await open_zk(1, connect=f"{zookeeper.address}/clusters/green")

    await blue.create_topic("orders", 1, 1)
    await green.create_topic("payments", 1, 1)

    assert list(await blue.topics()) == ["orders"]
    assert list(await green.topics()) == ["payments"]
    assert raw_zk.get_children("/clusters/blue/brokers/ids") == ["1"]
    assert raw_zk.exists("/brokers") is None  # nothing outside the chroots


@pytest.mark.parametrize(
    ("connect", "expected"),
    [
        ("h1:2181,h2:2181/logserver", ("h1:2181,h2:2181", "/logserver")),
        ("h1:2181/a/b/", ("h1:2181", "/a/b")),
        ("h1:2181/", ("h1:2181", "")),
        ("h1:2181", ("h1:2181", "")),
    ],
)
def test_the_chroot_is_split_off_the_connect_string(connect, expected):
    assert split_connect(connect) == expected


@pytest.mark.parametrize("connect", ["/logserver", "h1:2181,,h2:2181", "h1:2181/a//b"])
def test_a_malformed_connect_string_is_refused(connect):
    with pytest.raises(ValueError, match="connect string"):
        split_connect(connect)


# -- registration and sessions ---------------------------------------------------------------


async def test_registration_goes_with_the_session_and_others_hear_it(open_zk):
    one = await open_zk(1)
    heard: list[tuple[int, ...]] = []
    one.add_broker_listener(heard.append)
    two = await open_zk(2)
    await eventually(lambda: heard[-1:] == [(1, 2)], what="broker 2 registered")

    await two.close()

    await eventually(lambda: heard[-1:] == [(1,)], what="broker 2 gone")
    assert [b.broker_id for b in await one.live_brokers()] == [1]


async def test_an_expired_session_is_reported_and_the_broker_registers_again(
    open_zk, expire_session
):
    one = await open_zk(1)
    watcher = await open_zk(2)
    states: list[SessionState] = []
    one.add_session_listener(states.append)
    old_session = one.session_id

    await expire_session(one)

    await eventually(lambda: states[-1:] == [SessionState.CONNECTED], what="recovered")
    assert SessionState.LOST in states
    assert one.session_state is SessionState.CONNECTED
    assert one.session_id != old_session
    assert [b.broker_id for b in await watcher.live_brokers()] == [1, 2]


async def test_a_broker_id_held_by_another_live_session_is_refused(open_zk, caplog):
    await open_zk(1)
    impostor = await open_zk(1, register=False, session_timeout_ms=1000)

    with (
        caplog.at_level(logging.WARNING, logger="coordination"),
        pytest.raises(BrokerIdInUseError, match=r"broker\.id 1 is taken"),
    ):
        await impostor.register_broker(broker(1))

    assert "waiting up to 2 s" in caplog.text  # 1.5 session timeouts


# -- rack-aware assignment over the registered brokers ---------------------------------------


async def register_with_racks(open_zk, racks: dict[int, str | None]) -> list[ZooKeeperCoordinator]:
    coordinators = []
    for broker_id, rack in racks.items():
        coordinator = await open_zk(broker_id, register=False)
        await coordinator.register_broker(broker(broker_id, rack))
        coordinators.append(coordinator)
    return coordinators


async def test_replicas_spread_over_the_racks_the_brokers_registered(open_zk, raw_zk, zk_connect):
    racks = {1: "a", 2: "a", 3: "b", 4: "b"}
    one, *_, four = await register_with_racks(open_zk, racks)
    root = split_connect(zk_connect)[1]
    assert json.loads(raw_zk.get(root + "/brokers/ids/3")[0])["rack"] == "b"

    created = await one.create_topic("orders", 8, 2)
    wide = await one.create_topic("audit", 4, 3)

    assert await four.topic("orders") == created
    for replicas in created.replicas.values():
        assert {racks[b] for b in replicas} == {"a", "b"}
    for replicas in wide.replicas.values():
        assert len(set(replicas)) == 3
        assert {racks[b] for b in replicas} == {"a", "b"}
    leaders = [replicas[0] for replicas in created.replicas.values()]
    assert sorted(leaders) == [1, 1, 2, 2, 3, 3, 4, 4]
    held = sorted(b for replicas in created.replicas.values() for b in replicas)
    assert held == sorted([1, 2, 3, 4] * 4)
    for partition, replicas in created.replicas.items():
        state = await one.partition_state("orders", partition)
        assert state == PartitionState(replicas[0], 0, replicas)


async def test_a_topic_is_refused_while_only_some_brokers_have_a_rack(open_zk):
    one, *_ = await register_with_racks(open_zk, {1: "a", 2: "b", 3: None})

    with pytest.raises(
        IncompleteRackInformationError, match=r"without a rack: brokers \[3\]"
    ) as caught:
        await one.create_topic("orders", 3, 1)

    assert "set BROKER_RACK on all brokers or on none" in str(caught.value)
    assert caught.value.code == 38  # INVALID_REPLICATION_FACTOR
    assert await one.topics() == {}


# -- controller election ---------------------------------------------------------------------


async def test_one_controller_and_a_takeover_when_its_session_expires(open_zk, expire_session):
    one, two = await open_zk(1), await open_zk(2)
    assert await one.controller_id() is None
    seen_by_two: list[int | None] = []
    two.add_controller_listener(seen_by_two.append)

    assert await one.elect_controller() is True
    assert await two.elect_controller() is False
    assert (one.is_controller, two.is_controller) == (True, False)
    assert await two.controller_id() == 1
    first_epoch = one.controller_epoch
    await eventually(lambda: seen_by_two[-1:] == [1], what="two saw one win")

    await expire_session(one)

    await eventually(lambda: two.is_controller, what="two took over")
    assert await one.controller_id() == 2
    assert two.controller_epoch == first_epoch + 1
    await eventually(lambda: seen_by_two[-1:] == [2], what="two saw itself win")
    assert not one.is_controller  # it stood again after recovering, and lost


async def test_a_stale_controller_cannot_update_partition_state(open_zk, zk_connect, raw_zk):
    one = await open_zk(1)
    await one.create_topic("orders", 1, 1)
    assert await one.elect_controller()
    before = await one.partition_state_with_version("orders", 0)
    await one.update_partition_state("orders", 0, PartitionState(1, 1, (1,)), before.version)
    found = await one.partition_state_with_version("orders", 0)
    assert (found.controller_epoch, found.version) == (one.controller_epoch, 1)
    root = split_connect(zk_connect)[1]
    # Another controller was elected while this one was cut off.
    raw_zk.set(root + "/controller_epoch", str(one.controller_epoch + 1).encode())

    with pytest.raises(StaleControllerEpochError, match="controller epoch 1 is stale"):
        await one.update_partition_state("orders", 0, PartitionState(1, 2, (1,)), found.version)

    assert await one.partition_state_with_version("orders", 0) == found


async def test_the_next_controller_finishes_an_interrupted_deletion(open_zk, zk_connect, raw_zk):
    one = await open_zk(1)
    await one.create_topic("orders", 2, 1)
    await one.create_topic("keep", 1, 1)
    root = split_connect(zk_connect)[1]
    raw_zk.create(root + "/admin/delete_topics/orders")  # a deleter died after marking it

    await one.elect_controller()

    await eventually(lambda: raw_zk.exists(root + "/brokers/topics/orders") is None)
    assert list(await one.topics()) == ["keep"]
    assert raw_zk.get_children(root + "/admin/delete_topics") == []


# -- partition state -------------------------------------------------------------------------


async def test_a_state_update_is_conditional_on_the_version_read(open_zk):
    one = await open_zk(1)
    await open_zk(2)
    await one.create_topic("orders", 1, 2)
    found = await one.partition_state_with_version("orders", 0)
    leader = found.state.leader
    shrunk = PartitionState(leader, 0, (leader,))

    version = await one.update_partition_state("orders", 0, shrunk, found.version)

    assert version == found.version + 1
    with pytest.raises(PartitionStateConflictError, match="expected version 0, found 1") as info:
        await one.update_partition_state("orders", 0, found.state, found.version)
    assert (info.value.expected_version, info.value.actual_version) == (0, 1)
    now = await one.partition_state_with_version("orders", 0)
    assert (now.state, now.version, now.controller_epoch) == (shrunk, 1, 0)


async def test_a_state_update_refuses_a_missing_partition_and_a_malformed_state(open_zk):
    one = await open_zk(1)
    await one.create_topic("orders", 1, 1)

    with pytest.raises(UnknownTopicOrPartitionError, match="orders-5"):
        await one.update_partition_state("orders", 5, PartitionState(1, 0, (1,)), 0)
    with pytest.raises(InvalidRequestError, match="leader 2 is not in the isr"):
        await one.update_partition_state("orders", 0, PartitionState(2, 0, (1,)), 0)
    assert await one.partition_state("orders", 0) == PartitionState(1, 0, (1,))


# -- watches ---------------------------------------------------------------------------------


async def test_listeners_hear_another_brokers_changes_on_the_loop(open_zk):
    listener, actor = await open_zk(1), await open_zk(2)
    heard: list[tuple[str, bool]] = []
    loop_thread = threading.get_ident()
    listener.add_topic_listener(lambda t: heard.append((t, threading.get_ident() == loop_thread)))

    await actor.create_topic("orders", 2, 2)
    await eventually(lambda: len(heard) == 1, what="heard the create")
    assert (await listener.topic("orders")).partition_count == 2
    await actor.alter_topic_config("orders", {"retention.ms": "7"})
    await eventually(lambda: len(heard) == 2, what="heard the alter")
    assert (await listener.topic("orders")).config == {"retention.ms": "7"}
    await actor.delete_topic("orders")
    await eventually(lambda: len(heard) == 3, what="heard the delete")
    await quietly()

    assert heard == [("orders", True)] * 3
    assert await listener.topic("orders") is None


async def test_partition_listeners_hear_another_brokers_state_changes_on_the_loop(open_zk):
    listener, actor = await open_zk(1), await open_zk(2)
    await actor.create_topic("before", 1, 1)
    await quietly()  # the listener's watches are installed, not announced
    heard: list[tuple[str, int, bool]] = []
    loop_thread = threading.get_ident()
    listener.add_partition_listener(
        lambda t, p: heard.append((t, p, threading.get_ident() == loop_thread))
    )

    await actor.create_topic("orders", 2, 2)
    await eventually(lambda: len(heard) == 2, what="heard the new partitions")
    state, version = await actor.partition_state_with_version("orders", 1)
    await actor.update_partition_state(
        "orders", 1, PartitionState(state.leader, 1, (state.leader,)), version
    )
    await eventually(lambda: len(heard) == 3, what="heard the update")
    state, version = await actor.partition_state_with_version("before", 0)
    await actor.update_partition_state("before", 0, PartitionState(-1, 1, state.isr), version)
    await eventually(lambda: len(heard) == 4, what="heard the update of an older topic")
    await actor.delete_topic("orders")
    await quietly()

    assert sorted(heard[:2]) == [("orders", 0, True), ("orders", 1, True)]
    assert heard[2:] == [("orders", 1, True), ("before", 0, True)]


async def test_partition_watches_follow_a_topic_deleted_and_created_again(open_zk):
    listener, actor = await open_zk(1), await open_zk(2)
    heard: list[tuple[str, int]] = []
    listener.add_partition_listener(lambda t, p: heard.append((t, p)))

    for _ in range(3):
        await actor.create_topic("orders", 1, 1)
        await actor.delete_topic("orders")
    await actor.create_topic("orders", 1, 1)
    await eventually(lambda: ("orders", 0) in heard, what="heard the last creation")
    await quietly(1.0)  # the watches settle
    heard.clear()
    for epoch in (1, 2):
        state, version = await actor.partition_state_with_version("orders", 0)
        await actor.update_partition_state(
            "orders", 0, PartitionState(-1, epoch, state.isr), version
        )

        await eventually(lambda: heard == [("orders", 0)], what=f"heard update {epoch}")
        heard.clear()


async def test_a_deleted_topic_leaves_no_watch_behind(open_zk, zookeeper: ZooKeeperProcess):
    one = await open_zk(1)
    await quietly()
    baseline = _watch_count(zookeeper)

    await one.create_topic("orders", 3, 1)
    await eventually(
        lambda: _watch_count(zookeeper) == baseline + 4, what="config and 3 states watched"
    )
    await one.delete_topic("orders")

    await eventually(lambda: _watch_count(zookeeper) == baseline, what="watches gone")


def _watch_count(zookeeper: ZooKeeperProcess) -> int:
    for line in zookeeper_server.four_letter_word(zookeeper.address, "mntr").splitlines():
        key, _, value = line.partition("\t")
        if key == "zk_watch_count":
            return int(value)
    raise AssertionError("mntr has no zk_watch_count")


async def test_partition_watches_survive_a_session_expiry(open_zk, expire_session):
    listener, actor = await open_zk(1), await open_zk(2)
    await actor.create_topic("orders", 1, 1)
    heard: list[tuple[str, int]] = []
    listener.add_partition_listener(lambda t, p: heard.append((t, p)))
    states: list[SessionState] = []
    listener.add_session_listener(states.append)

    await expire_session(listener)
    await eventually(lambda: states[-1:] == [SessionState.CONNECTED], what="recovered")
    await quietly(0.5)
    heard.clear()  # a watch set up again after the reconnection may say so
    state, version = await actor.partition_state_with_version("orders", 0)
    await actor.update_partition_state("orders", 0, PartitionState(-1, 1, state.isr), version)

    await eventually(lambda: heard == [("orders", 0)], what="heard the update")


async def test_a_controller_that_lost_its_session_cannot_write_with_its_epoch(
    open_zk, expire_session
):
    one, two = await open_zk(1), await open_zk(2)
    await one.create_topic("orders", 1, 1)
    assert await one.elect_controller()
    await two.elect_controller()
    epoch = one.controller_epoch
    state, version = await one.partition_state_with_version("orders", 0)

    await expire_session(one)
    await eventually(lambda: two.is_controller, what="two took over")

    with pytest.raises(StaleControllerEpochError, match="no longer the controller"):
        await one.update_partition_state(
            "orders", 0, PartitionState(-1, 1, state.isr), version, controller_epoch=epoch
        )
    assert await one.partition_state_with_version("orders", 0) == (state, version)
    # A leader's own write (no controller epoch) is not a controller's: it goes through.
    await one.update_partition_state("orders", 0, PartitionState(-1, 1, state.isr), version)


async def test_the_winner_hears_of_its_election_at_once(open_zk):
    one = await open_zk(1)
    heard: list[int | None] = []
    one.add_controller_listener(heard.append)

    assert await one.elect_controller()

    assert heard == [1]  # before the watch on /controller fires


# -- committed offsets ------------------------------------------------------------------------


async def test_offsets_are_json_znodes_under_the_encoded_group(open_zk, zk_connect, raw_zk):
    coord = await open_zk(1)
    root = split_connect(zk_connect)[1]

    await coord.commit_offsets("a/b", {("orders", 3): CommittedOffset(42, "meta", 1_700_000)})
    await coord.commit_offsets("..", {("orders", 0): at(1)})

    raw, _ = raw_zk.get(root + "/consumers/a%2Fb/offsets/orders/3")
    assert json.loads(raw) == {
        "version": 1,
        "offset": 42,
        "metadata": "meta",
        "commit_timestamp": 1_700_000,
    }
    assert sorted(raw_zk.get_children(root + "/consumers")) == ["%2E.", "a%2Fb"]
    assert await coord.delete_group_offsets("a/b") is True
    assert raw_zk.get_children(root + "/consumers") == ["%2E."]


async def test_a_commit_fenced_by_a_moved_coordinator_partition_writes_nothing(
    open_zk, zk_connect, raw_zk
):
    coordinator, controller = await open_zk(1), await open_zk(2)
    await coordinator.create_topic("__consumer_offsets", 2, 1)
    fence = await coordinator.fence_for("__consumer_offsets", 1)
    assert fence == OffsetFence("__consumer_offsets", 1, 0)
    await coordinator.commit_offsets("app", {("orders", 0): at(5)}, fence=fence)
    # The controller moves the partition on: another broker may coordinate its groups now.
    state, version = await controller.partition_state_with_version("__consumer_offsets", 1)
    moved = PartitionState(state.leader, state.leader_epoch + 1, state.isr)
    await controller.update_partition_state("__consumer_offsets", 1, moved, version)

    with pytest.raises(NotCoordinatorError, match="no longer coordinates the group") as info:
        await coordinator.commit_offsets(
            "app", {("orders", 0): at(9), ("orders", 1): at(9)}, fence=fence
        )
    with pytest.raises(NotCoordinatorError, match=r"__consumer_offsets-1 changed"):
        await coordinator.commit_offsets("fresh", {("orders", 0): at(1)}, fence=fence)

    assert info.value.retriable
    assert await coordinator.fetch_offsets("app") == {("orders", 0): at(5)}
    assert await coordinator.groups() == ["app"]
    root = split_connect(zk_connect)[1]
    assert raw_zk.exists(root + "/consumers/fresh") is None  # not even its parents
    renewed = await coordinator.fence_for("__consumer_offsets", 1)
    assert renewed == OffsetFence("__consumer_offsets", 1, version + 1)
    await coordinator.commit_offsets("app", {("orders", 0): at(9)}, fence=renewed)
    assert await controller.fetch_offsets("app") == {("orders", 0): at(9)}


async def test_a_fence_of_a_missing_partition(open_zk):
    coord = await open_zk(1)
    await coord.create_topic("__consumer_offsets", 1, 1)
    fence = await coord.fence_for("__consumer_offsets", 0)

    assert await coord.fence_for("__consumer_offsets", 1) is None
    assert await coord.fence_for("ghost", 0) is None
    assert await coord.fence_for("a/b", 0) is None
    await coord.delete_topic("__consumer_offsets")
    with pytest.raises(NotCoordinatorError):
        await coord.commit_offsets("app", {("orders", 0): at(1)}, fence=fence)
    assert await coord.groups() == []


def _spy_round_trips(coord: ZooKeeperCoordinator, monkeypatch) -> list[str]:
    """Record each request the coordinator's worker threads send ("send") and each answer
    they await ("wait"); kazoo's own threads (watches) are not counted."""
    events: list[str] = []

    def record(event: str) -> None:
        if threading.current_thread().name.startswith(f"broker{coord.broker_id}-zk"):
            events.append(event)

    bridge, client = coord._bridge, coord._bridge.client
    for name in ("get_async", "get_children_async", "exists_async"):
        real = getattr(client, name)

        def sending(*args, _real=real, **kwargs):
            record("send")
            return _real(*args, **kwargs)

        monkeypatch.setattr(client, name, sending)
    real_commit, real_wait = bridge.commit, bridge.wait

    def committing(transaction):
        record("send")
        return real_commit(transaction)

    def waiting(result):
        record("wait")
        return real_wait(result)

    monkeypatch.setattr(bridge, "commit", committing)
    monkeypatch.setattr(bridge, "wait", waiting)
    return events


def round_trips(events: list[str]) -> int:
    """How many times requests were sent after the previous answers came back."""
    count = sum(
        1 for i, e in enumerate(events) if e == "send" and (i == 0 or events[i - 1] == "wait")
    )
    events.clear()
    return count


async def test_a_commit_is_one_transaction_and_reads_go_out_together(open_zk, monkeypatch):
    coord = await open_zk(1)
    offsets = {(f"topic-{t}", p): at(p) for t in range(2) for p in range(50)}
    events = _spy_round_trips(coord, monkeypatch)

    await coord.commit_offsets("app", offsets)
    assert round_trips(events) == 2  # which znodes exist (all at once), then the transaction
    await coord.commit_offsets("app", offsets)
    assert round_trips(events) == 1  # known now: the transaction alone
    assert await coord.fetch_offsets("app") == offsets
    assert round_trips(events) == 3  # its topics, their partitions, the values
    assert len(await coord.fetch_offsets("app", list(offsets)[:60])) == 60
    assert round_trips(events) == 1
    assert await coord.groups() == ["app"]
    assert round_trips(events) == 2


async def test_a_group_deleted_through_another_broker_is_committed_again(open_zk):
    one, two = await open_zk(1), await open_zk(2)
    await one.commit_offsets("app", {("orders", 0): at(1), ("orders", 1): at(1)})
    assert await two.delete_group_offsets("app") is True

    await one.commit_offsets("app", {("orders", 0): at(2)})  # one believes the znodes exist

    assert await two.fetch_offsets("app") == {("orders", 0): at(2)}


async def test_two_brokers_creating_one_group_at_once_both_land(open_zk):
    one, two = await open_zk(1), await open_zk(2)
    commits = [
        coord.commit_offsets(f"g{g}", {("orders", broker): at(broker)})
        for g in range(10)
        for broker, coord in ((1, one), (2, two))
    ]

    await asyncio.gather(*commits)

    for g in range(10):
        assert await one.fetch_offsets(f"g{g}") == {("orders", 1): at(1), ("orders", 2): at(2)}


async def test_a_commit_larger_than_a_request_is_refused_and_stores_nothing(open_zk):
    coord = await open_zk(1)
    too_many = {("orders", p): CommittedOffset(p, "m" * 4096) for p in range(300)}
    many = {("orders", p): CommittedOffset(p, "m" * 4096) for p in range(200)}

    with pytest.raises(InvalidRequestError, match=r"300 offsets is about 1[0-9]{6} bytes"):
        await coord.commit_offsets("app", too_many)

    assert await coord.groups() == []
    await coord.commit_offsets("app", many)  # about 850 kB: ZooKeeper takes it
    assert await coord.fetch_offsets("app") == many


async def test_a_group_larger_than_a_request_is_deleted_in_parts(open_zk, monkeypatch):
    coord = await open_zk(1)
    await coord.commit_offsets("app", {(f"t{t}", p): at(p) for t in range(3) for p in range(10)})
    monkeypatch.setattr(zk_offsets, "MAX_REQUEST_BYTES", 500)  # a few znodes a transaction

    assert await coord.delete_group_offsets("app") is True

    assert await coord.groups() == []
    assert await coord.fetch_offsets("app") == {}


async def test_znodes_that_are_not_offsets_are_left_out(open_zk, zk_connect, raw_zk):
    coord = await open_zk(1)
    await coord.commit_offsets("a/b", {("orders", 0): at(1)})
    root = split_connect(zk_connect)[1]
    for path in (
        "/consumers/a%2fb/offsets/orders/0",  # "a/b" is a%2Fb: this is nobody's
        "/consumers/.hidden/offsets/orders/0",  # a group ".hidden" is %2Ehidden
        "/consumers/a%2Fb/offsets/bad topic!/0",
        "/consumers/a%2Fb/offsets/orders/007",
        "/consumers/a%2Fb/offsets/orders/x",
        "/consumers/a%2Fb/ids/consumer-1",  # where Kafka's old consumers registered
        "/consumers/no-offsets/ids/consumer-1",
    ):
        raw_zk.create(root + path, b"junk", makepath=True)

    assert await coord.groups() == ["a/b"]
    assert await coord.fetch_offsets("a/b") == {("orders", 0): at(1)}
    assert await coord.delete_group_offsets("a/b") is True  # its whole subtree
    assert raw_zk.exists(root + "/consumers/a%2Fb") is None


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (b"", "empty"),
        (b"42", "not a JSON object"),
        (b'{"version": 2, "offset": 1, "metadata": "", "commit_timestamp": 0}', "version 2"),
        (b'{"version": 1, "offset": -1, "metadata": "", "commit_timestamp": 0}', "offset -1"),
        (b'{"version": 1, "offset": 1}', "KeyError"),
    ],
)
async def test_a_corrupt_offset_znode_is_an_error_naming_it(
    open_zk, zk_connect, raw_zk, damage, reason
):
    coord = await open_zk(1)
    await coord.commit_offsets("a/b", {("orders", 0): at(1), ("orders", 1): at(2)})
    full_path = split_connect(zk_connect)[1] + "/consumers/a%2Fb/offsets/orders/1"
    raw_zk.set(full_path, damage)

    with pytest.raises(StorageError, match=reason) as info:
        await coord.fetch_offsets("a/b")
    with pytest.raises(StorageError, match=reason):
        await coord.fetch_offsets("a/b", [("orders", 1)])

    assert f"zookeeper znode {full_path}: corrupt value" in str(info.value)
    assert await coord.fetch_offsets("a/b", [("orders", 0)]) == {("orders", 0): at(1)}
    await coord.commit_offsets("a/b", {("orders", 1): at(3)})  # a commit replaces it
    assert await coord.fetch_offsets("a/b") == {("orders", 0): at(1), ("orders", 1): at(3)}


async def test_offsets_time_out_while_zookeeper_hangs(open_zk, zookeeper: ZooKeeperProcess):
    coord = await open_zk(1, connection_timeout_ms=500)

    zookeeper.pause()
    try:
        with pytest.raises(ZooKeeperUnavailableError, match="commit 1 offsets of group 'app'") as e:
            await coord.commit_offsets("app", {("orders", 0): at(1)})
        with pytest.raises(ZooKeeperUnavailableError, match="fetch the offsets of group 'app'"):
            await coord.fetch_offsets("app")
    finally:
        zookeeper.resume()

    assert e.value.retriable
    await coord.commit_offsets("app", {("orders", 0): at(2)})
    assert await coord.fetch_offsets("app") == {("orders", 0): at(2)}


# -- corrupt znodes and an unreachable server ------------------------------------------------


@pytest.mark.parametrize(
    ("path", "call", "reason"),
    [
        ("/brokers/topics/orders", "topic", "JSONDecodeError"),
        ("/config/topics/orders", "topics", "config is not a map"),
        ("/brokers/topics/orders/partitions/0/state", "state", "leader_epoch -1"),
        ("/brokers/ids/1", "brokers", "not a JSON object"),
    ],
)
async def test_a_corrupt_znode_is_an_error_naming_it(
    open_zk, zk_connect, raw_zk, path, call, reason
):
    coord = await open_zk(1)
    await coord.create_topic("orders", 1, 1)
    damage = {
        "topic": b'{"version": 1, "partitions"',
        "topics": b'{"version": 1, "config": {"retention.ms": 1}}',
        "state": b'{"version": 1, "leader": 1, "leader_epoch": -1, "isr": [1],'
        b' "controller_epoch": 0}',
        "brokers": b"[1]",
    }[call]
    full_path = split_connect(zk_connect)[1] + path
    raw_zk.set(full_path, damage)
    read = {
        "topic": lambda: coord.topic("orders"),
        "topics": coord.topics,
        "state": lambda: coord.partition_state("orders", 0),
        "brokers": coord.live_brokers,
    }[call]

    with pytest.raises(StorageError, match=reason) as info:
        await read()

    assert f"zookeeper znode {full_path}: corrupt value" in str(info.value)


async def test_no_server_is_a_retriable_error_naming_it():
    coord = ZooKeeperCoordinator("127.0.0.1:1", broker_id=1, connection_timeout_ms=300)

    with pytest.raises(ZooKeeperUnavailableError, match=r"127\.0\.0\.1:1: connect") as info:
        await coord.start()

    assert info.value.retriable
    await coord.close()


async def test_a_hung_server_times_requests_out_and_they_work_again_after(
    open_zk, zookeeper: ZooKeeperProcess
):
    coord = await open_zk(1, connection_timeout_ms=500)
    await coord.create_topic("orders", 1, 1)

    zookeeper.pause()
    try:
        with pytest.raises(ZooKeeperUnavailableError, match="list the topics"):
            await coord.topics()
    finally:
        zookeeper.resume()

    assert list(await coord.topics()) == ["orders"]


async def test_close_ends_the_session_and_is_idempotent(open_zk):
    one, two = await open_zk(1), await open_zk(2)

    await one.close()
    await one.close()

    assert [b.broker_id for b in await two.live_brokers()] == [2]
    with pytest.raises(RuntimeError, match="not started or already closed"):
        await one.topics()
    await asyncio.sleep(0)


def test_without_the_zookeeper_package_the_message_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(zookeeper_server, "ZOOKEEPER_JAR", tmp_path / "zookeeper.jar")

    with pytest.raises(ZooKeeperNotInstalledError, match="apt-get install zookeeper"):
        ZooKeeperProcess(tmp_path).start()


async def test_a_controller_found_dead_is_deposed_and_the_candidates_stand_again(open_zk):
    one, two = await open_zk(1), await open_zk(2)
    assert await one.elect_controller() is True
    assert await two.elect_controller() is False
    first_epoch = one.controller_epoch

    assert await two.depose_controller(2) is False  # broker 2 does not hold it
    assert await one.depose_controller(1) is False  # nor does a broker depose itself
    assert one.is_controller
    assert await two.depose_controller(1) is True

    await eventually(
        lambda: (
            (one.is_controller or two.is_controller)
            and (one.controller_epoch or two.controller_epoch) == first_epoch + 1
        ),
        what="a new election, at the next controller epoch",
    )
    assert one.is_controller != two.is_controller
