"""sticky: balanced first, then as few moved partitions as that balance allows.

Examples from apache/kafka clients/src/test/java/org/apache/kafka/clients/consumer/
internals/AbstractStickyAssignorTest.java (read at commit
3dc1770c20a1b7721e7300d2de9b79993103983d), the non-rack cases; "owned" is Kafka's
``buildSubscriptionV2Above(..., ownedPartitions, generation, ...)``.
"""

from __future__ import annotations

from hypothesis import assume, example, given
from hypothesis import strategies as st

from client.group.member_metadata import Assignment, Subscription
from client.group.sticky_assignor import StickyAssignor, _general_assign, _previous_owners
from client.topic_partition import TopicPartition
from tests.client.group.support import (
    MEMBER_IDS,
    assert_no_cost_reducing_path,
    assert_valid,
    counts,
    groups,
    least_squares,
    previous,
    subscribed_partitions,
)

assignor = StickyAssignor()


def tp(topic: str, partition: int) -> TopicPartition:
    return TopicPartition(topic, partition)


def sub(*topics: str, owned: tuple[TopicPartition, ...] = ()) -> Subscription:
    return Subscription(topics, owned=owned)


def assign(partitions_per_topic, subscriptions) -> dict[str, list[TopicPartition]]:
    result = assignor.assign(partitions_per_topic, subscriptions)
    assert_valid(partitions_per_topic, subscriptions, result)
    return {m: list(a.partitions) for m, a in result.items()}


# --- Kafka's examples -------------------------------------------------------------------


def test_kafka_two_consumers_two_topics_six_partitions():
    result = assign(
        {"topic1": 3, "topic2": 3},
        {"consumer1": sub("topic1", "topic2"), "consumer2": sub("topic1", "topic2")},
    )

    assert result == {
        "consumer1": [tp("topic1", 0), tp("topic1", 2), tp("topic2", 1)],
        "consumer2": [tp("topic1", 1), tp("topic2", 0), tp("topic2", 2)],
    }


def test_kafka_multiple_consumers_mixed_topic_subscriptions():
    result = assign(
        {"topic1": 3, "topic2": 2},
        {
            "consumer1": sub("topic1"),
            "consumer2": sub("topic1", "topic2"),
            "consumer3": sub("topic1"),
        },
    )

    assert result == {
        "consumer1": [tp("topic1", 0), tp("topic1", 2)],
        "consumer2": [tp("topic2", 0), tp("topic2", 1)],
        "consumer3": [tp("topic1", 1)],
    }


def test_kafka_consumer_owning_min_quota_expected_max_quota():
    both = ("topic1", "topic2")
    result = assign(
        {"topic1": 2, "topic2": 3},
        {
            "consumer1": sub(*both, owned=(tp("topic1", 0), tp("topic2", 1))),
            "consumer2": sub(*both, owned=(tp("topic1", 1), tp("topic2", 2))),
        },
    )

    assert result == {
        "consumer1": [tp("topic1", 0), tp("topic2", 0), tp("topic2", 1)],
        "consumer2": [tp("topic1", 1), tp("topic2", 2)],
    }


def test_kafka_more_max_quota_owners_than_max_quota_places():
    # Kafka's answer keeps consumer2's pair and moves topic2-0 from consumer1; which of the
    # two equal owners keeps its pair follows its HashMap order. Here: the smaller member id.
    both = ("topic1", "topic2")
    result = assign(
        {"topic1": 2, "topic2": 2},
        {
            "consumer1": sub(*both, owned=(tp("topic1", 0), tp("topic2", 0))),
            "consumer2": sub(*both, owned=(tp("topic1", 1), tp("topic2", 1))),
            "consumer3": sub(*both),
        },
    )

    assert result == {
        "consumer1": [tp("topic1", 0), tp("topic2", 0)],
        "consumer2": [tp("topic1", 1)],
        "consumer3": [tp("topic2", 1)],
    }


def test_kafka_all_consumers_under_min_quota():
    both = ("topic1", "topic2")
    result = assign(
        {"topic1": 2, "topic2": 3},
        {
            "consumer1": sub(*both, owned=(tp("topic1", 0),)),
            "consumer2": sub(*both, owned=(tp("topic1", 1),)),
            "consumer3": sub(*both),
        },
    )

    assert result == {
        "consumer1": [tp("topic1", 0), tp("topic2", 1)],
        "consumer2": [tp("topic1", 1), tp("topic2", 2)],
        "consumer3": [tp("topic2", 0)],
    }


