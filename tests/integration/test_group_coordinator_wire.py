"""The group coordinator over the wire, against a real standalone broker (docs/groups.md).

Requests are the raw bodies docs/groups.md documents, sent on connections of
their own per member (a JoinGroup waits at the coordinator, and a broker
answers a connection's requests in order). Brokers run with
``group.initial.rebalance.delay.ms`` 0 and a small minimum session timeout, so
that every wait here is a few seconds at most.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable
from typing import Any

import msgpack
import pytest

from client.connection import BrokerConnection
from client.protocol import ApiKey
from tests.integration import wire
from tests.integration.conftest import BrokerFactory, Clients
from tests.support.broker_process import BrokerProcess

pytestmark = pytest.mark.timeout(120)

FAST = ("--group-initial-rebalance-delay-ms", "0", "--group-min-session-timeout-ms", "500")
SMALL = ("--offsets-topic-num-partitions", "5")
GROUP = "orders-app"
SESSION_MS = 6_000
REBALANCE_MS = 10_000
TOPIC = "orders"

NONE = 0
OFFSET_OUT_OF_RANGE = 1
UNKNOWN_TOPIC_OR_PARTITION = 3
OFFSET_METADATA_TOO_LARGE = 12
COORDINATOR_LOAD_IN_PROGRESS = 14
NOT_COORDINATOR = 16
INVALID_TOPIC = 17
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
INVALID_GROUP_ID = 24
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
REBALANCE_IN_PROGRESS = 27
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69
MEMBER_ID_REQUIRED = 79
GROUP_MAX_SIZE_REACHED = 81
FENCED_INSTANCE_ID = 82


# -- requests ---------------------------------------------------------------------------


def send(conn: BrokerConnection, key: ApiKey, body: dict[str, Any]) -> asyncio.Future[Any]:
    future = conn.send(key, body)
    assert future is not None
    return future


async def answer(
    conn: BrokerConnection, future: asyncio.Future[Any], timeout_ms: int = wire.REPLY_TIMEOUT_MS
) -> dict[str, Any]:
    body, _ = await conn.wait(future, timeout_ms)
    return body


async def call(conn: BrokerConnection, key: ApiKey, body: dict[str, Any]) -> dict[str, Any]:
    """The response body as sent, errors included (``conn.request`` would raise them)."""
    return await answer(conn, send(conn, key, body))


def subscription(*topics: str) -> bytes:
    return msgpack.packb({"version": 1, "topics": list(topics), "user_data": None, "owned": []})


def assignment(partitions: Iterable[int], topic: str = TOPIC) -> bytes:
    return msgpack.packb(
        {"version": 1, "partitions": [[topic, list(partitions)]], "user_data": None}
    )


def join_body(
    member_id: str = "",
    *,
    instance: str | None = None,
    session_ms: int = SESSION_MS,
    protocols: Iterable[tuple[str, bytes]] = (("range", subscription(TOPIC)),),
    protocol_type: str = "consumer",
    group: str = GROUP,
) -> dict[str, Any]:
    return {
        "group_id": group,
        "session_timeout_ms": session_ms,
        "rebalance_timeout_ms": REBALANCE_MS,
        "member_id": member_id,
        "group_instance_id": instance,
        "protocol_type": protocol_type,
        "protocols": [[name, metadata] for name, metadata in protocols],
    }


def start_join(conn: BrokerConnection, member_id: str = "", **kw: Any) -> asyncio.Future[Any]:
    return send(conn, ApiKey.JOIN_GROUP, join_body(member_id, **kw))


async def new_member_id(conn: BrokerConnection, **kw: Any) -> str:
    """A first JoinGroup: MEMBER_ID_REQUIRED, with the id to join with."""
    body = await call(conn, ApiKey.JOIN_GROUP, join_body(**kw))
    assert body["error"] == MEMBER_ID_REQUIRED, body
    assert "again with member id" in body["error_message"]
    return body["member_id"]


async def sync(
    conn: BrokerConnection,
    generation: int,
    member_id: str,
    assignments: dict[str, bytes] | None = None,
    *,
    instance: str | None = None,
) -> dict[str, Any]:
    return await answer(conn, start_sync(conn, generation, member_id, assignments, instance))


def start_sync(
    conn: BrokerConnection,
    generation: int,
    member_id: str,
    assignments: dict[str, bytes] | None = None,
    instance: str | None = None,
) -> asyncio.Future[Any]:
    return send(
        conn,
        ApiKey.SYNC_GROUP,
        {
            "group_id": GROUP,
            "generation_id": generation,
            "member_id": member_id,
            "group_instance_id": instance,
            "assignments": [[m, a] for m, a in (assignments or {}).items()],
        },
    )


async def heartbeat(
    conn: BrokerConnection, generation: int, member_id: str, instance: str | None = None
) -> dict[str, Any]:
    return await call(
        conn,
        ApiKey.HEARTBEAT,
        {
            "group_id": GROUP,
            "generation_id": generation,
            "member_id": member_id,
            "group_instance_id": instance,
        },
    )


async def commit(
    conn: BrokerConnection,
    generation: int,
    member_id: str,
    offsets: dict[tuple[str, int], int],
    *,
    metadata: str = "",
    group: str = GROUP,
) -> dict[tuple[str, int], tuple[int, str | None]]:
    """``{(topic, partition): (error, error_message)}`` of an OffsetCommit."""
    topics: dict[str, list[list[Any]]] = {}
    for (topic, partition), offset in offsets.items():
        topics.setdefault(topic, []).append([partition, offset, metadata])
    body = await call(
        conn,
        ApiKey.OFFSET_COMMIT,
        {
            "group_id": group,
            "generation_id": generation,
            "member_id": member_id,
            "group_instance_id": None,
            "topics": [[t, rows] for t, rows in topics.items()],
        },
    )
    assert body["error"] == NONE, body
    return {(t, row[0]): (row[1], row[2]) for t, rows in body["topics"] for row in rows}


async def committed(
    conn: BrokerConnection, topics: list[list[Any]] | None = None, group: str = GROUP
) -> dict[tuple[str, int], tuple[int, str]]:
    body = await call(conn, ApiKey.OFFSET_FETCH, {"group_id": group, "topics": topics})
    assert body["error"] == NONE, body
    out = {}
    for topic, rows in body["topics"]:
        for partition, offset, metadata, error in rows:
            assert error == NONE
            out[(topic, partition)] = (offset, metadata)
    return out


async def ready(conn: BrokerConnection, broker: BrokerProcess, group: str = GROUP) -> None:
    """FindCoordinator names this broker, and the group's partition is loaded."""
    body = await call(conn, ApiKey.FIND_COORDINATOR, {"key": group, "key_type": 0})
    assert body["error"] == NONE, body
    assert (body["host"], body["port"]) == (broker.host, broker.port), body
    deadline = time.monotonic() + wire.REPLY_TIMEOUT_S
    while True:
        probe = await call(
            conn,
            ApiKey.HEARTBEAT,
            {"group_id": group, "generation_id": 0, "member_id": "x", "group_instance_id": None},
        )
        if probe["error"] != COORDINATOR_LOAD_IN_PROGRESS:
            assert probe["error"] == UNKNOWN_MEMBER_ID, probe
            return
        assert time.monotonic() < deadline, "the coordinator never finished loading"
        await asyncio.sleep(0.05)


