"""Kafka's ``RangeAssignor`` ("range"): contiguous ranges of each topic.

Per topic, the members subscribed to it are sorted by member id and its
partitions cut into contiguous ranges in that order; the first
``partitions % members`` members get one extra. Topics are handled
independently, so members that sort first get the extras of every topic: with
two members and two topics of three partitions each, ``c0`` gets
``t0-0 t0-1 t1-0 t1-1`` and ``c1`` gets ``t0-2 t1-2``. The upside, and the
reason to choose it, is co-partitioning: the same partition numbers of
different topics land on the same member (joins by key).
"""

from __future__ import annotations

from collections.abc import Mapping

from client.group.member_metadata import Assignment, Subscription
from client.topic_partition import TopicPartition

__all__ = ["RangeAssignor"]


class RangeAssignor:
    name = "range"

    def assign(
        self,
        partitions_per_topic: Mapping[str, int],
        subscriptions: Mapping[str, Subscription],
    ) -> dict[str, Assignment]:
        members_per_topic: dict[str, list[str]] = {}
        for member_id, subscription in subscriptions.items():
            for topic in subscription.topics:
                if topic in partitions_per_topic:
                    members_per_topic.setdefault(topic, []).append(member_id)

        assigned: dict[str, list[TopicPartition]] = {member_id: [] for member_id in subscriptions}
        for topic, members in members_per_topic.items():
            members.sort()
            per_member, extra = divmod(partitions_per_topic[topic], len(members))
            for i, member_id in enumerate(members):
                start = per_member * i + min(i, extra)
                length = per_member + (1 if i < extra else 0)
                assigned[member_id].extend(
                    TopicPartition(topic, p) for p in range(start, start + length)
                )
        return {member_id: Assignment(tuple(assigned[member_id])) for member_id in sorted(assigned)}
