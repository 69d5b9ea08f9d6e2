"""Subscribing as a group: the partitions shared, callbacks inside poll, revoked records dropped."""

from __future__ import annotations

import asyncio
import re

import pytest

from client.consumer import Consumer
from client.errors import (
    FencedInstanceIdError,
    InvalidGroupIdError,
    LogServerError,
    OffsetOutOfRangeError,
)
from client.protocol import ApiKey
from client.topic_partition import TopicPartition
from tests.client.consumer.conftest import ConsumerFactory
from tests.client.consumer.fake_coordinator import FakeCoordinatorBroker
from tests.client.consumer.group_helpers import fill, poll_until, poll_until_raises


def tps(topic: str, *partitions: int) -> set[TopicPartition]:
    return {TopicPartition(topic, p) for p in partitions}


def fill_all(fake: FakeCoordinatorBroker, topic: str, count: int) -> None:
    for partition in range(fake.topics[topic]):
        fill(fake, topic, partition, count)


async def test_two_members_share_a_topic_and_each_record_goes_to_one(
    make_member: ConsumerFactory, group_fake: FakeCoordinatorBroker
) -> None:
    fill_all(group_fake, "t", 3)
    a, b = await make_member(), await make_member()
    a.subscribe(["t"])
    b.subscribe(["t"])

    polled = await poll_until(
        [a, b],
        lambda p: p.total() >= 12 and a.assignment() and b.assignment(),
        what="all 12 records",
    )

    assert a.assignment() | b.assignment() == tps("t", 0, 1, 2, 3)
    assert not a.assignment() & b.assignment()
    assert len(a.assignment()) == len(b.assignment()) == 2
    got = sorted(polled.of(0) + polled.of(1))
    # Records read before the rebalance may be read again after it (at least once).
    assert set(got) == {("t", p, o) for p in range(4) for o in range(3)}


async def test_on_revoke_runs_before_the_member_joins_again_and_on_assign_before_records(
    make_member: ConsumerFactory, group_fake: FakeCoordinatorBroker
) -> None:
    fill_all(group_fake, "t", 2)
    events: list[tuple[str, object]] = []
    a = await make_member(enable_auto_commit=False)

    def joins_of_a() -> int:
        member_id = a._group.membership.member_id  # type: ignore[union-attr]
        return sum(1 for j in group_fake.bodies(ApiKey.JOIN_GROUP) if j["member_id"] == member_id)

    async def on_revoke(partitions: set[TopicPartition]) -> None:
        events.append(("revoke", sorted(partitions)))
        events.append(("joins so far", joins_of_a()))
        await a.commit()  # the generation is still good

    def on_assign(partitions: set[TopicPartition]) -> None:
        events.append(("assign", sorted(partitions)))

    a.subscribe(["t"], on_assign=on_assign, on_revoke=on_revoke)
    first = await poll_until([a], lambda p: p.total() >= 8, what="the first 8 records")
    assert events == [("assign", sorted(tps("t", 0, 1, 2, 3)))]
    joins = joins_of_a()

    b = await make_member()
    b.subscribe(["t"])
    await poll_until([a, b], lambda p: b.assignment() and len(events) >= 4, what="a rebalance")

    assert events[1:] == [
        ("revoke", sorted(tps("t", 0, 1, 2, 3))),
        ("joins so far", joins),
        ("assign", sorted(a.assignment())),
    ]
    # on_revoke committed what poll had returned: b starts where a stopped.
    assert group_fake.groups["g"].offsets == {("t", p): (2, "") for p in range(4)}
    assert len(first.records[0]) == 8


