"""``FakeCoordinatorBroker``: the in-memory ``FakeBroker`` plus a live group coordinator.

It speaks the group APIs of docs/groups.md (FindCoordinator, JoinGroup,
SyncGroup, Heartbeat, LeaveGroup, OffsetCommit, OffsetFetch) with Kafka's
rules, simplified, and written apart from ``logserver/groups`` so the client's
state machine is checked against an independent reading of the protocol:

- a dynamic member joining with no id gets ``MEMBER_ID_REQUIRED`` and an id;
- a join starts a rebalance (PreparingRebalance): heartbeats answer
  ``REBALANCE_IN_PROGRESS`` until every member has joined again, or until the
  largest rebalance timeout passed (who did not rejoin is removed); then the
  generation moves on, the leader (the first to join) gets every member's
  metadata, and the leader's SyncGroup makes the group Stable;
- a static member joining again under a known ``group_instance_id`` while the
  group is Stable takes the old member's place and assignment with no
  rebalance (the old id is then fenced: ``FENCED_INSTANCE_ID``);
- commits: members with their generation (accepted while PreparingRebalance,
  refused with ``REBALANCE_IN_PROGRESS`` while CompletingRebalance), or
  "simple" ones while the group has no members.

Scripting: ``fail_next(api_key, code)`` answers the next request of that kind
with a top-level error; ``expire(member_id)`` is a session timeout;
``hold_syncs()`` keeps SyncGroup answers back (``release_syncs``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any

import pytest

from client import cluster as cluster_module
from client.connection import BrokerConnection
from client.errors import (
    FencedInstanceIdError,
    IllegalGenerationError,
    InconsistentGroupProtocolError,
    MemberIdRequiredError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)
from client.group import coordinator_lookup
from client.group.member_metadata import Assignment, Subscription
from client.protocol import ApiKey
from tests.client.producer.fake_broker import FakeBroker, FakeConnection, Reply, _resolve

__all__ = ["FakeCoordinatorBroker", "FakeGroupState"]

GROUP_APIS = {
    ApiKey.FIND_COORDINATOR,
    ApiKey.JOIN_GROUP,
    ApiKey.SYNC_GROUP,
    ApiKey.HEARTBEAT,
    ApiKey.LEAVE_GROUP,
    ApiKey.OFFSET_COMMIT,
    ApiKey.OFFSET_FETCH,
}


@dataclasses.dataclass
class FakeMember:
    member_id: str
    instance_id: str | None
    protocols: list[tuple[str, bytes]]
    rebalance_timeout_ms: int
    joining: asyncio.Future[dict[str, Any]] | None = None
    syncing: asyncio.Future[dict[str, Any]] | None = None
    assignment: bytes = b""

    def subscription(self, protocol: str) -> Subscription:
        return Subscription.decode(dict(self.protocols)[protocol])


@dataclasses.dataclass
class FakeGroupState:
    state: str = "Empty"
    generation: int = 0
    protocol: str | None = None
    leader: str | None = None
    members: dict[str, FakeMember] = dataclasses.field(default_factory=dict)
    static: dict[str, str] = dataclasses.field(default_factory=dict)
    offsets: dict[tuple[str, int], tuple[int, str]] = dataclasses.field(default_factory=dict)
    join_timer: asyncio.TimerHandle | None = None
    rebalances: int = 0

    def assignment_of(self, member_id: str) -> Assignment:
        data = self.members[member_id].assignment
        return Assignment.decode(data) if data else Assignment(())


class FakeCoordinatorBroker(FakeBroker):
    def __init__(self, topics: dict[str, int] | None = None, **kwargs: Any) -> None:
        super().__init__(topics, **kwargs)
        self.groups: dict[str, FakeGroupState] = defaultdict(FakeGroupState)
        self._failures: dict[ApiKey, deque[int]] = defaultdict(deque)
        self._ids = itertools.count(1)
        self._syncs_held: list[tuple[asyncio.Future[dict[str, Any]], dict[str, Any]]] | None = None

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeCoordinatorBroker:
        broker = self

        class _Opener:
            @staticmethod
            async def open(host: str, port: int, *, client_id: str, **_: Any) -> FakeConnection:
                if not broker.reachable or (host, port) != (broker.host, broker.port):
                    from client.errors import NetworkError

                    raise NetworkError(f"cannot connect to {host}:{port}: fake refuses")
                connection = _GroupConnection(broker, client_id)
                broker.connections.append(connection)
                return connection

        monkeypatch.setattr(cluster_module, "BrokerConnection", _Opener)
        monkeypatch.setattr(coordinator_lookup, "BrokerConnection", _Opener)
        return self

    # -- scripting ----------------------------------------------------------------------

    def fail_next(self, api_key: ApiKey, *codes: int) -> None:
        self._failures[api_key].extend(codes)

    def expire(self, group_id: str, member_id: str) -> None:
        """The member's session timed out."""
        group = self.groups[group_id]
        self._remove(group, member_id)
        self._after_removal(group)

    def hold_syncs(self) -> None:
        self._syncs_held = []

    def release_syncs(self) -> None:
        held, self._syncs_held = self._syncs_held or [], None
        for future, reply in held:
            if not future.done():
                future.set_result(reply)

    def bodies(self, api_key: ApiKey) -> list[dict[str, Any]]:
        return [body for key, body in self.requests if key == api_key]

    # -- answering ----------------------------------------------------------------------

    def answer_group(
        self, key: ApiKey, body: dict[str, Any], client_id: str
    ) -> dict[str, Any] | asyncio.Future[dict[str, Any]]:
        self.requests.append((key, body))
        self.request_times.append(asyncio.get_running_loop().time())
        failures = self._failures[key]
        if failures:
            return {"error": failures.popleft(), "error_message": "scripted by the test"}
        if key == ApiKey.FIND_COORDINATOR:
            return {"error": 0, "node_id": self.node_id, "host": self.host, "port": self.port}
        group = self.groups[body["group_id"]]
        if key == ApiKey.JOIN_GROUP:
            return self._join(group, body, client_id)
        if key == ApiKey.SYNC_GROUP:
            return self._sync(group, body)
        if key == ApiKey.HEARTBEAT:
            return _error_only(self._check(group, body, heartbeat=True))
        if key == ApiKey.LEAVE_GROUP:
            return self._leave(group, body)
        if key == ApiKey.OFFSET_COMMIT:
            return self._commit(group, body)
        return self._offset_fetch(group, body)

    def _join(
        self, group: FakeGroupState, body: dict[str, Any], client_id: str
    ) -> dict[str, Any] | asyncio.Future[dict[str, Any]]:
        member_id = body["member_id"]
        instance_id = body["group_instance_id"]
        protocols = [(name, bytes(meta)) for name, meta in body["protocols"]]
        if group.members:
            names = {name for name, _ in protocols}
            common = set.intersection(
                *({n for n, _ in m.protocols} for m in group.members.values())
            )
            if not names & common:
                return {
                    "error": InconsistentGroupProtocolError.code,
                    "error_message": f"the group's protocols are {sorted(common)}",
                }
        if instance_id is not None:
            old = group.static.get(instance_id)
            if old is not None and old != member_id:
                new_id = f"{client_id}-{next(self._ids)}"
                member = group.members.pop(old, None)
                group.static[instance_id] = new_id
                if member is not None:
                    member.member_id = new_id
                    group.members[new_id] = member
                    if group.leader == old:
                        group.leader = new_id
                    if group.state == "Stable" and member.protocols == protocols:
                        return self._join_answer(group, new_id, leader_view=False)
                member_id = new_id
            elif old is None:
                member_id = member_id or f"{client_id}-{next(self._ids)}"
                group.static[instance_id] = member_id
        elif not member_id:
            return {
                "error": MemberIdRequiredError.code,
                "error_message": "join again with this id",
                "member_id": f"{client_id}-{next(self._ids)}",
            }
        member = group.members.get(member_id)
        if member is None:
            member = FakeMember(member_id, instance_id, protocols, body["rebalance_timeout_ms"])
            group.members[member_id] = member
        member.protocols = protocols
        member.rebalance_timeout_ms = body["rebalance_timeout_ms"]
        if member.joining is not None and not member.joining.done():
            member.joining.set_result({"error": UnknownMemberIdError.code})
        member.joining = asyncio.get_running_loop().create_future()
        if group.state != "PreparingRebalance":
            self._prepare(group)
        future = member.joining
        self._try_complete(group)
        return future

    def _prepare(self, group: FakeGroupState) -> None:
        group.state = "PreparingRebalance"
        for member in group.members.values():
            if member.syncing is not None and not member.syncing.done():
                member.syncing.set_result({"error": RebalanceInProgressError.code})
        timeout_ms = max(m.rebalance_timeout_ms for m in group.members.values())
        loop = asyncio.get_running_loop()
        group.join_timer = loop.call_later(timeout_ms / 1000, self._complete, group)

    def _try_complete(self, group: FakeGroupState) -> None:
        if group.state == "PreparingRebalance" and all(
            m.joining is not None for m in group.members.values()
        ):
            self._complete(group)

    def _complete(self, group: FakeGroupState) -> None:
        if group.join_timer is not None:
            group.join_timer.cancel()
            group.join_timer = None
        for member_id in [m for m, member in group.members.items() if member.joining is None]:
            self._remove(group, member_id)
        group.generation += 1
        group.rebalances += 1
        if not group.members:
            group.state, group.leader, group.protocol = "Empty", None, None
            return
        group.state = "CompletingRebalance"
        if group.leader not in group.members:
            group.leader = next(iter(group.members))
        common = _common_protocols(group)
        group.protocol = next(n for n, _ in group.members[group.leader].protocols if n in common)
        for member in group.members.values():
            joining, member.joining = member.joining, None
            assert joining is not None
            if not joining.done():
                joining.set_result(self._join_answer(group, member.member_id, leader_view=True))

    def _join_answer(self, group: FakeGroupState, member_id: str, *, leader_view: bool) -> dict:
        members = []
        if leader_view and member_id == group.leader:
            members = [
                [m.member_id, m.instance_id, dict(m.protocols)[group.protocol]]
                for m in group.members.values()
            ]
        return {
            "error": 0,
            "generation_id": group.generation,
            "protocol_name": group.protocol,
            "leader": group.leader,
            "member_id": member_id,
            "members": members,
        }

    def _check(self, group: FakeGroupState, body: dict[str, Any], *, heartbeat: bool) -> int:
        member_id = body["member_id"]
        instance_id = body.get("group_instance_id")
        if instance_id is not None and group.static.get(instance_id) not in (None, member_id):
            return FencedInstanceIdError.code
        if member_id not in group.members:
            return UnknownMemberIdError.code
        if heartbeat and group.state == "PreparingRebalance":
            return RebalanceInProgressError.code
        if body["generation_id"] != group.generation:
            return IllegalGenerationError.code
        return 0

    def _sync(
        self, group: FakeGroupState, body: dict[str, Any]
    ) -> dict[str, Any] | asyncio.Future[dict[str, Any]]:
        code = self._check(group, body, heartbeat=False)
        if code:
            return _error_only(code)
        if group.state == "PreparingRebalance":
            return _error_only(RebalanceInProgressError.code)
        member = group.members[body["member_id"]]
        future = asyncio.get_running_loop().create_future()
        if group.state == "Stable":
            future.set_result({"error": 0, "assignment": member.assignment})
            return future
        member.syncing = future
        if body["member_id"] == group.leader:
            given = {m: bytes(a) for m, a in body["assignments"]}
            for each in group.members.values():
                each.assignment = given.get(each.member_id, b"")
            group.state = "Stable"
            for each in group.members.values():
                syncing, each.syncing = each.syncing, None
                if syncing is not None and not syncing.done():
                    reply = {"error": 0, "assignment": each.assignment}
                    if self._syncs_held is not None:
                        self._syncs_held.append((syncing, reply))
                    else:
                        syncing.set_result(reply)
        return future

    def _leave(self, group: FakeGroupState, body: dict[str, Any]) -> dict[str, Any]:
        results = []
        for member_id, instance_id in body["members"]:
            if member_id in group.members:
                self._remove(group, member_id)
                results.append([member_id, instance_id, 0])
            else:
                results.append([member_id, instance_id, UnknownMemberIdError.code])
        self._after_removal(group)
        return {"error": 0, "members": results}

    def _remove(self, group: FakeGroupState, member_id: str) -> None:
        member = group.members.pop(member_id, None)
        if member is None:
            return
        if member.instance_id is not None and group.static.get(member.instance_id) == member_id:
            del group.static[member.instance_id]
        for future in (member.joining, member.syncing):
            if future is not None and not future.done():
                future.set_result({"error": UnknownMemberIdError.code})

    def _after_removal(self, group: FakeGroupState) -> None:
        if not group.members:
            if group.join_timer is not None:
                group.join_timer.cancel()
                group.join_timer = None
            group.state, group.leader = "Empty", None
        elif group.state in ("Stable", "CompletingRebalance"):
            self._prepare(group)
        else:
            self._try_complete(group)

    def _commit(self, group: FakeGroupState, body: dict[str, Any]) -> dict[str, Any]:
        code = 0
        if body["generation_id"] < 0 and not body["member_id"]:
            if group.members:
                code = UnknownMemberIdError.code
        else:
            code = self._check(group, body, heartbeat=False)
            if not code and group.state == "CompletingRebalance":
                code = RebalanceInProgressError.code
        topics = []
        for topic, rows in body["topics"]:
            out = []
            for partition, offset, metadata in rows:
                if not code:
                    group.offsets[(topic, partition)] = (offset, metadata)
                out.append([partition, code, "scripted" if code else None])
            topics.append([topic, out])
        return {"topics": topics}

    def _offset_fetch(self, group: FakeGroupState, body: dict[str, Any]) -> dict[str, Any]:
        topics = []
        for topic, partitions in body["topics"]:
            rows = []
            for partition in partitions:
                offset, metadata = group.offsets.get((topic, partition), (-1, ""))
                rows.append([partition, offset, metadata, 0])
            topics.append([topic, rows])
        return {"error": 0, "topics": topics}


