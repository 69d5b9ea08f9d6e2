"""The controller: its rules as pure functions (examples and hypothesis), then the controller
at work over a real ZooKeeper, with several ZooKeeperCoordinators standing in for brokers.

A broker "dies" by closing its coordinator (its session ends, its registration
and, if it was controller, /controller go at once) or by having its session
expired (the same on the server; kazoo then opens a new session and the
broker registers again: a "bounced" broker).
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from client.errors import NotControllerError, StaleControllerEpochError
from coordination import BrokerInfo, EmbeddedCoordinator, PartitionState
from coordination.interface import check_partition_state
from coordination.kazoo_bridge import split_connect
from coordination.zookeeper import ZooKeeperCoordinator
from logserver.controller import (
    ELECTED,
    NOT_NEEDED,
    Controller,
    decide,
    preferred_election,
    unclean_election_enabled,
)
from tests.coordination.contract import eventually, quietly

MOVE_BOUND_S = 5.0
"""How long leadership may take to move once a broker's registration is gone (it takes
tens of milliseconds; the bound leaves room for a loaded machine)."""


def ps(leader: int, epoch: int, *isr: int) -> PartitionState:
    return PartitionState(leader, epoch, tuple(isr))


# -- decide: examples ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "replicas", "live", "unclean", "expected"),
    [
        pytest.param(ps(1, 3, 1, 2, 3), (1, 2, 3), {1, 2, 3}, False, None, id="all-well"),
        pytest.param(
            ps(1, 3, 1, 2, 3), (1, 2, 3), {1, 3}, False, ps(1, 3, 1, 3), id="follower-dies"
        ),
        pytest.param(ps(1, 3, 1, 2, 3), (1, 2, 3), {2, 3}, False, ps(2, 4, 2, 3), id="leader-dies"),
        pytest.param(
            ps(1, 3, 3, 1, 2), (1, 2, 3), {2, 3}, False, ps(2, 4, 3, 2), id="assignment-order"
        ),
        pytest.param(
            ps(1, 3, 1, 3), (1, 2, 3), {2, 3}, False, ps(3, 4, 3), id="out-of-sync-skipped"
        ),
        pytest.param(ps(1, 3, 1), (1, 2, 3), {2, 3}, False, ps(-1, 4, 1), id="goes-offline"),
        pytest.param(
            ps(1, 3, 1, 2), (1, 2, 3), {3}, False, ps(-1, 4, 1, 2), id="offline-keeps-isr"
        ),
        pytest.param(ps(-1, 4, 1), (1, 2, 3), {2, 3}, False, None, id="stays-offline"),
        pytest.param(ps(-1, 4, 1, 2), (1, 2, 3), {2, 3}, False, ps(2, 5, 2), id="isr-returns"),
        pytest.param(ps(1, 3, 1), (1, 2, 3), {2, 3}, True, ps(2, 4, 2), id="unclean"),
        pytest.param(ps(-1, 4, 1), (1, 2, 3), {3}, True, ps(3, 5, 3), id="unclean-offline"),
        pytest.param(ps(1, 3, 1), (1, 2, 3), {4}, True, ps(-1, 4, 1), id="unclean-none-live"),
        pytest.param(ps(-1, 0), (1, 2), {1, 2}, False, None, id="empty-isr-stays-offline"),
        pytest.param(ps(-1, 0), (1, 2), {2}, True, ps(2, 1, 2), id="empty-isr-unclean"),
    ],
)
def test_decide(state, replicas, live, unclean, expected):
    assert decide(state, replicas, live, unclean) == expected


# -- decide: properties ----------------------------------------------------------------------

BROKERS = st.integers(min_value=0, max_value=6)


@st.composite
def situations(draw: st.DrawFn) -> tuple[PartitionState, tuple[int, ...], set[int], bool]:
    """A valid partition state, its replicas, the live brokers and the unclean setting."""
    replicas = tuple(draw(st.lists(BROKERS, min_size=1, max_size=5, unique=True)))
    isr = draw(st.lists(st.sampled_from(replicas), max_size=len(replicas), unique=True))
    leader = draw(st.sampled_from([-1, *isr]))
    epoch = draw(st.integers(min_value=0, max_value=1000))
    live = draw(st.sets(BROKERS))
    return PartitionState(leader, epoch, tuple(isr)), replicas, live, draw(st.booleans())


@given(situations())
def test_a_decision_is_valid_and_follows_kafkas_rules(situation):
    state, replicas, live, unclean = situation

    new = decide(state, replicas, live, unclean)

    after = state if new is None else new
    check_partition_state("t", 0, after)
    if new is not None:
        assert new != state
    if after.leader == -1:
        assert after.isr == state.isr  # offline keeps the last ISR
        assert not any(b in live for b in state.isr if b in replicas)  # nobody could lead
        assert not unclean or not any(r in live for r in replicas)
    else:
        assert after.leader in live
        assert set(after.isr) <= live  # no dead broker in the ISR of an online partition
        assert set(after.isr) <= set(state.isr) | {after.leader}
        if after.leader not in state.isr:
            assert unclean  # only an unclean election picks a replica out of sync
            assert after.isr == (after.leader,)
    if after.leader != state.leader:
        assert after.leader_epoch == state.leader_epoch + 1
    else:
        assert after.leader_epoch == state.leader_epoch


@given(situations())
def test_a_decision_is_final_until_the_live_brokers_change(situation):
    state, replicas, live, unclean = situation
    new = decide(state, replicas, live, unclean)
    assume(new is not None)

    assert decide(new, replicas, live, unclean) is None


@given(situations())
def test_the_leader_is_the_first_live_in_sync_replica_when_one_must_be_chosen(situation):
    state, replicas, live, unclean = situation
    assume(state.leader not in live)
    candidates = [r for r in replicas if r in state.isr and r in live]

    new = decide(state, replicas, live, unclean)

    if candidates:
        assert new is not None
        assert new.leader == candidates[0]


@given(
    situations(),
    st.lists(st.tuples(st.sets(BROKERS), st.booleans()), min_size=1, max_size=12),
)
def test_through_any_history_epochs_only_grow_and_leaders_come_from_the_isr(start, history):
    state, replicas, _, _ = start
    for live, unclean in history:
        new = decide(state, replicas, live, unclean)
        if new is None:
            continue
        assert new.leader_epoch >= state.leader_epoch
        if new.leader != state.leader:
            assert new.leader_epoch == state.leader_epoch + 1
            if new.leader != -1 and new.leader not in state.isr:
                assert unclean
        state = new


# -- preferred election ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "live", "expected"),
    [
        (ps(1, 3, 1, 2), {1, 2}, (NOT_NEEDED, None)),
        (ps(2, 3, 2, 1, 3), {1, 2, 3}, (ELECTED, ps(1, 4, 2, 1, 3))),
        (ps(2, 3, 2, 1, 3), {1, 2}, (ELECTED, ps(1, 4, 2, 1))),
        (ps(2, 3, 2, 3), {1, 2, 3}, ("PREFERRED_LEADER_NOT_AVAILABLE", None)),
        (ps(2, 3, 2, 1), {2, 3}, ("PREFERRED_LEADER_NOT_AVAILABLE", None)),
        (ps(-1, 3, 1), {2, 3}, ("PREFERRED_LEADER_NOT_AVAILABLE", None)),
    ],
)
def test_preferred_election(state, live, expected):
    assert preferred_election(state, (1, 2, 3), live) == expected


@given(situations())
def test_a_preferred_election_elects_only_a_live_in_sync_first_replica(situation):
    state, replicas, live, _ = situation

    verdict, new = preferred_election(state, replicas, live)

    if verdict == ELECTED:
        assert new is not None
        check_partition_state("t", 0, new)
        assert new.leader == replicas[0] != state.leader
        assert new.leader in live
        assert new.leader in state.isr
        assert new.leader_epoch == state.leader_epoch + 1
        assert set(new.isr) <= live
    else:
        assert new is None


@pytest.mark.parametrize(
    ("config", "default", "expected"),
    [
        ({}, False, False),
        ({}, True, True),
        ({"unclean.leader.election.enable": "true"}, False, True),
        ({"unclean.leader.election.enable": "TRUE"}, False, True),
        ({"unclean.leader.election.enable": "false"}, True, False),
    ],
)
def test_unclean_election_comes_from_the_topic_else_the_broker(config, default, expected):
    assert unclean_election_enabled(config, default) is expected


# -- standalone ------------------------------------------------------------------------------


async def test_standalone_the_broker_is_the_controller_once_registered(tmp_path):
    coordinator = EmbeddedCoordinator(tmp_path)
    await coordinator.start()
    controller = Controller(coordinator, broker_id=1, unclean_leader_election=False)
    try:
        await controller.start()
        assert not controller.is_active
        assert await controller.reconcile() == {}

        await coordinator.register_broker(BrokerInfo(1, "localhost", 9092))
        await coordinator.create_topic("orders", 2, 1)

        assert controller.is_active
        await quietly()
        assert await controller.reconcile() == {}
        assert await controller.elect_preferred_leaders() == {
            ("orders", 0): NOT_NEEDED,
            ("orders", 1): NOT_NEEDED,
        }
        assert await coordinator.partition_state("orders", 0) == ps(1, 0, 1)
    finally:
        await controller.close()
        await coordinator.close()


async def test_a_conflicting_write_is_read_again_and_decided_again(tmp_path):
    coordinator = EmbeddedCoordinator(tmp_path)
    await coordinator.start()
    await coordinator.register_broker(BrokerInfo(1, "localhost", 9092))
    await coordinator.create_topic("orders", 1, 1)
    # A leader elsewhere (broker 7, say) shrank the ISR while the controller was deciding.
    await coordinator.update_partition_state("orders", 0, ps(-1, 1, 7), 0)
    controller = Controller(coordinator, broker_id=1, unclean_leader_election=True)
    real_update = coordinator.update_partition_state
    raced: list[int] = []

    async def racing_update(topic, partition, state, expected_version, **kwargs):
        if not raced:
            raced.append(expected_version)
            await real_update(topic, partition, ps(-1, 2, 7), expected_version)
        return await real_update(topic, partition, state, expected_version, **kwargs)

    coordinator.update_partition_state = racing_update  # type: ignore[method-assign]
    try:
        await controller.start()

        await eventually(
            lambda: coordinator._topics["orders"].states[0].leader == 1, what="unclean election"
        )

        assert await coordinator.partition_state("orders", 0) == ps(1, 3, 1)  # decided on 2
        assert raced == [1]
    finally:
        await controller.close()
        await coordinator.close()


async def test_a_broker_that_registered_again_loses_its_leadership_first(tmp_path):
    """A new registration (a restart, a lost session) may have lost unflushed records: the
    broker must not go on leading in the same epoch, even if the controller never saw it
    gone. It leads again at a new epoch if nobody else can."""
    coordinator = EmbeddedCoordinator(tmp_path)
    await coordinator.start()
    await coordinator.register_broker(BrokerInfo(1, "localhost", 9092))
    await coordinator.create_topic("orders", 1, 1)
    controller = Controller(coordinator, broker_id=1, unclean_leader_election=False)
    registration = BrokerInfo(1, "localhost", 9092, epoch=100)

    async def live_brokers() -> list[BrokerInfo]:
        return [registration]

    coordinator.live_brokers = live_brokers  # type: ignore[method-assign]
    try:
        await controller.start()
        await quietly()  # its first pass, on becoming controller, is over
        assert await coordinator.partition_state("orders", 0) == ps(1, 0, 1)

        registration = BrokerInfo(1, "localhost", 9092, epoch=200)  # the same broker, again
        written = await controller.reconcile()

        assert written == {("orders", 0): ps(1, 2, 1)}  # offline at epoch 1, then back
        assert await controller.reconcile() == {}  # the new registration is known now
    finally:
        await controller.close()
        await coordinator.close()


# -- over ZooKeeper --------------------------------------------------------------------------


@dataclasses.dataclass
class Node:
    """A stand-in broker: its coordinator and its controller."""

    broker_id: int
    coordinator: ZooKeeperCoordinator
    controller: Controller
    alive: bool = True

    async def stop(self) -> None:
        """Die: the session ends, taking the registration (and /controller) with it."""
        self.alive = False
        await self.controller.close()
        await self.coordinator.close()


StartNode = Callable[..., Awaitable[Node]]


@pytest.fixture
async def start_node(zk_connect: str) -> AsyncIterator[StartNode]:
    """``await start_node(broker_id, unclean=False, interval_s=None)``: a registered
    coordinator with a started controller; all are stopped at teardown."""
    nodes: list[Node] = []

    async def start(
        broker_id: int,
        *,
        unclean: bool = False,
        interval_s: float | None = None,
        probe_s: float | None = None,
        port: int | None = None,
    ) -> Node:
        coordinator = ZooKeeperCoordinator(zk_connect, broker_id=broker_id)
        await coordinator.start()
        await coordinator.register_broker(
            BrokerInfo(broker_id, "127.0.0.1", port or 9090 + broker_id)
        )
        controller = Controller(
            coordinator,
            broker_id=broker_id,
            unclean_leader_election=unclean,
            leader_imbalance_check_interval_s=interval_s,
            liveness_probe_interval_s=probe_s,
        )
        node = Node(broker_id, coordinator, controller)
        nodes.append(node)
        await controller.start()
        return node

    yield start
    for node in reversed(nodes):
        if node.alive:
            await node.stop()


async def start_cluster(start_node: StartNode, size: int = 3, **kwargs: object) -> list[Node]:
    """Brokers 1..size; broker 1 starts first, so it is the controller."""
    nodes = [await start_node(1, **kwargs)]
    nodes += [await start_node(b, **kwargs) for b in range(2, size + 1)]
    assert [n.coordinator.is_controller for n in nodes] == [True] + [False] * (size - 1)
    return nodes


async def states(coordinator: ZooKeeperCoordinator, topic: str) -> dict[int, PartitionState]:
    assignment = await coordinator.topic(topic)
    assert assignment is not None
    found = {}
    for p in assignment.replicas:
        state = await coordinator.partition_state(topic, p)
        assert state is not None
        found[p] = state
    return found


async def until(
    check: Callable[[], Awaitable[bool]], *, timeout_s: float = MOVE_BOUND_S, what: str
) -> float:
    """Wait until ``await check()``; return how long it took (fail after ``timeout_s``)."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout_s:
            pytest.fail(f"{what}: not within {timeout_s} s")
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_with_every_broker_live_the_controller_changes_nothing(start_node):
    one, two, _three = await start_cluster(start_node)
    await two.coordinator.create_topic("orders", 3, 3)
    before = await states(one.coordinator, "orders")
    await quietly()

    assert await one.controller.reconcile() == {}
    assert await two.controller.reconcile() == {}  # not the controller: does nothing
    assert await states(one.coordinator, "orders") == before
    assert (one.controller.is_active, two.controller.is_active) == (True, False)


