"""GroupCoordinator (logserver/groups/group_coordinator.py): leadership, waiting requests,
fenced commits, the offsets cache, and the admin calls, over a fake store and a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from client.errors import (
    CoordinatorLoadInProgressError,
    GroupIdNotFoundError,
    IllegalGenerationError,
    NonEmptyGroupError,
    NotCoordinatorError,
    UnknownMemberIdError,
)
from coordination import CommittedOffset, OffsetFence
from logserver.groups.group import GroupLimits, JoinResult, SyncResult
from logserver.groups.group_coordinator import GroupCoordinator
from logserver.groups.placement import coordinator_partition
from tests.logserver.groups.fake_store import FakeStore
from tests.logserver.groups.helpers import SESSION_MS, request
from tests.support.clock import FakeClock

PARTITIONS = 4
GROUP = "orders-app"
HOME = coordinator_partition(GROUP, PARTITIONS)


@pytest.fixture
def store() -> FakeStore:
    return FakeStore(partitions=PARTITIONS)


@pytest.fixture
async def coordinator(store: FakeStore, clock: FakeClock) -> AsyncIterator[GroupCoordinator]:
    groups = GroupCoordinator(
        store,  # type: ignore[arg-type]
        broker_id=0,
        limits=GroupLimits(initial_rebalance_delay_ms=0),
        partition_count=lambda: PARTITIONS,
        clock_ms=clock,
        wall_clock_ms=lambda: 1234,
    )
    yield groups
    await groups.close()


async def lead(groups: GroupCoordinator, partition: int = HOME, epoch: int = 0) -> None:
    groups.on_leader(partition, epoch)
    for _ in range(100):
        if groups.is_coordinating(partition):
            return
        await asyncio.sleep(0)
    raise AssertionError(f"partition {partition} never loaded")


async def join_member(groups: GroupCoordinator, group: str = GROUP) -> str:
    """A member that joins an empty group alone: its id (generation 1 is then waiting sync)."""
    first = groups.join(group, request())
    assert isinstance(first, JoinResult)
    assert first.error is not None
    pending = groups.join(group, request(first.member_id))
    result = await pending if not isinstance(pending, JoinResult) else pending
    assert result.error is None
    return first.member_id


async def stable_member(groups: GroupCoordinator, assignment: bytes = b"") -> str:
    member_id = await join_member(groups)
    synced = groups.sync(GROUP, member_id, None, 1, {member_id: assignment})
    assert isinstance(synced, asyncio.Future)
    assert (await synced).error is None
    return member_id


async def test_not_coordinator_until_leading_and_loading_meanwhile(coordinator, store):
    with pytest.raises(NotCoordinatorError, match=f"__consumer_offsets-{HOME}"):
        coordinator.join(GROUP, request())
    store.fence_gate = asyncio.Event()
    coordinator.on_leader(HOME, 0)
    with pytest.raises(CoordinatorLoadInProgressError):
        coordinator.join(GROUP, request())
    store.fence_gate.set()
    await lead(coordinator)
    assert coordinator.join(GROUP, request()).member_id


async def test_a_waiting_join_is_answered_when_the_second_member_rejoins(coordinator):
    await lead(coordinator)
    a = await stable_member(coordinator)
    first = coordinator.join(GROUP, request())
    b_waiting = coordinator.join(GROUP, request(first.member_id))
    assert isinstance(b_waiting, asyncio.Future)
    assert not b_waiting.done()
    a_result = await coordinator.join(GROUP, request(a))
    b_result = await b_waiting
    assert a_result.generation_id == b_result.generation_id == 2
    assert a_result.leader == a


async def test_losing_leadership_answers_waiting_requests_not_coordinator(coordinator):
    await lead(coordinator)
    a = await stable_member(coordinator)
    first = coordinator.join(GROUP, request())
    waiting = coordinator.join(GROUP, request(first.member_id))
    coordinator.on_resign(HOME)
    result = await waiting
    assert isinstance(result.error, NotCoordinatorError)
    assert "find the coordinator again" in result.error.message
    with pytest.raises(NotCoordinatorError):
        coordinator.heartbeat(GROUP, a, None, 1)


async def test_the_same_epoch_again_keeps_the_groups_a_new_one_drops_them(coordinator, store):
    await lead(coordinator)
    a = await stable_member(coordinator)
    coordinator.on_leader(HOME, 0)  # an ISR change: the same leadership
    coordinator.heartbeat(GROUP, a, None, 1)
    store.set_state(HOME, 0, 1, (0,))  # leader again at a new epoch: others may have led
    coordinator.on_leader(HOME, 1)
    await lead(coordinator, epoch=1)
    with pytest.raises(UnknownMemberIdError):
        coordinator.heartbeat(GROUP, a, None, 1)


async def test_sweep_evicts_a_silent_member(coordinator, clock):
    await lead(coordinator)
    a = await stable_member(coordinator)
    clock.advance(SESSION_MS)
    coordinator.sweep()
    with pytest.raises(UnknownMemberIdError):
        coordinator.heartbeat(GROUP, a, None, 1)


async def test_close_answers_waiting_requests(store, clock):
    groups = GroupCoordinator(
        store,  # type: ignore[arg-type]
        broker_id=0,
        limits=GroupLimits(initial_rebalance_delay_ms=0),
        partition_count=lambda: PARTITIONS,
        clock_ms=clock,
    )
    groups.start()
    await lead(groups)
    await stable_member(groups)
    first = groups.join(GROUP, request())
    waiting = groups.join(GROUP, request(first.member_id))  # waits for the first to rejoin
    assert isinstance(waiting, asyncio.Future)
    await groups.close()
    assert isinstance((await waiting).error, NotCoordinatorError)
    with pytest.raises(NotCoordinatorError, match="shutting down"):
        groups.join(GROUP, request())


async def test_commit_is_fenced_and_cached(coordinator, store):
    await lead(coordinator)
    a = await stable_member(coordinator)
    offsets = {("t", 0): CommittedOffset(5, "m")}
    assert await coordinator.commit_offsets(GROUP, a, None, 1, offsets) == {}
    assert store.offsets[GROUP] == {("t", 0): CommittedOffset(5, "m", 1234)}
    assert await coordinator.fetch_offsets(GROUP, None) == store.offsets[GROUP]
    await coordinator.fetch_offsets(GROUP, [("t", 0), ("t", 1)])
    assert store.calls["fetch_offsets"] == 1  # read once, then served from memory
    await coordinator.commit_offsets(GROUP, a, None, 1, {("t", 1): CommittedOffset(7)})
    assert await coordinator.fetch_offsets(GROUP, [("t", 1)]) == {
        ("t", 1): CommittedOffset(7, "", 1234)
    }


async def test_an_isr_change_takes_a_new_fence_and_the_commit_goes_through(coordinator, store):
    await lead(coordinator)
    a = await stable_member(coordinator)
    store.set_state(HOME, 0, 0, (0, 1))  # the ISR grew: the version moved, the epoch did not
    await coordinator.commit_offsets(GROUP, a, None, 1, {("t", 0): CommittedOffset(1)})
    assert store.offsets[GROUP][("t", 0)].offset == 1
    assert store.calls["commit_offsets"] == 2
    coordinator.heartbeat(GROUP, a, None, 1)  # still coordinating


async def test_a_new_leader_makes_the_commit_fail_and_drops_the_groups(coordinator, store):
    await lead(coordinator)
    a = await stable_member(coordinator)
    store.set_state(HOME, 1, 1, (1,))  # broker 1 leads now; we have not heard yet
    with pytest.raises(NotCoordinatorError):
        await coordinator.commit_offsets(GROUP, a, None, 1, {("t", 0): CommittedOffset(1)})
    assert GROUP not in store.offsets
    assert not coordinator.is_coordinating(HOME)
    with pytest.raises(NotCoordinatorError):
        coordinator.heartbeat(GROUP, a, None, 1)


async def test_commit_checks_ownership_when_the_assignment_is_ours(coordinator, store):
    import msgpack

    await lead(coordinator)
    mine = msgpack.packb({"version": 1, "partitions": [["t", [0]]], "user_data": None})
    a = await stable_member(coordinator, mine)
    refused = await coordinator.commit_offsets(
        GROUP, a, None, 1, {("t", 0): CommittedOffset(1), ("t", 1): CommittedOffset(1)}
    )
    assert set(refused) == {("t", 1)}
    assert isinstance(refused[("t", 1)], IllegalGenerationError)
    assert "t-1 is not assigned to member" in refused[("t", 1)].message
    assert set(store.offsets[GROUP]) == {("t", 0)}


async def test_describe_list_delete(coordinator, store):
    await lead(coordinator)
    for p in range(PARTITIONS):
        if p != HOME:
            await lead(coordinator, p)
    a = await stable_member(coordinator, b"x")
    store.offsets["stored-only"] = {("t", 0): CommittedOffset(3)}
    summary = await coordinator.describe_group(GROUP)
    assert (summary.state, summary.protocol) == ("Stable", "range")
    assert [(m.member_id, m.assignment) for m in summary.members] == [(a, b"x")]
    assert (await coordinator.describe_group("nobody")).state == "Dead"
    assert (await coordinator.describe_group("stored-only")).state == "Empty"
    listed = await coordinator.list_groups()
    assert (GROUP, "consumer", "Stable") in listed
    assert ("stored-only", "consumer", "Empty") in listed
    with pytest.raises(NonEmptyGroupError):
        await coordinator.delete_group(GROUP)
    with pytest.raises(GroupIdNotFoundError):
        await coordinator.delete_group("never-seen")
    await coordinator.delete_group("stored-only")
    assert "stored-only" not in store.offsets
    coordinator.leave(GROUP, [(a, None)])
    await coordinator.delete_group(GROUP)  # empty now (and known): fine, nothing stored


async def test_list_groups_leaves_out_partitions_led_elsewhere(coordinator, store):
    await lead(coordinator)
    other = next(f"g{i}" for i in range(100) if coordinator_partition(f"g{i}", 4) != HOME)
    store.offsets[other] = {("t", 0): CommittedOffset(1)}
    assert all(row[0] != other for row in await coordinator.list_groups())


async def test_a_sync_answered_when_the_leader_syncs(coordinator):
    await lead(coordinator)
    a = await stable_member(coordinator)
    first = coordinator.join(GROUP, request())
    b_join = coordinator.join(GROUP, request(first.member_id))
    a_join = await coordinator.join(GROUP, request(a))
    b = (await b_join).member_id
    b_sync = coordinator.sync(GROUP, b, None, a_join.generation_id, {})
    assert isinstance(b_sync, asyncio.Future)
    a_sync = coordinator.sync(GROUP, a, None, a_join.generation_id, {a: b"A", b: b"B"})
    assert await a_sync == SyncResult(b"A")
    assert await b_sync == SyncResult(b"B")


def test_fence_equality_is_by_value():
    assert OffsetFence("__consumer_offsets", 1, 2) == OffsetFence("__consumer_offsets", 1, 2)


async def test_rebalances_and_snapshot_for_the_metrics(coordinator):
    await lead(coordinator)
    assert coordinator.rebalances == 0
    a = await stable_member(coordinator)
    assert coordinator.rebalances == 1
    first = coordinator.join(GROUP, request())
    b_waiting = coordinator.join(GROUP, request(first.member_id))
    await coordinator.join(GROUP, request(a))
    await b_waiting
    assert coordinator.rebalances == 2
    [(group_id, group, offsets)] = coordinator.snapshot()
    assert (group_id, len(group.members), offsets) == (GROUP, 2, None)


async def test_groups_known_only_by_their_offsets_are_loaded_for_the_metrics(coordinator, store):
    """A group whose members are gone (or whose coordinator moved here) is in memory only
    once read; the loader reads each stored group this broker coordinates, once."""
    other = next(g for g in (f"g{i}" for i in range(100)) if coordinator_partition(g, 4) != HOME)
    store.offsets[GROUP] = {("t", 0): CommittedOffset(5)}
    store.offsets[other] = {("t", 0): CommittedOffset(7)}
    await lead(coordinator)  # HOME only: `other` belongs to another broker

    assert coordinator.snapshot() == []
    assert await coordinator.load_stored_groups() == 1
    [(group_id, group, offsets)] = coordinator.snapshot()
    assert (group_id, group.state.value, offsets) == (
        GROUP,
        "Empty",
        {("t", 0): CommittedOffset(5)},
    )
    coordinator.sweep()  # a group with offsets stays
    assert [g for g, _, _ in coordinator.snapshot()] == [GROUP]
    reads = store.calls["fetch_offsets"]
    assert await coordinator.load_stored_groups() == 0  # read once
    assert store.calls["fetch_offsets"] == reads
