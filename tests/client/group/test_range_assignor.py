"""range: contiguous ranges per topic, members sorted by id, the first ones get the extras.

Examples from apache/kafka clients/src/test/java/org/apache/kafka/clients/consumer/
RangeAssignorTest.java (read at commit 1763e549c98ffc6b0d298c0a29dd1223f8d22133), the
non-rack, dynamic-member cases.
"""

from __future__ import annotations

from hypothesis import given

from client.group.member_metadata import Subscription
from client.group.range_assignor import RangeAssignor
from client.topic_partition import TopicPartition
from tests.client.group.support import groups

assignor = RangeAssignor()


def tp(topic: str, partition: int) -> TopicPartition:
    return TopicPartition(topic, partition)


def assign(partitions_per_topic, topics_by_member):
    result = assignor.assign(
        partitions_per_topic, {m: Subscription(tuple(t)) for m, t in topics_by_member.items()}
    )
    return {m: list(a.partitions) for m, a in result.items()}


def test_kafka_one_consumer_one_topic():
    assert assign({"topic1": 3}, {"consumer1": ["topic1"]}) == {
        "consumer1": [tp("topic1", 0), tp("topic1", 1), tp("topic1", 2)]
    }


def test_kafka_only_assigns_partitions_from_subscribed_topics():
    assert assign({"topic1": 3, "other": 3}, {"consumer1": ["topic1"]}) == {
        "consumer1": [tp("topic1", 0), tp("topic1", 1), tp("topic1", 2)]
    }


def test_kafka_one_consumer_multiple_topics():
    assert assign({"topic1": 1, "topic2": 2}, {"consumer1": ["topic1", "topic2"]}) == {
        "consumer1": [tp("topic1", 0), tp("topic2", 0), tp("topic2", 1)]
    }


def test_kafka_two_consumers_one_topic_one_partition():
    assert assign({"topic1": 1}, {"consumer1": ["topic1"], "consumer2": ["topic1"]}) == {
        "consumer1": [tp("topic1", 0)],
        "consumer2": [],
    }


def test_kafka_two_consumers_one_topic_two_partitions():
    assert assign({"topic1": 2}, {"consumer1": ["topic1"], "consumer2": ["topic1"]}) == {
        "consumer1": [tp("topic1", 0)],
        "consumer2": [tp("topic1", 1)],
    }


def test_kafka_multiple_consumers_mixed_topics():
    result = assign(
        {"topic1": 3, "topic2": 2},
        {"consumer1": ["topic1"], "consumer2": ["topic1", "topic2"], "consumer3": ["topic1"]},
    )

    assert result == {
        "consumer1": [tp("topic1", 0)],
        "consumer2": [tp("topic1", 1), tp("topic2", 0), tp("topic2", 1)],
        "consumer3": [tp("topic1", 2)],
    }


def test_kafka_two_consumers_two_topics_six_partitions():
    both = ["topic1", "topic2"]

    assert assign({"topic1": 3, "topic2": 3}, {"consumer1": both, "consumer2": both}) == {
        "consumer1": [tp("topic1", 0), tp("topic1", 1), tp("topic2", 0), tp("topic2", 1)],
        "consumer2": [tp("topic1", 2), tp("topic2", 2)],
    }


def test_kafka_four_consumers_over_five_and_four_partitions():
    # testStaticMemberRangeAssignmentPersistent's expected layout, by member id here.
    both = ["topic1", "topic2"]
    members = {f"consumer{i}": both for i in range(1, 5)}

    assert assign({"topic1": 5, "topic2": 4}, members) == {
        "consumer1": [tp("topic1", 0), tp("topic1", 1), tp("topic2", 0)],
        "consumer2": [tp("topic1", 2), tp("topic2", 1)],
        "consumer3": [tp("topic1", 3), tp("topic2", 2)],
        "consumer4": [tp("topic1", 4), tp("topic2", 3)],
    }


def test_members_sort_by_id_as_strings():
    result = assign({"t": 3}, {"m10": ["t"], "m9": ["t"], "m1": ["t"]})

    assert result == {"m1": [tp("t", 0)], "m10": [tp("t", 1)], "m9": [tp("t", 2)]}


@given(group=groups())
def test_each_topic_is_cut_into_contiguous_ranges_in_member_order(group):
    partitions_per_topic, subscriptions = group

    result = assignor.assign(partitions_per_topic, subscriptions)

    for topic, count in partitions_per_topic.items():
        members = sorted(m for m, s in subscriptions.items() if topic in s.topics)
        if not members:
            continue
        share, extra = divmod(count, len(members))
        following = 0
        for i, member_id in enumerate(members):
            mine = [p.partition for p in result[member_id].partitions if p.topic == topic]
            # Per topic the counts differ by at most one, the extras going to the first members.
            assert len(mine) == share + (1 if i < extra else 0)
            assert mine == list(range(following, following + len(mine)))
            following += len(mine)
