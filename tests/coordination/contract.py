"""The ``Coordinator`` contract: test bodies every implementation must pass.

A test module includes it by subclassing ``CoordinatorContract`` (pytest
collects the inherited tests) and defining the fixture ``open_coordinator``:
``await open_coordinator(register=True, start=True)`` returns a coordinator
for broker 1 (registered unless ``register=False``, not started if
``start=False``); every one it opens on the same test's store (a data dir, a
ZooKeeper chroot) sees the same topics, and all are closed at teardown.

Committed offsets are here too; what differs by store (ZooKeeper's fence and
transaction, the standalone files, corrupt znodes and files) is in each
store's own test module.

Listener notifications may arrive after the change returned (a ZooKeeper
watch fires later), so the tests wait for them with ``eventually``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import pytest

from client.errors import (
    InvalidConfigurationError,
    InvalidGroupIdError,
    InvalidPartitionsError,
    InvalidReplicationFactorError,
    InvalidRequestError,
    InvalidTopicError,
    TopicAlreadyExistsError,
    UnknownTopicOrPartitionError,
)
from client.topic_partition import TopicPartition
from coordination import (
    BrokerInfo,
    CommittedOffset,
    Coordinator,
    OffsetFence,
    PartitionState,
    PartitionStateConflictError,
    SessionState,
    TopicAssignment,
)

__all__ = ["BROKER", "CoordinatorContract", "eventually", "quietly"]

BROKER = BrokerInfo(broker_id=1, host="localhost", port=9092)


async def eventually(
    condition: Callable[[], object], *, timeout_s: float = 5.0, what: str = "condition"
) -> None:
    """Wait until ``condition()`` is true; fail naming ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not true within {timeout_s} s")
        await asyncio.sleep(0.01)


async def quietly(seconds: float = 0.3) -> None:
    """Give late notifications time to arrive before asserting that none did."""
    await asyncio.sleep(seconds)


# -- committed consumer-group offsets ------------------------------------------------------

GROUP_IDS = [
    "orders-app",
    "a/b",
    "/",
    ".",
    "..",
    "../../etc",
    "%2F",
    "grüße 🚀 消费者",
    " spaced  out ",
    "x" * 255,
    "é" * 255,
]


def at(offset: int, metadata: str = "", timestamp: int = 1_700_000_000_000) -> CommittedOffset:
    return CommittedOffset(offset, metadata, timestamp)


