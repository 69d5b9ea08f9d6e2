"""Commits: sync, async, automatic, on close; committed(), lag(); the errors a commit maps to."""

from __future__ import annotations

import asyncio

import pytest

from client.consumer import CommitFailedError, MaxPollIntervalExceededError
from client.errors import (
    IllegalGenerationError,
    NotCoordinatorError,
    OffsetMetadataTooLargeError,
    RebalanceInProgressError,
)
from client.protocol import ApiKey
from client.topic_partition import OffsetAndMetadata, TopicPartition
from tests.client.consumer.conftest import ConsumerFactory
from tests.client.consumer.fake_coordinator import FakeCoordinatorBroker
from tests.client.consumer.group_helpers import fill, poll_until
from tests.client.consumer.support import close_consumer

U0, U1 = TopicPartition("u", 0), TopicPartition("u", 1)


async def joined(make_member: ConsumerFactory, **settings: object):  # type: ignore[no-untyped-def]
    consumer = await make_member(**settings)
    consumer.subscribe(["u"])
    await poll_until([consumer], lambda p: consumer.assignment(), what="an assignment")
    return consumer


async def test_commit_without_offsets_commits_what_poll_returned(
    make_member: ConsumerFactory, group_fake: FakeCoordinatorBroker
) -> None:
    consumer = await joined(make_member, enable_auto_commit=False)
    fill(group_fake, "u", 0, 10)
    await poll_until([consumer], lambda p: p.total() >= 3, what="3 records", max_records=3)

    await consumer.commit()

    assert group_fake.groups["g"].offsets == {("u", 0): (3, ""), ("u", 1): (0, "")}
    assert await consumer.committed(U0) == 3
    assert await consumer.committed(U0, metadata=True) == OffsetAndMetadata(3, "")
    body = group_fake.bodies(ApiKey.OFFSET_COMMIT)[-1]
    membership = consumer._group.membership  # type: ignore[union-attr]
    assert (body["generation_id"], body["member_id"]) == (
        membership.generation_id,
        membership.member_id,
    )


async def test_commit_with_explicit_offsets_and_metadata(
    make_member: ConsumerFactory, group_fake: FakeCoordinatorBroker
) -> None:
    consumer = await joined(make_member, enable_auto_commit=False)

    await consumer.commit({U0: 5, ("u", 1): OffsetAndMetadata(2, "batch 7")})

    assert await consumer.committed(U1, metadata=True) == OffsetAndMetadata(2, "batch 7")
    assert await consumer.committed(("u", 0)) == 5
    with pytest.raises(ValueError, match=">= 0"):
        await consumer.commit({U0: -1})
    with pytest.raises(TypeError, match="int or OffsetAndMetadata"):
        await consumer.commit({U0: "5"})  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="4096"):
        await consumer.commit({U0: OffsetAndMetadata(1, "x" * 5000)})


async def test_nothing_committed_reads_as_none(
    make_member: ConsumerFactory, group_fake: FakeCoordinatorBroker
) -> None:
    consumer = await joined(make_member)

    assert await consumer.committed(U1) is None
    assert await consumer.committed(U1, metadata=True) is None


async def test_commit_async_calls_back_plain_and_async_callbacks(
    make_member: ConsumerFactory, group_fake: FakeCoordinatorBroker
) -> None:
    consumer = await joined(make_member, enable_auto_commit=False)
    seen: list[tuple[str, dict[TopicPartition, OffsetAndMetadata], object]] = []

    async def later(offsets: dict[TopicPartition, OffsetAndMetadata], error: object) -> None:
        await asyncio.sleep(0)
        seen.append(("async", offsets, error))

    await consumer.commit_async({U0: 4}, lambda o, e: seen.append(("plain", o, e)))
    await consumer.commit_async({U1: 6}, later)
    group_fake.fail_next(ApiKey.OFFSET_COMMIT, IllegalGenerationError.code)
    await asyncio.wait_for(consumer.commit_async({U0: 9}, later), 5)

    assert seen[:2] == [
        ("plain", {U0: OffsetAndMetadata(4, "")}, None),
        ("async", {U1: OffsetAndMetadata(6, "")}, None),
    ]
    assert isinstance(seen[2][2], CommitFailedError)
    assert group_fake.groups["g"].offsets == {("u", 0): (4, ""), ("u", 1): (6, "")}