class Member:
    """One client's view of its membership, on its own connection."""

    def __init__(self, conn: BrokerConnection) -> None:
        self.conn = conn
        self.member_id = ""
        self.generation = -1
        self.assignment = b""

    def take(self, body: dict[str, Any]) -> dict[str, Any]:
        assert body["error"] == NONE, body
        self.member_id, self.generation = body["member_id"], body["generation_id"]
        return body


async def stable_pair(clients: Clients, broker: BrokerProcess) -> tuple[Member, Member]:
    """Members a (the leader: partitions 0, 1) and b (2, 3) of a Stable group, generation 2."""
    a, b = Member(await clients.conn(broker, "client-a")), Member(await clients.conn(broker, "b"))
    await ready(a.conn, broker)
    a_id = await new_member_id(a.conn)
    a.take(await answer(a.conn, start_join(a.conn, a_id)))
    assert a.generation == 1
    a.assignment = (await sync(a.conn, 1, a_id, {a_id: assignment([0, 1, 2, 3])}))["assignment"]
    b_id = await new_member_id(b.conn)
    b_join = start_join(b.conn, b_id)  # waits: the group rebalances, a must rejoin
    assert (await heartbeat(a.conn, 1, a_id))["error"] == REBALANCE_IN_PROGRESS
    a_body = a.take(await answer(a.conn, start_join(a.conn, a_id)))
    b_body = b.take(await answer(b.conn, b_join))
    assert a.generation == b.generation == 2
    assert a_body["leader"] == b_body["leader"] == a_id  # the leader rejoined: kept
    assert sorted(m[0] for m in a_body["members"]) == sorted([a_id, b_id])
    assert b_body["members"] == []
    b_sync = start_sync(b.conn, 2, b_id)  # the follower waits for the leader's assignments
    plan = {a_id: assignment([0, 1]), b_id: assignment([2, 3])}
    a.assignment = (await sync(a.conn, 2, a_id, plan))["assignment"]
    b_synced = await answer(b.conn, b_sync)
    assert b_synced["error"] == NONE, b_synced
    b.assignment = b_synced["assignment"]
    assert (a.assignment, b.assignment) == (plan[a_id], plan[b_id])
    return a, b


