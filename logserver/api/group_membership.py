"""JoinGroup, SyncGroup, Heartbeat and LeaveGroup (docs/groups.md, "Wire").

JoinGroup ``{"group_id", "session_timeout_ms", "rebalance_timeout_ms",
"member_id", "group_instance_id", "protocol_type", "protocols": [[name,
metadata], …]}`` answers ``{"error", "error_message", "generation_id",
"protocol_name", "leader", "member_id", "members": [[member_id,
group_instance_id, metadata], …]}`` once the join phase ends (the request
waits at the coordinator meanwhile). SyncGroup ``{"group_id",
"generation_id", "member_id", "group_instance_id", "assignments":
[[member_id, bytes], …]}`` answers ``{"error", "error_message",
"assignment"}`` once the leader has sent the assignments. Heartbeat
``{"group_id", "generation_id", "member_id", "group_instance_id"}`` answers
``{"error", "error_message"}``. LeaveGroup ``{"group_id", "members":
[[member_id, group_instance_id], …]}`` answers ``{"error", "error_message",
"members": [[member_id, group_instance_id, error], …]}``.

Every error keeps the response's shape, so a client reads the same fields
whatever happened.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from client.errors import InvalidRequestError, LogServerError
from logserver.api.checks import int_field, list_field
from logserver.api.context import RequestContext
from logserver.groups.group import JoinRequest, JoinResult, SyncResult
from logserver.groups.validation import (
    MAX_ID_LENGTH,
    check_group_id,
    check_instance_id,
    check_member_id,
)
from logserver.network.response import Response

if TYPE_CHECKING:
    from logserver.broker import Broker

__all__ = ["handle_heartbeat", "handle_join_group", "handle_leave_group", "handle_sync_group"]

_INT32_MAX = 2**31 - 1
MAX_PROTOCOLS = 64


def _error_body(exc: LogServerError) -> dict[str, Any]:
    return {"error": exc.code, "error_message": exc.message}


# -- JoinGroup ---------------------------------------------------------------------------


def handle_join_group(
    broker: Broker, body: dict[str, Any], tail: memoryview, context: RequestContext
) -> Any:
    member_id = body.get("member_id", "")
    try:
        group_id = check_group_id(body.get("group_id"))
        request = _join_request(body, context)
        member_id = request.member_id
        outcome = broker.groups.join(group_id, request)
    except LogServerError as exc:
        return Response(_join_body(JoinResult(str(member_id)[:MAX_ID_LENGTH], error=exc)))
    if isinstance(outcome, JoinResult):
        return Response(_join_body(outcome))
    return _join_later(outcome)


async def _join_later(pending: Awaitable[JoinResult]) -> Response:
    return Response(_join_body(await pending))


def _join_request(body: dict[str, Any], context: RequestContext) -> JoinRequest:
    session_ms = int_field(body, "session_timeout_ms")
    rebalance_ms = int_field(body, "rebalance_timeout_ms", session_ms)
    if not 1 <= rebalance_ms <= _INT32_MAX:
        raise InvalidRequestError(
            f"rebalance_timeout_ms {rebalance_ms} must be between 1 and {_INT32_MAX}"
        )
    protocol_type = body.get("protocol_type")
    if type(protocol_type) is not str or len(protocol_type) > MAX_ID_LENGTH:
        raise InvalidRequestError(
            f"protocol_type must be a string of at most {MAX_ID_LENGTH} characters"
        )
    protocols: list[tuple[str, bytes]] = []
    for entry in list_field(body, "protocols"):
        if not isinstance(entry, list) or len(entry) != 2:
            raise InvalidRequestError("each protocol must be [name, metadata bytes]")
        name, metadata = entry
        if type(name) is not str or not 1 <= len(name) <= MAX_ID_LENGTH:
            raise InvalidRequestError(
                f"protocol name {name!r:.60} must be a string of 1 to {MAX_ID_LENGTH} characters"
            )
        if not isinstance(metadata, bytes):
            raise InvalidRequestError(f"protocol {name!r}: metadata must be bytes")
        protocols.append((name, metadata))
    names = [name for name, _ in protocols]
    if len(set(names)) != len(names) or len(names) > MAX_PROTOCOLS:
        raise InvalidRequestError(
            f"protocols {names[:10]}: at most {MAX_PROTOCOLS}, each named once"
        )
    return JoinRequest(
        member_id=check_member_id(body.get("member_id", "")),
        group_instance_id=check_instance_id(body.get("group_instance_id")),
        session_timeout_ms=session_ms,
        rebalance_timeout_ms=rebalance_ms,
        protocol_type=protocol_type,
        protocols=tuple(protocols),
        client_id=context.client_id,
        client_host=context.client_host,
    )


def _join_body(result: JoinResult) -> dict[str, Any]:
    error = result.error
    return {
        "error": 0 if error is None else error.code,
        "error_message": None if error is None else error.message,
        "generation_id": result.generation_id,
        "protocol_name": result.protocol_name,
        "leader": result.leader,
        "member_id": result.member_id,
        "members": [list(member) for member in result.members],
    }


# -- SyncGroup ---------------------------------------------------------------------------


def handle_sync_group(
    broker: Broker, body: dict[str, Any], tail: memoryview, context: RequestContext
) -> Any:
    try:
        group_id = check_group_id(body.get("group_id"))
        member_id = check_member_id(body.get("member_id"))
        instance_id = check_instance_id(body.get("group_instance_id"))
        generation_id = int_field(body, "generation_id")
        assignments: dict[str, bytes] = {}
        for entry in list_field(body, "assignments", []):
            if not isinstance(entry, list) or len(entry) != 2:
                raise InvalidRequestError("each assignment must be [member_id, bytes]")
            assigned_to, assignment = entry
            if type(assigned_to) is not str or not isinstance(assignment, bytes):
                raise InvalidRequestError("each assignment must be [member_id, bytes]")
            assignments[assigned_to] = assignment
        outcome = broker.groups.sync(group_id, member_id, instance_id, generation_id, assignments)
    except LogServerError as exc:
        return Response(_sync_body(SyncResult(error=exc)))
    if isinstance(outcome, SyncResult):
        return Response(_sync_body(outcome))
    return _sync_later(outcome)


async def _sync_later(pending: Awaitable[SyncResult]) -> Response:
    return Response(_sync_body(await pending))


def _sync_body(result: SyncResult) -> dict[str, Any]:
    error = result.error
    return {
        "error": 0 if error is None else error.code,
        "error_message": None if error is None else error.message,
        "assignment": result.assignment,
    }


# -- Heartbeat and LeaveGroup ---------------------------------------------------------------


def handle_heartbeat(
    broker: Broker, body: dict[str, Any], tail: memoryview, context: RequestContext
) -> Response:
    try:
        broker.groups.heartbeat(
            check_group_id(body.get("group_id")),
            check_member_id(body.get("member_id")),
            check_instance_id(body.get("group_instance_id")),
            int_field(body, "generation_id"),
        )
    except LogServerError as exc:
        return Response(_error_body(exc))
    return Response({"error": 0, "error_message": None})


def handle_leave_group(
    broker: Broker, body: dict[str, Any], tail: memoryview, context: RequestContext
) -> Response:
    try:
        group_id = check_group_id(body.get("group_id"))
        leaving: list[tuple[str, str | None]] = []
        for entry in list_field(body, "members"):
            if not isinstance(entry, list) or len(entry) != 2:
                raise InvalidRequestError("each member must be [member_id, group_instance_id]")
            leaving.append((check_member_id(entry[0]), check_instance_id(entry[1])))
        results = broker.groups.leave(group_id, leaving)
    except LogServerError as exc:
        return Response({**_error_body(exc), "members": []})
    return Response({"error": 0, "error_message": None, "members": [list(row) for row in results]})
