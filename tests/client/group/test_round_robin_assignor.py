"""roundrobin: every partition, sorted, dealt in turn over the members sorted by id.

Examples from apache/kafka clients/src/test/java/org/apache/kafka/clients/consumer/
RoundRobinAssignorTest.java (read at commit 10c1f976010193030409a3b22f9dd8f415b4831c)
and the RoundRobinAssignor class doc.
"""

from __future__ import annotations

from hypothesis import given

from client.group.member_metadata import Subscription
from client.group.round_robin_assignor import RoundRobinAssignor
from client.topic_partition import TopicPartition
from tests.client.group.support import counts, groups

assignor = RoundRobinAssignor()


def tp(topic: str, partition: int) -> TopicPartition:
    return TopicPartition(topic, partition)


def assign(partitions_per_topic, topics_by_member):
    result = assignor.assign(
        partitions_per_topic, {m: Subscription(tuple(t)) for m, t in topics_by_member.items()}
    )
    return {m: list(a.partitions) for m, a in result.items()}


def test_kafka_one_consumer_multiple_topics():
    assert assign({"topic1": 1, "topic2": 2}, {"consumer": ["topic1", "topic2"]}) == {
        "consumer": [tp("topic1", 0), tp("topic2", 0), tp("topic2", 1)]
    }


def test_kafka_two_consumers_one_topic_one_partition():
    assert assign({"topic": 1}, {"consumer1": ["topic"], "consumer2": ["topic"]}) == {
        "consumer1": [tp("topic", 0)],
        "consumer2": [],
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
        "consumer1": [tp("topic1", 0), tp("topic1", 2), tp("topic2", 1)],
        "consumer2": [tp("topic1", 1), tp("topic2", 0), tp("topic2", 2)],
    }


def test_kafka_four_consumers_two_topics():
    # testStaticMemberAssignmentPersistent's expected layout, by member id here.
    both = ["topic1", "topic2"]
    members = {f"consumer{i}": both for i in range(1, 5)}

    assert assign({"topic1": 3, "topic2": 3}, members) == {
        "consumer1": [tp("topic1", 0), tp("topic2", 1)],
        "consumer2": [tp("topic1", 1), tp("topic2", 2)],
        "consumer3": [tp("topic1", 2)],
        "consumer4": [tp("topic2", 0)],
    }


def test_kafka_class_doc_lopsided_example():
    result = assign(
        {"t0": 1, "t1": 2, "t2": 3},
        {"C0": ["t0"], "C1": ["t0", "t1"], "C2": ["t0", "t1", "t2"]},
    )

    assert result == {
        "C0": [tp("t0", 0)],
        "C1": [tp("t1", 0)],
        "C2": [tp("t1", 1), tp("t2", 0), tp("t2", 1), tp("t2", 2)],
    }


@given(group=groups(same_topics=True))
def test_identical_subscriptions_are_balanced_within_one(group):
    partitions_per_topic, subscriptions = group

    loads = counts(assignor.assign(partitions_per_topic, subscriptions)).values()

    assert max(loads) - min(loads) <= 1


@given(group=groups(same_topics=True))
def test_identical_subscriptions_deal_in_member_order(group):
    partitions_per_topic, subscriptions = group
    members = sorted(subscriptions)
    dealt = sorted(
        tp(t, p)
        for t in set(next(iter(subscriptions.values())).topics) & partitions_per_topic.keys()
        for p in range(partitions_per_topic[t])
    )

    result = assignor.assign(partitions_per_topic, subscriptions)

    for i, partition in enumerate(dealt):
        assert partition in result[members[i % len(members)]].partitions