async def test_a_stale_generation_is_a_commit_failed_error_that_says_what_to_do(
    make_member: ConsumerFactory, group_fake: FakeCoordinatorBroker
) -> None:
    consumer = await joined(make_member, enable_auto_commit=False)
    member_id = consumer._group.membership.member_id  # type: ignore[union-attr]
    group_fake.expire("g", member_id)  # the coordinator gave up on it; it does not know yet

    with pytest.raises(CommitFailedError) as raised:
        await consumer.commit({U0: 1})

    message = str(raised.value)
    assert "u-0" in message
    assert "max_poll_interval_ms" in message
    assert "rebalanced" in message
    assert raised.value.__cause__ is not None


async def test_rebalance_in_progress_and_a_moved_coordinator(
    make_member: ConsumerFactory, group_fake: FakeCoordinatorBroker
) -> None:
    consumer = await joined(make_member, enable_auto_commit=False)

    group_fake.fail_next(ApiKey.OFFSET_COMMIT, RebalanceInProgressError.code)
    with pytest.raises(RebalanceInProgressError, match=r"poll\(\)"):
        await consumer.commit({U0: 1})

    finds = group_fake.count(ApiKey.FIND_COORDINATOR)
    group_fake.fail_next(ApiKey.OFFSET_COMMIT, NotCoordinatorError.code)
    await consumer.commit({U0: 2})
    assert group_fake.count(ApiKey.FIND_COORDINATOR) > finds  # found again (heartbeats too)
    assert await consumer.committed(U0) == 2

    group_fake.fail_next(ApiKey.OFFSET_COMMIT, OffsetMetadataTooLargeError.code)
    with pytest.raises(OffsetMetadataTooLargeError, match="u-0"):
        await consumer.commit({U0: 3})


async def test_a_member_cannot_commit_while_it_joins(
    make_member: ConsumerFactory, group_fake: FakeCoordinatorBroker
) -> None:
    group_fake.hold_syncs()
    consumer = await make_member()
    consumer.subscribe(["u"])
    await asyncio.sleep(0.2)  # joined; its SyncGroup waits

    with pytest.raises(RebalanceInProgressError, match="rebalancing"):
        await consumer.commit({U0: 1})
    group_fake.release_syncs()


async def test_auto_commit_commits_from_poll_only_what_poll_returned(
    make_member: ConsumerFactory, group_fake: FakeCoordinatorBroker
) -> None:
    consumer = await joined(make_member, auto_commit_interval_ms=100)
    fill(group_fake, "u", 0, 20)
    polled = await poll_until([consumer], lambda p: p.total() >= 4, what="4", max_records=2)
    await asyncio.sleep(0.15)

    await consumer.poll(timeout_ms=0, max_records=1)  # auto-commit starts from here
    await asyncio.sleep(0.05)

    assert group_fake.groups["g"].offsets[("u", 0)] == (len(polled.records[0]), "")


async def test_close_commits_and_leaves_and_a_static_member_only_commits(
    make_member: ConsumerFactory, group_fake: FakeCoordinatorBroker
) -> None:
    consumer = await joined(make_member)
    fill(group_fake, "u", 0, 5)
    await poll_until([consumer], lambda p: p.total() >= 5, what="5 records")

    await close_consumer(consumer)

    assert group_fake.groups["g"].offsets[("u", 0)] == (5, "")
    assert group_fake.count(ApiKey.LEAVE_GROUP) == 1

    static = await joined(make_member, group_instance_id="host-1")
    fill(group_fake, "u", 1, 3)
    await poll_until([static], lambda p: p.total() >= 3, what="3 records")
    await close_consumer(static)

    assert group_fake.groups["g"].offsets[("u", 1)] == (3, "")
    assert group_fake.count(ApiKey.LEAVE_GROUP) == 1
    assert group_fake.groups["g"].members  # the static member waits for its session to expire