# -- tests --------------------------------------------------------------------------------


@pytest.mark.broker_flags(*FAST)
async def test_find_coordinator_creates_the_offsets_topic(
    broker: BrokerProcess, clients: Clients
) -> None:
    conn = await clients.conn(broker)
    await ready(conn, broker)
    meta = await wire.metadata(conn, ["__consumer_offsets"])
    [[name, error, partitions]] = meta["topics"]
    assert (name, error, len(partitions)) == ("__consumer_offsets", NONE, 50)
    assert {p[2] for p in partitions} == {0}  # this broker leads every partition
    body = await call(conn, ApiKey.DELETE_TOPICS, {"topics": ["__consumer_offsets"]})
    [[_, code, message]] = body["topics"]
    assert code == INVALID_TOPIC
    assert "internal topic" in message
    body = await call(conn, ApiKey.FIND_COORDINATOR, {"key": "g" * 10_000, "key_type": 0})
    assert body["error"] == INVALID_GROUP_ID


@pytest.mark.broker_flags(*FAST, *SMALL)
async def test_two_members_join_sync_heartbeat_commit_fetch(
    broker: BrokerProcess, clients: Clients
) -> None:
    admin = await clients.conn(broker)
    await wire.create_topic(admin, TOPIC, partitions=4)
    for partition in range(4):
        await wire.produce_values(admin, TOPIC, partition, [b"x"] * 10)
    a, b = await stable_pair(clients, broker)
    assert (await heartbeat(a.conn, 2, a.member_id))["error"] == NONE
    assert (await heartbeat(b.conn, 2, b.member_id))["error"] == NONE
    assert (await heartbeat(b.conn, 1, b.member_id))["error"] == ILLEGAL_GENERATION
    assert await commit(a.conn, 2, a.member_id, {(TOPIC, 0): 3, (TOPIC, 1): 4}, metadata="a") == {
        (TOPIC, 0): (NONE, None),
        (TOPIC, 1): (NONE, None),
    }
    assert (await commit(b.conn, 2, b.member_id, {(TOPIC, 2): 10}))[(TOPIC, 2)][0] == NONE
    assert await committed(b.conn) == {
        (TOPIC, 0): (3, "a"),
        (TOPIC, 1): (4, "a"),
        (TOPIC, 2): (10, ""),
    }
    asked = await committed(a.conn, [[TOPIC, [0, 3]]])
    assert asked == {(TOPIC, 0): (3, "a"), (TOPIC, 3): (-1, "")}


@pytest.mark.broker_flags(*FAST, *SMALL)
async def test_a_member_that_stops_heartbeating_is_evicted_within_its_session(
    broker: BrokerProcess, clients: Clients
) -> None:
    session_ms = 1_000
    a, b = Member(await clients.conn(broker, "a")), Member(await clients.conn(broker, "b"))
    await ready(a.conn, broker)
    a.take(
        await answer(a.conn, start_join(a.conn, await new_member_id(a.conn), session_ms=session_ms))
    )
    await sync(a.conn, 1, a.member_id, {})
    b_join = start_join(
        b.conn, await new_member_id(b.conn, session_ms=session_ms), session_ms=session_ms
    )
    a.take(await answer(a.conn, start_join(a.conn, a.member_id, session_ms=session_ms)))
    b.take(await answer(b.conn, b_join))
    await asyncio.gather(sync(a.conn, 2, a.member_id, {}), sync(b.conn, 2, b.member_id))
    silent_since = time.monotonic()  # b says nothing more
    while (await heartbeat(a.conn, 2, a.member_id))["error"] == NONE:
        assert time.monotonic() - silent_since < session_ms / 1000 + 2, "b was never evicted"
        await asyncio.sleep(0.05)
    evicted_after = time.monotonic() - silent_since
    assert evicted_after >= session_ms / 1000 - 0.1
    assert evicted_after < session_ms / 1000 + 1.0  # a sweep (0.1 s), and slack for a busy host
    body = a.take(await answer(a.conn, start_join(a.conn, a.member_id, session_ms=session_ms)))
    assert a.generation == 3
    assert [m[0] for m in body["members"]] == [a.member_id]  # b is gone
    assert (await heartbeat(b.conn, 2, b.member_id))["error"] == UNKNOWN_MEMBER_ID