async def test_records_of_revoked_partitions_are_never_returned_after_on_revoke(
    make_member: ConsumerFactory, group_fake: FakeCoordinatorBroker
) -> None:
    fill_all(group_fake, "t", 50)
    revoked_at: list[int] = []
    polls_after: list[set[TopicPartition]] = []
    a = await make_member(enable_auto_commit=False)
    a.subscribe(["t"], on_revoke=lambda ps: revoked_at.append(1))
    # One record per poll, so most of what was fetched is still buffered at the rebalance.
    await poll_until([a], lambda p: p.total() >= 1, what="a first record", max_records=1)
    assert any(s.buffer for s in a._fetcher.states.values())  # buffered, not returned

    b = await make_member()
    b.subscribe(["t"])
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while not b.assignment() and loop.time() < deadline:
        polled, _ = await asyncio.gather(a.poll(timeout_ms=50, max_records=1), b.poll(50))
        if revoked_at:
            polls_after.append(set(polled))
    assert b.assignment()

    for partitions in polls_after:
        assert not partitions & b.assignment(), "a returned records of a partition it gave up"


async def test_on_assign_may_seek_and_the_committed_offset_is_used_otherwise(
    make_member: ConsumerFactory, group_fake: FakeCoordinatorBroker
) -> None:
    fill_all(group_fake, "u", 10)
    group_fake.groups["g"].offsets.update({("u", 0): (7, "m"), ("u", 1): (3, "")})
    consumer = await make_member()

    consumer.subscribe(["u"], on_assign=lambda ps: consumer.seek(("u", 1), 9))
    polled = await poll_until([consumer], lambda p: p.total() >= 4, what="4 records")

    assert sorted(polled.of(0)) == [("u", 0, 7), ("u", 0, 8), ("u", 0, 9), ("u", 1, 9)]


@pytest.mark.parametrize(("reset", "first"), [("earliest", 0), ("latest", 5)])
async def test_without_a_committed_offset_auto_offset_reset_applies(
    make_member: ConsumerFactory, group_fake: FakeCoordinatorBroker, reset: str, first: int
) -> None:
    fill(group_fake, "u", 0, 5)
    consumer = await make_member(auto_offset_reset=reset)
    consumer.subscribe(["u"])
    polled = await poll_until([consumer], lambda p: consumer.assignment(), what="an assignment")
    assert await consumer.position(("u", 1)) == 0
    await consumer.position(("u", 0))
    fill(group_fake, "u", 0, 2)

    polled = await poll_until(
        [consumer], lambda p: p.total() >= 7 - first, what="records", polled=polled
    )
    assert polled.of(0) == [("u", 0, o) for o in range(first, 7)]


async def test_none_without_a_committed_offset_names_the_partitions_and_the_group(
    make_member: ConsumerFactory, group_fake: FakeCoordinatorBroker
) -> None:
    fill(group_fake, "u", 0, 5)
    group_fake.groups["g"].offsets[("u", 1)] = (0, "")
    consumer = await make_member(auto_offset_reset="none")
    consumer.subscribe(["u"])

    error = await poll_until_raises(consumer)

    assert isinstance(error, OffsetOutOfRangeError)
    message = str(error)
    assert "OFFSET_OUT_OF_RANGE" in message
    assert "u-0" in message
    assert "u-1" not in message
    assert "'g'" in message
    assert "auto_offset_reset='none'" in message
    consumer.seek(("u", 0), 3)
    polled = await poll_until([consumer], lambda p: p.total() >= 2, what="records after a seek")
    assert polled.of(0) == [("u", 0, 3), ("u", 0, 4)]


async def test_a_pattern_subscription_picks_up_a_new_topic(
    make_member: ConsumerFactory, group_fake: FakeCoordinatorBroker
) -> None:
    consumer = await make_member(metadata_max_age_ms=200)
    consumer.subscribe(pattern=re.compile(r"[tu]|orders-.*"))
    await poll_until([consumer], lambda p: consumer.assignment(), what="an assignment")
    assert consumer.subscription() == {"t", "u"}
    assert consumer.assignment() == tps("t", 0, 1, 2, 3) | tps("u", 0, 1)

    group_fake.topics["orders-eu"] = 2
    group_fake.topics["not-orders"] = 2
    fill(group_fake, "orders-eu", 1, 1)
    polled = await poll_until([consumer], lambda p: p.total() >= 1, what="the new topic's record")

    assert polled.of(0) == [("orders-eu", 1, 0)]
    assert consumer.subscription() == {"t", "u", "orders-eu"}
    assert consumer.assignment() == tps("t", 0, 1, 2, 3) | tps("u", 0, 1) | tps("orders-eu", 0, 1)