async def test_no_auto_commit_means_no_commit_on_close(
    make_member: ConsumerFactory, group_fake: FakeCoordinatorBroker
) -> None:
    consumer = await joined(make_member, enable_auto_commit=False)
    fill(group_fake, "u", 0, 5)
    await poll_until([consumer], lambda p: p.total() >= 5, what="5 records")

    await close_consumer(consumer)

    assert group_fake.count(ApiKey.OFFSET_COMMIT) == 0


async def test_manual_assignment_with_a_group_starts_at_committed_offsets_and_commits_simply(
    make_member: ConsumerFactory, group_fake: FakeCoordinatorBroker
) -> None:
    fill(group_fake, "u", 0, 6)
    group_fake.groups["g"].offsets[("u", 0)] = (4, "")
    consumer = await make_member(enable_auto_commit=False)
    consumer.assign([U0])

    assert await consumer.position(U0) == 4
    polled = await poll_until([consumer], lambda p: p.total() >= 2, what="2 records")
    assert polled.of(0) == [("u", 0, 4), ("u", 0, 5)]
    await consumer.commit()

    body = group_fake.bodies(ApiKey.OFFSET_COMMIT)[-1]
    assert (body["generation_id"], body["member_id"]) == (-1, "")
    assert group_fake.groups["g"].offsets[("u", 0)] == (6, "")


async def test_lag_is_the_high_watermark_minus_the_position(
    make_member: ConsumerFactory, group_fake: FakeCoordinatorBroker
) -> None:
    fill(group_fake, "u", 0, 10)
    group_fake.groups["g"].offsets[("u", 0)] = (7, "")
    consumer = await make_member()
    consumer.assign([U0])

    assert await consumer.lag(U0) == 3  # nothing fetched yet: ListOffsets
    await poll_until([consumer], lambda p: p.total() >= 1, what="a record", max_records=1)
    assert consumer._fetcher.states[U0].high_watermark == 10
    assert await consumer.lag(U0) == 2


async def test_a_member_that_stops_polling_is_told_once_then_rejoins(
    make_member: ConsumerFactory, group_fake: FakeCoordinatorBroker
) -> None:
    fill(group_fake, "u", 0, 3)
    events: list[tuple[str, set[TopicPartition]]] = []
    consumer = await make_member(max_poll_interval_ms=300, auto_commit_interval_ms=1)
    consumer.subscribe(
        ["u"],
        on_assign=lambda ps: events.append(("assign", ps)),
        on_revoke=lambda ps: events.append(("revoke", ps)),
        on_lost=lambda ps: events.append(("lost", ps)),
    )
    await poll_until([consumer], lambda p: p.total() >= 3, what="3 records")
    commits = group_fake.count(ApiKey.OFFSET_COMMIT)

    await asyncio.sleep(0.6)  # "processing" for longer than max_poll_interval_ms

    assert group_fake.count(ApiKey.LEAVE_GROUP) == 1
    with pytest.raises(MaxPollIntervalExceededError, match="max_poll_interval_ms=300"):
        await consumer.poll(timeout_ms=50)
    assert events[-1] == ("lost", {U0, U1})
    assert consumer.assignment() == set()
    assert group_fake.count(ApiKey.OFFSET_COMMIT) <= commits + 1  # nothing after it left
    await poll_until([consumer], lambda p: consumer.assignment(), what="an assignment again")
    assert events[-1] == ("assign", {U0, U1})