class OffsetsContract:
    """Committed offsets, whichever store keeps them (``CoordinatorContract`` includes it)."""

    async def test_a_commit_is_fetched_back_whole_or_by_partition(self, coord):
        offsets = {("orders", 0): at(5), ("orders", 2): at(7, "m"), ("payments", 0): at(0)}

        await coord.commit_offsets("app", offsets)

        assert await coord.fetch_offsets("app") == offsets
        assert await coord.fetch_offsets("app", [("orders", 2), ("orders", 1), ("ghost", 0)]) == {
            ("orders", 2): at(7, "m")
        }
        assert await coord.fetch_offsets("app", []) == {}
        assert await coord.fetch_offsets("other") == {}
        assert await coord.fetch_offsets("other", [("orders", 0)]) == {}

    async def test_partitions_may_be_named_by_topic_partition(self, coord):
        await coord.commit_offsets("app", {TopicPartition("orders", 1): at(3)})

        fetched = await coord.fetch_offsets("app", [TopicPartition("orders", 1)])

        assert fetched == {("orders", 1): at(3)}
        assert type(next(iter(fetched))) is tuple

    async def test_fetch_leaves_out_partitions_that_cannot_have_an_offset(self, coord):
        await coord.commit_offsets("app", {("orders", 0): at(1)})

        asked = [("orders", 0), ("a/b", 0), ("..", 0), ("orders", -1), ("orders", True), "x"]

        assert await coord.fetch_offsets("app", asked) == {("orders", 0): at(1)}

    async def test_a_commit_replaces_the_partitions_it_names_and_keeps_the_others(self, coord):
        await coord.commit_offsets("app", {("orders", 0): at(5, "first"), ("orders", 1): at(6)})

        await coord.commit_offsets("app", {("orders", 0): at(9, "second"), ("new", 3): at(1)})
        await coord.commit_offsets("app", {("orders", 0): at(2)})  # backwards is allowed

        assert await coord.fetch_offsets("app") == {
            ("orders", 0): at(2),
            ("orders", 1): at(6),
            ("new", 3): at(1),
        }

    @pytest.mark.parametrize(
        "metadata",
        ["", "plain", 'quotes " and \\ backslashes', "lines\nand\ttabs\u0000nul", "ü🚀" * 1000],
    )
    async def test_metadata_and_timestamp_come_back_as_committed(self, coord, metadata):
        offset = CommittedOffset(2**62, metadata, 1_712_345_678_901)

        await coord.commit_offsets("app", {("orders", 0): offset})

        assert await coord.fetch_offsets("app") == {("orders", 0): offset}

    async def test_the_defaults_are_no_metadata_and_no_timestamp(self, coord):
        await coord.commit_offsets("app", {("orders", 0): CommittedOffset(4)})

        assert await coord.fetch_offsets("app") == {("orders", 0): CommittedOffset(4, "", 0)}

    async def test_any_legal_group_id_is_a_group_of_its_own(self, coord):
        for index, group in enumerate(GROUP_IDS):
            await coord.commit_offsets(group, {("orders", index): at(index)})

        for index, group in enumerate(GROUP_IDS):
            assert await coord.fetch_offsets(group) == {("orders", index): at(index)}, group
        assert await coord.groups() == sorted(GROUP_IDS)

    async def test_groups_lists_the_groups_with_offsets_sorted(self, coord):
        assert await coord.groups() == []
        await coord.commit_offsets("b", {("orders", 0): at(1)})
        await coord.commit_offsets("a", {("orders", 0): at(1), ("payments", 1): at(2)})
        await coord.commit_offsets("empty", {})

        assert await coord.groups() == ["a", "b"]

    async def test_delete_forgets_the_group_and_says_whether_there_was_one(self, coord):
        await coord.commit_offsets("app", {("orders", 0): at(1), ("payments", 4): at(2)})
        await coord.commit_offsets("keep", {("orders", 0): at(3)})

        assert await coord.delete_group_offsets("app") is True
        assert await coord.delete_group_offsets("app") is False
        assert await coord.delete_group_offsets("never") is False

        assert await coord.fetch_offsets("app") == {}
        assert await coord.groups() == ["keep"]
        assert await coord.fetch_offsets("keep") == {("orders", 0): at(3)}

    async def test_a_deleted_group_commits_again_from_scratch(self, coord):
        await coord.commit_offsets("app", {("orders", 0): at(1), ("orders", 1): at(2)})
        await coord.delete_group_offsets("app")

        await coord.commit_offsets("app", {("orders", 1): at(9)})

        assert await coord.fetch_offsets("app") == {("orders", 1): at(9)}

    async def test_offsets_survive_a_new_instance(self, open_coordinator):
        first = await open_coordinator()
        await first.commit_offsets("a/b", {("orders", 0): at(5, "m"), ("orders", 1): at(6)})
        await first.commit_offsets("x" * 255, {("orders", 0): at(7)})
        await first.commit_offsets("gone", {("orders", 0): at(8)})
        await first.delete_group_offsets("gone")
        await first.close()

        second = await open_coordinator(register=False)

        assert await second.groups() == sorted(["a/b", "x" * 255])
        assert await second.fetch_offsets("a/b") == {
            ("orders", 0): at(5, "m"),
            ("orders", 1): at(6),
        }
        assert await second.fetch_offsets("x" * 255) == {("orders", 0): at(7)}
        assert await second.fetch_offsets("gone") == {}

    async def test_concurrent_commits_all_land(self, coord):
        commits = [
            coord.commit_offsets(group, {("orders", p): at(p), ("payments", p): at(p + 100)})
            for group in ("one", "two")
            for p in range(10)
        ]

        await asyncio.gather(*commits)

        for group in ("one", "two"):
            offsets = await coord.fetch_offsets(group)
            assert len(offsets) == 20
            assert offsets[("payments", 9)] == at(109)

    async def test_a_commit_of_many_partitions_is_fetched_back(self, coord):
        offsets = {
            (f"topic-{t}", p): at(t * 1000 + p, f"m{p}") for t in range(4) for p in range(50)
        }

        await coord.commit_offsets("big", offsets)
        await coord.commit_offsets("big", offsets)

        assert await coord.fetch_offsets("big") == offsets

    # -- bad input ------------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("group", "match"),
        [
            ("", "empty"),
            ("x" * 256, "at most 255 characters"),
            ("x" * 10_000, "at most 255 characters"),
            ("a\nb", "control character"),
            ("tab\there", "control character"),
            ("\x7f", "control character"),
            ("\ud800", "surrogate"),
            (7, "must be a string"),
        ],
    )
    async def test_an_illegal_group_id_is_refused_by_every_call(self, coord, group, match):
        with pytest.raises(InvalidGroupIdError, match=match):
            await coord.commit_offsets(group, {("orders", 0): at(1)})
        with pytest.raises(InvalidGroupIdError, match=match):
            await coord.fetch_offsets(group)
        with pytest.raises(InvalidGroupIdError, match=match):
            await coord.delete_group_offsets(group)

        assert await coord.groups() == []

    @pytest.mark.parametrize(
        ("offsets", "error", "match"),
        [
            ({("a/b", 0): at(1)}, InvalidTopicError, "'a/b'"),
            ({("orders", -1): at(1)}, InvalidRequestError, "partition -1"),
            ({("orders", "0"): at(1)}, InvalidRequestError, "partition '0'"),
            ({("orders", 0): at(-5)}, InvalidRequestError, "offset -5"),
            ({("orders", 0): CommittedOffset(1.5)}, InvalidRequestError, "offset 1.5"),
            ({("orders", 0): CommittedOffset(1, None)}, InvalidRequestError, "metadata None"),
            ({("orders", 0): CommittedOffset(1, "", -1)}, InvalidRequestError, "commit_timestamp"),
            ({("orders", 0): 5}, InvalidRequestError, "not a CommittedOffset"),
            ({"orders": at(1)}, InvalidRequestError, "not a \\(topic, partition\\)"),
            ([(("orders", 0), at(1))], InvalidRequestError, "must be a mapping"),
        ],
    )
    async def test_a_commit_with_one_bad_partition_stores_nothing(
        self, coord, offsets, error, match
    ):
        await coord.commit_offsets("app", {("orders", 0): at(1)})
        if isinstance(offsets, dict):
            offsets = {("orders", 0): at(2), ("orders", 1): at(2), **offsets}

        with pytest.raises(error, match=match):
            await coord.commit_offsets("app", offsets)

        assert await coord.fetch_offsets("app") == {("orders", 0): at(1)}

    @pytest.mark.parametrize(
        "fence", [("orders", 0, 1), OffsetFence("orders", 0, "1"), OffsetFence("orders", 0, -1)]
    )
    async def test_a_fence_that_is_not_one_is_refused(self, coord, fence):
        with pytest.raises(InvalidRequestError, match="not an OffsetFence"):
            await coord.commit_offsets("app", {("orders", 0): at(1)}, fence=fence)

        assert await coord.groups() == []

    async def test_offsets_calls_before_start_are_refused(self, open_coordinator):
        coord = await open_coordinator(start=False)

        with pytest.raises(RuntimeError, match="not started"):
            await coord.commit_offsets("app", {("orders", 0): at(1)})
        with pytest.raises(RuntimeError, match="not started"):
            await coord.groups()