async def test_unsubscribe_revokes_and_leaves(
    make_member: ConsumerFactory, group_fake: FakeCoordinatorBroker
) -> None:
    revoked: list[set[TopicPartition]] = []
    consumer = await make_member()
    consumer.subscribe(["u"], on_revoke=revoked.append)
    await poll_until([consumer], lambda p: consumer.assignment(), what="an assignment")

    await consumer.unsubscribe()

    assert revoked == [tps("u", 0, 1)]
    assert consumer.assignment() == set()
    assert consumer.subscription() == set()
    assert group_fake.count(ApiKey.LEAVE_GROUP) == 1
    assert not group_fake.groups["g"].members
    consumer.assign([("u", 0)])  # manual assignment is allowed again


async def test_subscribe_and_assign_are_exclusive_and_need_what_they_need(
    make_member: ConsumerFactory, group_fake: FakeCoordinatorBroker
) -> None:
    consumer = await make_member()
    consumer.subscribe(["t"])
    with pytest.raises(LogServerError, match="exclusive"):
        consumer.assign([("t", 0)])
    with pytest.raises(ValueError, match="exactly one"):
        consumer.subscribe(["t"], pattern="t")
    with pytest.raises(TypeError, match="not one string"):
        consumer.subscribe("t")

    manual = await make_member(group_id="other")
    manual.assign([("t", 0)])
    with pytest.raises(LogServerError, match="exclusive"):
        manual.subscribe(["t"])

    no_group = Consumer(group_fake.address)
    await no_group.start()
    try:
        no_group.assign([("t", 0)])
        with pytest.raises(InvalidGroupIdError, match="group_id"):
            no_group.subscribe(["t"])
        with pytest.raises(InvalidGroupIdError, match="group_id"):
            await no_group.commit()
    finally:
        await no_group.close()


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"heartbeat_interval_ms": 10_000}, "lower than session_timeout_ms"),
        ({"partition_assignment_strategy": ["bogus"]}, "unknown partition assignor"),
        ({"group_instance_id": "x"}, "needs a group_id"),
        ({"group_id": ""}, "non-empty"),
        ({"max_poll_interval_ms": 0}, "max_poll_interval_ms"),
    ],
)
def test_bad_group_settings_are_refused_at_once(settings: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        Consumer("fake:9092", **settings)  # type: ignore[arg-type]


async def test_a_fatal_group_error_is_raised_by_every_poll(
    make_member: ConsumerFactory, group_fake: FakeCoordinatorBroker
) -> None:
    consumer = await make_member(group_instance_id="host-1")
    consumer.subscribe(["t"])
    await poll_until([consumer], lambda p: consumer.assignment(), what="an assignment")

    group_fake.fail_next(ApiKey.HEARTBEAT, FencedInstanceIdError.code)
    error = await poll_until_raises(consumer)

    assert isinstance(error, FencedInstanceIdError)
    assert "host-1" in str(error)
    with pytest.raises(FencedInstanceIdError):
        await consumer.poll(timeout_ms=50)


async def test_pause_and_resume_work_on_assigned_partitions(
    make_member: ConsumerFactory, group_fake: FakeCoordinatorBroker
) -> None:
    consumer = await make_member()
    consumer.subscribe(["u"])
    await poll_until([consumer], lambda p: consumer.assignment(), what="an assignment")
    consumer.pause(("u", 0))
    fill(group_fake, "u", 0, 2)
    fill(group_fake, "u", 1, 2)

    polled = await poll_until([consumer], lambda p: p.total() >= 2, what="u-1's records")
    await asyncio.sleep(0.2)
    polled = await poll_until([consumer], lambda p: True, what="", polled=polled)
    assert {p for _, p, _ in polled.of(0)} == {1}

    consumer.resume(("u", 0))
    await poll_until([consumer], lambda p: p.total() >= 4, what="u-0's records", polled=polled)
