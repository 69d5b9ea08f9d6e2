"""Kafka's ``StickyAssignor`` ("sticky"): balanced, and moving as little as it can.

A partition that changes owner costs the group: the old owner stops and
commits, the new one fetches the committed offset and starts cold (records
after the last commit are processed twice). So this assignor keeps each
partition with the member that owned it (``Subscription.owned``) unless
balance needs it elsewhere. Balance comes first; among balanced assignments it
picks one that moves few partitions.

Like Kafka's ``AbstractStickyAssignor`` there are two paths:

- **Constrained** (every member subscribes to the same topics, the common
  case): each member gets a quota, ``total // members`` or one more, the
  members that owned the most getting the larger quotas. Each keeps owned
  partitions up to its quota (spread over topics: partition 0 of each topic
  before any partition 1), and the rest are dealt round-robin to the members
  below quota. Counts differ by at most one and the number of moved partitions
  is the minimum any balanced assignment allows.
- **General** (subscriptions differ): owned partitions stay; the rest go one by
  one to the least loaded member that may take them, topics with the fewest
  candidates first; then the load is evened out along *cost-reducing paths*: a
  chain ``a -> b -> ... -> z`` where each member hands one partition to the
  next, ``z`` having at least two fewer than ``a``, each path starting from
  the most loaded member that has one. This runs first moving only partitions
  handed out in this round, then any partition. When no such path is left the
  assignment is as balanced as the subscriptions allow (the optimal
  "semi-matching" of Harvey, Ladner, Lovász and Tamir, 2003), and an owned
  partition has moved only if keeping every owned partition could not reach
  that balance. When some must move, the count moved is small but not always
  the least possible (that would take a min-cost flow).

Kafka's general path moves one partition at a time to a member with at least
two fewer; it can stop short when only a chain of moves helps. Kafka also
uses each member's generation to tell a stale claim from a current one; our
subscriptions carry no generation, so a partition claimed by several members
goes to the claimant claiming the fewest partitions (a member that missed a
rebalance still claims its old, larger share), ties broken by member id.
"""

from __future__ import annotations

import heapq
from bisect import insort
from collections.abc import Mapping

from client.group.member_metadata import Assignment, Subscription
from client.topic_partition import TopicPartition

__all__ = ["StickyAssignor"]


class StickyAssignor:
    name = "sticky"

    def assign(
        self,
        partitions_per_topic: Mapping[str, int],
        subscriptions: Mapping[str, Subscription],
    ) -> dict[str, Assignment]:
        members = sorted(subscriptions)
        topics_of = {
            member_id: frozenset(
                topic
                for topic in subscriptions[member_id].topics
                if partitions_per_topic.get(topic, 0) > 0
            )
            for member_id in members
        }
        owned = _previous_owners(partitions_per_topic, subscriptions, topics_of)
        if len(set(topics_of.values())) <= 1:
            topics = next(iter(topics_of.values()), frozenset())
            assigned = _constrained_assign(members, partitions_per_topic, topics, owned)
        else:
            assigned = _general_assign(members, partitions_per_topic, topics_of, owned)
        return {member_id: Assignment(tuple(assigned[member_id])) for member_id in members}


def _previous_owners(
    partitions_per_topic: Mapping[str, int],
    subscriptions: Mapping[str, Subscription],
    topics_of: Mapping[str, frozenset[str]],
) -> dict[str, list[TopicPartition]]:
    """Each member's owned partitions that still exist and that it still subscribes to.

    A partition claimed by several members stays with the one claiming the fewest.
    """
    claims: dict[str, list[TopicPartition]] = {}
    claimants: dict[TopicPartition, list[str]] = {}
    for member_id in sorted(subscriptions):
        valid = [
            tp
            for tp in subscriptions[member_id].owned
            if tp.topic in topics_of[member_id] and tp.partition < partitions_per_topic[tp.topic]
        ]
        claims[member_id] = valid
        for tp in valid:
            claimants.setdefault(tp, []).append(member_id)

    owned: dict[str, list[TopicPartition]] = {member_id: [] for member_id in claims}
    for tp, members in claimants.items():
        keeper = min(members, key=lambda member_id: (len(claims[member_id]), member_id))
        owned[keeper].append(tp)
    return owned