def test_kafka_add_remove_consumer_one_topic():
    partitions = {"topic": 3}
    first = assign(partitions, {"consumer1": sub("topic")})
    assert first == {"consumer1": [tp("topic", 0), tp("topic", 1), tp("topic", 2)]}

    second = assign(
        partitions,
        {"consumer1": sub("topic", owned=tuple(first["consumer1"])), "consumer2": sub("topic")},
    )
    assert second == {"consumer1": [tp("topic", 0), tp("topic", 1)], "consumer2": [tp("topic", 2)]}

    third = assign(partitions, {"consumer2": sub("topic", owned=tuple(second["consumer2"]))})
    assert third == {"consumer2": [tp("topic", 0), tp("topic", 1), tp("topic", 2)]}


def test_kafka_add_remove_two_consumers_two_topics():
    both = ("topic1", "topic2")
    partitions = {"topic1": 3, "topic2": 4}
    first = assign(partitions, {"consumer1": sub(*both), "consumer2": sub(*both)})
    assert first == {
        "consumer1": [tp("topic1", 0), tp("topic1", 2), tp("topic2", 1), tp("topic2", 3)],
        "consumer2": [tp("topic1", 1), tp("topic2", 0), tp("topic2", 2)],
    }

    second = assign(
        partitions,
        {
            "consumer1": sub(*both, owned=tuple(first["consumer1"])),
            "consumer2": sub(*both, owned=tuple(first["consumer2"])),
            "consumer3": sub(*both),
            "consumer4": sub(*both),
        },
    )
    assert second == {
        "consumer1": [tp("topic1", 0), tp("topic2", 1)],
        "consumer2": [tp("topic1", 1), tp("topic2", 0)],
        "consumer3": [tp("topic1", 2), tp("topic2", 3)],
        "consumer4": [tp("topic2", 2)],
    }

    third = assign(
        partitions,
        {
            "consumer3": sub(*both, owned=tuple(second["consumer3"])),
            "consumer4": sub(*both, owned=tuple(second["consumer4"])),
        },
    )
    assert third == {
        "consumer3": [tp("topic1", 0), tp("topic1", 2), tp("topic2", 1), tp("topic2", 3)],
        "consumer4": [tp("topic1", 1), tp("topic2", 0), tp("topic2", 2)],
    }


def test_kafka_topic_balance_after_reassignment():
    both = ("topic1", "topic2")
    partitions = {"topic1": 12, "topic2": 12}
    result = assignor.assign(partitions, {"consumer1": sub(*both)})
    # 1 member, then 2, then 4, then the last 2: each holds an equal share of each topic.
    for members, share in (
        (["consumer1", "consumer2"], 6),
        (["consumer1", "consumer2", "consumer3", "consumer4"], 3),
        (["consumer3", "consumer4"], 6),
    ):
        owned = {m: result[m].partitions if m in result else () for m in members}
        result = assignor.assign(partitions, {m: sub(*both, owned=owned[m]) for m in members})
        for assignment in result.values():
            assert sum(p.topic == "topic1" for p in assignment.partitions) == share
            assert sum(p.topic == "topic2" for p in assignment.partitions) == share


def test_kafka_poor_round_robin_scenario():
    partitions = {f"topic{i}": (i % 2) + 1 for i in range(1, 6)}
    every = tuple(partitions)
    odd = ("topic1", "topic3", "topic5")

    result = assign(
        partitions,
        {
            "consumer1": sub(*every),
            "consumer2": sub(*odd),
            "consumer3": sub(*odd),
            "consumer4": sub(*every),
        },
    )

    # Kafka's expected result, from the test's doc comment.
    assert result == {
        "consumer1": [tp("topic2", 0), tp("topic3", 0)],
        "consumer2": [tp("topic1", 0), tp("topic3", 1)],
        "consumer3": [tp("topic1", 1), tp("topic5", 0)],
        "consumer4": [tp("topic4", 0), tp("topic5", 1)],
    }


def test_kafka_add_remove_topic_two_consumers():
    first = assign({"topic": 3}, {"consumer1": sub("topic"), "consumer2": sub("topic")})
    assert sorted(map(len, first.values())) == [1, 2]

    partitions = {"topic": 3, "topic2": 3}
    second = assign(
        partitions,
        {m: sub("topic", "topic2", owned=tuple(first[m])) for m in first},
    )
    assert list(map(len, second.values())) == [3, 3]
    for member_id in first:
        assert set(first[member_id]) <= set(second[member_id])

    third = assign({"topic2": 3}, {m: sub("topic2", owned=tuple(second[m])) for m in second})
    assert sorted(map(len, third.values())) == [1, 2]
    for member_id in third:
        assert set(third[member_id]) <= set(second[member_id])


