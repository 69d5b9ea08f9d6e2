"""``FakeGroupBroker``: the in-memory ``FakeBroker`` plus a group coordinator (admin, CLI tests).

It answers FindCoordinator, ListGroups, DescribeGroups, DeleteGroups,
OffsetFetch and OffsetCommit with the shapes docs/groups.md gives, from
groups a test sets up with ``add_group``. Member assignments are encoded by
``client.group.member_metadata.Assignment``, as members encode them. A
"simple" commit (generation -1) to a group with members gets
``UNKNOWN_MEMBER_ID`` per partition, as Kafka answers it.

``fail_next(api_key, code, where="top"|"group")`` answers the next request of
that kind with an error, for the whole request or inside it (the per-group
error of DescribeGroups and DeleteGroups): how coordinator moves are tested.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import deque
from typing import Any

import pytest

from client import cluster as cluster_module
from client.errors import (
    GroupIdNotFoundError,
    NonEmptyGroupError,
    OffsetOutOfRangeError,
    UnknownMemberIdError,
    UnknownTopicOrPartitionError,
)
from client.group import coordinator_lookup
from client.group.member_metadata import Assignment
from client.protocol import ApiKey
from tests.client.producer.fake_broker import FakeBroker, Reply

__all__ = ["FakeGroup", "FakeGroupBroker", "FakeMember", "encode_assignment"]


def encode_assignment(partitions: dict[str, list[int]]) -> bytes:
    return Assignment(tuple((t, p) for t, ps in partitions.items() for p in ps)).encode()


@dataclasses.dataclass
class FakeMember:
    member_id: str
    assignment: dict[str, list[int]] = dataclasses.field(default_factory=dict)
    client_id: str = "app"
    host: str = "/127.0.0.1"
    group_instance_id: str | None = None
    raw_assignment: bytes | None = None  # sent instead of the encoded ``assignment``


@dataclasses.dataclass
class FakeGroup:
    state: str = "Empty"
    members: list[FakeMember] = dataclasses.field(default_factory=list)
    offsets: dict[tuple[str, int], tuple[int, str]] = dataclasses.field(default_factory=dict)
    protocol_type: str = "consumer"
    protocol: str = "range"


class FakeGroupBroker(FakeBroker):
    def __init__(self, topics: dict[str, int] | None = None, **kwargs: Any) -> None:
        super().__init__(topics, **kwargs)
        self.groups: dict[str, FakeGroup] = {}
        self._failures: dict[ApiKey, deque[tuple[int, str]]] = {}

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeGroupBroker:
        super().install(monkeypatch)
        # Group requests travel on connections of their own, opened by the lookup.
        monkeypatch.setattr(coordinator_lookup, "BrokerConnection", cluster_module.BrokerConnection)
        return self

    def add_group(
        self,
        group_id: str,
        state: str = "Stable",
        members: list[FakeMember] | None = None,
        offsets: dict[tuple[str, int], int] | None = None,
        **kwargs: Any,
    ) -> FakeGroup:
        group = FakeGroup(
            state,
            list(members or []),
            {tp: (o, "") for tp, o in (offsets or {}).items()},
            **kwargs,
        )
        self.groups[group_id] = group
        return group

    def fail_next(self, api_key: ApiKey, code: int, where: str = "top") -> None:
        self._failures.setdefault(api_key, deque()).append((code, where))

    def committed(self, group_id: str) -> dict[tuple[str, int], int]:
        return {tp: o for tp, (o, _) in self.groups[group_id].offsets.items()}

    # -- answering ------------------------------------------------------------------

    def answer(self, api_key: int, body: dict[str, Any], tail: bytes) -> Reply | None:
        handlers = {
            ApiKey.FIND_COORDINATOR: self._find_coordinator,
            ApiKey.LIST_GROUPS: self._list_groups,
            ApiKey.DESCRIBE_GROUPS: self._describe_groups,
            ApiKey.DELETE_GROUPS: self._delete_groups,
            ApiKey.OFFSET_FETCH: self._offset_fetch,
            ApiKey.OFFSET_COMMIT: self._offset_commit,
        }
        handler = handlers.get(ApiKey(api_key))
        if handler is None:
            return super().answer(api_key, body, tail)
        key = ApiKey(api_key)
        self.requests.append((key, body))
        self.request_times.append(asyncio.get_running_loop().time())
        failures = self._failures.get(key)
        failure = failures.popleft() if failures else None
        if failure is not None and failure[1] == "top":
            return {"error": failure[0], "error_message": f"fake: {key.name}"}, memoryview(b"")
        group_error = 0 if failure is None else failure[0]
        return handler(body, group_error), memoryview(b"")

    def _find_coordinator(self, body: dict[str, Any], _: int) -> dict[str, Any]:
        return {
            "error": 0,
            "error_message": None,
            "node_id": 0,
            "host": self.host,
            "port": self.port,
        }

    def _list_groups(self, body: dict[str, Any], _: int) -> dict[str, Any]:
        wanted = set(body.get("states_filter") or ())
        groups = [
            [g, group.protocol_type, group.state]
            for g, group in sorted(self.groups.items())
            if group.state != "Dead" and (not wanted or group.state in wanted)
        ]
        return {"error": 0, "error_message": None, "groups": groups}

    def _describe_groups(self, body: dict[str, Any], error: int) -> dict[str, Any]:
        out = []
        for g in body["groups"]:
            group = self.groups.get(g)
            if error:
                out.append([error, g, "", "", "", []])
            elif group is None:
                out.append([0, g, "Dead", "", "", []])
            else:
                members = [
                    [
                        m.member_id,
                        m.group_instance_id,
                        m.client_id,
                        m.host,
                        b"",
                        m.raw_assignment
                        if m.raw_assignment is not None
                        else encode_assignment(m.assignment),
                    ]
                    for m in group.members
                ]
                out.append([0, g, group.state, group.protocol_type, group.protocol, members])
        return {"groups": out}

    def _delete_groups(self, body: dict[str, Any], error: int) -> dict[str, Any]:
        results = []
        for g in body["groups"]:
            group = self.groups.get(g)
            if error:
                results.append([g, error, "fake: moved"])
            elif group is None:
                results.append([g, GroupIdNotFoundError.code, f"group {g!r} does not exist"])
            elif group.members:
                results.append([g, NonEmptyGroupError.code, f"group {g!r} has members"])
            else:
                del self.groups[g]
                results.append([g, 0, None])
        return {"results": results}

    def _offset_fetch(self, body: dict[str, Any], _: int) -> dict[str, Any]:
        group = self.groups.get(body["group_id"], FakeGroup())
        if body["topics"] is None:
            wanted = sorted(group.offsets)
        else:
            wanted = [(t, p) for t, ps in body["topics"] for p in ps]
        by_topic: dict[str, list[list[Any]]] = {}
        for topic, partition in wanted:
            offset, metadata = group.offsets.get((topic, partition), (-1, ""))
            by_topic.setdefault(topic, []).append([partition, offset, metadata, 0])
        return {
            "error": 0,
            "error_message": None,
            "topics": [[t, rows] for t, rows in by_topic.items()],
        }

    def _offset_commit(self, body: dict[str, Any], _: int) -> dict[str, Any]:
        group_id = body["group_id"]
        group = self.groups.get(group_id)
        simple = body["generation_id"] == -1 and body["member_id"] == ""
        results = []
        accepted = {}
        for topic, rows in body["topics"]:
            out = []
            for partition, offset, metadata in rows:
                if simple and group is not None and group.members:
                    out.append([partition, UnknownMemberIdError.code, "the group has members"])
                elif partition >= self.topics.get(topic, 0):
                    out.append([partition, UnknownTopicOrPartitionError.code, None])
                elif offset < 0:
                    out.append(
                        [partition, OffsetOutOfRangeError.code, f"offset {offset} is negative"]
                    )
                elif offset > self.end_offset(topic, partition):
                    out.append([partition, OffsetOutOfRangeError.code, "beyond the log end"])
                else:
                    accepted[(topic, partition)] = (offset, metadata)
                    out.append([partition, 0, None])
            results.append([topic, out])
        if accepted:
            self.groups.setdefault(group_id, FakeGroup()).offsets.update(accepted)
        return {"topics": results}