def _spread_first(tp: TopicPartition) -> tuple[int, str]:
    """Partition 0 of each topic before any partition 1: what a member keeps spans its topics."""
    return tp.partition, tp.topic


def _constrained_assign(
    members: list[str],
    partitions_per_topic: Mapping[str, int],
    topics: frozenset[str],
    owned: dict[str, list[TopicPartition]],
) -> dict[str, list[TopicPartition]]:
    if not members:
        return {}
    everything = [
        TopicPartition(t, p) for t in sorted(topics) for p in range(partitions_per_topic[t])
    ]
    min_quota, extra = divmod(len(everything), len(members))
    # The larger quotas go to members that can fill them with what they own.
    ranked = sorted(members, key=lambda m: (-min(len(owned[m]), min_quota + 1), m))
    quota = {member_id: min_quota + (1 if i < extra else 0) for i, member_id in enumerate(ranked)}

    assigned = {m: sorted(owned[m], key=_spread_first)[: quota[m]] for m in members}
    taken = {tp for partitions in assigned.values() for tp in partitions}
    unassigned = [tp for tp in everything if tp not in taken]
    # sum(quota) == len(everything), so the deficits below add up to len(unassigned) exactly.
    deal = iter(unassigned)
    under = [m for m in members if len(assigned[m]) < min_quota]
    while under:
        for member_id in under:
            assigned[member_id].append(next(deal))
        under = [m for m in under if len(assigned[m]) < min_quota]
    for member_id in members:
        if len(assigned[member_id]) < quota[member_id]:
            assigned[member_id].append(next(deal))
    if next(deal, None) is not None:
        raise AssertionError("constrained sticky assignment left partitions unassigned")
    return assigned


def _general_assign(
    members: list[str],
    partitions_per_topic: Mapping[str, int],
    topics_of: Mapping[str, frozenset[str]],
    owned: dict[str, list[TopicPartition]],
) -> dict[str, list[TopicPartition]]:
    balancer = _Balancer(members, topics_of, owned)
    balancer.place_unowned(partitions_per_topic)
    balancer.balance(move_owned=False)
    balancer.balance(move_owned=True)
    return balancer.result()


_Hop = tuple[str, str, str]  # giver, topic, taker