@pytest.mark.broker_flags(*FAST, *SMALL)
async def test_a_static_member_rejoins_without_a_rebalance(
    broker: BrokerProcess, clients: Clients
) -> None:
    static, other = Member(await clients.conn(broker)), Member(await clients.conn(broker))
    await ready(static.conn, broker)
    static.take(await answer(static.conn, start_join(static.conn, instance="i-static")))
    assert static.generation == 1
    await sync(static.conn, 1, static.member_id, {static.member_id: b"only"}, instance="i-static")
    other_join = start_join(other.conn, await new_member_id(other.conn))
    static.take(
        await answer(static.conn, start_join(static.conn, static.member_id, instance="i-static"))
    )
    other.take(await answer(other.conn, other_join))
    other_sync = start_sync(other.conn, 2, other.member_id)
    plan = {static.member_id: b"S", other.member_id: b"O"}
    await sync(static.conn, 2, static.member_id, plan, instance="i-static")
    assert (await answer(other.conn, other_sync))["assignment"] == b"O"
    old_id = static.member_id

    # The static member restarts: a new connection, no member id, the same instance id.
    restarted = Member(await clients.conn(broker))
    body = restarted.take(
        await call(restarted.conn, ApiKey.JOIN_GROUP, join_body(instance="i-static"))
    )
    assert restarted.generation == 2  # no rebalance
    assert restarted.member_id != old_id
    assert body["leader"] == old_id  # not itself: it does not assign
    assert (await sync(restarted.conn, 2, restarted.member_id, instance="i-static"))[
        "assignment"
    ] == b"S"
    assert (await heartbeat(other.conn, 2, other.member_id))["error"] == NONE
    fenced = await heartbeat(static.conn, 2, old_id, instance="i-static")
    assert fenced["error"] == FENCED_INSTANCE_ID
    assert (await heartbeat(restarted.conn, 2, restarted.member_id, "i-static"))["error"] == NONE


@pytest.mark.broker_flags(*FAST, *SMALL)
async def test_bad_commits(broker: BrokerProcess, clients: Clients) -> None:
    admin = await clients.conn(broker)
    await wire.create_topic(admin, TOPIC, partitions=4)
    await wire.produce_values(admin, TOPIC, 0, [b"x"] * 10)
    a, b = await stable_pair(clients, broker)
    rows = await commit(a.conn, 2, a.member_id, {(TOPIC, 2): 0})
    assert rows[(TOPIC, 2)] == (
        ILLEGAL_GENERATION,
        f"partition {TOPIC}-2 is not assigned to member {a.member_id} in generation 2: "
        "commit only what this member owns",
    )
    rows = await commit(a.conn, 1, a.member_id, {(TOPIC, 0): 1, (TOPIC, 1): 1})
    assert set(rows.values()) == {
        (ILLEGAL_GENERATION, "generation 1 is not the group's current one (2): rejoin")
    }
    rows = await commit(a.conn, 2, a.member_id, {(TOPIC, 0): -5})
    assert rows[(TOPIC, 0)] == (OFFSET_OUT_OF_RANGE, "offset -5 is negative")
    rows = await commit(a.conn, 2, a.member_id, {(TOPIC, 0): 11})
    assert rows[(TOPIC, 0)] == (
        OFFSET_OUT_OF_RANGE,
        f"offset 11 is beyond the log end 10 of {TOPIC}-0",
    )
    assert (await commit(a.conn, 2, a.member_id, {(TOPIC, 0): 10}))[(TOPIC, 0)][0] == NONE
    rows = await commit(a.conn, 2, a.member_id, {("nope", 0): 1, (TOPIC, 9): 1})
    assert {code for code, _ in rows.values()} == {UNKNOWN_TOPIC_OR_PARTITION}
    rows = await commit(a.conn, 2, a.member_id, {(TOPIC, 1): 1}, metadata="m" * 4097)
    assert rows[(TOPIC, 1)][0] == OFFSET_METADATA_TOO_LARGE
    assert "at most 4096" in rows[(TOPIC, 1)][1]
    rows = await commit(b.conn, 2, "m" * 10_000, {(TOPIC, 2): 1})
    assert rows[(TOPIC, 2)][0] == UNKNOWN_MEMBER_ID
    assert "at most 255 characters" in rows[(TOPIC, 2)][1]
    rows = await commit(b.conn, -1, "", {(TOPIC, 2): 1})  # simple commit, members active
    assert rows[(TOPIC, 2)][0] == UNKNOWN_MEMBER_ID
    assert await committed(b.conn) == {(TOPIC, 0): (10, "")}