def _common_protocols(group: FakeGroupState) -> set[str]:
    return set.intersection(*({n for n, _ in m.protocols} for m in group.members.values()))


def _error_only(code: int) -> dict[str, Any]:
    return {"error": code, "error_message": "fake coordinator" if code else None}


class _GroupConnection(FakeConnection):
    """A fake connection whose group requests may be answered later (a JoinGroup waits)."""

    def send(
        self,
        api_key: int,
        body: dict[str, Any],
        tail: Sequence[bytes | bytearray | memoryview] = (),
        *,
        expect_response: bool = True,
        api_version: int = 0,
    ) -> asyncio.Future[Reply] | None:
        key = ApiKey(api_key)
        if key not in GROUP_APIS:
            return super().send(api_key, body, tail, expect_response=expect_response)
        if self._closed is not None:
            raise self._closed
        broker = self.broker
        assert isinstance(broker, FakeCoordinatorBroker)
        answer = broker.answer_group(key, body, self.client_id)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Reply] = loop.create_future()
        self._waiting.append(future)
        if isinstance(answer, asyncio.Future):
            answer.add_done_callback(
                lambda done: _resolve(future, (done.result(), memoryview(b"")))
            )
        else:
            loop.call_soon(_resolve, future, (answer, memoryview(b"")))
        return future

    async def wait(self, future: asyncio.Future[Reply], timeout_ms: int) -> Reply:
        return await BrokerConnection.wait(self, future, timeout_ms)  # type: ignore[arg-type]