def test_kafka_stickiness_when_the_leader_leaves():
    members = [f"consumer{i}" for i in range(1, 5)]
    first = assign({"topic1": 3}, {m: sub("topic1") for m in members})
    assert max(map(len, first.values())) == 1

    second = assign({"topic1": 3}, {m: sub("topic1", owned=tuple(first[m])) for m in members[1:]})

    for member_id, partitions in second.items():
        assert len(partitions) == 1
        assert set(first[member_id]) <= set(partitions)


def test_kafka_all_consumers_reach_expected_quota():
    result = assign(
        {"topic": 4},
        {
            "consumer1": sub("topic", owned=(tp("topic", 0), tp("topic", 1))),
            "consumer2": sub("topic", owned=(tp("topic", 2),)),
            "consumer3": sub("topic"),
        },
    )

    assert result == {
        "consumer1": [tp("topic", 0), tp("topic", 1)],
        "consumer2": [tp("topic", 2)],
        "consumer3": [tp("topic", 3)],
    }


def test_kafka_only_subscribed_topic_deleted():
    first = assign({"topic": 3}, {"consumer": sub("topic")})

    assert assign({}, {"consumer": sub("topic", owned=tuple(first["consumer"]))}) == {
        "consumer": []
    }


def test_kafka_owned_partitions_of_a_deleted_or_unsubscribed_topic_are_dropped():
    result = assign(
        {"topic": 2},
        {"consumer": sub("topic", owned=(tp("topic", 0), tp("other", 0), tp("topic", 7)))},
    )

    assert result == {"consumer": [tp("topic", 0), tp("topic", 1)]}


def test_kafka_move_existing_assignments_balances_through_a_chain():
    # Kafka moves one partition at a time to a member two below and stops here at 1/2/3
    # (its validity check accepts that). consumer3's topic4-0 can go to consumer2 only if
    # consumer2 hands topic2-0 to consumer1: one chain, two moves, and 2/2/2.
    partitions = {f"topic{i}": 1 for i in range(1, 7)}
    subscriptions = {
        "consumer1": sub("topic1", "topic2", owned=(tp("topic1", 0),)),
        "consumer2": sub(
            "topic1", "topic2", "topic3", "topic4", owned=(tp("topic2", 0), tp("topic3", 0))
        ),
        "consumer3": sub(
            "topic2",
            "topic3",
            "topic4",
            "topic5",
            "topic6",
            owned=(tp("topic4", 0), tp("topic5", 0), tp("topic6", 0)),
        ),
    }

    result = assign(partitions, subscriptions)

    assert result == {
        "consumer1": [tp("topic1", 0), tp("topic2", 0)],
        "consumer2": [tp("topic3", 0), tp("topic4", 0)],
        "consumer3": [tp("topic5", 0), tp("topic6", 0)],
    }


def test_balance_needing_a_chain_of_moves():
    # "00" can pass a-0 to "1" only if "0" passes e-1 to "00": Kafka's one-move-at-a-time
    # balancing stops at 0/1/2.
    result = assign(
        {"a": 1, "e": 2},
        {
            "1": sub("a"),
            "00": sub("a", "b", "e", owned=(tp("a", 0),)),
            "0": sub("e", owned=(tp("e", 0), tp("e", 1))),
        },
    )

    assert result == {"0": [tp("e", 0)], "00": [tp("e", 1)], "1": [tp("a", 0)]}


def test_new_partitions_are_balanced_before_owned_ones_move():
    # b-4, c-6 and c-7 are new; placed greedily all three go to "n": k/m/n hold 6/4/6.
    # Passing the new b-4 on to "m" gives 6/5/5 with nothing owned moving. Balancing with
    # any partition from the most loaded, "k", would instead move its owned c-2 to "n"
    # (and b-4 on to "m"): 5/5/6, one more partition moved for the same balance.
    result = assign(
        {"b": 5, "c": 8, "d": 3},
        {
            "m": sub("b", owned=tuple(tp("b", p) for p in range(4))),
            "n": sub("b", "c", owned=tuple(tp("c", p) for p in range(3, 6))),
            "k": sub(
                "c",
                "d",
                owned=tuple(tp("c", p) for p in range(3)) + tuple(tp("d", p) for p in range(3)),
            ),
        },
    )

    assert result == {
        "k": [tp("c", 0), tp("c", 1), tp("c", 2), tp("d", 0), tp("d", 1), tp("d", 2)],
        "m": [tp("b", p) for p in range(5)],
        "n": [tp("c", p) for p in range(3, 8)],
    }