class CoordinatorContract(OffsetsContract):
    """What the broker may rely on, whichever coordinator it runs on."""

    async def test_it_is_a_coordinator(self, coord):
        assert isinstance(coord, Coordinator)
        assert coord.mode in ("standalone", "zookeeper")

    async def test_the_registered_broker_is_live(self, open_coordinator):
        coord = await open_coordinator(register=False)
        assert await coord.live_brokers() == []

        await coord.register_broker(BROKER)

        assert await coord.live_brokers() == [BROKER]

    async def test_registering_again_updates_the_endpoint_but_a_second_id_is_refused(self, coord):
        moved = BrokerInfo(1, "10.0.0.5", 9093, rack="r1")

        await coord.register_broker(moved)
        with pytest.raises(ValueError, match="cannot register broker 2"):
            await coord.register_broker(BrokerInfo(2, "localhost", 9094))

        assert await coord.live_brokers() == [moved]

    async def test_calls_before_start_or_after_close_are_refused(self, open_coordinator):
        coord = await open_coordinator(start=False)
        with pytest.raises(RuntimeError, match="not started"):
            await coord.topics()

        await coord.start()
        with pytest.raises(RuntimeError, match="twice"):
            await coord.start()
        await coord.close()
        await coord.close()  # idempotent

        with pytest.raises(RuntimeError):
            await coord.create_topic("orders", 1, 1)

    # -- create, describe, delete -------------------------------------------------------

    async def test_create_assigns_the_broker_and_sets_the_initial_state(self, coord):
        created = await coord.create_topic("orders", 3, 1, {"retention.ms": "1000"})

        assert created == TopicAssignment(
            "orders", {0: (1,), 1: (1,), 2: (1,)}, {"retention.ms": "1000"}
        )
        for p in range(3):
            assert await coord.partition_state("orders", p) == PartitionState(1, 0, (1,))
        assert await coord.partition_state("orders", 3) is None
        assert await coord.partition_state("missing", 0) is None

    async def test_a_broker_with_a_rack_gets_the_same_assignment(self, coord):
        await coord.register_broker(BrokerInfo(1, "localhost", 9092, rack="r1"))

        created = await coord.create_topic("orders", 2, 1)

        assert created.replicas == {0: (1,), 1: (1,)}

    async def test_topics_lists_every_topic_by_name_and_topic_describes_one(self, coord):
        await coord.create_topic("b", 1, 1)
        await coord.create_topic("a", 2, 1, {"cleanup.policy": "delete"})

        topics = await coord.topics()

        assert list(topics) == ["a", "b"]
        assert topics["a"] == await coord.topic("a")
        assert topics["a"].config == {"cleanup.policy": "delete"}
        assert await coord.topic("c") is None
        assert await coord.topic("a/b") is None

    async def test_what_the_caller_gets_is_a_copy(self, coord):
        created = await coord.create_topic("orders", 1, 1, {"retention.ms": "1"})
        created.config["retention.ms"] = "2"
        created.replicas[5] = (9,)

        assert await coord.topic("orders") == TopicAssignment(
            "orders", {0: (1,)}, {"retention.ms": "1"}
        )

    async def test_delete_removes_the_topic_and_its_state(self, coord):
        await coord.create_topic("orders", 2, 1)
        await coord.create_topic("keep", 1, 1)

        await coord.delete_topic("orders")

        assert await coord.topic("orders") is None
        assert await coord.partition_state("orders", 0) is None
        assert list(await coord.topics()) == ["keep"]

    async def test_a_deleted_topic_can_be_created_again(self, coord):
        await coord.create_topic("orders", 2, 1, {"retention.ms": "1"})
        await coord.delete_topic("orders")

        again = await coord.create_topic("orders", 1, 1)

        assert again == TopicAssignment("orders", {0: (1,)}, {})
        assert await coord.topic("orders") == again

    async def test_deleting_a_missing_topic_is_refused_naming_it(self, coord):
        with pytest.raises(UnknownTopicOrPartitionError, match="'ghost'"):
            await coord.delete_topic("ghost")

    # -- bad input ----------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("args", "error", "match"),
        [
            (("a/b", 1, 1), InvalidTopicError, "'a/b'"),
            (("..", 1, 1), InvalidTopicError, r"'\.\.'"),
            (("x" * 250, 1, 1), InvalidTopicError, "250 characters"),
            ((7, 1, 1), InvalidTopicError, "int"),
            (("orders", 0, 1), InvalidPartitionsError, "at least 1, not 0"),
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
    async def test_bad_input_is_refused_and_nothing_is_stored(self, coord, args, error, match):
        with pytest.raises(error, match=match):
            await coord.create_topic(*args)

        assert await coord.topics() == {}

    async def test_replication_is_refused_before_any_broker_registered(self, open_coordinator):
        coord = await open_coordinator(register=False)

        with pytest.raises(InvalidReplicationFactorError, match="1 is larger than the 0 available"):
            await coord.create_topic("orders", 1, 1)

    async def test_an_existing_topic_is_refused_and_left_as_it_was(self, coord):
        await coord.create_topic("orders", 2, 1, {"retention.ms": "1"})

        with pytest.raises(TopicAlreadyExistsError, match="'orders'"):
            await coord.create_topic("orders", 5, 1)

        assert (await coord.topic("orders")).partition_count == 2

    # -- config overrides ---------------------------------------------------------------

    async def test_alter_sets_and_deletes_overrides_and_returns_them(self, coord):
        await coord.create_topic("orders", 1, 1, {"retention.ms": "1", "segment.bytes": "4096"})

        new = await coord.alter_topic_config(
            "orders",
            {"retention.ms": "2", "cleanup.policy": "delete"},
            delete=["segment.bytes", "x"],
        )

        assert new == {"retention.ms": "2", "cleanup.policy": "delete"}
        assert (await coord.topic("orders")).config == new

    async def test_alter_stores_values_without_judging_them(self, coord):
        await coord.create_topic("orders", 1, 1)

        assert await coord.alter_topic_config("orders", {"no.such.key": "banana"}) == {
            "no.such.key": "banana"
        }

    async def test_alter_refuses_an_unknown_topic_and_a_key_both_set_and_deleted(self, coord):
        await coord.create_topic("orders", 1, 1, {"retention.ms": "1"})

        with pytest.raises(UnknownTopicOrPartitionError, match="'ghost'"):
            await coord.alter_topic_config("ghost", {"retention.ms": "2"})
        with pytest.raises(InvalidRequestError, match=r"retention\.ms"):
            await coord.alter_topic_config("orders", {"retention.ms": "2"}, delete=["retention.ms"])
        with pytest.raises(InvalidConfigurationError):
            await coord.alter_topic_config("orders", {"retention.ms": None})

        assert (await coord.topic("orders")).config == {"retention.ms": "1"}

    # -- listeners ----------------------------------------------------------------------

    async def test_listeners_hear_each_successful_change_once(self, coord):
        heard: list[str] = []
        coord.add_topic_listener(heard.append)

        await coord.create_topic("orders", 1, 1)
        await eventually(lambda: heard == ["orders"], what="heard the create")
        await coord.alter_topic_config("orders", {"retention.ms": "5"})
        await eventually(lambda: len(heard) == 2, what="heard the alter")
        await coord.alter_topic_config("orders", {"retention.ms": "5"})  # no change
        await coord.delete_topic("orders")
        await eventually(lambda: len(heard) == 3, what="heard the delete")
        refused = (InvalidTopicError, InvalidReplicationFactorError, UnknownTopicOrPartitionError)
        for failing in (
            coord.create_topic("bad/name", 1, 1),
            coord.create_topic("other", 1, 3),
            coord.delete_topic("orders"),
            coord.alter_topic_config("orders", {}),
        ):
            with pytest.raises(refused):
                await failing
        await quietly()

        assert heard == ["orders", "orders", "orders"]

    async def test_a_failing_listener_is_logged_and_does_not_undo_the_change(self, coord, caplog):
        heard: list[str] = []

        def broken(topic: str) -> None:
            raise RuntimeError("listener bug")

        coord.add_topic_listener(broken)
        coord.add_topic_listener(heard.append)

        with caplog.at_level(logging.ERROR, logger="coordination"):
            await coord.create_topic("orders", 1, 1)
            await eventually(lambda: heard == ["orders"], what="the second listener heard")

        assert await coord.topic("orders") is not None
        assert "listener bug" in caplog.text

    # -- durability and concurrency -----------------------------------------------------

    async def test_state_survives_a_new_instance_and_registration_does_not(self, open_coordinator):
        first = await open_coordinator()
        await first.create_topic("orders", 3, 1, {"retention.ms": "1000"})
        await first.create_topic("gone", 1, 1)
        await first.create_topic("x" * 249, 1, 1)
        await first.alter_topic_config("orders", {"segment.bytes": "4096"}, delete=["retention.ms"])
        await first.delete_topic("gone")
        before = await first.topics()
        await first.close()

        second = await open_coordinator(register=False)

        assert await second.topics() == before
        assert await second.topic("orders") == TopicAssignment(
            "orders", {0: (1,), 1: (1,), 2: (1,)}, {"segment.bytes": "4096"}
        )
        assert await second.partition_state("orders", 2) == PartitionState(1, 0, (1,))
        assert await second.live_brokers() == []  # ephemeral: it went with the first

    async def test_concurrent_creates_of_one_name_yield_one_topic(self, coord):
        names = [f"t{i}" for i in range(10)] + ["same"] * 5

        results = await asyncio.gather(
            *(coord.create_topic(name, 2, 1) for name in names), return_exceptions=True
        )

        assert sum(isinstance(r, TopicAlreadyExistsError) for r in results) == 4
        assert sum(isinstance(r, TopicAssignment) for r in results) == 11
        assert len(await coord.topics()) == 11

    # -- partition state: versions, conditional updates, listeners ----------------------

    async def test_a_new_partition_state_is_at_version_zero(self, coord):
        await coord.create_topic("orders", 2, 1)

        found = await coord.partition_state_with_version("orders", 1)

        state, version = found
        assert (state, version) == (PartitionState(1, 0, (1,)), 0)
        assert found.state == state
        assert found.version == version
        assert await coord.partition_state_with_version("orders", 2) is None
        assert await coord.partition_state_with_version("missing", 0) is None

    async def test_an_update_is_conditional_on_the_version_read(self, coord):
        await coord.create_topic("orders", 1, 1)
        _, version = await coord.partition_state_with_version("orders", 0)
        moved = PartitionState(1, 1, (1,))

        new_version = await coord.update_partition_state("orders", 0, moved, version)

        assert new_version == version + 1
        assert await coord.partition_state_with_version("orders", 0) == (moved, new_version)
        assert await coord.partition_state("orders", 0) == moved
        with pytest.raises(PartitionStateConflictError, match="expected version 0, found 1") as e:
            await coord.update_partition_state("orders", 0, PartitionState(1, 2, (1,)), version)
        assert (e.value.expected_version, e.value.actual_version) == (0, 1)
        assert e.value.retriable
        assert await coord.partition_state("orders", 0) == moved

    async def test_an_offline_state_keeps_its_isr(self, coord):
        await coord.create_topic("orders", 1, 1)

        await coord.update_partition_state("orders", 0, PartitionState(-1, 1, (1,)), 0)

        assert await coord.partition_state("orders", 0) == PartitionState(-1, 1, (1,))

    @pytest.mark.parametrize(
        ("state", "match"),
        [
            (PartitionState(2, 0, (1,)), "leader 2 is not in the isr"),
            (PartitionState(-2, 0, ()), "leader -2 is not a broker id"),
            (PartitionState(1, -1, (1,)), "leader epoch -1"),
            (PartitionState(1, 0, (1, 1)), "distinct broker ids"),
        ],
    )
    async def test_an_update_refuses_a_malformed_state(self, coord, state, match):
        await coord.create_topic("orders", 1, 1)

        with pytest.raises(InvalidRequestError, match=match):
            await coord.update_partition_state("orders", 0, state, 0)

        assert await coord.partition_state_with_version("orders", 0) == (
            PartitionState(1, 0, (1,)),
            0,
        )

    async def test_an_update_of_a_missing_partition_is_refused(self, coord):
        await coord.create_topic("orders", 1, 1)

        with pytest.raises(UnknownTopicOrPartitionError, match="orders-5"):
            await coord.update_partition_state("orders", 5, PartitionState(1, 0, (1,)), 0)
        with pytest.raises(UnknownTopicOrPartitionError, match="ghost-0"):
            await coord.update_partition_state("ghost", 0, PartitionState(1, 0, (1,)), 0)

    async def test_an_updated_state_survives_a_new_instance(self, open_coordinator):
        first = await open_coordinator()
        await first.create_topic("orders", 2, 1)
        await first.update_partition_state("orders", 1, PartitionState(-1, 3, (1,)), 0)
        await first.close()

        second = await open_coordinator(register=False)

        assert await second.partition_state("orders", 1) == PartitionState(-1, 3, (1,))
        assert await second.partition_state("orders", 0) == PartitionState(1, 0, (1,))

    async def test_partition_listeners_hear_new_partitions_and_updates(self, coord):
        heard: list[tuple[str, int]] = []
        coord.add_partition_listener(lambda t, p: heard.append((t, p)))

        await coord.create_topic("orders", 2, 1)
        await eventually(lambda: sorted(heard) == [("orders", 0), ("orders", 1)], what="created")
        await coord.update_partition_state("orders", 1, PartitionState(1, 1, (1,)), 0)
        await eventually(lambda: len(heard) == 3, what="heard the update")
        with pytest.raises(PartitionStateConflictError):
            await coord.update_partition_state("orders", 1, PartitionState(1, 2, (1,)), 0)
        await coord.alter_topic_config("orders", {"retention.ms": "5"})
        await quietly()

        assert heard[2:] == [("orders", 1)]

    async def test_a_failing_partition_listener_is_logged(self, coord, caplog):
        heard: list[tuple[str, int]] = []

        def broken(topic: str, partition: int) -> None:
            raise RuntimeError("partition listener bug")

        coord.add_partition_listener(broken)
        coord.add_partition_listener(lambda t, p: heard.append((t, p)))

        with caplog.at_level(logging.ERROR, logger="coordination"):
            await coord.create_topic("orders", 1, 1)
            await eventually(lambda: heard == [("orders", 0)], what="the second listener heard")

        assert "partition listener bug" in caplog.text

    # -- controller, brokers, session ---------------------------------------------------

    async def test_the_only_broker_is_elected_controller_and_listeners_hear_it(self, coord):
        heard: list[int | None] = []
        coord.add_controller_listener(heard.append)

        assert await coord.elect_controller() is True

        assert coord.is_controller
        assert isinstance(coord.controller_epoch, int)
        assert coord.controller_epoch >= 1
        assert await coord.controller_id() == 1
        await eventually(lambda: heard, what="a controller listener heard")
        assert set(heard) == {1}

    async def test_a_controller_write_stores_its_epoch(self, coord):
        await coord.create_topic("orders", 1, 1)
        await coord.elect_controller()

        await coord.update_partition_state(
            "orders", 0, PartitionState(1, 1, (1,)), 0, controller_epoch=coord.controller_epoch
        )

        found = await coord.partition_state_with_version("orders", 0)
        assert (found.state, found.version) == (PartitionState(1, 1, (1,)), 1)
        assert found.controller_epoch == coord.controller_epoch

    async def test_broker_listeners_hear_a_registration(self, open_coordinator):
        coord = await open_coordinator(register=False)
        heard: list[tuple[int, ...]] = []
        coord.add_broker_listener(heard.append)

        await coord.register_broker(BROKER)

        await eventually(lambda: heard[-1:] == [(1,)], what="heard broker 1")

    async def test_the_session_is_connected_once_started(self, open_coordinator):
        coord = await open_coordinator(start=False)
        assert coord.session_state is SessionState.CONNECTING
        coord.add_session_listener(lambda state: None)

        await coord.start()

        assert coord.session_state is SessionState.CONNECTED
        await coord.close()
        assert coord.session_state is SessionState.CLOSED