async def test_a_dead_leader_is_replaced_by_an_in_sync_replica_within_the_bound(start_node):
    nodes = await start_cluster(start_node)
    await nodes[0].coordinator.create_topic("orders", 6, 3)
    before = await states(nodes[0].coordinator, "orders")
    victim = nodes[1]  # not the controller
    led = {p for p, s in before.items() if s.leader == victim.broker_id}
    assert led

    await victim.stop()

    async def moved() -> bool:
        now = await states(nodes[0].coordinator, "orders")
        return all(victim.broker_id not in s.isr for s in now.values())

    elapsed = await until(moved, what="leadership and ISR places moved off broker 2")
    assert elapsed < MOVE_BOUND_S
    after = await states(nodes[0].coordinator, "orders")
    replicas = (await nodes[0].coordinator.topic("orders")).replicas
    for p, state in after.items():
        old = before[p]
        survivors = tuple(b for b in old.isr if b != victim.broker_id)
        if p in led:
            expected_leader = next(r for r in replicas[p] if r in survivors)
            assert state == PartitionState(expected_leader, old.leader_epoch + 1, survivors)
        else:
            assert state == PartitionState(old.leader, old.leader_epoch, survivors)


async def test_when_the_controller_dies_another_takes_over_and_moves_its_leaderships(
    start_node,
):
    one, two, three = await start_cluster(start_node)
    await one.coordinator.create_topic("orders", 3, 3)
    before = await states(two.coordinator, "orders")

    await one.stop()

    async def taken_over() -> bool:
        now = await states(two.coordinator, "orders")
        return all(1 not in s.isr for s in now.values())

    await until(taken_over, what="the new controller moved broker 1's places")
    assert two.coordinator.is_controller != three.coordinator.is_controller
    after = await states(two.coordinator, "orders")
    for p, state in after.items():
        if before[p].leader == 1:
            assert state.leader in (2, 3)
            assert state.leader_epoch == before[p].leader_epoch + 1