# --- partitions claimed by more than one member ------------------------------------------


def test_identical_claims_go_to_the_smaller_member_id():
    # Kafka's testOwnedPartitionsAreInvalidatedForConsumerWithStaleGeneration, where the
    # generation picks consumer1; without generations the tie goes by member id.
    both = ("topic", "topic2")
    claim = (tp("topic", 0), tp("topic", 2), tp("topic2", 1))

    result = assign(
        {"topic": 3, "topic2": 3},
        {"consumer1": sub(*both, owned=claim), "consumer2": sub(*both, owned=claim)},
    )

    assert result == {
        "consumer1": list(claim),
        "consumer2": [tp("topic", 1), tp("topic2", 0), tp("topic2", 2)],
    }


def test_a_stale_member_claiming_its_old_share_loses_what_moved_on():
    # Generation 1: "a" owned all six. Generation 2 gave 3-5 to "b", but "a" missed it and
    # still claims all six. Each keeps what it holds now; nothing else moves.
    six = tuple(tp("t", p) for p in range(6))

    result = assign({"t": 6}, {"a": sub("t", owned=six), "b": sub("t", owned=six[3:])})

    assert result == {"a": list(six[:3]), "b": list(six[3:])}


@given(group=groups(same_topics=True, with_owned=True))
def test_a_partition_claimed_twice_is_kept_by_one_claimant_only(group):
    partitions_per_topic, subscriptions = group
    resolved = _previous_owners(
        partitions_per_topic,
        subscriptions,
        {
            m: frozenset(t for t in s.topics if partitions_per_topic.get(t, 0) > 0)
            for m, s in subscriptions.items()
        },
    )
    for member_id, partitions in resolved.items():
        for partition in partitions:
            assert partition in subscriptions[member_id].owned
    kept = [p for ps in resolved.values() for p in ps]
    assert len(kept) == len(set(kept))


# --- properties --------------------------------------------------------------------------


def _optimal_kept(owned_counts: list[int], total: int) -> int:
    """With identical subscriptions: the most owned partitions any balanced assignment keeps.

    Balanced means quotas of q or q+1 (r of the latter); each member keeps at most its
    quota of what it owns, and the q+1 places are best given to members owning more than q.
    """
    q, r = divmod(total, len(owned_counts))
    return sum(min(o, q) for o in owned_counts) + min(r, sum(o > q for o in owned_counts))


@st.composite
def owned_once(
    draw: st.DrawFn, *, same_topics: bool
) -> tuple[dict[str, int], dict[str, Subscription]]:
    """A group whose members own a consistent previous assignment: each existing partition
    owned by one of its subscribers or by nobody."""
    narrow = False if same_topics else draw(st.booleans())
    partitions_per_topic, subscriptions = draw(groups(same_topics=same_topics, narrow=narrow))
    owned: dict[str, list[TopicPartition]] = {m: [] for m in subscriptions}
    for topic in sorted(partitions_per_topic):
        candidates = sorted(m for m, s in subscriptions.items() if topic in s.topics)
        for p in range(partitions_per_topic[topic]):
            owner = draw(st.sampled_from([*candidates, None]))
            if owner is not None:
                owned[owner].append(tp(topic, p))
    return partitions_per_topic, {
        m: Subscription(s.topics, owned=tuple(owned[m])) for m, s in subscriptions.items()
    }


def _moved_owned(subscriptions, result) -> int:
    return sum(
        1 for m, s in subscriptions.items() for p in s.owned if p not in result[m].partitions
    )


@given(group=groups(same_topics=True, with_owned=True))
def test_identical_subscriptions_are_balanced_within_one(group):
    partitions_per_topic, subscriptions = group

    loads = counts(assignor.assign(partitions_per_topic, subscriptions)).values()

    assert max(loads) - min(loads) <= 1


@given(
    group=st.one_of(groups(with_owned=True), groups(with_owned=True, narrow=True)),
)
def test_any_subscriptions_are_as_balanced_as_they_allow(group):
    partitions_per_topic, subscriptions = group

    result = assignor.assign(partitions_per_topic, subscriptions)

    assert_no_cost_reducing_path(partitions_per_topic, subscriptions, result)


@given(group=owned_once(same_topics=True))
def test_identical_subscriptions_move_the_fewest_partitions_balance_allows(group):
    partitions_per_topic, subscriptions = group
    total = len(subscribed_partitions(partitions_per_topic, next(iter(subscriptions.values()))))

    result = assignor.assign(partitions_per_topic, subscriptions)

    owned = [len(s.owned) for s in subscriptions.values()]
    assert sum(owned) - _moved_owned(subscriptions, result) == _optimal_kept(owned, total)