class _Balancer:
    """The general path's state: per member and topic, the partitions kept and those gained."""

    def __init__(
        self,
        members: list[str],
        topics_of: Mapping[str, frozenset[str]],
        owned: dict[str, list[TopicPartition]],
    ) -> None:
        self.members = members
        self.eligible: dict[str, list[str]] = {}  # topic -> its subscribers, sorted
        for member_id in members:
            for topic in topics_of[member_id]:
                self.eligible.setdefault(topic, []).append(member_id)
        self.load = dict.fromkeys(members, 0)
        # Partition numbers per member and topic, sorted; empty lists are removed.
        self.kept: dict[str, dict[str, list[int]]] = {m: {} for m in members}
        self.gained: dict[str, dict[str, list[int]]] = {m: {} for m in members}
        self.previous_owner: dict[TopicPartition, str] = {}
        for member_id in members:
            for tp in sorted(owned[member_id]):
                self.previous_owner[tp] = member_id
                self._add(member_id, tp.topic, tp.partition)

    def place_unowned(self, partitions_per_topic: Mapping[str, int]) -> None:
        """Each partition nobody keeps goes to its least loaded subscriber (ties: member id)."""
        by_choice = sorted(self.eligible, key=lambda topic: (len(self.eligible[topic]), topic))
        for topic in by_choice:
            free = [
                p
                for p in range(partitions_per_topic[topic])
                if TopicPartition(topic, p) not in self.previous_owner
            ]
            if not free:
                continue
            heap = [(self.load[m], m) for m in self.eligible[topic]]
            heapq.heapify(heap)
            for partition in free:
                load, member_id = heapq.heappop(heap)
                self._add(member_id, topic, partition)
                heapq.heappush(heap, (load + 1, member_id))

    def balance(self, *, move_owned: bool) -> None:
        """Apply cost-reducing paths until none is left; ``move_owned=False`` moves only gains.

        Each path starts from the most loaded member that has one: draining one member
        first would take partitions it could have kept from the next most loaded.
        """
        while True:
            lowest = min(self.load.values(), default=0)
            for source in sorted(self.members, key=lambda m: (-self.load[m], m)):
                if self.load[source] < lowest + 2:
                    return  # nobody holds two fewer than this member, nor than any after it
                path = self._path_from(source, move_owned)
                if path is not None:
                    self._apply(path, move_owned)
                    break
            else:
                return

    def result(self) -> dict[str, list[TopicPartition]]:
        return {
            member_id: sorted(
                TopicPartition(topic, p)
                for held in (self.kept[member_id], self.gained[member_id])
                for topic, partitions in held.items()
                for p in partitions
            )
            for member_id in self.members
        }

    def _path_from(self, source: str, move_owned: bool) -> list[_Hop] | None:
        """The shortest cost-reducing path from ``source`` (breadth first), or None.

        Among the nearest members holding two or more fewer than ``source``, the
        least loaded is the target (then the smallest id). Each topic is expanded
        once: every subscriber of it is reached the first time any holder is.
        """
        limit = self.load[source] - 2
        if limit < 0:
            return None
        parent: dict[str, tuple[str, str] | None] = {source: None}
        expanded: set[str] = set()
        level = [source]
        while level:
            next_level = []
            for giver in level:
                for topic in self._movable_topics(giver, move_owned):
                    if topic in expanded:
                        continue
                    expanded.add(topic)
                    for taker in self.eligible[topic]:
                        if taker not in parent:
                            parent[taker] = (giver, topic)
                            next_level.append(taker)
            targets = [m for m in next_level if self.load[m] <= limit]
            if targets:
                member_id = min(targets, key=lambda m: (self.load[m], m))
                path: list[_Hop] = []
                while (link := parent[member_id]) is not None:
                    giver, topic = link
                    path.append((giver, topic, member_id))
                    member_id = giver
                return path[::-1]
            level = next_level
        return None

    def _movable_topics(self, member_id: str, move_owned: bool) -> list[str]:
        if move_owned:
            return sorted(self.gained[member_id].keys() | self.kept[member_id].keys())
        return sorted(self.gained[member_id])

    def _apply(self, path: list[_Hop], move_owned: bool) -> None:
        for giver, topic, taker in path:
            self._add(taker, topic, self._take(giver, topic, move_owned))

    def _take(self, member_id: str, topic: str, move_owned: bool) -> int:
        """A partition of ``topic`` from ``member_id``: one it gained this round if it can.

        Moving a gained partition again costs nothing more: it was moving anyway.
        """
        holdings = [self.gained[member_id]]
        if move_owned:
            holdings.append(self.kept[member_id])
        for held in holdings:
            partitions = held.get(topic)
            if partitions:
                partition = partitions.pop()
                if not partitions:
                    del held[topic]
                self.load[member_id] -= 1
                return partition
        raise AssertionError(f"{member_id} holds no movable partition of {topic}")

    def _add(self, member_id: str, topic: str, partition: int) -> None:
        back_home = self.previous_owner.get(TopicPartition(topic, partition)) == member_id
        held = self.kept[member_id] if back_home else self.gained[member_id]
        insort(held.setdefault(topic, []), partition)
        self.load[member_id] += 1