async def test_after_the_controllers_session_expires_another_controller_carries_on(
    start_node, expire_session
):
    one, two, three = await start_cluster(start_node)
    await one.coordinator.create_topic("orders", 3, 3)
    old_epoch = one.coordinator.controller_epoch

    await expire_session(one.coordinator)
    await eventually(
        lambda: two.coordinator.is_controller or three.coordinator.is_controller,
        what="another broker is controller",
    )
    new = two if two.coordinator.is_controller else three
    assert new.coordinator.controller_epoch == old_epoch + 1
    other = three if new is two else two

    # Broker 1 is back under a new session (a bounced broker): it leads nothing it led
    # before in the same epoch, and it is in no ISR until a leader takes it back.
    async def bounced_handled() -> bool:
        now = await states(new.coordinator, "orders")
        return all(1 not in s.isr for s in now.values())

    await until(bounced_handled, what="broker 1's places moved")
    assert await one.controller.reconcile() == {}  # not the controller any more

    # The new controller goes on working: another broker dies.
    await other.stop()

    async def only_new_left() -> bool:
        now = await states(new.coordinator, "orders")
        return all(s.isr == (new.broker_id,) for s in now.values())

    await until(only_new_left, what=f"broker {other.broker_id}'s places moved")
    assert all(
        s.leader == new.broker_id for s in (await states(new.coordinator, "orders")).values()
    )


