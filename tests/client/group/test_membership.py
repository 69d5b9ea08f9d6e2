"""The membership state machine against an in-process coordinator (``FakeCoordinatorBroker``).

An ``App`` stands in for the consumer: it "polls" every few milliseconds,
gives partitions back when asked and takes each new assignment, recording
what happened, so each test reads as the sequence of requests and hand-offs.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from client.cluster import Cluster
from client.errors import (
    FencedInstanceIdError,
    IllegalGenerationError,
    InconsistentGroupProtocolError,
    NotCoordinatorError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)
from client.group.assignor import assignor_for
from client.group.coordinator_lookup import CoordinatorLookup
from client.group.member_metadata import Subscription
from client.group.membership import MaxPollIntervalExceededError, Membership, MemberState
from client.protocol import ApiKey
from client.topic_partition import TopicPartition
from tests.client.consumer.fake_coordinator import FakeCoordinatorBroker

WAIT_S = 5.0
GROUP = "g"


class App:
    """What the consumer does with a membership, in a task: poll, revoke, take assignments."""

    def __init__(self, membership: Membership) -> None:
        self.membership = membership
        self.assignments: list[frozenset[TopicPartition]] = []
        self.revocations: list[tuple[frozenset[TopicPartition], bool]] = []  # (parts, lost)
        self.errors: list[Exception] = []
        self.polling = True
        self.revoke_gate = asyncio.Event()
        self.revoke_gate.set()
        self._task = asyncio.create_task(self._run())

    @property
    def current(self) -> frozenset[TopicPartition]:
        return self.assignments[-1] if self.assignments else frozenset()

    async def _run(self) -> None:
        m = self.membership
        while True:
            await asyncio.sleep(0.01)
            if not self.polling:
                continue
            m.poll_started()
            if m.error is not None:
                self.errors.append(m.error)
                return
            timed_out = m.take_poll_timeout()
            if timed_out is not None:
                self.errors.append(timed_out)
                self.revocations.append((m.owned, True))
                m.revoked()
                continue
            if m.revoke_requested and self.revoke_gate.is_set():
                self.revocations.append((m.owned, m.commit_generation() is None))
                m.revoked()
            taken = m.take_assignment()
            if taken is not None:
                self.assignments.append(taken)

    async def stop(self) -> None:
        self._task.cancel()
        await asyncio.wait([self._task], timeout=WAIT_S)


MemberFactory = Callable[..., Awaitable[tuple[Membership, App]]]


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> FakeCoordinatorBroker:
    return FakeCoordinatorBroker({"t": 4, "u": 2}).install(monkeypatch)


@pytest.fixture
async def member(fake: FakeCoordinatorBroker) -> AsyncIterator[MemberFactory]:
    """``await member(topics=["t"], ...)``: a subscribed Membership and its App."""
    made: list[tuple[Cluster, CoordinatorLookup, Membership, App]] = []

    async def make(
        topics: list[str] | None = None, *, assignors: tuple[str, ...] = ("range",), **kw: Any
    ) -> tuple[Membership, App]:
        cluster = Cluster(fake.address, client_id="c", allow_auto_topic_creation=False)
        lookup = CoordinatorLookup(cluster, timeout_ms=5_000)
        kw.setdefault("session_timeout_ms", 2_000)
        kw.setdefault("heartbeat_interval_ms", 50)
        kw.setdefault("max_poll_interval_ms", 3_000)
        kw.setdefault("retry_backoff_ms", 10)
        membership = Membership(
            cluster,
            lookup,
            group_id=GROUP,
            assignors=[assignor_for(a) for a in assignors],
            **kw,
        )
        membership.subscribe(topics or ["t"])
        app = App(membership)
        made.append((cluster, lookup, membership, app))
        return membership, app

    yield make
    for cluster, lookup, membership, app in made:
        await app.stop()
        await asyncio.wait_for(membership.close(), WAIT_S)
        lookup.close()
        await cluster.close()


async def eventually(condition: Callable[[], object], what: str, timeout_s: float = WAIT_S) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"not within {timeout_s} s: {what}")
        await asyncio.sleep(0.01)


def tps(topic: str, *partitions: int) -> frozenset[TopicPartition]:
    return frozenset(TopicPartition(topic, p) for p in partitions)


async def test_a_new_member_joins_again_with_the_id_the_coordinator_made(
    member: MemberFactory, fake: FakeCoordinatorBroker
) -> None:
    membership, app = await member(["t"], assignors=("range", "sticky"), max_poll_interval_ms=4321)

    await eventually(lambda: app.assignments, "an assignment")

    joins = fake.bodies(ApiKey.JOIN_GROUP)
    assert [j["member_id"] for j in joins] == ["", membership.member_id]
    assert membership.member_id.startswith("c-")
    assert all(j["rebalance_timeout_ms"] == 4321 for j in joins)
    assert [name for name, _ in joins[-1]["protocols"]] == ["range", "sticky"]
    assert Subscription.decode(joins[-1]["protocols"][0][1]).topics == ("t",)
    assert app.assignments == [tps("t", 0, 1, 2, 3)]
    assert membership.state is MemberState.STABLE
    assert membership.is_leader


async def test_the_leader_assigns_from_every_members_subscription(
    member: MemberFactory, fake: FakeCoordinatorBroker
) -> None:
    leader, leader_app = await member(["t"])
    await eventually(lambda: leader_app.assignments, "the leader's first assignment")
    other, other_app = await member(["t", "u"])

    await eventually(
        lambda: other_app.assignments and len(leader_app.assignments) == 2, "both assigned"
    )

    assert leader.is_leader
    assert not other.is_leader
    # range over sorted member ids: "c-1…" (the leader) gets t-0 t-1; only the other wants u.
    assert leader_app.current == tps("t", 0, 1)
    assert other_app.current == tps("t", 2, 3) | tps("u", 0, 1)
    assert leader.assigned_partition_counts == {"t": 4, "u": 2}
    # The leader gave its partitions back before it joined again.
    assert leader_app.revocations == [(tps("t", 0, 1, 2, 3), False)]


async def test_heartbeats_go_every_heartbeat_interval(
    member: MemberFactory, fake: FakeCoordinatorBroker
) -> None:
    _, app = await member(["t"], heartbeat_interval_ms=100)
    await eventually(lambda: app.assignments, "an assignment")
    before = fake.count(ApiKey.HEARTBEAT)

    await asyncio.sleep(1.0)

    assert 7 <= fake.count(ApiKey.HEARTBEAT) - before <= 11


async def test_rebalance_in_progress_revokes_with_the_generation_kept_then_rejoins(
    member: MemberFactory, fake: FakeCoordinatorBroker
) -> None:
    membership, app = await member(["t"])
    await eventually(lambda: app.assignments, "an assignment")
    member_id, generation = membership.member_id, membership.generation_id
    app.revoke_gate.clear()
    joins = fake.count(ApiKey.JOIN_GROUP)

    fake.fail_next(ApiKey.HEARTBEAT, RebalanceInProgressError.code)
    await eventually(lambda: membership.revoke_requested, "a revoke request")

    # While the application holds on to its partitions: no join, the generation still commits.
    await asyncio.sleep(0.2)
    assert fake.count(ApiKey.JOIN_GROUP) == joins
    assert membership.commit_generation() == (generation, member_id)
    app.revoke_gate.set()
    await eventually(lambda: len(app.assignments) == 2, "the next assignment")

    assert app.revocations == [(tps("t", 0, 1, 2, 3), False)]
    assert fake.bodies(ApiKey.JOIN_GROUP)[-1]["member_id"] == member_id
    assert membership.generation_id == generation + 1


async def test_waiting_for_the_application_to_revoke_keeps_the_session_alive(
    member: MemberFactory, fake: FakeCoordinatorBroker
) -> None:
    membership, app = await member(["t"], heartbeat_interval_ms=50)
    await eventually(lambda: app.assignments, "an assignment")
    app.revoke_gate.clear()
    membership.request_rejoin("the test asks")
    await eventually(lambda: membership.revoke_requested, "a revoke request")
    before = fake.count(ApiKey.HEARTBEAT)

    await asyncio.sleep(0.5)

    assert fake.count(ApiKey.HEARTBEAT) - before >= 5
    app.revoke_gate.set()
    await eventually(lambda: len(app.assignments) == 2, "the next assignment")


@pytest.mark.parametrize("code", [IllegalGenerationError.code, UnknownMemberIdError.code])
async def test_a_lost_generation_loses_the_partitions_and_a_dynamic_member_its_id(
    member: MemberFactory, fake: FakeCoordinatorBroker, code: int
) -> None:
    membership, app = await member(["t"], assignors=("sticky",))
    await eventually(lambda: app.assignments, "an assignment")
    old_id = membership.member_id

    fake.fail_next(ApiKey.HEARTBEAT, code)
    await eventually(lambda: len(app.assignments) == 2, "the next assignment")

    assert app.revocations == [(tps("t", 0, 1, 2, 3), True)]  # lost: no commit possible
    joins = fake.bodies(ApiKey.JOIN_GROUP)
    assert [j["member_id"] for j in joins[-2:]] == ["", membership.member_id]
    assert membership.member_id != old_id
    # What it owned is no longer its own to claim.
    assert Subscription.decode(joins[-1]["protocols"][0][1]).owned == ()


async def test_a_static_member_keeps_its_member_id_when_its_generation_is_lost(
    member: MemberFactory, fake: FakeCoordinatorBroker
) -> None:
    membership, app = await member(["t"], group_instance_id="host-1")
    await eventually(lambda: app.assignments, "an assignment")
    member_id = membership.member_id

    fake.fail_next(ApiKey.HEARTBEAT, IllegalGenerationError.code)
    await eventually(lambda: len(app.assignments) == 2, "the next assignment")

    joins = fake.bodies(ApiKey.JOIN_GROUP)
    assert joins[0]["member_id"] == ""  # a static member gets its id at once
    assert joins[0]["group_instance_id"] == "host-1"
    assert joins[-1]["member_id"] == member_id == membership.member_id


async def test_sticky_members_send_what_they_owned_when_they_rejoin(
    member: MemberFactory, fake: FakeCoordinatorBroker
) -> None:
    membership, app = await member(["t"], assignors=("sticky", "range"))
    await eventually(lambda: app.assignments, "an assignment")

    membership.request_rejoin("the test asks")
    await eventually(lambda: len(app.assignments) == 2, "the next assignment")

    sticky, range_ = fake.bodies(ApiKey.JOIN_GROUP)[-1]["protocols"]
    assert set(Subscription.decode(sticky[1]).owned) == tps("t", 0, 1, 2, 3)
    assert Subscription.decode(range_[1]).owned == ()  # only sticky reads it


async def test_a_static_member_sends_the_same_metadata_after_a_restart(
    member: MemberFactory, fake: FakeCoordinatorBroker
) -> None:
    # KIP-345: unchanged metadata is what lets a restarted static member skip the rebalance.
    membership, app = await member(["t"], assignors=("sticky",), group_instance_id="host-1")
    await eventually(lambda: app.assignments, "an assignment")

    membership.request_rejoin("the test asks")
    await eventually(lambda: len(app.assignments) == 2, "the next assignment")

    first, last = fake.bodies(ApiKey.JOIN_GROUP)[0], fake.bodies(ApiKey.JOIN_GROUP)[-1]
    assert first["protocols"] == last["protocols"]


async def test_fenced_instance_id_is_fatal(
    member: MemberFactory, fake: FakeCoordinatorBroker
) -> None:
    membership, app = await member(["t"], group_instance_id="host-1")
    await eventually(lambda: app.assignments, "an assignment")

    fake.fail_next(ApiKey.HEARTBEAT, FencedInstanceIdError.code)
    await eventually(lambda: app.errors, "the fatal error")

    assert membership.state is MemberState.FAILED
    assert isinstance(app.errors[0], FencedInstanceIdError)
    assert "host-1" in str(app.errors[0])


async def test_a_refused_protocol_is_fatal(
    member: MemberFactory, fake: FakeCoordinatorBroker
) -> None:
    _, first = await member(["t"], assignors=("range",))
    await eventually(lambda: first.assignments, "the first member's assignment")

    membership, app = await member(["t"], assignors=("roundrobin",))
    await eventually(lambda: app.errors, "the fatal error")

    assert isinstance(app.errors[0], InconsistentGroupProtocolError)
    assert "JoinGroup refused" in str(app.errors[0])
    assert membership.state is MemberState.FAILED


async def test_a_moved_coordinator_is_found_again(
    member: MemberFactory, fake: FakeCoordinatorBroker
) -> None:
    membership, app = await member(["t"])
    await eventually(lambda: app.assignments, "an assignment")
    finds = fake.count(ApiKey.FIND_COORDINATOR)
    heartbeats = fake.count(ApiKey.HEARTBEAT)

    fake.fail_next(ApiKey.HEARTBEAT, NotCoordinatorError.code)
    await eventually(lambda: fake.count(ApiKey.HEARTBEAT) >= heartbeats + 3, "heartbeats again")

    assert fake.count(ApiKey.FIND_COORDINATOR) == finds + 1
    # The coordinator still knows the member: no rebalance.
    assert len(app.assignments) == 1
    assert membership.state is MemberState.STABLE


async def test_a_sync_refused_for_a_new_rebalance_joins_again(
    member: MemberFactory, fake: FakeCoordinatorBroker
) -> None:
    fake.fail_next(ApiKey.SYNC_GROUP, RebalanceInProgressError.code)
    membership, app = await member(["t"])

    await eventually(lambda: app.assignments, "an assignment")

    assert fake.count(ApiKey.SYNC_GROUP) == 2
    assert app.assignments == [tps("t", 0, 1, 2, 3)]
    assert membership.rebalances == 1


async def test_no_poll_within_max_poll_interval_leaves_and_a_later_poll_rejoins(
    member: MemberFactory, fake: FakeCoordinatorBroker
) -> None:
    membership, app = await member(["t"], max_poll_interval_ms=300)
    await eventually(lambda: app.assignments, "an assignment")
    old_id = membership.member_id

    app.polling = False
    await eventually(lambda: membership.state is MemberState.LEFT, "leaving")

    assert fake.bodies(ApiKey.LEAVE_GROUP)[0]["members"] == [[old_id, None]]
    heartbeats = fake.count(ApiKey.HEARTBEAT)
    await asyncio.sleep(0.2)
    assert fake.count(ApiKey.HEARTBEAT) == heartbeats  # out of the group: silent until polled
    joins = fake.count(ApiKey.JOIN_GROUP)
    app.polling = True
    await eventually(lambda: len(app.assignments) == 2, "an assignment after rejoining")

    error = app.errors[0]
    assert isinstance(error, MaxPollIntervalExceededError)
    assert "max_poll_interval_ms=300" in str(error)
    assert app.revocations == [(tps("t", 0, 1, 2, 3), True)]
    assert fake.count(ApiKey.JOIN_GROUP) > joins
    assert membership.member_id != old_id


async def test_a_static_member_does_not_send_leave_group(
    member: MemberFactory, fake: FakeCoordinatorBroker
) -> None:
    membership, app = await member(["t"], group_instance_id="host-1")
    await eventually(lambda: app.assignments, "an assignment")

    await app.stop()
    await membership.close()

    assert fake.count(ApiKey.LEAVE_GROUP) == 0
    assert fake.groups[GROUP].members  # still there, until its session expires


async def test_a_dynamic_member_leaves_on_close(
    member: MemberFactory, fake: FakeCoordinatorBroker
) -> None:
    membership, app = await member(["t"])
    await eventually(lambda: app.assignments, "an assignment")

    await app.stop()
    await membership.close()

    assert fake.bodies(ApiKey.LEAVE_GROUP)[0]["members"] == [[membership.member_id, None]]
    assert not fake.groups[GROUP].members


async def test_the_leader_rejoins_when_a_topic_gains_partitions(
    member: MemberFactory, fake: FakeCoordinatorBroker
) -> None:
    membership, app = await member(["t"])
    await eventually(lambda: app.assignments, "an assignment")

    membership.check_partition_counts({"t": 4, "other": 9})
    await asyncio.sleep(0.1)
    assert len(app.assignments) == 1

    fake.topics["t"] = 6
    membership.check_partition_counts({"t": 6})
    await eventually(lambda: len(app.assignments) == 2, "an assignment after rejoining")

    assert app.current == tps("t", 0, 1, 2, 3, 4, 5)


async def test_a_subscription_change_rejoins_with_the_new_topics(
    member: MemberFactory, fake: FakeCoordinatorBroker
) -> None:
    membership, app = await member(["t"])
    await eventually(lambda: app.assignments, "an assignment")

    membership.subscribe(["u"])
    await eventually(lambda: len(app.assignments) == 2, "an assignment after rejoining")

    assert app.current == tps("u", 0, 1)
    assert Subscription.decode(fake.bodies(ApiKey.JOIN_GROUP)[-1]["protocols"][0][1]).topics == (
        "u",
    )
