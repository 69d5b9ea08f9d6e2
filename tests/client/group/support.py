"""Group shapes for the assignor tests, and the checks every assignor must pass.

The checks are written independently of the assignors (no shared code), so a
bug in an assignor cannot hide behind the same bug in its test.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from hypothesis import strategies as st

from client.group.member_metadata import Assignment, Subscription
from client.topic_partition import TopicPartition

__all__ = [
    "assert_no_cost_reducing_path",
    "assert_valid",
    "counts",
    "groups",
    "in_reverse",
    "least_squares",
    "previous",
    "subscribed_partitions",
]

TOPICS = ["a", "b", "c", "d", "e"]
MISSING = "not-created"  # subscribed to, never in partitions_per_topic
MEMBER_IDS = st.text(alphabet="mnopq01-", min_size=1, max_size=5)

Group = tuple[dict[str, int], dict[str, Subscription]]


@st.composite
def groups(
    draw: st.DrawFn,
    *,
    same_topics: bool = False,
    min_members: int = 1,
    max_members: int = 8,
    max_partitions: int = 12,
    with_owned: bool = False,
    narrow: bool = False,
) -> Group:
    """Random topics with random partition counts (zero too), members and subscriptions.

    Subscriptions may name a topic that does not exist. ``with_owned`` adds owned
    partitions: some that exist, some that do not, some claimed twice. ``narrow``
    subscriptions (one or two topics each, few partitions) make groups where balance
    needs chains of moves through members with overlapping subscriptions.
    """
    if narrow:
        max_partitions = min(max_partitions, 5)
    partitions_per_topic = draw(
        st.dictionaries(st.sampled_from(TOPICS), st.integers(0, max_partitions), max_size=5)
    )
    members = draw(st.lists(MEMBER_IDS, min_size=min_members, max_size=max_members, unique=True))
    topic_sets = st.sets(
        st.sampled_from([*TOPICS, MISSING]), min_size=int(narrow), max_size=2 if narrow else 4
    )
    shared = draw(topic_sets)
    owned = st.just(())
    if with_owned:
        owned = st.lists(
            st.builds(
                TopicPartition,
                st.sampled_from([*TOPICS, MISSING]),
                st.integers(0, max_partitions + 1),
            ),
            max_size=12,
        ).map(tuple)
    subscriptions = {
        member_id: Subscription(
            topics=tuple(shared if same_topics else draw(topic_sets)), owned=draw(owned)
        )
        for member_id in members
    }
    return partitions_per_topic, subscriptions


def subscribed_partitions(
    partitions_per_topic: Mapping[str, int], subscription: Subscription
) -> set[TopicPartition]:
    return {
        TopicPartition(topic, p)
        for topic in subscription.topics
        for p in range(partitions_per_topic.get(topic, 0))
    }


def assert_valid(
    partitions_per_topic: Mapping[str, int],
    subscriptions: Mapping[str, Subscription],
    result: Mapping[str, Assignment],
) -> None:
    """Every member has an entry; every subscribed partition is assigned exactly once, to a
    member subscribing to its topic; nothing else is assigned."""
    assert set(result) == set(subscriptions)
    assert all(isinstance(a, Assignment) for a in result.values())
    seen: list[TopicPartition] = []
    for member_id, assignment in result.items():
        mine = subscribed_partitions(partitions_per_topic, subscriptions[member_id])
        assert set(assignment.partitions) <= mine, member_id
        seen.extend(assignment.partitions)
    wanted = set().union(
        *(subscribed_partitions(partitions_per_topic, s) for s in subscriptions.values())
    )
    assert len(seen) == len(set(seen)), "a partition went to two members"
    assert set(seen) == wanted


def counts(result: Mapping[str, Assignment]) -> dict[str, int]:
    return {member_id: len(a.partitions) for member_id, a in result.items()}


def assert_no_cost_reducing_path(
    partitions_per_topic: Mapping[str, int],
    subscriptions: Mapping[str, Subscription],
    result: Mapping[str, Assignment],
) -> None:
    """As balanced as the subscriptions allow: no member can pass partitions along a chain
    of members (each handing one it holds to the next, which subscribes to its topic) to a
    member holding two or more fewer. That is the optimality condition of a semi-matching
    (Harvey, Ladner, Lovász, Tamir 2003): no such chain exists iff the loads are optimal."""
    load = counts(result)
    topics_of = {
        m: {t for t in s.topics if partitions_per_topic.get(t, 0) > 0}
        for m, s in subscriptions.items()
    }
    hands_to = {
        giver: {
            taker
            for taker in subscriptions
            if taker != giver and any(tp.topic in topics_of[taker] for tp in a.partitions)
        }
        for giver, a in result.items()
    }
    for source in subscriptions:
        reached = {source}
        queue = deque([source])
        while queue:
            for taker in hands_to[queue.popleft()]:
                if taker not in reached:
                    reached.add(taker)
                    queue.append(taker)
        for taker in reached:
            assert load[taker] >= load[source] - 1, (source, taker, load)


def in_reverse(subscriptions: Mapping[str, Subscription]) -> dict[str, Subscription]:
    return dict(reversed(list(subscriptions.items())))


def previous(
    subscriptions: Mapping[str, Subscription], result: Mapping[str, Assignment]
) -> dict[str, Subscription]:
    """The next generation's subscriptions: same topics, owning what ``result`` gave."""
    return {
        member_id: Subscription(topics=s.topics, owned=result[member_id].partitions)
        for member_id, s in subscriptions.items()
    }


