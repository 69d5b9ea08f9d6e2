"""The contract every assignor keeps, the registry by name, and a size check."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from client.group.assignor import (
    ASSIGNORS,
    PartitionAssignor,
    UnknownAssignorError,
    assignor_for,
)
from client.group.member_metadata import Assignment, Subscription
from client.group.range_assignor import RangeAssignor
from client.group.round_robin_assignor import RoundRobinAssignor
from client.group.sticky_assignor import StickyAssignor
from client.topic_partition import TopicPartition
from tests.client.group.support import assert_valid, groups, in_reverse, previous

NAMES = ["range", "roundrobin", "sticky"]


def test_the_registry_holds_kafkas_names():
    assert sorted(ASSIGNORS) == NAMES
    assert isinstance(ASSIGNORS["range"], RangeAssignor)
    assert isinstance(ASSIGNORS["roundrobin"], RoundRobinAssignor)
    assert isinstance(ASSIGNORS["sticky"], StickyAssignor)
    for name, assignor in ASSIGNORS.items():
        assert assignor.name == name


@pytest.mark.parametrize("name", NAMES)
def test_assignor_for_finds_each_by_name(name):
    assert assignor_for(name) is ASSIGNORS[name]


@pytest.mark.parametrize("name", ["", "Range", "cooperative-sticky", "x" * 10_000, None])
def test_an_unknown_name_is_refused_naming_the_known_ones(name):
    with pytest.raises(UnknownAssignorError) as caught:
        assignor_for(name)

    assert "range, roundrobin, sticky" in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("name", NAMES)
def test_no_members_no_assignment(name):
    assert assignor_for(name).assign({"t": 3}, {}) == {}


@pytest.mark.parametrize("name", NAMES)
def test_a_member_without_topics_still_gets_an_empty_entry(name):
    result = assignor_for(name).assign({}, {"m": Subscription(())})

    assert result == {"m": Assignment(())}


@pytest.mark.parametrize("name", NAMES)
def test_topics_missing_from_the_metadata_are_skipped(name):
    subscriptions = {"m1": Subscription(("t", "gone")), "m2": Subscription(("gone",))}

    result = assignor_for(name).assign({"t": 2, "other": 5}, subscriptions)

    assert result["m1"].partitions == (TopicPartition("t", 0), TopicPartition("t", 1))
    assert result["m2"].partitions == ()


@pytest.mark.parametrize("name", NAMES)
@given(group=groups(min_members=0, with_owned=True))
def test_every_subscribed_partition_goes_to_exactly_one_subscriber(name, group):
    partitions_per_topic, subscriptions = group

    assert_valid(
        partitions_per_topic,
        subscriptions,
        assignor_for(name).assign(partitions_per_topic, subscriptions),
    )


@pytest.mark.parametrize("name", NAMES)
@given(group=groups(with_owned=True), data=st.data())
def test_the_result_does_not_depend_on_mapping_order(name, group, data):
    partitions_per_topic, subscriptions = group
    assignor = assignor_for(name)
    shuffled = data.draw(st.permutations(list(subscriptions.items())))
    topics_shuffled = data.draw(st.permutations(list(partitions_per_topic.items())))

    first = assignor.assign(partitions_per_topic, subscriptions)

    assert assignor.assign(partitions_per_topic, subscriptions) == first
    assert assignor.assign(partitions_per_topic, in_reverse(subscriptions)) == first
    assert assignor.assign(dict(topics_shuffled), dict(shuffled)) == first


def _assignors() -> list[PartitionAssignor]:
    return [assignor_for(name) for name in NAMES]


@pytest.mark.parametrize("assignor", _assignors(), ids=NAMES)
def test_a_thousand_partitions_over_a_hundred_members(assignor):
    """Large enough to catch a quadratic slip; the time is not asserted (pytest shows it)."""
    rng = random.Random(5)
    topics = {f"topic-{i}": 100 for i in range(10)}
    members = [f"member-{i:03}" for i in range(100)]
    same = {m: Subscription(tuple(topics)) for m in members}
    mixed = {
        m: Subscription(tuple(rng.sample(sorted(topics), rng.randint(1, 10)))) for m in members
    }

    for subscriptions in (same, mixed):
        fresh = assignor.assign(topics, subscriptions)
        assert_valid(topics, subscriptions, fresh)
        # The next generation, one member gone and one new: owned partitions in play.
        rejoined = previous(subscriptions, fresh)
        del rejoined["member-042"]
        rejoined["member-new"] = Subscription(tuple(topics))
        assert_valid(topics, rejoined, assignor.assign(topics, rejoined))