async def test_an_offline_partition_comes_back_when_an_isr_member_returns(start_node):
    one, two, three = await start_cluster(start_node)
    await one.coordinator.create_topic("orders", 3, 2)
    replicas = (await one.coordinator.topic("orders")).replicas
    p = next(p for p, r in replicas.items() if 1 not in r)  # broker 1 stays up, as controller
    first, second = replicas[p]
    nodes = {2: two, 3: three}

    await nodes[second].stop()
    await until(
        lambda: _state_is(one, p, lambda s: s.isr == (first,)), what="ISR shrank to the leader"
    )
    epoch = (await one.coordinator.partition_state("orders", p)).leader_epoch
    await nodes[first].stop()
    await until(lambda: _state_is(one, p, lambda s: s.leader == -1), what="offline")
    assert await one.coordinator.partition_state("orders", p) == PartitionState(
        -1, epoch + 1, (first,)
    )
    assert ("orders", p) in one.controller.offline_partitions

    await start_node(second)  # not in the ISR: it may not lead (unclean election is off)
    await quietly()
    assert (await one.coordinator.partition_state("orders", p)).leader == -1
    await start_node(first)

    elapsed = await until(
        lambda: _state_is(one, p, lambda s: s.leader == first), what="back online"
    )
    assert elapsed < MOVE_BOUND_S
    assert await one.coordinator.partition_state("orders", p) == PartitionState(
        first, epoch + 2, (first,)
    )
    assert ("orders", p) not in one.controller.offline_partitions