def least_squares(
    partitions_per_topic: Mapping[str, int],
    subscriptions: Mapping[str, Subscription],
    pinned: Mapping[TopicPartition, str],
) -> int:
    """The smallest sum of squared member loads of any valid assignment that gives each
    ``pinned`` partition to its member: a min-cost flow (successive shortest paths, SPFA)
    where a member's k-th partition costs k**2 - (k-1)**2, convex, so the cheapest flow is
    the most balanced assignment. Slow and simple, for small groups."""
    base = dict.fromkeys(subscriptions, 0)
    for member_id in pinned.values():
        base[member_id] += 1
    free = sorted(
        set().union(
            *(subscribed_partitions(partitions_per_topic, s) for s in subscriptions.values())
        )
        - set(pinned)
    )
    members = sorted(subscriptions)
    source, sink = 0, 1
    first_member = 2 + len(free)
    graph: list[list[list[int]]] = [[] for _ in range(first_member + len(members))]

    def edge(a: int, b: int, cost: int) -> None:
        graph[a].append([b, 1, cost, len(graph[b])])
        graph[b].append([a, 0, -cost, len(graph[a]) - 1])

    for i, partition in enumerate(free):
        edge(source, 2 + i, 0)
        for j, member_id in enumerate(members):
            if partition.topic in subscriptions[member_id].topics:
                edge(2 + i, first_member + j, 0)
    for j, member_id in enumerate(members):
        for k in range(base[member_id] + 1, base[member_id] + len(free) + 1):
            edge(first_member + j, sink, k * k - (k - 1) * (k - 1))

    total = sum(n * n for n in base.values())
    for _ in free:
        distance = [None] * len(graph)
        distance[source] = 0
        came_from: list[tuple[int, int] | None] = [None] * len(graph)
        queue = deque([source])
        while queue:
            node = queue.popleft()
            for index, (to, capacity, cost, _) in enumerate(graph[node]):
                if capacity and (distance[to] is None or distance[node] + cost < distance[to]):
                    distance[to] = distance[node] + cost
                    came_from[to] = (node, index)
                    queue.append(to)
        assert distance[sink] is not None, "every free partition has a subscriber"
        total += distance[sink]
        node = sink
        while (step := came_from[node]) is not None:
            previous_node, index = step
            forward = graph[previous_node][index]
            forward[1] -= 1
            graph[node][forward[3]][1] += 1
            node = previous_node
    return total