@pytest.mark.broker_flags(*FAST, *SMALL, "--group-max-size", "1")
async def test_bad_joins(broker: BrokerProcess, clients: Clients) -> None:
    a, b = Member(await clients.conn(broker)), Member(await clients.conn(broker))
    await ready(a.conn, broker)
    body = await call(a.conn, ApiKey.JOIN_GROUP, join_body(group="g" * 10_000))
    assert body["error"] == INVALID_GROUP_ID
    assert "at most 255 characters" in body["error_message"]
    body = await call(a.conn, ApiKey.JOIN_GROUP, join_body("m" * 10_000))
    assert body["error"] == UNKNOWN_MEMBER_ID
    assert "at most 255 characters" in body["error_message"]
    for session_ms in (499, 1_800_001):
        body = await call(a.conn, ApiKey.JOIN_GROUP, join_body(session_ms=session_ms))
        assert body["error"] == INVALID_SESSION_TIMEOUT
        assert "[500, 1800000]" in body["error_message"]
    body = await call(a.conn, ApiKey.JOIN_GROUP, join_body("not-a-member"))
    assert body["error"] == UNKNOWN_MEMBER_ID
    a.take(await answer(a.conn, start_join(a.conn, await new_member_id(a.conn))))
    body = await call(b.conn, ApiKey.JOIN_GROUP, join_body(protocols=[("sticky", b"")]))
    assert body["error"] == INCONSISTENT_GROUP_PROTOCOL
    assert "['range']" in body["error_message"]
    body = await call(b.conn, ApiKey.JOIN_GROUP, join_body(protocol_type="connect"))
    assert body["error"] == INCONSISTENT_GROUP_PROTOCOL
    body = await call(b.conn, ApiKey.JOIN_GROUP, join_body())
    assert body["error"] == GROUP_MAX_SIZE_REACHED
    assert "group.max.size" in body["error_message"]
    body = await call(b.conn, ApiKey.SYNC_GROUP, {"group_id": GROUP, "generation_id": 1})
    assert body["error"] == 42  # INVALID_REQUEST: member_id is missing
    assert "assignment" in body