async def test_an_unclean_election_when_the_topic_allows_it(start_node):
    one, two, three = await start_cluster(start_node)
    await one.coordinator.create_topic("orders", 3, 2, {"unclean.leader.election.enable": "true"})
    replicas = (await one.coordinator.topic("orders")).replicas
    p = next(p for p, r in replicas.items() if 1 not in r)
    first, second = replicas[p]
    nodes = {2: two, 3: three}
    await nodes[second].stop()
    await until(lambda: _state_is(one, p, lambda s: s.isr == (first,)), what="ISR shrank")
    await nodes[first].stop()
    await until(lambda: _state_is(one, p, lambda s: s.leader == -1), what="offline")

    await start_node(second)

    await until(lambda: _state_is(one, p, lambda s: s.leader == second), what="unclean")
    assert (await one.coordinator.partition_state("orders", p)).isr == (second,)


async def test_preferred_leader_election_gives_leadership_back(start_node):
    one, two, _three = await start_cluster(start_node)
    await one.coordinator.create_topic("orders", 3, 3)
    replicas = (await one.coordinator.topic("orders")).replicas
    p = next(p for p, r in replicas.items() if r[0] == 2)
    await two.stop()
    await until(lambda: _state_is(one, p, lambda s: s.leader != 2), what="moved off 2")
    two = await start_node(2)
    await quietly()

    outcome = await one.controller.elect_preferred_leaders(["orders", "ghost"])

    assert outcome[("orders", p)] == "PREFERRED_LEADER_NOT_AVAILABLE"  # not in the ISR yet
    assert outcome[("ghost", -1)] == "UNKNOWN_TOPIC_OR_PARTITION"
    # Its leader takes broker 2 back into the ISR once it caught up.
    state, version = await one.coordinator.partition_state_with_version("orders", p)
    back = PartitionState(state.leader, state.leader_epoch, (*state.isr, 2))
    await one.coordinator.update_partition_state("orders", p, back, version)

    outcome = await one.controller.elect_preferred_leaders(["orders"])

    assert outcome[("orders", p)] == ELECTED
    assert set(outcome.values()) <= {ELECTED, NOT_NEEDED, "PREFERRED_LEADER_NOT_AVAILABLE"}
    assert await one.coordinator.partition_state("orders", p) == PartitionState(
        2, state.leader_epoch + 1, back.isr
    )
    assert (await one.controller.elect_preferred_leaders(["orders"]))[("orders", p)] == (NOT_NEEDED)
    with pytest.raises(NotControllerError):
        await two.controller.elect_preferred_leaders()


