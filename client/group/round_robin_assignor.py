"""Kafka's ``RoundRobinAssignor`` ("roundrobin"): deal every partition in turn.

All partitions of all subscribed topics, sorted by (topic, partition), are
dealt one at a time over the members sorted by member id; the dealer moves on
past a member not subscribed to the partition's topic, and carries on from
where it stopped at the next partition (it does not restart per topic). With
identical subscriptions the counts differ by at most one. With different ones
it can be lopsided, exactly as Kafka's is: members ``c0: t0``, ``c1: t0 t1``,
``c2: t0 t1 t2`` over topics of 1, 2 and 3 partitions give ``c0: t0-0``,
``c1: t1-0`` and ``c2`` everything else; the sticky assignor balances that case.
"""

from __future__ import annotations

from collections.abc import Mapping

from client.group.member_metadata import Assignment, Subscription
from client.topic_partition import TopicPartition

__all__ = ["RoundRobinAssignor"]


class RoundRobinAssignor:
    name = "roundrobin"

    def assign(
        self,
        partitions_per_topic: Mapping[str, int],
        subscriptions: Mapping[str, Subscription],
    ) -> dict[str, Assignment]:
        members = sorted(subscriptions)
        topics_of = {member_id: frozenset(subscriptions[member_id].topics) for member_id in members}
        topics = sorted(
            {topic for subscribed in topics_of.values() for topic in subscribed}
            & partitions_per_topic.keys()
        )

        assigned: dict[str, list[TopicPartition]] = {member_id: [] for member_id in members}
        turn = 0
        for topic in topics:
            for partition in range(partitions_per_topic[topic]):
                # Someone subscribes to the topic (it came from a subscription), so this ends.
                while topic not in topics_of[members[turn]]:
                    turn = (turn + 1) % len(members)
                assigned[members[turn]].append(TopicPartition(topic, partition))
                turn = (turn + 1) % len(members)
        return {member_id: Assignment(tuple(assigned[member_id])) for member_id in members}