@pytest.mark.broker_flags(*FAST, *SMALL)
async def test_list_describe_delete(broker: BrokerProcess, clients: Clients) -> None:
    admin = await clients.conn(broker)
    await wire.create_topic(admin, TOPIC, partitions=4)
    a, b = await stable_pair(clients, broker)
    body = await call(admin, ApiKey.LIST_GROUPS, {"states_filter": []})
    assert body["groups"] == [[GROUP, "consumer", "Stable"]]
    body = await call(admin, ApiKey.LIST_GROUPS, {"states_filter": ["Empty"]})
    assert body["groups"] == []
    body = await call(admin, ApiKey.DESCRIBE_GROUPS, {"groups": [GROUP, "unknown-group"]})
    [described, unknown] = body["groups"]
    error, group_id, state, protocol_type, protocol, members = described
    assert (error, group_id, state, protocol_type, protocol) == (
        NONE, GROUP, "Stable", "consumer", "range",
    )  # fmt: skip
    by_id = {m[0]: m for m in members}
    assert by_id[a.member_id][1:4] == [None, "client-a", "127.0.0.1"]
    assert by_id[a.member_id][4] == subscription(TOPIC)
    assert by_id[b.member_id][5] == b.assignment
    assert unknown == [NONE, "unknown-group", "Dead", "", "", []]
    body = await call(admin, ApiKey.DELETE_GROUPS, {"groups": [GROUP, "unknown-group"]})
    assert [row[:2] for row in body["results"]] == [
        [GROUP, NON_EMPTY_GROUP],
        ["unknown-group", GROUP_ID_NOT_FOUND],
    ]
    assert (await commit(a.conn, 2, a.member_id, {(TOPIC, 0): 0}))[(TOPIC, 0)][0] == NONE
    body = await call(
        admin,
        ApiKey.LEAVE_GROUP,
        {"group_id": GROUP, "members": [[a.member_id, None], [b.member_id, None], ["x", None]]},
    )
    assert body["members"] == [
        [a.member_id, None, NONE],
        [b.member_id, None, NONE],
        ["x", None, UNKNOWN_MEMBER_ID],
    ]
    body = await call(admin, ApiKey.LIST_GROUPS, {"states_filter": ["empty"]})
    assert body["groups"] == [[GROUP, "consumer", "Empty"]]
    body = await call(admin, ApiKey.DELETE_GROUPS, {"groups": [GROUP]})
    assert body["results"] == [[GROUP, NONE, None]]
    assert await committed(admin) == {}
    body = await call(admin, ApiKey.DESCRIBE_GROUPS, {"groups": [GROUP]})
    assert body["groups"][0][2] == "Dead"
    body = await call(admin, ApiKey.LIST_GROUPS, {"states_filter": []})
    assert body["groups"] == []


@pytest.mark.broker_flags(*FAST, *SMALL)
async def test_committed_offsets_survive_a_restart(broker: BrokerProcess, clients: Clients) -> None:
    conn = await clients.conn(broker)
    await wire.create_topic(conn, TOPIC, partitions=2)
    await wire.produce_values(conn, TOPIC, 1, [b"x"] * 5)
    await ready(conn, broker)
    rows = await commit(conn, -1, "", {(TOPIC, 0): 0, (TOPIC, 1): 5}, metadata="before")
    assert set(rows.values()) == {(NONE, None)}
    conn.close()
    await broker.restart_async()
    conn = await clients.conn(broker)
    await ready(conn, broker)
    assert await committed(conn) == {(TOPIC, 0): (0, "before"), (TOPIC, 1): (5, "before")}
    body = await call(conn, ApiKey.LIST_GROUPS, {"states_filter": []})
    assert body["groups"] == [[GROUP, "consumer", "Empty"]]
    body = await call(conn, ApiKey.DESCRIBE_GROUPS, {"groups": [GROUP]})
    assert body["groups"][0][2] == "Empty"


@pytest.mark.broker_flags(*FAST, *SMALL)
async def test_shutdown_answers_a_waiting_join(broker: BrokerProcess, clients: Clients) -> None:
    a, b = Member(await clients.conn(broker)), Member(await clients.conn(broker))
    await ready(a.conn, broker)
    a.take(await answer(a.conn, start_join(a.conn, await new_member_id(a.conn))))
    await sync(a.conn, 1, a.member_id, {})
    waiting = start_join(b.conn, await new_member_id(b.conn))  # waits for a to rejoin
    await asyncio.sleep(0.2)
    started = time.monotonic()
    assert await broker.stop_async() == 0
    assert time.monotonic() - started < 5
    body = await answer(b.conn, waiting)
    assert body["error"] == NOT_COORDINATOR, body
    assert "find the coordinator again" in body["error_message"]


@pytest.mark.broker_flags(*FAST, *SMALL)
async def test_offset_fetch_of_an_unknown_group_has_no_offsets(
    broker: BrokerProcess, clients: Clients
) -> None:
    conn = await clients.conn(broker)
    await ready(conn, broker, "nobody")
    assert await committed(conn, [[TOPIC, [0, 1]]], group="nobody") == {
        (TOPIC, 0): (-1, ""),
        (TOPIC, 1): (-1, ""),
    }
    assert await committed(conn, None, group="nobody") == {}


async def test_not_coordinator_before_the_offsets_topic_exists(
    broker_factory: BrokerFactory, clients: Clients
) -> None:
    broker = broker_factory(flags=[*FAST, *SMALL])
    conn = await clients.conn(broker)
    body = await call(conn, ApiKey.JOIN_GROUP, join_body())
    assert body["error"] == NOT_COORDINATOR
    assert "FindCoordinator creates it" in body["error_message"]