async def test_the_background_check_elects_preferred_leaders_by_itself(start_node):
    one, _two, _three = await start_cluster(start_node, interval_s=0.2)
    await one.coordinator.create_topic("orders", 3, 3)
    replicas = (await one.coordinator.topic("orders")).replicas
    p = next(p for p, r in replicas.items() if r[0] == 3)
    state, version = await one.coordinator.partition_state_with_version("orders", p)
    # Leadership went elsewhere (say, broker 3 was briefly away), broker 3 is in sync again.
    moved = PartitionState(replicas[p][1], state.leader_epoch + 1, state.isr)
    await one.coordinator.update_partition_state("orders", p, moved, version)

    await until(lambda: _state_is(one, p, lambda s: s.leader == 3), what="given back to 3")

    assert (await one.coordinator.partition_state("orders", p)).leader_epoch == (
        state.leader_epoch + 2
    )


async def test_a_stale_controller_cannot_write(start_node, zk_connect, raw_zk):
    one, _two, three = await start_cluster(start_node)
    await one.coordinator.create_topic("orders", 3, 3)
    before = await states(one.coordinator, "orders")
    # Another controller was elected while broker 1 was cut off and did not notice.
    root = split_connect(zk_connect)[1]
    raw_zk.set(root + "/controller_epoch", str(one.coordinator.controller_epoch + 1).encode())

    await three.stop()  # broker 1's controller sees it, and tries to act
    await quietly(0.5)

    assert await one.controller.reconcile() == {}
    assert await states(one.coordinator, "orders") == before  # broker 3 still in every ISR
    state, version = await one.coordinator.partition_state_with_version("orders", 0)
    with pytest.raises(StaleControllerEpochError):
        await one.coordinator.update_partition_state(
            "orders", 0, state, version, controller_epoch=one.coordinator.controller_epoch
        )


async def _state_is(
    node: Node, partition: int, predicate: Callable[[PartitionState], bool]
) -> bool:
    state = await node.coordinator.partition_state("orders", partition)
    return state is not None and predicate(state)


async def test_a_broker_refusing_connections_loses_its_places_before_its_session_ends(
    start_node,
):
    """The liveness probe: broker 3's session lives on, but nothing listens at its port."""
    servers = [await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0) for _ in "12"]
    try:
        ports = [s.sockets[0].getsockname()[1] for s in servers]
        one = await start_node(1, probe_s=0.05, port=ports[0])
        await start_node(2, probe_s=0.05, port=ports[1])
        refusing = await start_node(3, probe_s=0.05)  # port 9093: nobody listens there
        await one.coordinator.create_topic("orders", 3, 3)

        async def moved() -> bool:
            now = await states(one.coordinator, "orders")
            return all(refusing.broker_id not in s.isr for s in now.values())

        elapsed = await until(moved, timeout_s=5.0, what="broker 3's places moved")
        assert elapsed < 5.0
        assert refusing.coordinator.session_state.name.lower() == "connected"
        after = await states(one.coordinator, "orders")
        assert {s.leader for s in after.values()} <= {1, 2}
        assert all(set(s.isr) == {1, 2} for s in after.values())
    finally:
        for server in servers:
            server.close()


def test_election_kinds_for_the_metrics() -> None:
    from logserver.controller import _election_kind

    old = PartitionState(1, 4, (1, 2))
    assert _election_kind(old, PartitionState(2, 5, (2,)), "broker 1 died") == "clean"
    assert _election_kind(old, PartitionState(3, 5, (3,)), "broker 1 died") == "unclean"
    assert _election_kind(old, PartitionState(2, 5, (1, 2)), "preferred election") == "preferred"
