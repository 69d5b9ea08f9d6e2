"""ListGroups, DescribeGroups and DeleteGroups (docs/groups.md).

ListGroups ``{"states_filter": [state, …]}`` (empty: all) answers ``{"error",
"error_message", "groups": [[group_id, protocol_type, state], …]}``: the
groups this broker coordinates, with those known only by their committed
offsets as ``Empty``. DescribeGroups ``{"groups": [group_id, …]}`` answers
``{"groups": [[error, group_id, state, protocol_type, protocol, [[member_id,
group_instance_id, client_id, client_host, metadata, assignment], …]], …]}``
(metadata and assignments only while Stable, as Kafka; an unknown group is
``Dead``). DeleteGroups ``{"groups": [group_id, …]}`` answers ``{"results":
[[group_id, error, error_message], …]}``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from client.errors import InvalidRequestError, LogServerError
from logserver.api.checks import list_field
from logserver.groups.group import GroupState
from logserver.groups.validation import check_group_id
from logserver.network.response import Response

if TYPE_CHECKING:
    from logserver.broker import Broker

__all__ = ["handle_delete_groups", "handle_describe_groups", "handle_list_groups"]

_STATES = {state.value.lower(): state.value for state in GroupState}


def handle_list_groups(broker: Broker, body: dict[str, Any], tail: memoryview) -> Any:
    wanted = set()
    for state in list_field(body, "states_filter", []):
        if type(state) is not str or state.lower() not in _STATES:
            raise InvalidRequestError(
                f"states_filter: {state!r:.60} is not one of {sorted(_STATES.values())}"
            )
        wanted.add(_STATES[state.lower()])
    return _list(broker, wanted)


async def _list(broker: Broker, wanted: set[str]) -> Response:
    groups = await broker.groups.list_groups()
    rows = [list(row) for row in groups if not wanted or row[2] in wanted]
    return Response({"error": 0, "error_message": None, "groups": rows})


def handle_describe_groups(broker: Broker, body: dict[str, Any], tail: memoryview) -> Any:
    return _describe(broker, list_field(body, "groups"))


async def _describe(broker: Broker, group_ids: list[Any]) -> Response:
    rows: list[list[Any]] = []
    for group_id in group_ids:
        try:
            summary = await broker.groups.describe_group(check_group_id(group_id))
        except LogServerError as exc:
            rows.append([exc.code, str(group_id)[:255], GroupState.DEAD.value, "", "", []])
            continue
        members = [
            [
                m.member_id,
                m.group_instance_id,
                m.client_id,
                m.client_host,
                m.metadata,
                m.assignment,
            ]
            for m in summary.members
        ]
        rows.append(
            [0, summary.group_id, summary.state, summary.protocol_type, summary.protocol, members]
        )
    return Response({"groups": rows})


def handle_delete_groups(broker: Broker, body: dict[str, Any], tail: memoryview) -> Any:
    return _delete(broker, list_field(body, "groups"))


async def _delete(broker: Broker, group_ids: list[Any]) -> Response:
    results: list[list[Any]] = []
    for group_id in group_ids:
        try:
            await broker.groups.delete_group(check_group_id(group_id))
        except LogServerError as exc:
            results.append([str(group_id)[:255], exc.code, exc.message])
        else:
            results.append([group_id, 0, None])
    return Response({"results": results})