@given(group=groups(with_owned=True))
def test_the_next_generation_with_no_change_moves_nothing(group):
    partitions_per_topic, subscriptions = group
    result = assignor.assign(partitions_per_topic, subscriptions)

    assert assignor.assign(partitions_per_topic, previous(subscriptions, result)) == result


@given(group=groups(same_topics=True, min_members=2), data=st.data())
def test_when_a_member_leaves_the_others_keep_everything(group, data):
    partitions_per_topic, subscriptions = group
    before = assignor.assign(partitions_per_topic, subscriptions)
    leaver = data.draw(st.sampled_from(sorted(subscriptions)))
    remaining = previous(subscriptions, before)
    del remaining[leaver]

    after = assignor.assign(partitions_per_topic, remaining)

    for member_id in remaining:
        assert set(before[member_id].partitions) <= set(after[member_id].partitions)
    loads = counts(after).values()
    assert max(loads) - min(loads) <= 1


@given(group=groups(same_topics=True), newcomer=MEMBER_IDS)
def test_when_a_member_joins_only_its_share_moves(group, newcomer):
    partitions_per_topic, subscriptions = group
    assume(newcomer not in subscriptions)
    before = assignor.assign(partitions_per_topic, subscriptions)
    joined = previous(subscriptions, before)
    joined[newcomer] = Subscription(next(iter(subscriptions.values())).topics)
    total = sum(len(a.partitions) for a in before.values())

    after = assignor.assign(partitions_per_topic, joined)

    # Every moved partition went to the newcomer, and it got total / members, rounded.
    assert _moved_owned(joined, after) == len(after[newcomer].partitions)
    assert len(after[newcomer].partitions) in (total // len(joined), -(-total // len(joined)))
    owned = [len(s.owned) for s in joined.values()]
    assert _moved_owned(joined, after) == sum(owned) - _optimal_kept(owned, total)


@given(group=owned_once(same_topics=False))
@example(
    group=(
        {"b": 5, "c": 8, "d": 3},
        {
            "m": sub("b", owned=tuple(tp("b", p) for p in range(4))),
            "n": sub("b", "c", owned=tuple(tp("c", p) for p in range(3, 6))),
            "k": sub("c", "d", owned=tuple(tp(t, p) for t in "cd" for p in range(3))),
        },
    )
)
def test_balance_is_optimal_and_owned_partitions_stay_whenever_that_allows(group):
    """Checked against an independent min-cost flow: the result's sum of squared loads is
    the least possible, and if the least possible is reachable with every owned partition
    kept, none moved."""
    partitions_per_topic, subscriptions = group
    pinned = {p: m for m, s in subscriptions.items() for p in s.owned}

    result = assignor.assign(partitions_per_topic, subscriptions)

    squares = sum(n * n for n in counts(result).values())
    assert squares == least_squares(partitions_per_topic, subscriptions, {})
    if squares == least_squares(partitions_per_topic, subscriptions, pinned):
        assert _moved_owned(subscriptions, result) == 0


@given(group=owned_once(same_topics=True))
@example(
    group=(
        {"c": 12},
        {
            "-": sub("c", owned=tuple(tp("c", p) for p in range(8))),
            "0": sub("c", owned=tuple(tp("c", p) for p in range(8, 12))),
            "00": sub("c"),
            "1": sub("c"),
            "m": sub("c"),
        },
    )
)
def test_the_general_path_agrees_on_identical_subscriptions(group):
    """The general path is only taken when subscriptions differ; run it on identical ones,
    where the answer is known: balanced within one, and the fewest moves."""
    partitions_per_topic, subscriptions = group
    members = sorted(subscriptions)
    topics = frozenset(
        t for t in next(iter(subscriptions.values())).topics if partitions_per_topic.get(t, 0) > 0
    )
    owned = {m: list(subscriptions[m].owned) for m in members}

    assigned = _general_assign(members, partitions_per_topic, dict.fromkeys(members, topics), owned)

    result = {m: Assignment(tuple(assigned[m])) for m in members}
    assert_valid(partitions_per_topic, subscriptions, result)
    loads = counts(result).values()
    assert max(loads) - min(loads) <= 1
    total = sum(loads)
    owned_counts = [len(owned[m]) for m in members]
    assert sum(owned_counts) - _moved_owned(subscriptions, result) == _optimal_kept(
        owned_counts, total
    )
